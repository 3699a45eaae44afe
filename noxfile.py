"""The checks beside the test run, and the version matrix, as nox sessions (docs/CONTRIBUTING.md).

``python -m pytest`` runs the tests. The checks of the code and its packaging run here, each a session:

- ``lint``: ruff (lint and format), mypy --strict on the package, the import contracts, then the checks of what a
  user's type checker sees (tests/checks/test_code_quality.py);
- ``docs``: the documentation site, warnings as errors, into docs/_build/html (tests/checks/test_docs_site.py);
- ``release``: the sdist and the wheel into dist/, ``twine check --strict``, then the wheel and an editable install
  as users meet them (tests/checks/test_wheel.py, test_editable.py);
- ``bench``: every benchmark at its smallest settings (tests/checks/test_bench.py).

They run on the interpreter that runs nox, with the test extra installed. The matrix makes environments of its own:
``tests`` on Python 3.11, 3.12 and 3.13 and ``lowest``, the lowest version of every dependency pyproject.toml
allows, run the suite's fast subset; ``authlib-latest`` runs it against Authlib's newest release. ``nox`` alone
runs the matrix.

Interpreters are found on PATH (``python3.12``) and, failing that, among pyenv's (``$PYENV_ROOT/versions``) and
uv's installed Pythons: a pyenv shim that names a version pyenv does not have is skipped. A missing interpreter
skips its session with a warning on a developer's machine, and fails the run where the ``CI`` variable is set
(nox's own rule; ``--error-on-missing-interpreters`` or ``--no-error-on-missing-interpreters`` decide instead).
Nothing is ever downloaded: no interpreter, and only packages through the ordinary package index.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
PYTHONS = ["3.11", "3.12", "3.13"]
#: What the sessions on other Pythons run: the suite's core, fast and version-sensitive. The login in all four
#: frameworks and its rules (asyncio, ssl, http.cookies, the contract suite), the API client (sync and async),
#: the token stores (sqlite3, SQLAlchemy, PostgreSQL), the sandbox and canvases. Left to the one full run: the
#: browser (Chromium behaves the same whatever Python drives it), the adversarial suites (hostile inputs through
#: the login code the contract suite runs; 25 CPU-seconds), the multi-process token tests, the command line's
#: login (subprocesses), and tests/package (the docs' and examples' own runs, the pytest plugin in users' suites).
FAST_SUBSET = [
    "tests/login",
    "tests/client",
    "tests/tokens",
    "tests/sandbox",
    "tests/canvas",
    "--ignore=tests/login/test_adversarial.py",
    "--ignore=tests/login/test_adversarial_replays.py",
    "--ignore=tests/tokens/test_token_processes.py",
]

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.download_python = "never"
os.environ.setdefault("UV_PYTHON_DOWNLOADS", "never")  # nor may uv fetch one when asked for a version it lacks
# uv installs no bytecode unless asked (pip compiles it): where PYTHONDONTWRITEBYTECODE is set too, every process of
# a session then compiled every module it imported, and servers started in subprocesses took seconds to answer.
os.environ.setdefault("UV_COMPILE_BYTECODE", "1")
nox.options.sessions = ["tests", "lowest"]
nox.options.reuse_venv = "yes"


def _runs(python: str) -> bool:
    try:
        return subprocess.run([python, "-c", "pass"], capture_output=True, timeout=30, check=False).returncode == 0
    except OSError:
        return False


def _version_key(path: str) -> tuple[int, ...]:
    match = re.search(r"/(\d+(?:\.\d+)+)[^/]*/bin/", path)
    return tuple(int(part) for part in match.group(1).split(".")) if match else ()


def find_interpreter(version: str) -> str | None:
    """A working ``pythonX.Y``: on PATH first, then the newest patch release pyenv or uv installed."""
    name = f"python{version}"
    pyenv = os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv"))
    uv_pythons = os.environ.get("UV_PYTHON_INSTALL_DIR", str(Path.home() / ".local/share/uv/python"))
    installed = glob.glob(f"{pyenv}/versions/{version}.*/bin/{name}") + glob.glob(
        f"{uv_pythons}/*-{version}.*/bin/{name}"
    )
    candidates = [shutil.which(name), *sorted(installed, key=_version_key, reverse=True)]
    return next((path for path in candidates if path and _runs(path)), None)


def _expose_interpreters() -> None:
    """Put each interpreter found where nox looks (PATH), through links in a folder of this project's own."""
    links = ROOT / ".nox" / "interpreters"
    links.mkdir(parents=True, exist_ok=True)
    for version in PYTHONS:
        link = links / f"python{version}"
        found = find_interpreter(version)
        if link.is_symlink() or link.exists():
            link.unlink()
        if found:
            link.symlink_to(found)
    os.environ["PATH"] = f"{links}{os.pathsep}{os.environ.get('PATH', '')}"


_expose_interpreters()


def _pytest(session: nox.Session, *args: str) -> None:
    # PYTHONPATH cleared: the session's own install of this checkout is what runs.
    session.run("python", "-m", "pytest", "-q", "-p", "no:cacheprovider", *args, env={"PYTHONPATH": ""})


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """The suite's fast subset on one Python (``nox -s tests-3.12``); ``-- --full`` runs the whole suite."""
    session.install("-e", ".[test]")
    full = "--full" in session.posargs
    rest = [arg for arg in session.posargs if arg != "--full"]
    _pytest(session, *([] if full else FAST_SUBSET), *rest)


@nox.session(python=PYTHONS[0])
def lowest(session: nox.Session) -> None:
    """The fast subset with the lowest version of each dependency pyproject.toml allows (uv's lowest-direct
    resolution), on the lowest Python it allows; ``-- --full`` runs the whole suite so. A dependency whose minimum
    fails here gets a higher minimum."""
    if session.venv_backend != "uv":
        session.error("the lowest session needs uv (pip install uv): pip cannot resolve to the lowest versions")
    session.install("--resolution", "lowest-direct", "-e", ".[test]")
    # What was resolved, in the log: the versions this run proved to work.
    session.run("uv", "pip", "freeze", "--python", str(Path(session.bin) / "python"), external=True, silent=False)
    full = "--full" in session.posargs
    _pytest(session, *([] if full else FAST_SUBSET), *[arg for arg in session.posargs if arg != "--full"])


@nox.session(name="authlib-latest", python=PYTHONS[0])
def authlib_latest(session: nox.Session) -> None:
    """The fast subset against Authlib's newest release: the project installed as usual, then authlib alone
    upgraded to the newest version the resolver finds, whatever upper bound pyproject.toml sets; every other
    package stays as installed. A failure here is early news of an Authlib release that breaks the plugin."""
    session.install("-e", ".[test]")
    upgrade = ["--upgrade-package", "authlib"] if session.venv_backend == "uv" else ["--upgrade"]
    session.install(*upgrade, "authlib")
    session.run("python", "-c", "import authlib; print('Authlib', authlib.__version__)", silent=False)
    _pytest(session, *FAST_SUBSET, *session.posargs)


#: What ruff checks and formats.
CODE = ["gist_authlib", "tests", "examples", "bench", "docs", "noxfile.py"]


def _checks(session: nox.Session, *files: str) -> None:
    session.run(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *files, *session.posargs)


@nox.session(python=False)
def lint(session: nox.Session) -> None:
    """ruff, mypy --strict on the package, the import contracts, and what a user's type checker sees."""
    session.run(sys.executable, "-m", "ruff", "check", *CODE)
    session.run(sys.executable, "-m", "ruff", "format", "--check", *CODE)
    session.run(sys.executable, "-m", "mypy")
    lint_imports = Path(sys.executable).with_name("lint-imports")  # installed beside this Python, or on PATH
    session.run(str(lint_imports) if lint_imports.exists() else "lint-imports")
    _checks(session, "tests/checks/test_code_quality.py")


@nox.session(python=False)
def docs(session: nox.Session) -> None:
    """Build the documentation site into docs/_build/html, warnings as errors, and check what it documents."""
    _checks(session, "tests/checks/test_docs_site.py")


@nox.session(python=False)
def release(session: nox.Session) -> None:
    """Build the sdist and the wheel into dist/ and check them with ``twine check --strict``; then install the
    wheel in a fresh virtualenv and run the demo from it, and check that a user's mypy sees an editable install."""
    shutil.rmtree(ROOT / "dist", ignore_errors=True)
    session.run(sys.executable, "-m", "build", "--no-isolation", "--outdir", "dist", ".")
    session.run(sys.executable, "-m", "twine", "check", "--strict", *sorted(glob.glob("dist/*")))
    _checks(session, "tests/checks/test_wheel.py", "tests/checks/test_editable.py")


@nox.session(python=False)
def bench(session: nox.Session) -> None:
    """Every benchmark at its smallest settings: each runs and prints every line (speed is never asserted)."""
    _checks(session, "tests/checks/test_bench.py")

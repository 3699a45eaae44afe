"""The version matrix, the documentation and the release build, as nox sessions (docs/CONTRIBUTING.md).

``nox`` alone runs the matrix: ``tests`` on Python 3.11, 3.12 and 3.13, and ``lowest``, the suite with the lowest
version of every dependency that pyproject.toml allows. ``nox -s docs`` builds the site and ``nox -s release``
builds and checks the sdist and the wheel.

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
#: login (subprocesses), and tests/package (ruff, mypy, the wheel, the docs and the benchmarks check the code and
#: its packaging, not the interpreter).
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


@nox.session(python=False)
def docs(session: nox.Session) -> None:
    """Build the documentation site into docs/_build/html, warnings as errors (as the suite does)."""
    session.run(sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", "html", "docs", "docs/_build/html")


@nox.session(python=False)
def release(session: nox.Session) -> None:
    """Build the sdist and the wheel into dist/ and check them with ``twine check --strict``."""
    shutil.rmtree(ROOT / "dist", ignore_errors=True)
    session.run(sys.executable, "-m", "build", "--no-isolation", "--outdir", "dist", ".")
    session.run(sys.executable, "-m", "twine", "check", "--strict", *sorted(glob.glob("dist/*")))

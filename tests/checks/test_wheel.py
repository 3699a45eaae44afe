"""The release build, and the package as a wheel user meets it: installed in a fresh venv, run from a folder far
from any checkout.

``python -m build`` makes the sdist from a copy of this worktree and the wheel from that sdist, with the
hatchling already installed (no build isolation, so no download); ``twine check --strict`` checks both. The
wheel is installed with ``--no-deps --no-index`` into a venv that sees this machine's site-packages for the
dependencies. Every run is from a temporary folder with no ``PYTHONPATH``, so nothing can come from
the repository: the demo must find its example apps inside the installed package.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.venvs import ROOT, copy_source, make_venv, pip_install, run_checked

pytestmark = pytest.mark.xdist_group("wheel")  # one worker builds the wheel and the venv, once
FRAMEWORKS = ("starlette", "fastapi", "flask", "django")


@dataclass(frozen=True)
class Installed:
    """The sdist and the wheel of this worktree, and a fresh venv the wheel is installed in."""

    sdist: Path
    wheel: Path
    venv: Path
    elsewhere: Path  # a working directory outside any checkout

    def start(self, *args: str) -> subprocess.Popen[str]:
        """Run a command from the folder outside any checkout, with no PYTHONPATH."""
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DJANGO_SETTINGS_MODULE")}
        return subprocess.Popen(
            args, cwd=self.elsewhere, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    base = tmp_path_factory.mktemp("wheel")
    # The release build: an sdist, and the wheel built from that sdist (so the sdist is proven complete), with the
    # hatchling already installed (no build isolation, so no download).
    source = copy_source(base / "source")
    run_checked([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(base / "dist"), str(source)])
    (sdist,) = (base / "dist").glob("gist_authlib-*.tar.gz")
    (wheel,) = (base / "dist").glob("gist_authlib-*.whl")
    venv = base / "venv"
    pip_install(make_venv(venv), str(wheel))
    elsewhere = base / "elsewhere"
    elsewhere.mkdir()
    yield Installed(sdist, wheel, venv, elsewhere)


def test_the_wheel_ships_every_example_app_and_no_repository_folder(installed: Installed) -> None:
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    for app in ("starlette_app", "fastapi_app", "flask_app", "canvas_app", "multi_provider", "sync_contacts"):
        assert f"gist_authlib/examples/{app}.py" in names
    for part in ("manage.py", "gist_example/settings.py", "gist_example/urls.py", "gist_example/wsgi.py"):
        assert f"gist_authlib/examples/django_project/{part}" in names
    assert "gist_authlib/py.typed" in names
    assert not [name for name in names if name.startswith(("tests/", "examples/", "bench/"))]
    # Every module of the package and of examples/ (mapped to gist_authlib.examples) ships.
    sources = [
        p.relative_to(ROOT).as_posix() for folder in ("gist_authlib", "examples") for p in (ROOT / folder).rglob("*.py")
    ]
    shipped = [source if source.startswith("gist_authlib/") else f"gist_authlib/{source}" for source in sources]
    assert sorted(set(shipped) - names) == []


def test_the_installed_package_is_the_wheels_not_the_checkouts(installed: Installed) -> None:
    python = str(installed.venv / "bin" / "python")
    process = installed.start(python, "-c", "import gist_authlib.examples as e; print(e.__file__)")
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    assert Path(stdout.strip()).is_relative_to(installed.venv)


def test_demo_check_works_from_the_wheel_in_every_framework(installed: Installed) -> None:
    """``gist-authlib demo --check --framework all``: the four examples in turn, in one process."""
    script = str(installed.venv / "bin" / "gist-authlib")
    process = installed.start(script, "demo", "--check", "--framework", "all")
    stdout, stderr = process.communicate(timeout=180)
    assert process.returncode == 0, stdout + stderr
    checks = stdout.split("Logged in through the ")[1:]
    assert [check.split(" ", 1)[0] for check in checks] == list(FRAMEWORKS)
    for framework, check in zip(FRAMEWORKS, checks, strict=True):
        for name in ("Ada Lovelace", "Grace Hopper", "Alan Turing"):
            assert name in check, framework
        assert "install of workspace 100001 was stored and acknowledged" in check
        assert "The inbox showed the Gist app's canvas" in check  # the canvas example, from the wheel too
        # The example that ran is the installed package's, and it says where its code is.
        shown = check.split(f"{framework} example (", 1)[1].split(")", 1)[0]
        assert Path(shown).is_relative_to(installed.venv), shown
        assert Path(shown).exists()


def test_twine_check_strict_passes_on_the_sdist_and_the_wheel(installed: Installed) -> None:
    files = [str(installed.sdist), str(installed.wheel)]
    printed = run_checked([sys.executable, "-m", "twine", "check", "--strict", *files])
    assert printed.count("PASSED") == 2


def test_the_sdist_carries_the_tests_the_docs_and_their_tools(installed: Installed) -> None:
    with tarfile.open(installed.sdist) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    for part in ("tests/conftest.py", "tests/support/snippets.py", "tests/checks/test_wheel.py", "docs/conf.py",
                 "docs/GETTING_STARTED.md", "docs/_ext/gist_errors.py", "CHANGELOG.md", "LICENSE", "noxfile.py",
                 "scripts/install-test-deps.sh", "bench/RESULTS.md",
                 "examples/django_project/manage.py", "gist_authlib/py.typed"):  # fmt: skip
        assert part in names, part
    assert not [name for name in names if "__pycache__" in name or "/_build/" in name or name.endswith(".sqlite3")]


def test_the_version_comes_from_one_place(installed: Installed) -> None:
    import gist_authlib

    assert installed.wheel.name.startswith(f"gist_authlib-{gist_authlib.__version__}-")
    assert installed.sdist.name == f"gist_authlib-{gist_authlib.__version__}.tar.gz"
    assert "version =" not in (ROOT / "pyproject.toml").read_text().split("[project]")[1].split("\n[")[0]

"""The package as a wheel user meets it: built, installed in a fresh venv, run from a folder far from any checkout.

The wheel is built from a copy of this worktree with the setuptools already installed (no build isolation, so
no download), and installed with ``--no-deps --no-index`` into a venv that sees this machine's site-packages
for the dependencies. Every run is from a temporary folder with no ``PYTHONPATH``, so nothing can come from
the repository: the demo must find its example apps inside the installed package.
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.xdist_group("wheel")  # one worker builds the wheel and the venv, once
FRAMEWORKS = ("starlette", "fastapi", "flask", "django")
# What a build leaves behind or a developer's tools keep; none of it belongs in a wheel's source.
NOT_SOURCE = shutil.ignore_patterns(
    ".git", "__pycache__", "*.egg-info", "build", "dist", ".venv", ".*_cache", ".hypothesis", "*.sqlite3*"
)


@dataclass(frozen=True)
class Installed:
    """A wheel of this worktree and a fresh venv it is installed in."""

    wheel: Path
    venv: Path
    elsewhere: Path  # a working directory outside any checkout

    def start(self, *args: str) -> subprocess.Popen[str]:
        """Run a command from the folder outside any checkout, with no PYTHONPATH."""
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DJANGO_SETTINGS_MODULE")}
        return subprocess.Popen(
            args, cwd=self.elsewhere, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )


def _check(command: list[str]) -> str:
    result = subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)
    assert result.returncode == 0, f"{' '.join(command)}\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    base = tmp_path_factory.mktemp("wheel")
    # pip builds a local folder in place (build/, *.egg-info): build a copy, never the worktree itself.
    source = base / "source"
    shutil.copytree(ROOT, source, ignore=NOT_SOURCE)
    _check([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
            "-w", str(base / "dist"), str(source)])  # fmt: skip
    (wheel,) = (base / "dist").glob("gist_authlib-*.whl")
    venv = base / "venv"
    _check([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)])
    # --system-site-packages gives the *base* interpreter's site-packages. Run from inside a virtualenv (as most
    # people run the suite), the dependencies live in that virtualenv instead: a path file hands the new venv
    # every site-packages folder the running interpreter imports from. Folders named in a .pth are added to
    # sys.path without running their own .pth files, so an editable gist-authlib there does not shadow the wheel.
    purelib = _check([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
    outer = [folder for folder in (*site.getsitepackages(), site.getusersitepackages()) if Path(folder).is_dir()]
    (Path(purelib.strip()) / "_running_interpreter.pth").write_text("".join(f"{folder}\n" for folder in outer))
    # The machine's pip, run by the venv's interpreter, installs into the venv; --ignore-installed because the
    # machine's site-packages may hold an editable gist-authlib of the same version.
    _check([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps", "--no-index",
            "--ignore-installed", str(wheel)])  # fmt: skip
    elsewhere = base / "elsewhere"
    elsewhere.mkdir()
    yield Installed(wheel, venv, elsewhere)


def test_the_wheel_ships_every_example_app_and_no_repository_folder(installed: Installed) -> None:
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    for app in ("starlette_app", "fastapi_app", "flask_app", "canvas_app", "multi_provider", "sync_contacts"):
        assert f"gist_authlib/examples/{app}.py" in names
    for part in ("manage.py", "gist_example/settings.py", "gist_example/urls.py", "gist_example/wsgi.py"):
        assert f"gist_authlib/examples/django_project/{part}" in names
    assert "gist_authlib/py.typed" in names
    assert not [name for name in names if name.startswith(("tests/", "examples/", "bench/"))]
    # pyproject.toml lists the packages by hand (examples/ is mapped to gist_authlib.examples): none is missing.
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

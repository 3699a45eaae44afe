"""Fresh virtualenvs for the packaging tests: a copy of this checkout to build from, and a venv that installs it
with no download, its dependencies coming from the interpreter that runs the suite."""

from __future__ import annotations

import shutil
import site
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# What a build leaves behind or a developer's tools keep; none of it belongs in a package's source.
NOT_SOURCE = shutil.ignore_patterns(
    ".git", "__pycache__", "*.egg-info", "build", "dist", ".venv", ".nox", ".*_cache", ".hypothesis", "_build",
    "*.sqlite3*",
)  # fmt: skip


def run_checked(command: list[str], cwd: Path | None = None) -> str:
    """Run a command; its stdout, or an AssertionError with everything it printed."""
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=180, check=False)
    assert result.returncode == 0, f"{' '.join(command)}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def copy_source(folder: Path) -> Path:
    """A copy of this checkout to build from (a build writes into its source folder: build/, *.egg-info)."""
    shutil.copytree(ROOT, folder, symlinks=True, ignore=NOT_SOURCE)
    return folder


def make_venv(folder: Path) -> Path:
    """A venv that sees the dependencies of the interpreter running the suite; returns its python."""
    run_checked([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(folder)])
    python = folder / "bin" / "python"
    # --system-site-packages gives the *base* interpreter's site-packages. Run from inside a virtualenv (as most
    # people run the suite), the dependencies live in that virtualenv instead: a path file hands the new venv
    # every site-packages folder the running interpreter imports from. Folders named in a .pth are added to
    # sys.path without running their own .pth files, so an editable gist-authlib there does not shadow ours.
    purelib = run_checked([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).strip()
    outer = [path for path in (*site.getsitepackages(), site.getusersitepackages()) if Path(path).is_dir()]
    (Path(purelib) / "_running_interpreter.pth").write_text("".join(f"{path}\n" for path in outer))
    return python


def pip_install(python: Path, *args: str) -> None:
    """The running interpreter's pip, run by ``python``, installs into its venv; never from an index, and
    ``--ignore-installed`` because the outer site-packages may hold a gist-authlib of the same version."""
    run_checked([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--no-build-isolation",
           "--ignore-installed", *args])  # fmt: skip

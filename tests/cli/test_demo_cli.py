"""``gist-authlib demo`` as the README's quick start leaves it: after ``pip install -e ".[demo]"`` (Starlette and
uvicorn, no other framework) ``demo --check --framework all`` checks what is installed and names what it skipped;
the example's code is shown at its real path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# The quick start's install in a subprocess: FastAPI, Flask and Django are not there (imports of them fail as
# imports of absent packages do).
WITHOUT_OTHER_FRAMEWORKS = """
import importlib.abc, sys

class NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"fastapi", "flask", "django"}:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, NotInstalled())
from gist_authlib.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _demo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_OTHER_FRAMEWORKS, "demo", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )


def test_check_all_after_the_quick_starts_install_checks_starlette_and_names_what_it_skipped() -> None:
    result = _demo("--check", "--framework", "all")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    # The example's file itself, in the checkout's examples/, not the links an editable install adds under build/.
    assert f"Logged in through the starlette example ({ROOT / 'examples' / 'starlette_app.py'}); " in lines[0]
    assert "build" not in lines[0].split("(")[1]
    for framework in ("fastapi", "flask", "django"):
        skipped = (
            f"Skipped the {framework} example: {framework} is not installed; install what this needs: "
            f"pip install 'gist-authlib[demo,{framework}]'"
        )
        assert skipped in lines
    assert "Traceback" not in result.stderr


def test_one_framework_that_is_not_installed_is_an_error_naming_its_extra() -> None:
    result = _demo("--check", "--framework", "flask")
    assert result.returncode == 2
    assert "flask is not installed; install what this needs: pip install 'gist-authlib[demo,flask]'" in result.stderr

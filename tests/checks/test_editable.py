"""An editable install (``pip install -e .``) is visible to a user's type checker, and still imports right.

Static tools run no import hook: an editable install must put the package on a path they read (hatchling's path
file), and ``gist_authlib.examples`` must be found there as in the wheel (the link ``gist_authlib/examples`` to
``../examples``). Here a user's project, outside the checkout, is type-checked against an editable install of a
copy of this worktree.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from support.venvs import copy_source, make_venv, pip_install

pytestmark = pytest.mark.xdist_group("editable")  # mypy's cache stays with one worker

USER_CODE = """\
import gist_authlib
from gist_authlib.errors import StateError
from gist_authlib.examples import sync_contacts

reveal_type(gist_authlib.register)
reveal_type(StateError.replayed)
reveal_type(sync_contacts.main)
version: int = gist_authlib.__version__  # the one error this file has, which only a typed import can report
"""


def test_a_users_mypy_sees_the_editable_install(tmp_path: Path) -> None:
    source = copy_source(tmp_path / "source")
    python = make_venv(tmp_path / "venv")
    pip_install(python, "-e", str(source))
    user = tmp_path / "user"
    user.mkdir()
    (user / "app.py").write_text(USER_CODE)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}  # no PYTHONPATH, no MYPYPATH
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--python-executable", str(python), "--cache-dir", str(tmp_path / "cache"),
         "--no-error-summary", "app.py"],
        cwd=user, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    lines = result.stdout.splitlines()
    assert not [line for line in lines if "import-not-found" in line or "import-untyped" in line], result.stdout
    assert "def () -> gist_authlib.errors.StateError" in result.stdout
    assert any("gist_authlib._registry.GistApp" in line for line in lines if ":5: note" in line), result.stdout
    assert any('Revealed type is "def (argv:' in line for line in lines if ":7: note" in line), result.stdout
    errors = [line for line in lines if ": error:" in line]
    assert len(errors) == 1 and 'Incompatible types in assignment (expression has type "str"' in errors[0]

    # Python imports the same code: the package from the copy, the examples from its examples/ folder.
    where = subprocess.run(
        [str(python), "-c", "import gist_authlib.examples as e; print(e.__file__)"],
        cwd=user, env=env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert Path(where.stdout.strip()).resolve() == (source / "examples" / "__init__.py").resolve()

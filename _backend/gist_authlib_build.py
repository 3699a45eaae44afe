"""The package's build backend: setuptools' own, plus one thing for editable installs, a path type checkers read.

``pip install -e .`` makes setuptools map ``gist_authlib`` and ``gist_authlib.examples`` (the repository's
``examples/`` folder, through ``[tool.setuptools.package-dir]``) with an import hook. Python runs the hook; mypy,
pyright and other static tools never run code, so they found no ``gist_authlib`` at all in an editable install.
This backend adds, to the editable wheel only, a second path file naming ``build/__editable_typing__/``: a
folder that lays the package out as installed, through links to the checkout's folders (``gist_authlib/*`` and
``gist_authlib/examples`` -> ``examples/``). Edits show at once; a new module directly in ``gist_authlib/``
shows to type checkers after the next ``pip install -e .`` (Python's imports find it before that through
setuptools' hook). Where links cannot be made (Windows without the right to), the install is setuptools' alone.

Sdists and wheels are setuptools' own, byte for byte.
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import tomllib
import zipfile
from pathlib import Path
from typing import Any

from setuptools import build_meta as _setuptools
from setuptools.build_meta import *  # noqa: F403  (every hook but build_editable is setuptools' own)

ROOT = Path(__file__).resolve().parents[1]
VIEW = ROOT / "build" / "__editable_typing__"


def build_editable(
    wheel_directory: str, config_settings: dict[str, Any] | None = None, metadata_directory: str | None = None
) -> str:
    """setuptools' editable wheel, with a path file for type checkers added (PEP 660's hook)."""
    name: str = _setuptools.build_editable(wheel_directory, config_settings, metadata_directory)
    if _lay_out_view():
        _add_to_wheel(Path(wheel_directory) / name, "__editable__.gist_authlib.typing.pth", f"{VIEW}\n")
    return name


def _lay_out_view() -> bool:
    """Link the installed layout into VIEW; False if this system cannot make links."""
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    mapped = {name: ROOT / folder for name, folder in setuptools.get("package-dir", {}).items()}
    shutil.rmtree(VIEW, ignore_errors=True)
    try:
        for top in sorted({name.split(".")[0] for name in setuptools["packages"]}):
            (VIEW / top).mkdir(parents=True)
            for entry in (ROOT / top).iterdir():
                if entry.name != "__pycache__":
                    (VIEW / top / entry.name).symlink_to(entry)
        for name, folder in mapped.items():
            link = VIEW.joinpath(*name.split("."))
            if not link.exists():
                link.symlink_to(folder, target_is_directory=True)
    except OSError:
        shutil.rmtree(VIEW, ignore_errors=True)
        return False
    return True


def _add_to_wheel(wheel: Path, name: str, text: str) -> None:
    """Add a file to a built wheel, with its line in the wheel's RECORD."""
    data = text.encode()
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    with zipfile.ZipFile(wheel) as old:
        entries = [(info, old.read(info)) for info in old.infolist()]
    rewritten = wheel.with_name(wheel.name + ".part")
    with zipfile.ZipFile(rewritten, "w", zipfile.ZIP_DEFLATED) as new:
        new.writestr(name, data)
        for info, content in entries:
            if info.filename.endswith(".dist-info/RECORD"):
                content = f"{name},sha256={digest},{len(data)}\n".encode() + content
            new.writestr(info, content)
    rewritten.replace(wheel)

"""The documentation site builds with warnings as errors (``nox -s docs``), and its API reference documents every
public name.

``sphinx-build -W`` fails on a broken link between pages, an undefined label (an error code without its
troubleshooting section), a page in no table of contents, a docstring autodoc cannot read, or an error code
section whose code is gone.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest
from sphinx.util.inventory import InventoryFile

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.xdist_group("docs")  # one worker builds the site, once
PUBLIC_MODULES = [
    "gist_authlib",
    "gist_authlib.starlette",
    "gist_authlib.flask",
    "gist_authlib.django",
    "gist_authlib.client",
    "gist_authlib.api",
    "gist_authlib.tokens",
    "gist_authlib.canvas",
    "gist_authlib.testing",
    "gist_authlib.errors",
    "gist_authlib.provider",
    "gist_authlib.sandbox",
]


@pytest.fixture(scope="module")
def site() -> Path:
    out = ROOT / "docs" / "_build"  # where a reader of `nox -s docs` opens the site
    # -E: read every page afresh; -q: only warnings, which -W makes errors; --keep-going: report them all.
    command = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-E", "-q", "-b", "html", "-d",
               str(out / "doctrees"), str(ROOT / "docs"), str(out / "html")]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    return out / "html"


def test_the_site_builds_with_every_guide_and_the_reference(site: Path) -> None:
    pages = {path.relative_to(site).as_posix() for path in site.rglob("*.html")}
    for name in ("GETTING_STARTED", "TROUBLESHOOTING", "TESTING", "CANVAS", "SECURITY", "reference/API"):
        assert f"{name}.html" in pages
    # Every docs page that is a source page of its own became a page of the site.
    sources = {p.relative_to(ROOT / "docs").with_suffix(".html").as_posix() for p in (ROOT / "docs").rglob("*.md")}
    assert sources - {"CONTRIBUTING.html"} <= pages  # CONTRIBUTING.md is shown as reference/CONTRIBUTING


def test_the_api_reference_documents_every_public_name(site: Path) -> None:
    with (site / "objects.inv").open("rb") as stream:
        inventory = InventoryFile.load(stream, "", lambda base, uri: uri)
    documented = {name for entries in inventory.values() for name in entries}
    # A re-exported name (the top level's GistClient, ...) is documented once, in its own module.
    missing = [
        f"{module_name}.{name}"
        for module_name in PUBLIC_MODULES
        for name in importlib.import_module(module_name).__all__
        if name != "__version__" and not any(f"{home}.{name}" in documented for home in PUBLIC_MODULES)
    ]
    assert missing == []


def test_the_troubleshooting_table_lists_every_error_code(site: Path) -> None:
    sys.path.insert(0, str(ROOT / "docs" / "_ext"))
    try:
        from gist_errors import error_codes
    finally:
        sys.path.remove(str(ROOT / "docs" / "_ext"))
    page = (site / "TROUBLESHOOTING.html").read_text()
    codes = [entry.code for entry in error_codes()]
    assert len(codes) >= 40 and {"state_expired", "canvas_signature_invalid", "token_revoked"} <= set(codes)
    # Each code is a row of the table, linking to its own section.
    assert [code for code in codes if f'href="#error-{code.replace("_", "-")}"' not in page] == []

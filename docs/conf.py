"""Sphinx configuration of gist_authlib's documentation (MyST Markdown pages, API reference from docstrings).

Build it with ``sphinx-build -W docs docs/_build/html``, or ``nox -s docs``, which also checks what it documents
(warnings are errors in both).
"""

from __future__ import annotations

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path[:0] = [str(DOCS.parent), str(DOCS / "_ext")]  # this checkout's package first, then the local extension

# The Django app's modules (its models, admin and authentication backend) can be imported only in a configured
# Django: the API reference imports them.
import django  # noqa: E402
from django.conf import settings  # noqa: E402

from gist_authlib import __version__  # noqa: E402

settings.configure(
    INSTALLED_APPS=[
        "django.contrib.admin",
        "django.contrib.auth",
        "django.contrib.contenttypes",
        "django.contrib.messages",
        "django.contrib.sessions",
        "gist_authlib.django",
    ]
)
django.setup()

project = "gist_authlib"
author = "gist_authlib developers"
copyright = "gist_authlib developers"
release = version = __version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",  # the docstrings' Google-style Args:, Returns:, Attributes: sections
    "gist_errors",  # the troubleshooting table, generated from gist_authlib.errors
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
# CONTRIBUTING.md is shown through reference/CONTRIBUTING.md (an include), so that the guides' glob leaves it out.
exclude_patterns = ["_build", "_ext", "CONTRIBUTING.md", "Thumbs.db", ".DS_Store"]

myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3  # links to a page's sections: [text](SECURITY.md#limits-and-advice)

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"show-inheritance": True}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_ivar = True

html_theme = "furo"
html_title = f"gist_authlib {release}"

"""WSGI entry point of the Django example; ``create_app(environ)`` is what ``gist-authlib demo`` calls."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def create_app(environ: Mapping[str, str] | None = None) -> Any:
    """Configure Django from ``environ`` (merged into the process environment) and return the WSGI app.

    Django's settings are global to a process, so this can be called once per process.
    """
    if environ is not None:
        os.environ.update(environ)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gist_example.settings")
    from django.core.wsgi import get_wsgi_application

    return get_wsgi_application()


if os.environ.get("DJANGO_SETTINGS_MODULE") == "gist_example.settings":
    application = create_app()

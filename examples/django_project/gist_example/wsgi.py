"""WSGI entry point of the Django example; ``create_app(environ)`` is what ``gist-authlib demo`` calls."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def create_app(environ: Mapping[str, str] | None = None) -> Any:
    """Configure Django from ``environ`` (merged into the process environment), bring its database up to date
    (``migrate``) and return the WSGI app, which serves the admin's CSS and scripts itself as ``runserver`` does
    (behind a production web server, run ``collectstatic`` and let that server or WhiteNoise serve them).

    Django's settings are global to a process, so this can be called once per process.
    """
    if environ is not None:
        os.environ.update(environ)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gist_example.settings")
    from django.contrib.staticfiles.handlers import StaticFilesHandler
    from django.core.management import call_command
    from django.core.wsgi import get_wsgi_application

    application = get_wsgi_application()
    call_command("migrate", interactive=False, verbosity=0)  # a new database gets its tables; a current one, nothing
    return StaticFilesHandler(application)


if os.environ.get("DJANGO_SETTINGS_MODULE") == "gist_example.settings":
    application = create_app()

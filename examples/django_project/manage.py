#!/usr/bin/env python
"""Django's command-line utility for the gist_authlib example: ``python manage.py runserver 8000``.

From an installed package: ``python -m gist_authlib.examples.django_project.manage runserver 8000``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def main() -> None:
    # Django finds the project package "gist_example" beside this file; run as a module
    # (python -m gist_authlib.examples.django_project.manage) this folder is not on sys.path by itself.
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gist_example.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()

"""``python -m gist_authlib``: the same as the ``gist-authlib`` command."""

from __future__ import annotations

import sys

from .cli import main

sys.exit(main())

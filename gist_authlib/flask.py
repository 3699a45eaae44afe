"""Public home of the Flask adapter: ``from gist_authlib.flask import gist_blueprint``."""

from __future__ import annotations

from .integrations.flask import OnError, OnInstall, OnLogin, default_on_error, gist_blueprint, logout, stored_token

__all__ = ["OnError", "OnInstall", "OnLogin", "default_on_error", "gist_blueprint", "logout", "stored_token"]

"""Public home of the Starlette and FastAPI adapter: ``from gist_authlib.starlette import gist_routes``."""

from __future__ import annotations

from .integrations.starlette import OnError, OnInstall, OnLogin, default_on_error, gist_routes, logout, stored_token

__all__ = ["OnError", "OnInstall", "OnLogin", "default_on_error", "gist_routes", "logout", "stored_token"]

"""Public home of the Django adapter: ``from gist_authlib.django import gist_urls``."""

from __future__ import annotations

from .integrations.django import OnError, OnInstall, OnLogin, default_on_error, gist_urls, logout, stored_token

__all__ = ["OnError", "OnInstall", "OnLogin", "default_on_error", "gist_urls", "logout", "stored_token"]

"""Gist (getgist.com) as a first-class OAuth 2 provider for Authlib.

What an app writes every day is here: :func:`register`, :class:`GistProvider`, the API clients and the
branches of the error hierarchy. Leaf errors live in :mod:`gist_authlib.errors`, API models in
:mod:`gist_authlib.api`, token stores in :mod:`gist_authlib.tokens`, and the Starlette, Flask and Django
adapters in :mod:`gist_authlib.starlette`, :mod:`gist_authlib.flask` and :mod:`gist_authlib.django`
(``import gist_authlib`` imports no web framework).
"""

from __future__ import annotations

from ._install_limit import InstallLimit
from ._login import LoginResult
from ._registry import GistApp, register
from ._version import __version__
from .client import AsyncGistClient, GistClient
from .errors import (
    ConfigurationError,
    GistAPIError,
    GistAuthError,
    LoginError,
    StateError,
    TokenExchangeError,
    TokenStoreError,
)
from .provider import OFFICIAL_SCOPES, GistProvider

__all__ = [
    "OFFICIAL_SCOPES",
    "AsyncGistClient",
    "ConfigurationError",
    "GistAPIError",
    "GistApp",
    "GistAuthError",
    "GistClient",
    "GistProvider",
    "InstallLimit",
    "LoginError",
    "LoginResult",
    "StateError",
    "TokenExchangeError",
    "TokenStoreError",
    "__version__",
    "register",
]

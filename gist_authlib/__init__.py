"""Gist (getgist.com) as a first-class OAuth 2 provider for Authlib.

``import gist_authlib`` imports no web framework: the Starlette, Flask and Django adapters live in
``gist_authlib.starlette``, ``gist_authlib.flask`` and ``gist_authlib.django``.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .errors import (
    AccessDeniedError,
    AuthorizationError,
    ConfigurationError,
    ExpiredStateError,
    GistAuthError,
    InvalidTokenResponseError,
    LoginError,
    MissingCodeError,
    MissingCredentialsError,
    MissingStateError,
    ReplayedCallbackError,
    SessionNotConfiguredError,
    StateError,
    TokenEndpointError,
    TokenEndpointUnreachableError,
    TokenExchangeError,
    UnknownScopeError,
    UnknownStateError,
)
from .flow import LoginFlow, safe_next_path
from .provider import OFFICIAL_SCOPES, GistProvider
from .registry import register

__all__ = [
    "OFFICIAL_SCOPES",
    "AccessDeniedError",
    "AuthorizationError",
    "ConfigurationError",
    "ExpiredStateError",
    "GistAuthError",
    "GistProvider",
    "InvalidTokenResponseError",
    "LoginError",
    "LoginFlow",
    "MissingCodeError",
    "MissingCredentialsError",
    "MissingStateError",
    "ReplayedCallbackError",
    "SessionNotConfiguredError",
    "StateError",
    "TokenEndpointError",
    "TokenEndpointUnreachableError",
    "TokenExchangeError",
    "UnknownScopeError",
    "UnknownStateError",
    "__version__",
    "register",
    "safe_next_path",
]

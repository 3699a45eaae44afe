"""Gist (getgist.com) as a first-class OAuth 2 provider for Authlib.

``import gist_authlib`` imports no web framework: the Starlette, Flask and Django adapters live in
``gist_authlib.starlette``, ``gist_authlib.flask`` and ``gist_authlib.django``.
"""

from __future__ import annotations

from ._version import __version__
from .api import Contact, Page, Tag, Team, Teammate, TokenInfo
from .client import AsyncGistClient, GistClient, RefreshSettings, RetryPolicy
from .errors import (
    AccessDeniedError,
    AuthorizationError,
    ConfigurationError,
    ExpiredStateError,
    GistAPIError,
    GistAuthError,
    GistConnectionError,
    InsecureTransportError,
    InstallError,
    InsufficientScopeError,
    InvalidTokenResponseError,
    LoginError,
    MissingCodeError,
    MissingCredentialsError,
    MissingStateError,
    MixUpError,
    NotFoundError,
    RateLimitedError,
    ReplayedCallbackError,
    SessionNotConfiguredError,
    StaleTokenError,
    StateError,
    TokenDecryptionError,
    TokenEndpointError,
    TokenEndpointUnreachableError,
    TokenExchangeError,
    TokenRevokedError,
    TokenStoreError,
    UnknownScopeError,
    UnknownStateError,
)
from .flow import LoginFlow, safe_next_path
from .provider import OFFICIAL_SCOPES, GistProvider
from .registry import register

__all__ = [
    "OFFICIAL_SCOPES",
    "AccessDeniedError",
    "AsyncGistClient",
    "AuthorizationError",
    "ConfigurationError",
    "Contact",
    "ExpiredStateError",
    "GistAPIError",
    "GistAuthError",
    "GistClient",
    "GistConnectionError",
    "GistProvider",
    "InsecureTransportError",
    "InstallError",
    "InsufficientScopeError",
    "InvalidTokenResponseError",
    "LoginError",
    "LoginFlow",
    "MissingCodeError",
    "MissingCredentialsError",
    "MissingStateError",
    "MixUpError",
    "NotFoundError",
    "Page",
    "RateLimitedError",
    "RefreshSettings",
    "ReplayedCallbackError",
    "RetryPolicy",
    "SessionNotConfiguredError",
    "StaleTokenError",
    "StateError",
    "Tag",
    "Team",
    "Teammate",
    "TokenDecryptionError",
    "TokenEndpointError",
    "TokenEndpointUnreachableError",
    "TokenExchangeError",
    "TokenInfo",
    "TokenRevokedError",
    "TokenStoreError",
    "UnknownScopeError",
    "UnknownStateError",
    "__version__",
    "register",
    "safe_next_path",
]

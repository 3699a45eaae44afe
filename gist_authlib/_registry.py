"""register(oauth, ...): add Gist to any Authlib ``OAuth`` registry (Starlette, Flask or Django).

The app ``register`` returns applies every protection of a Gist login on Authlib's own methods
(``authorize_redirect``, ``authorize_access_token``, ``create_authorization_url``, ``save_authorize_data``,
``fetch_access_token``): an app that keeps hand-written Authlib routes is as safe as one using the routes of
:mod:`gist_authlib.starlette`, :mod:`gist_authlib.flask` or :mod:`gist_authlib.django`, which only wrap them.

Each framework's app class is declared once, in its adapter module, over Authlib's own app class and the
framework-free halves here (:class:`SyncGistApp`, :class:`AsyncGistApp`); :func:`register` picks the class
for the registry it is given and hands it the registration's settings. This module imports no web framework.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import inspect
import logging
import os
import threading
import weakref
from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Unpack

import httpx2

from ._flow import (
    LoginFlow,
    PendingJar,
    check_token_http_response,
    check_token_response,
    check_transport,
    translate_token_error,
)
from ._login import (
    CallbackOptions,
    InstallLimit,
    LoginResult,
    LoginStart,
    MemoryReplayGuard,
    Registration,
    ReplayGuard,
    authorization,
    callback_steps,
    open_login_cookie,
    read_workspace,
    read_workspace_async,
    run,
    run_async,
    start_login,
    userinfo_of,
)
from ._version import USER_AGENT
from .errors import ConfigurationError, TokenExchangeError
from .provider import GistProvider

if TYPE_CHECKING:
    import asyncio

    from authlib.oidc.core import UserInfo

__all__ = ["AsyncGistApp", "GistApp", "SyncGistApp", "register"]

log = logging.getLogger("gist_authlib.registry")

DEFAULT_TIMEOUT = 10.0

# The keys Authlib reads from framework configuration, and which of them have a provider default.
_ENDPOINT_KEYS = ("authorize_url", "access_token_url", "api_base_url")

# Authlib's registry module for each framework, and the adapter module that declares its Gist app class.
_APP_CLASSES = {
    "authlib.integrations.starlette_client": ("gist_authlib.starlette", "GistStarletteApp"),
    "authlib.integrations.flask_client": ("gist_authlib.flask", "GistFlaskApp"),
    "authlib.integrations.django_client": ("gist_authlib.django", "GistDjangoApp"),
}


@dataclass(frozen=True, slots=True)
class _Settings:
    """What :func:`register` decided for one registration, handed to its app class's ``__init__``."""

    provider: GistProvider
    scopes: tuple[str, ...]
    flow: LoginFlow
    redirect_uri: str | None
    token_store: Any
    allow_insecure_http: bool
    replay_guard: ReplayGuard
    install_limit: InstallLimit
    setting_names: Mapping[str, str]
    environ_fallback: bool
    route_claims: dict[str, str]
    oauth: Any


# client_kwargs that shape the connection itself: with any of these the caller built the HTTP stack; we keep out.
_OWN_STACK = ("transport", "mounts", "proxy", "proxies", "app")
# client_kwargs that configure the shared transport we build instead (the same as httpx2.HTTPTransport takes).
_TRANSPORT_OPTIONS = ("verify", "cert", "http1", "http2", "limits", "trust_env")


class _KeepOpen(httpx2.BaseTransport):
    """A shared transport seen through one short-lived client: closing that client leaves the pool open."""

    def __init__(self, transport: httpx2.BaseTransport) -> None:
        self.transport = transport

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        return self.transport.handle_request(request)

    def close(self) -> None:
        """Nothing: the registration closes the pool (``gist_close``, or at exit)."""


class _KeepOpenAsync(httpx2.AsyncBaseTransport):
    """The async form of :class:`_KeepOpen`."""

    def __init__(self, transport: httpx2.AsyncBaseTransport) -> None:
        self.transport = transport

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        return await self.transport.handle_async_request(request)

    async def aclose(self) -> None:
        """Nothing: the registration closes the pool (``gist_aclose``)."""


class GistApp:
    """The framework-free half of every Gist app class: what :func:`register` returns is one of its
    subclasses, declared per framework (:class:`gist_authlib.starlette.GistStarletteApp`,
    :class:`gist_authlib.flask.GistFlaskApp`, :class:`gist_authlib.django.GistDjangoApp`).

    It fills what neither the caller nor the framework configuration set from the provider, and carries the
    registration's provider, scopes, redirect URI and login rules; :attr:`gist_registration` hands them to the
    login sequence, typed.

    Attributes:
        gist_provider: the endpoints and scope catalogue.
        gist_scopes: the scopes every login asks for.
        gist_flow: the state, PKCE and pending-login rules.
        gist_token_store: the token store, or ``None``.
        gist_redirect_uri: the configured redirect URI, or ``None``.
        gist_install_limit: the cost limit of Gist-initiated installs.
    """

    gist_provider: GistProvider
    gist_scopes: tuple[str, ...]
    gist_flow: LoginFlow
    gist_token_store: Any
    gist_allow_insecure_http: bool
    gist_redirect_uri: str | None
    gist_replay_guard: ReplayGuard
    gist_install_limit: InstallLimit
    _gist_setting_names: Mapping[str, str]
    _gist_route_claims: dict[str, str]

    # Set by Authlib's base classes.
    name: str
    client_id: str | None
    client_secret: str | None
    authorize_url: str
    access_token_url: str
    api_base_url: str
    authorize_params: dict[str, Any] | None
    client_kwargs: dict[str, Any]
    _fetch_token: Any

    if TYPE_CHECKING:  # Authlib's methods, as every framework's class has them (each declares its own signature)

        def authorize_redirect(self, *args: Any, **kwargs: Any) -> Any:
            """Send the browser to Gist: a fresh state, PKCE, the checked ``next`` and scopes."""

        def authorize_access_token(self, *args: Any, **kwargs: Any) -> Any:
            """Check the callback and exchange its code; the validated token dict."""

        def save_authorize_data(self, *args: Any, **kwargs: Any) -> Any:
            """Record a login started with ``create_authorization_url``."""

        def create_authorization_url(self, *args: Any, **kwargs: Any) -> Any:
            """The authorization URL and state of a new login."""

        def fetch_access_token(self, *args: Any, **kwargs: Any) -> Any:
            """Exchange a code at the token endpoint; the validated token dict."""

        def get(self, url: str, **kwargs: Any) -> Any:
            """Authlib's authorized GET on the Gist API."""

        def post(self, url: str, **kwargs: Any) -> Any:
            """Authlib's authorized POST on the Gist API."""

    def __init__(self, framework: Any, name: str | None = None, *, gist_settings: _Settings, **kwargs: Any) -> None:
        settings = gist_settings
        names = settings.setting_names
        from_environ = (lambda key: os.environ.get(names[key]) or None) if settings.environ_fallback else None
        if from_environ is not None:
            for key in ("client_id", "client_secret"):
                kwargs[key] = kwargs.get(key) or from_environ(key)
        self.gist_provider, self.gist_scopes, self.gist_flow = settings.provider, settings.scopes, settings.flow
        self.gist_token_store, self.gist_allow_insecure_http = settings.token_store, settings.allow_insecure_http
        self.gist_replay_guard, self.gist_install_limit = settings.replay_guard, settings.install_limit
        self._gist_setting_names, self._gist_route_claims = settings.setting_names, settings.route_claims
        self.gist_redirect_uri = settings.redirect_uri
        for key, default in settings.provider.authlib_kwargs().items():
            if kwargs.get(key) is None:
                kwargs[key] = default
        if kwargs.get("api_base_url") and not str(kwargs["api_base_url"]).endswith("/"):
            kwargs["api_base_url"] = str(kwargs["api_base_url"]) + "/"
        for key in _ENDPOINT_KEYS:
            check_transport(str(kwargs[key]), key.replace("_", " "), allow_insecure_http=self.gist_allow_insecure_http)
        if self.gist_redirect_uri is None:
            # Read here, not in register(): a Flask registry has no app (and no config) until init_app.
            oauth = settings.oauth
            configured = type(oauth).framework_integration_cls.load_config(oauth, name, ("redirect_uri",))
            uri = (configured or {}).get("redirect_uri") or (from_environ("redirect_uri") if from_environ else None)
            if uri:
                check_transport(str(uri), "redirect URI", allow_insecure_http=self.gist_allow_insecure_http)
                self.gist_redirect_uri = str(uri)
        super().__init__(framework, name, **kwargs)  # type: ignore[call-arg]  # Authlib's app, after this mixin

    @property
    def gist_registration(self) -> Registration:
        """This registration as the login sequence takes it (read afresh: settings may change after init)."""
        return Registration(
            name=self.name,
            client_id=self.client_id,
            client_secret=self.client_secret,
            provider=self.gist_provider,
            scopes=self.gist_scopes,
            flow=self.gist_flow,
            authorize_url=self.authorize_url,
            token_url=self.access_token_url,
            api_base_url=self.api_base_url,
            redirect_uri=self.gist_redirect_uri,
            default_redirect_uri=(self.client_kwargs or {}).get("redirect_uri"),
            allow_insecure_http=self.gist_allow_insecure_http,
            store=self.gist_token_store,
            replay_guard=self.gist_replay_guard,
            install_limit=self.gist_install_limit,
            setting_names=self._gist_setting_names,
        )

    @staticmethod
    def gist_session_of(request: Any) -> Any:
        """The session Authlib's ``fetch_token(request)`` reads the logged-in subject from (per framework)."""
        raise NotImplementedError

    @classmethod
    def gist_lazy(cls, oauth: Any, name: str, claims: dict[str, str]) -> Any:
        """The app of a registry that has no framework app yet (Flask before ``init_app``)."""
        raise ConfigurationError(f"The {cls.__name__} of {name!r} cannot be created before its framework app.")

    def _gist_authorization(self, redirect_uri: str | None, params: Mapping[str, Any]) -> dict[str, Any]:
        return authorization(self.gist_registration, redirect_uri, {**(self.authorize_params or {}), **params})

    def gist_start(
        self,
        cookies: Mapping[str, str],
        request_url: str,
        redirect_uri: str | None,
        params: Mapping[str, Any],
    ) -> LoginStart:
        """The login start of every framework's ``authorize_redirect``: where to send the browser, and the login
        cookie to set (see :func:`gist_authlib._login.start_login`)."""
        merged = {**(self.authorize_params or {}), **params}
        return start_login(self.gist_registration, cookies, request_url, redirect_uri, merged)

    def gist_login_cookie(self, cookies: Mapping[str, str], url: str | None) -> PendingJar:
        """The request's login cookie of this registration, opened (what the callback reads); ``url`` is the
        callback's own URL (https: only the ``__Host-`` cookie is read)."""
        return open_login_cookie(self.gist_registration, cookies, url)

    def _get_oauth_client(self, **metadata: Any) -> Any:
        # Authlib builds a new HTTP client (and, without a transport, a new TLS context and connection pool) for
        # every token request; ours all go through the registration's one pooled transport instead.
        transport = self.gist_transport()
        if transport is not None:
            metadata.setdefault("transport", transport)
        return super()._get_oauth_client(**metadata)  # type: ignore[misc]

    def gist_transport(self) -> Any:
        """The registration's pooled transport for the token endpoint and Gist's API, or ``None`` when the
        caller's ``client_kwargs`` build their own HTTP stack (a proxy, mounts, an ASGI app)."""
        raise NotImplementedError

    def gist_close(self) -> None:
        """Close the registration's pooled connections (see each kind of app)."""
        raise NotImplementedError

    async def gist_aclose(self) -> None:
        """Close the registration's pooled connections, from async code (see each kind of app)."""
        raise NotImplementedError

    def _gist_own_transport(self, wrap: type[_KeepOpen] | type[_KeepOpenAsync]) -> Any:
        """The transport the caller passed in ``client_kwargs``, kept open, else ``None``."""
        given = self.client_kwargs.get("transport")
        return wrap(given) if given is not None else None

    def _gist_shareable(self) -> bool:
        return not any(key in self.client_kwargs for key in _OWN_STACK if key != "transport")

    def _gist_transport_options(self) -> dict[str, Any]:
        options = {key: self.client_kwargs[key] for key in _TRANSPORT_OPTIONS if key in self.client_kwargs}
        options.pop("trust_env", None)  # environment proxies never apply to the token request (see register)
        return options

    def gist_credentials(self) -> tuple[str, str]:
        """The client id and secret, or a :class:`~gist_authlib.errors.MissingCredentialsError` naming the
        setting to fill in."""
        return self.gist_registration.credentials()

    def __repr__(self) -> str:
        return f"<Gist OAuth app {self.name!r} at {self.authorize_url!r}>"


class SyncGistApp(GistApp):
    """The protected Authlib methods of a sync app (Flask, Django), with no framework code."""

    _gist_pool: httpx2.HTTPTransport | None = None
    _gist_pool_lock = threading.Lock()

    def gist_transport(self) -> Any:
        """The registration's pooled transport (thread-safe; created on first use, closed at exit)."""
        own = self._gist_own_transport(_KeepOpen)
        if own is not None or not self._gist_shareable():
            return own
        if self._gist_pool is None:
            with self._gist_pool_lock:
                if self._gist_pool is None:
                    pool = httpx2.HTTPTransport(**self._gist_transport_options())
                    atexit.register(pool.close)
                    self._gist_pool = pool
        return _KeepOpen(self._gist_pool)

    def gist_close(self) -> None:
        """Close the registration's pooled connections (a later request opens new ones)."""
        pool, self._gist_pool = self._gist_pool, None
        if pool is not None:
            pool.close()
            atexit.unregister(pool.close)

    async def gist_aclose(self) -> None:
        """The same as :meth:`gist_close`, for code written for both kinds of app."""
        self.gist_close()

    def create_authorization_url(self, redirect_uri: str | None = None, **kwargs: Any) -> dict[str, Any]:
        """Authlib's ``create_authorization_url`` for Gist: credentials checked, scopes checked against the
        catalogue, a fresh state, S256 PKCE. Pass ``next="/path"`` to come back there after the login.

        Returns a dict with ``url`` and ``state`` (and, as Authlib does, ``code_verifier``); record it with
        ``save_authorize_data`` before redirecting.
        """
        return self._gist_authorization(redirect_uri, kwargs)

    def fetch_access_token(self, redirect_uri: str | None = None, **kwargs: Any) -> dict[str, Any]:
        """Authlib's ``fetch_access_token``, with the credentials checked, the answer validated and every
        failure raised as a typed :class:`~gist_authlib.errors.TokenExchangeError`."""
        self.gist_credentials()
        try:
            token = super().fetch_access_token(redirect_uri, **kwargs)
        except Exception as exc:  # every failure of the exchange becomes a typed error
            raise translate_token_error(exc) from None
        return check_token_response(token)

    def gist_exchange(self, params: dict[str, str]) -> dict[str, Any]:
        """The login sequence's token request: Authlib's ``fetch_access_token``, checked."""
        return self.fetch_access_token(**params)

    def gist_workspace(self, token: Mapping[str, Any]) -> tuple[str | None, str | None]:
        """The login sequence's workspace lookup, on the registration's pooled transport."""
        return read_workspace(self.gist_registration, token, transport=self.gist_transport())

    def userinfo(self, **kwargs: Any) -> UserInfo:
        """Who logged in, as Authlib's ``userinfo()`` answers for OpenID providers: the claims of the token's
        workspace (``sub``, ``name``, ``workspace_id``, ``workspace_name``; see
        :func:`gist_authlib._login.userinfo_of`). A token from a Gist login carries them already
        (``token["userinfo"]``) and is not looked up again; otherwise Gist is asked with the token.

        Args:
            token: the token (or ``request=``: the token Authlib's ``fetch_token`` finds for it).

        Raises:
            TokenExchangeError: Gist did not say which workspace the token belongs to (``workspace_unknown``).
        """
        token = kwargs.get("token")
        if token is None and kwargs.get("request") is not None and self._fetch_token is not None:
            token = self._fetch_token(kwargs["request"])
        return _userinfo_from(token) or _userinfo_or_fail(self.gist_workspace(_need_token(token)))

    def gist_finish(
        self, session: MutableMapping[str, Any], query: Iterable[tuple[str, str]], **options: Unpack[CallbackOptions]
    ) -> LoginResult:
        """Run the login sequence on a callback's query (the options are those of ``callback_steps``)."""
        return run(self, callback_steps(self.gist_registration, session, query, **options))


class AsyncGistApp(GistApp):
    """The protected Authlib methods of an async app (Starlette, FastAPI), with no framework code."""

    _gist_pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx2.AsyncHTTPTransport] | None = None

    def gist_transport(self) -> Any:
        """The registration's pooled transport for the running event loop (async connections belong to the
        loop that opened them: a test client that starts a new loop gets a new pool)."""
        own = self._gist_own_transport(_KeepOpenAsync)
        if own is not None or not self._gist_shareable():
            return own
        import asyncio  # here, not at import: most apps never reach an async pool, and asyncio is slow to import

        loop = asyncio.get_running_loop()
        if self._gist_pools is None:
            self._gist_pools = weakref.WeakKeyDictionary()
        pool = self._gist_pools.get(loop)
        if pool is None:
            pool = self._gist_pools[loop] = httpx2.AsyncHTTPTransport(**self._gist_transport_options())
        return _KeepOpenAsync(pool)

    async def gist_aclose(self) -> None:
        """Close the pooled connections of the running loop (call it from the app's lifespan on shutdown)."""
        import asyncio

        loop = asyncio.get_running_loop()
        pool = self._gist_pools.pop(loop, None) if self._gist_pools is not None else None
        if pool is not None:
            await pool.aclose()

    def gist_close(self) -> None:
        """Drop every loop's pool outside any loop (their connections close as they are collected); inside a
        running loop, prefer ``await gist_aclose()``."""
        self._gist_pools = None

    async def create_authorization_url(self, redirect_uri: str | None = None, **kwargs: Any) -> dict[str, Any]:
        """The async form of :meth:`SyncGistApp.create_authorization_url` (no I/O happens)."""
        return self._gist_authorization(redirect_uri, kwargs)

    async def fetch_access_token(self, redirect_uri: str | None = None, **kwargs: Any) -> dict[str, Any]:
        """The async form of :meth:`SyncGistApp.fetch_access_token`."""
        self.gist_credentials()
        try:
            token = await super().fetch_access_token(redirect_uri, **kwargs)
        except Exception as exc:  # every failure of the exchange becomes a typed error
            raise translate_token_error(exc) from None
        return check_token_response(token)

    async def gist_exchange(self, params: dict[str, str]) -> dict[str, Any]:
        """The login sequence's token request: Authlib's ``fetch_access_token``, checked."""
        return await self.fetch_access_token(**params)

    async def gist_workspace(self, token: Mapping[str, Any]) -> tuple[str | None, str | None]:
        """The login sequence's workspace lookup, on the registration's pooled transport."""
        return await read_workspace_async(self.gist_registration, token, transport=self.gist_transport())

    async def userinfo(self, **kwargs: Any) -> UserInfo:
        """The async form of :meth:`SyncGistApp.userinfo`."""
        token = kwargs.get("token")
        if token is None and kwargs.get("request") is not None and self._fetch_token is not None:
            token = self._fetch_token(kwargs["request"])
            if inspect.isawaitable(token):
                token = await token
        known = _userinfo_from(token)
        return known or _userinfo_or_fail(await self.gist_workspace(_need_token(token)))

    async def gist_finish(
        self, session: MutableMapping[str, Any], query: Iterable[tuple[str, str]], **options: Unpack[CallbackOptions]
    ) -> LoginResult:
        """The async form of :meth:`SyncGistApp.gist_finish`."""
        return await run_async(self, callback_steps(self.gist_registration, session, query, **options))


def _userinfo_from(token: Any) -> UserInfo | None:
    info = token.get("userinfo") if isinstance(token, Mapping) else None
    if not isinstance(info, Mapping) or not info.get("sub"):
        return None
    from authlib.oidc.core import UserInfo

    return UserInfo(info)


def _need_token(token: Any) -> Mapping[str, Any]:
    if not isinstance(token, Mapping) or not token.get("access_token"):
        raise ConfigurationError("userinfo() needs token=... (or request=... with a token store on the registration).")
    return token


def _userinfo_or_fail(workspace: tuple[str | None, str | None]) -> UserInfo:
    workspace_id, workspace_name = workspace
    if workspace_id is None:
        raise TokenExchangeError(
            "Gist did not say which workspace this token belongs to (its token information could not be read).",
            error_code="workspace_unknown",
        )
    return userinfo_of(workspace_id, workspace_name)


def register(
    oauth: Any,
    name: str = "gist",
    *,
    client_id: str | None = None,
    client_secret: str | None = None,
    scopes: str | Iterable[str] | None = None,
    provider: GistProvider | None = None,
    redirect_uri: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    state_ttl: float = 600.0,
    max_pending_logins: int = 8,
    pkce: bool = True,
    token_store: Any = None,
    allow_insecure_http: bool = False,
    install_limit: InstallLimit | None = None,
    **overrides: Any,
) -> GistApp:
    """Register Gist in an Authlib ``OAuth`` registry and return the registered app (``oauth.<name>``).

    Works with ``authlib.integrations.starlette_client.OAuth``, ``flask_client.OAuth`` and
    ``django_client.OAuth``. Each setting is taken from, in order: the arguments here; the framework's
    configuration under Authlib's own names (``GIST_CLIENT_ID``, ``GIST_CLIENT_SECRET``,
    ``GIST_AUTHORIZE_URL``, ``GIST_ACCESS_TOKEN_URL``, ``GIST_API_BASE_URL``, ``GIST_REDIRECT_URI`` in a
    Starlette ``Config`` or Flask ``app.config``; ``AUTHLIB_OAUTH_CLIENTS["gist"]`` in Django settings); the
    provider's defaults.

    The returned app is Authlib's own, and its own methods apply every protection: call
    ``authorize_redirect`` and ``authorize_access_token`` in hand-written routes exactly as Authlib's
    documentation shows, or use the ready-made routes of the framework adapters.

    Args:
        oauth: the Authlib registry.
        name: the registration's name; also the prefix of its settings (``GIST_`` for ``"gist"``) and of the
            default route paths (``/auth/<name>``, ``/oauth/<name>/callback``).
        client_id: the app's client id from Gist's Developer Hub.
        client_secret: the app's client secret.
        scopes: a list or a space-separated string; defaults to ``["read_teammates"]``. Scopes given through
            ``client_kwargs`` or ``authorize_params`` are checked against the catalogue the same way.
        provider: the endpoints and scope catalogue; defaults to production Gist.
        redirect_uri: the redirect URI registered in Gist's Developer Hub. When set (here or in the
            framework's configuration), every login uses it, whatever the request's Host header says: set it
            in production.
        timeout: seconds allowed for each request to the token endpoint.
        state_ttl: seconds a started login stays valid.
        max_pending_logins: logins one browser may have pending at once (tabs).
        pkce: send an S256 PKCE challenge with every login.
        token_store: a :mod:`gist_authlib.tokens` store, or where one is: a SQLite file's path or a database URL
            (``postgresql://...``), opened with :func:`~gist_authlib.tokens.open_token_store` and the key in the
            environment variable ``GIST_TOKEN_KEY``. Every finished login then saves its token under a
            subject (the one the app names, else the Gist workspace), the session keeps only that subject,
            and Authlib's ``fetch_token`` and ``update_token`` read and write the store (so
            ``gist.get(..., request=request)`` finds the token). A shared store (SQLite, SQLAlchemy) also keeps
            the used login states and codes and the install limit's counts, for every instance using its
            database; without one they live in this process's memory, and ``register`` logs a warning that says
            so (docs/INSTANCES.md).
        allow_insecure_http: allow ``http://`` endpoints and redirect URIs on hosts that are not loopback
            (a development flag; loopback is always allowed).
        install_limit: how many Gist-initiated install attempts may cost a token request, per network and in
            total (an :class:`~gist_authlib.InstallLimit`; by default 10 per network and 100 in all per minute,
            counted by the socket's address unless you name your reverse proxies in its ``trusted_proxies``).
            Only matters when the routes accept installs.
        **overrides: passed on to ``oauth.register`` (``authorize_params``, ``fetch_token``,
            ``update_token``, ``client_kwargs``, an explicit ``authorize_url``, ...).

    Returns:
        The framework's Gist app (:class:`gist_authlib.starlette.GistStarletteApp`,
        :class:`gist_authlib.flask.GistFlaskApp` or :class:`gist_authlib.django.GistDjangoApp`, each a
        :class:`GistApp` and Authlib's own app class); on Flask before ``init_app``, a lazy proxy to it. The
        adapters' own ``register`` functions return it typed.

    Raises:
        UnknownScopeError: a scope is not in the provider's catalogue (the message names the nearest).
        ConfigurationError: the framework's registry is not one of Authlib's three, or scopes disagree.
    """
    provider = provider or GistProvider()
    app_cls = _app_class(oauth)
    client_kwargs_in = dict(overrides.pop("client_kwargs", None) or {})
    authorize_params = dict(overrides.get("authorize_params") or {})
    granted = _one_source_of_scopes(
        provider, scopes, client_kwargs_in.pop("scope", None), authorize_params.pop("scope", None)
    )
    if "authorize_params" in overrides:
        overrides["authorize_params"] = authorize_params
    if redirect_uri is not None:
        check_transport(redirect_uri, "redirect URI", allow_insecure_http=allow_insecure_http)
    if isinstance(token_store, (str, os.PathLike)):
        token_store = _open_store(token_store)
    if not getattr(token_store, "shared", False):
        log.warning(
            "Gist registration %r has no shared token store: used login states and codes (replay protection) and "
            "the install limit live in this process's memory. Running several instances, give register() "
            "token_store= a database every instance uses (docs/INSTANCES.md).",
            name,
        )
    settings = _Settings(
        provider=provider,
        scopes=granted,
        flow=LoginFlow(name, state_ttl=state_ttl, max_pending=max_pending_logins, pkce=pkce),
        redirect_uri=redirect_uri,
        token_store=token_store,
        allow_insecure_http=allow_insecure_http,
        # Used states and codes are recorded where the tokens are (shared by every process using the store).
        replay_guard=token_store if hasattr(token_store, "consume") else MemoryReplayGuard(),
        install_limit=(install_limit or InstallLimit()).for_registration(name, token_store),
        setting_names=_setting_names(oauth, name),
        # Flask reads app.config only; GIST_* exported in the shell are read too, where app.config has none.
        environ_fallback="flask" in type(oauth).__module__,
        route_claims=oauth.__dict__.setdefault("_gist_route_claims", {}),
        oauth=oauth,
    )
    client_kwargs: dict[str, Any] = {
        "token_endpoint_auth_method": provider.token_endpoint_auth_method,
        "scope": " ".join(granted),
        "timeout": timeout,
        "follow_redirects": False,
        "trust_env": False,
    }
    client_kwargs.update(client_kwargs_in)
    client_kwargs["scope"] = " ".join(granted)
    client_kwargs["follow_redirects"] = False  # a redirected token request could carry the code elsewhere
    kwargs: dict[str, Any] = {
        "client_cls": app_cls,
        "client_kwargs": client_kwargs,
        "compliance_fix": _gist_compliance_fix,
        "user_agent": USER_AGENT,
        "gist_settings": settings,
    }
    if client_id is not None:
        kwargs["client_id"] = client_id
    if client_secret is not None:
        kwargs["client_secret"] = client_secret
    if token_store is not None:
        is_async = issubclass(app_cls, AsyncGistApp)
        kwargs["fetch_token"] = _store_fetcher(token_store, settings.flow, is_async, app_cls.gist_session_of)
        kwargs["update_token"] = _store_updater(token_store, is_async)
    kwargs.update(overrides)
    app = oauth.register(name, **kwargs)
    if getattr(oauth, "app", True) is None:
        # Flask before init_app: Authlib hands back an anonymous lazy proxy. Ours also knows its name,
        # so that adapters can name their routes before the Flask app exists.
        lazy: GistApp = app_cls.gist_lazy(oauth, name, settings.route_claims)
        return lazy
    registered: GistApp = app
    return registered


def _open_store(location: str | os.PathLike[str]) -> Any:
    """The store ``register(token_store="...")`` names, with its key from ``GIST_TOKEN_KEY``."""
    from .tokens import open_token_store

    key = os.environ.get("GIST_TOKEN_KEY")
    if not key:
        raise ConfigurationError(
            "register(token_store=...) was given a path or a database URL, and its tokens are encrypted with the key "
            "in the environment variable GIST_TOKEN_KEY, which is not set. Set it (make a key with "
            "gist_authlib.tokens.TokenCipher.generate_key()), or pass open_token_store(..., key=...)."
        )
    return open_token_store(location, key=key)


def _one_source_of_scopes(
    provider: GistProvider, scopes: str | Iterable[str] | None, *elsewhere: str | Iterable[str] | None
) -> tuple[str, ...]:
    """The registration's scopes, checked against the catalogue wherever they were given.

    Scopes may come from ``scopes=`` or from Authlib's ``client_kwargs["scope"]`` /
    ``authorize_params["scope"]``; each is checked, and two places that disagree are an error, so that the
    routes and hand-written calls always ask Gist for the same scopes.
    """
    given = [provider.validate_scopes(value) for value in (scopes, *elsewhere) if value]
    if not given:
        return provider.validate_scopes(None)
    first = given[0]
    for other in given[1:]:
        if set(other) != set(first):
            raise ConfigurationError(
                f"The Gist scopes are given twice and disagree ({' '.join(first)!r} and {' '.join(other)!r}). "
                "Name them once, with register(..., scopes=[...])."
            )
    return first


def _app_class(oauth: Any) -> type[GistApp]:
    """The Gist app class declared for an Authlib registry's framework (found by the registry class's module)."""
    for cls in type(oauth).__mro__:
        found = _APP_CLASSES.get(cls.__module__.rpartition(".")[0]) or _APP_CLASSES.get(cls.__module__)
        if found:
            declared = getattr(importlib.import_module(found[0]), found[1])
            assert isinstance(declared, type) and issubclass(declared, GistApp)
            return declared
    raise ConfigurationError(
        f"gist_authlib.register() takes one of Authlib's OAuth registries (Starlette, Flask or Django), not "
        f"{type(oauth).__module__}.{type(oauth).__qualname__}."
    )


def _setting_names(oauth: Any, name: str) -> dict[str, str]:
    module = type(oauth).__module__
    if "django" in module:
        return {
            key: f'settings.AUTHLIB_OAUTH_CLIENTS["{name}"]["{key}"]'
            for key in ("client_id", "client_secret", "redirect_uri")
        }
    prefix = name.upper()
    return {key: f"{prefix}_{key.upper()}" for key in ("client_id", "client_secret", "redirect_uri")}


def _store_fetcher(store: Any, flow: LoginFlow, is_async: bool, session_of: Any) -> Any:
    """Authlib's ``fetch_token(request)``: the token stored for the session's subject."""
    key = flow.subject_key

    def fetch(request: Any = None) -> dict[str, Any] | None:  # Flask's app calls it with no request
        session = session_of(request)
        subject = session.get(key) if session is not None else None
        record = store.get(subject) if isinstance(subject, str) else None
        return dict(record.token) if record is not None else None

    if not is_async:
        return fetch

    async def fetch_async(request: Any) -> dict[str, Any] | None:
        import anyio.to_thread

        return await anyio.to_thread.run_sync(fetch, request)

    return fetch_async


def _store_updater(store: Any, is_async: bool) -> Any:
    """Authlib's ``update_token``: write a refreshed token over the one it replaces, with a compare-and-set."""

    def update(token: dict[str, Any], refresh_token: str | None = None, access_token: str | None = None) -> None:
        from .errors import StaleTokenError

        # Authlib names the token being replaced by its refresh token (after a refresh) or its access token.
        if refresh_token:
            record = store.find_by_refresh_token(refresh_token)
        else:
            record = store.find_by_token(access_token) if access_token else None
        if record is None:
            return
        with contextlib.suppress(StaleTokenError):  # another process stored a newer token first: keep it
            store.compare_and_set(record.subject, token, expected_version=record.version)

    if not is_async:
        return update

    async def update_async(
        token: dict[str, Any], refresh_token: str | None = None, access_token: str | None = None
    ) -> None:
        import anyio.to_thread

        await anyio.to_thread.run_sync(lambda: update(token, refresh_token, access_token))

    return update_async


def _gist_compliance_fix(session: Any) -> None:
    session.register_compliance_hook("access_token_response", check_token_http_response)
    session.register_compliance_hook("refresh_token_response", check_token_http_response)

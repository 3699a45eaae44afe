"""register(oauth, ...): add Gist to any Authlib ``OAuth`` registry (Starlette, Flask or Django).

The app ``register`` returns applies every protection of a Gist login on Authlib's own methods
(``authorize_redirect``, ``authorize_access_token``, ``create_authorization_url``, ``save_authorize_data``,
``fetch_access_token``, ``userinfo``): an app that keeps hand-written Authlib routes is as safe as one using the
ready-made routes, which call the same login core. Each framework's app class is declared once, in its adapter
module, over Authlib's own app class and :class:`SyncGistApp` or :class:`AsyncGistApp` here, and only translates
its framework's request and response. This module imports no web framework.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import importlib
import logging
import os
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import httpx2

from ._effects import Steps, drive, drive_async
from ._flow import check_transport
from ._install_limit import InstallLimit
from ._limits import Deadline, Send, asend, send
from ._login import (
    LoginResult,
    Registration,
    SubjectSource,
    authorization,
    callback_steps,
    exchange_steps,
    log_failure,
    remember,
    start_login,
    trusted_userinfo,
    userinfo_of,
)
from ._login import _lookup as lookup_workspace
from ._routes import bounce_reply
from ._version import USER_AGENT
from ._web import Reply, Request
from .errors import ConfigurationError, GistAuthError, StaleTokenError, TokenExchangeError
from .provider import GistProvider

if TYPE_CHECKING:
    import asyncio

    from authlib.oidc.core import UserInfo

    from .tokens import TokenStore

__all__ = ["AsyncGistApp", "GistApp", "SyncGistApp", "register"]

log = logging.getLogger("gist_authlib.registry")
T = TypeVar("T")

DEFAULT_TIMEOUT = 10.0
# The settings Authlib reads from framework configuration that gist_authlib fills, and the Flask environment
# fallback reads (GIST_CLIENT_ID, ...).
_SETTINGS = ("client_id", "client_secret", "authorize_url", "access_token_url", "api_base_url", "redirect_uri")
_ENDPOINTS = ("authorize_url", "access_token_url", "api_base_url")
_CREDENTIALS = ("client_id", "client_secret", "redirect_uri")
# Authlib's registry module for each framework, and the adapter module that declares its Gist app class.
_APP_CLASSES = {
    "authlib.integrations.starlette_client": ("gist_authlib.starlette", "GistStarletteApp"),
    "authlib.integrations.flask_client": ("gist_authlib.flask", "GistFlaskApp"),
    "authlib.integrations.django_client": ("gist_authlib.django", "GistDjangoApp"),
}
# client_kwargs that build the HTTP stack themselves: with them, Authlib's own clients keep their own connections.
_OWN_STACK = ("mounts", "proxy", "proxies", "app")
# client_kwargs that configure the pooled transport (what httpx2.HTTPTransport takes).
_TRANSPORT_OPTIONS = ("verify", "cert", "http1", "http2", "limits")


class _KeepOpen(httpx2.BaseTransport, httpx2.AsyncBaseTransport):
    """A pooled transport seen through one short-lived Authlib client: closing that client leaves it open."""

    def __init__(self, transport: Any) -> None:
        self.transport = transport

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        return self.transport.handle_request(request)  # type: ignore[no-any-return]

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        return await self.transport.handle_async_request(request)  # type: ignore[no-any-return]

    def close(self) -> None:
        """Nothing: the registration closes the pool (``gist_close``, or at exit)."""

    async def aclose(self) -> None:
        """Nothing: the registration closes the pool (``gist_aclose``)."""


class GistApp:
    """What every framework's Gist app class shares: what :func:`register` returns is one of its subclasses
    (:class:`gist_authlib.starlette.GistStarletteApp`, :class:`gist_authlib.flask.GistFlaskApp`,
    :class:`gist_authlib.django.GistDjangoApp`), each also Authlib's own app class.

    Attributes:
        gist_registration: the registration, typed and frozen (:class:`~gist_authlib._login.Registration`).
    """

    gist_registration: Registration
    # Set by Authlib's base classes.
    name: str
    client_id: str | None
    client_secret: str | None
    authorize_url: str
    access_token_url: str
    api_base_url: str
    authorize_params: dict[str, Any] | None
    client_kwargs: dict[str, Any]

    if TYPE_CHECKING:  # Authlib's methods, which every framework's class has (each declares its own signature)

        def authorize_redirect(self, *args: Any, **kwargs: Any) -> Any: ...
        def authorize_access_token(self, *args: Any, **kwargs: Any) -> Any: ...
        def save_authorize_data(self, *args: Any, **kwargs: Any) -> Any: ...
        def create_authorization_url(self, *args: Any, **kwargs: Any) -> Any: ...
        def fetch_access_token(self, *args: Any, **kwargs: Any) -> Any: ...
        def userinfo(self, *args: Any, **kwargs: Any) -> Any: ...
        def get(self, url: str, **kwargs: Any) -> Any: ...
        def post(self, url: str, **kwargs: Any) -> Any: ...
        def put(self, url: str, **kwargs: Any) -> Any: ...
        def patch(self, url: str, **kwargs: Any) -> Any: ...
        def delete(self, url: str, **kwargs: Any) -> Any: ...
        def gist_close(self) -> None: ...
        async def gist_aclose(self) -> None: ...

    def __init__(self, framework: Any, name: str, *, gist: dict[str, Any], **kwargs: Any) -> None:
        oauth, provider, insecure = gist.pop("oauth"), gist["provider"], gist["allow_insecure_http"]
        wanted = gist.pop("environ")
        environ = {key: os.environ.get(f"{name.upper()}_{key.upper()}") or None for key in wanted}
        for key in _SETTINGS[:-1]:
            if kwargs.get(key) is None:
                kwargs[key] = environ.get(key) or provider.authlib_kwargs().get(key)
        kwargs["api_base_url"] = str(kwargs["api_base_url"]).rstrip("/") + "/"
        for key in _ENDPOINTS:
            check_transport(str(kwargs[key]), key.replace("_", " "), allow_insecure_http=insecure)
        redirect_uri = gist.pop("redirect_uri")
        if redirect_uri is None:  # read here: a Flask registry has no config until init_app
            config = type(oauth).framework_integration_cls.load_config(oauth, name, ("redirect_uri",)) or {}
            redirect_uri = config.get("redirect_uri") or environ.get("redirect_uri")
        if redirect_uri:
            check_transport(str(redirect_uri), "redirect URI", allow_insecure_http=insecure)
        if gist["store"] is not None:
            kwargs["fetch_token"] = kwargs.get("fetch_token") or self._gist_hook(self._gist_fetch_stored)
            kwargs["update_token"] = kwargs.get("update_token") or self._gist_hook(self._gist_update_stored)
        super().__init__(framework, name, **kwargs)  # type: ignore[call-arg]  # Authlib's app, after this class
        self._gist_lock = threading.Lock()
        self.gist_registration = Registration(
            name=name,
            client_id=self.client_id,
            client_secret=self.client_secret,
            authorize_url=self.authorize_url,
            token_url=self.access_token_url,
            api_base_url=self.api_base_url,
            redirect_uri=str(redirect_uri) if redirect_uri else None,
            default_redirect_uri=self.client_kwargs.get("redirect_uri"),
            authorize_params=dict(self.authorize_params or {}),
            fetch_token=kwargs.get("fetch_token"),
            **gist,
        )

    def __repr__(self) -> str:
        return f"<Gist OAuth app {self.name!r} at {self.authorize_url!r}>"

    # -- what each adapter declares ----------------------------------------------------------------------------

    def gist_request(self, request: Any, params: list[tuple[str, str]] | None = None) -> Request:
        """The framework's request as the login reads it (``params``: a form already read)."""
        raise NotImplementedError

    def gist_response(self, reply: Reply) -> Any:
        """The framework's response for a :class:`~gist_authlib._web.Reply`."""
        raise NotImplementedError

    def gist_logged_in(self, request: Request, result: LoginResult) -> None:
        """The framework's own step after a login: ``gist_next``/``gist_subject`` for the app, a new session id."""

    def _gist_hook(self, call: Callable[..., Any]) -> Callable[..., Any]:
        """One of Authlib's token hooks, as this kind of app calls it (a coroutine function in async apps)."""
        return call

    @staticmethod
    def gist_session_of(request: Any) -> Any:
        """The session Authlib's ``fetch_token(request)`` reads the logged-in subject from (per framework)."""
        raise NotImplementedError

    #: Whether ``GIST_*`` settings are read from the environment where the framework's configuration has none
    #: (Flask, whose ``app.config`` does not read the environment by itself).
    gist_reads_environment = False

    @staticmethod
    def gist_setting_names(name: str) -> dict[str, str]:
        """How the framework's configuration names the client id, secret and redirect URI, for messages (by
        default ``GIST_CLIENT_ID``, ...)."""
        return {}

    @staticmethod
    def gist_default_store() -> TokenStore | None:
        """The token store of a registration given none (the framework's own database, where it has one)."""
        return None

    @classmethod
    def gist_lazy(cls, oauth: Any, name: str, claims: dict[str, str]) -> Any:
        """The app of a registry that has no framework app yet (Flask before ``init_app``)."""
        raise ConfigurationError(f"The {cls.__name__} of {name!r} cannot be created before its framework app.")

    # -- the login, framework-free -----------------------------------------------------------------------------

    def _gist_bounce(self, request: Any) -> Any:
        reply = bounce_reply(self.gist_registration, self.gist_request(request))
        return self.gist_response(reply) if reply is not None else None

    def gist_credentials(self) -> tuple[str, str]:
        """The client id and secret, or a :class:`~gist_authlib.errors.MissingCredentialsError` naming the
        setting to fill in."""
        return self.gist_registration.credentials()

    def _gist_start(self, request: Request, redirect_uri: Any, params: Mapping[str, Any]) -> Any:
        uri = str(redirect_uri) if redirect_uri else None
        return self.gist_response(start_login(self.gist_registration, request, uri, params))

    def _gist_remember(self, request: Request, data: Mapping[str, Any]) -> None:
        reg = self.gist_registration
        try:
            remember(reg, reg.session_of(request), data)
        except GistAuthError as error:
            log_failure(reg, error)
            raise

    def _gist_finish(
        self, request: Request, subject: SubjectSource, token_params: Mapping[str, Any]
    ) -> tuple[Steps[LoginResult], Any]:
        """``authorize_access_token``'s flow, and the login cookie it consumes (a callback's own URL, without its
        query, is the redirect URI of an install)."""
        reg = self.gist_registration
        own_url = request.url.partition("?")[0]
        cookie = reg.pending_logins(request, own_url)
        return callback_steps(
            reg, request, cookie, redirect_uri=own_url, subject=subject, token_params=token_params
        ), cookie

    def _gist_token_info(self, token: Any) -> Steps[UserInfo]:
        reg = self.gist_registration
        known = yield from trusted_userinfo(reg, token)
        if known is not None:
            return known
        if not isinstance(token, Mapping) or not token.get("access_token"):
            raise ConfigurationError("userinfo() needs token=... (or request=... with a token store).")
        workspace = yield from lookup_workspace(reg, token, Deadline(reg.timeout))
        if workspace is None:
            raise TokenExchangeError(
                "Gist did not say which workspace this token belongs to (its token information could not be read).",
                error_code="workspace_unknown",
            )
        return userinfo_of(*workspace)

    def _gist_fetch_access_token(self, redirect_uri: str | None, kwargs: Mapping[str, Any]) -> Steps[dict[str, Any]]:
        params = {**(getattr(self, "access_token_params", None) or {}), **kwargs}
        if redirect_uri is not None:
            params["redirect_uri"] = redirect_uri
        token, _ = yield from exchange_steps(
            self.gist_registration, {k: str(v) for k, v in params.items() if v is not None}, lookup=False
        )
        return token

    # -- the token store as Authlib's fetch_token and update_token -----------------------------------------------

    def _gist_fetch_stored(self, request: Any = None) -> dict[str, Any] | None:
        """Authlib's ``fetch_token(request)``: the token stored for the session's subject (Flask passes none)."""
        reg = self.gist_registration
        session = self.gist_session_of(request)
        subject = session.get(reg.subject_key) if session is not None else None
        record = reg.store.get(subject) if isinstance(subject, str) and reg.store is not None else None
        return dict(record.token) if record is not None else None

    def _gist_update_stored(
        self, token: dict[str, Any], refresh_token: str | None = None, access_token: str | None = None
    ) -> None:
        """Authlib's ``update_token``: write a refreshed token over the one it replaces, with a compare-and-set."""
        store = self.gist_registration.store
        if store is None:
            return
        # Authlib names the token being replaced by its refresh token (after a refresh) or its access token.
        record = store.find_by_refresh_token(refresh_token) if refresh_token else None
        if record is None and access_token:
            record = store.find_by_token(access_token)
        if record is not None:
            with contextlib.suppress(StaleTokenError):  # another process stored a newer token first: keep it
                store.compare_and_set(record.subject, token, expected_version=record.version)

    # -- Authlib's own HTTP clients share the registration's pool ----------------------------------------------

    def _get_oauth_client(self, **metadata: Any) -> Any:
        # Authlib builds a new HTTP client (and, without a transport, a new TLS context and connection pool) for
        # every API call; ours all go through the registration's one pooled transport instead.
        transport = self.gist_transport()
        if transport is not None:
            metadata.setdefault("transport", transport)
        return super()._get_oauth_client(**metadata)  # type: ignore[misc]

    def gist_transport(self) -> Any:
        """The registration's pooled transport (kept open by the clients that borrow it), or ``None`` when the
        caller's ``client_kwargs`` build their own HTTP stack (a proxy, mounts)."""
        if any(key in self.client_kwargs for key in _OWN_STACK):
            return None
        return _KeepOpen(self._gist_pooled()[0])

    def _gist_pooled(self) -> tuple[Any, Any]:
        raise NotImplementedError

    def _gist_new_stack(self, transport_cls: type[Any], client_cls: type[Any]) -> tuple[Any, Any]:
        """A pooled transport (the caller's ``client_kwargs["transport"]`` when given) and the registration's own
        HTTP client over it, for the token exchange."""
        given = self.client_kwargs.get("transport")
        options = {key: self.client_kwargs[key] for key in _TRANSPORT_OPTIONS if key in self.client_kwargs}
        transport = given if given is not None else transport_cls(**options)
        own = {key: self.client_kwargs[key] for key in _OWN_STACK if key in self.client_kwargs}
        client = client_cls(
            **(own or {"transport": _KeepOpen(transport)}),
            timeout=self.gist_registration.timeout,
            trust_env=False,  # environment proxies never apply to the token request
            follow_redirects=False,  # a redirected token request could carry the code elsewhere
            headers={"User-Agent": USER_AGENT},
        )
        return transport, client


class SyncGistApp(GistApp):
    """The Gist app of a sync framework (Flask, Django): one pooled HTTP client, the sync driver."""

    _gist_stack: tuple[Any, httpx2.Client] | None = None

    def gist_run(self, steps: Steps[T]) -> T:
        """Drive one of the login's flows in this thread, sending its requests on the pooled client."""
        return drive(steps, self._gist_send)

    def _gist_send(self, effect: Any) -> Any:
        if not isinstance(effect, Send):
            raise TypeError(f"Nothing performs the effect {type(effect).__name__}.")
        return send(self._gist_pooled()[1], effect)

    def _gist_pooled(self) -> tuple[Any, httpx2.Client]:
        stack = self._gist_stack
        if stack is None:
            with self._gist_lock:
                if self._gist_stack is None:
                    self._gist_stack = self._gist_new_stack(httpx2.HTTPTransport, httpx2.Client)
                    atexit.register(self._gist_stack[1].close)
                stack = self._gist_stack
        return stack

    def gist_close(self) -> None:
        """Close the registration's pooled connections (a later request opens new ones)."""
        with self._gist_lock:
            stack, self._gist_stack = self._gist_stack, None
        if stack is not None:
            atexit.unregister(stack[1].close)
            stack[1].close()
            if stack[0] is not self.client_kwargs.get("transport"):
                stack[0].close()

    async def gist_aclose(self) -> None:
        """The same as :meth:`gist_close`, for code written for both kinds of app."""
        self.gist_close()

    def gist_bounce(self, request: Any = None) -> Any:
        """The same-site bounce of a callback, or ``None`` when none is needed: answer with it first in a
        hand-written callback route when the app's session cookie is ``SameSite=Strict`` (the ready-made routes
        do; see :func:`gist_authlib._routes.bounce_reply`). Flask's takes no request."""
        return self._gist_bounce(request)

    def create_authorization_url(self, redirect_uri: str | None = None, **kwargs: Any) -> dict[str, Any]:
        """Authlib's ``create_authorization_url`` for Gist: credentials and scopes checked, a fresh state, S256
        PKCE; pass ``next="/path"`` to come back there. Record it with ``save_authorize_data``."""
        return authorization(self.gist_registration, redirect_uri, kwargs)

    def fetch_access_token(self, redirect_uri: str | None = None, **kwargs: Any) -> dict[str, Any]:
        """Authlib's ``fetch_access_token``: the code exchanged on the pooled client, the answer validated, every
        failure a typed :class:`~gist_authlib.errors.TokenExchangeError`."""
        return self.gist_run(self._gist_fetch_access_token(redirect_uri, kwargs))

    def userinfo(self, **kwargs: Any) -> UserInfo:
        """Who logged in, as Authlib's ``userinfo()`` answers for OpenID providers: the claims of the token's
        workspace (``sub``, ``name``, ``workspace_id``, ``workspace_name``). A token from this registration's
        login carries them, bound to it; any other is looked up at Gist.

        Args:
            token: the token (or ``request=``: the token Authlib's ``fetch_token`` finds for it).

        Raises:
            TokenExchangeError: Gist did not say which workspace the token belongs to (``workspace_unknown``).
        """
        token, fetch = kwargs.get("token"), self.gist_registration.fetch_token
        if token is None and kwargs.get("request") is not None and fetch is not None:
            token = fetch(kwargs["request"])
        return self.gist_run(self._gist_token_info(token))

    def authorize_redirect(self, request: Any, redirect_uri: Any = None, **params: Any) -> Any:
        """Send the browser to Gist: credentials and scopes checked, a fresh state kept in the registration's
        login cookie (not in the session), S256 PKCE; ``next=`` (a same-origin path) is kept for after the login.
        With a configured redirect URI on another host than this request's, the browser is first sent to the
        same path on that host (the login cookie must be set where the callback will arrive)."""
        return self._gist_start(self.gist_request(request), redirect_uri, params)

    def save_authorize_data(self, request: Any, **kwargs: Any) -> None:
        """Record a login started with ``create_authorization_url`` in the session (never its secrets): there is
        no response to set the login cookie on; prefer ``authorize_redirect``."""
        self._gist_remember(self.gist_request(request), kwargs)

    def authorize_access_token(self, request: Any, *, subject: SubjectSource = None, **token_params: Any) -> Any:
        """Check the callback (state, issuer, error, code), exchange the code, learn the workspace, and return the
        validated token (``token["userinfo"]`` says who logged in). With a token store the token is stored first,
        under ``subject`` (a user id, or a function of the token) or else the Gist workspace.

        Raises:
            GistAuthError: every failure, typed and logged; each is also an Authlib ``OAuthError``.
        """
        native = self.gist_request(request)
        steps, _ = self._gist_finish(native, subject, token_params)
        result = self.gist_run(steps)
        self.gist_logged_in(native, result)
        return result.token


class AsyncGistApp(GistApp):
    """The Gist app of an async framework (Starlette, FastAPI): a pooled HTTP client per event loop (async
    connections belong to the loop that opened them), the async driver."""

    _gist_pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[Any, httpx2.AsyncClient]] | None = None

    async def gist_run(self, steps: Steps[T]) -> T:
        """Drive one of the login's flows in the running event loop, on the loop's pooled client."""
        return await drive_async(steps, self._gist_send)

    async def _gist_send(self, effect: Any) -> Any:
        if not isinstance(effect, Send):
            raise TypeError(f"Nothing performs the effect {type(effect).__name__}.")
        return await asend(self._gist_pooled()[1], effect)

    def _gist_hook(self, call: Callable[..., Any]) -> Callable[..., Any]:
        async def in_thread(*args: Any, **kwargs: Any) -> Any:  # a store's database is blocking I/O
            import anyio.to_thread

            return await anyio.to_thread.run_sync(functools.partial(call, *args, **kwargs))

        return in_thread

    def _gist_pooled(self) -> tuple[Any, httpx2.AsyncClient]:
        import asyncio  # here, not at import: most apps never reach an async pool, and asyncio is slow to import

        loop = asyncio.get_running_loop()
        pools = self._gist_pools
        stack = pools.get(loop) if pools is not None else None
        if stack is None:
            with self._gist_lock:
                if self._gist_pools is None:
                    self._gist_pools = weakref.WeakKeyDictionary()
                stack = self._gist_pools.get(loop)
                if stack is None:
                    stack = self._gist_pools[loop] = self._gist_new_stack(httpx2.AsyncHTTPTransport, httpx2.AsyncClient)
        return stack

    async def gist_aclose(self) -> None:
        """Close the pooled connections of the running loop (call it from the app's lifespan on shutdown)."""
        import asyncio

        pool = self._gist_pools.pop(asyncio.get_running_loop(), None) if self._gist_pools is not None else None
        if pool is not None:
            await pool[1].aclose()
            if pool[0] is not self.client_kwargs.get("transport"):
                await pool[0].aclose()

    def gist_close(self) -> None:
        """Drop every loop's pool outside any loop (their connections close as they are collected); inside a
        running loop, prefer ``await gist_aclose()``."""
        self._gist_pools = None

    async def gist_bounce(self, request: Any) -> Any:
        """See :meth:`SyncGistApp.gist_bounce`."""
        return self._gist_bounce(request)

    async def create_authorization_url(self, redirect_uri: str | None = None, **kwargs: Any) -> dict[str, Any]:
        """The async form of :meth:`SyncGistApp.create_authorization_url` (no I/O happens)."""
        return authorization(self.gist_registration, redirect_uri, kwargs)

    async def fetch_access_token(self, redirect_uri: str | None = None, **kwargs: Any) -> dict[str, Any]:
        """The async form of :meth:`SyncGistApp.fetch_access_token`."""
        return await self.gist_run(self._gist_fetch_access_token(redirect_uri, kwargs))

    async def userinfo(self, **kwargs: Any) -> UserInfo:
        """The async form of :meth:`SyncGistApp.userinfo`."""
        token, fetch = kwargs.get("token"), self.gist_registration.fetch_token
        if token is None and kwargs.get("request") is not None and fetch is not None:
            token = fetch(kwargs["request"])
            if hasattr(token, "__await__"):
                token = await token
        return await self.gist_run(self._gist_token_info(token))

    async def authorize_redirect(self, request: Any, redirect_uri: Any = None, **params: Any) -> Any:
        """See :meth:`SyncGistApp.authorize_redirect`."""
        return self._gist_start(self.gist_request(request), redirect_uri, params)

    async def save_authorize_data(self, request: Any, **kwargs: Any) -> None:
        """See :meth:`SyncGistApp.save_authorize_data`."""
        self._gist_remember(self.gist_request(request), kwargs)

    async def authorize_access_token(self, request: Any, *, subject: SubjectSource = None, **token_params: Any) -> Any:
        """See :meth:`SyncGistApp.authorize_access_token`."""
        native = await self.gist_read(request)
        steps, _ = self._gist_finish(native, subject, token_params)
        result = await self.gist_run(steps)
        self.gist_logged_in(native, result)
        return result.token

    async def gist_read(self, request: Any) -> Request:
        """The framework's request as the login reads it, its form read when it is a ``POST``."""
        return self.gist_request(request)


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
    max_pending_logins: int = 10,
    pkce: bool = True,
    token_store: TokenStore | str | os.PathLike[str] | None = None,
    allow_insecure_http: bool = False,
    install_limit: InstallLimit | None = None,
    error_page: Callable[..., str] | None = None,
    **overrides: Any,
) -> GistApp:
    """Register Gist in an Authlib ``OAuth`` registry and return the registered app (``oauth.<name>``).

    Works with ``authlib.integrations.starlette_client.OAuth``, ``flask_client.OAuth`` and
    ``django_client.OAuth``. Each setting is taken from, in order: the arguments here; the framework's
    configuration under Authlib's own names (``GIST_CLIENT_ID``, ``GIST_CLIENT_SECRET``,
    ``GIST_AUTHORIZE_URL``, ``GIST_ACCESS_TOKEN_URL``, ``GIST_API_BASE_URL``, ``GIST_REDIRECT_URI`` in a
    Starlette ``Config`` or Flask ``app.config``, where Flask also reads them from the environment when
    ``app.config`` has none; ``AUTHLIB_OAUTH_CLIENTS["gist"]`` in Django settings); the provider's defaults.

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
        timeout: seconds the whole token exchange, with its workspace lookup, may take.
        state_ttl: seconds a started login stays valid.
        max_pending_logins: logins one browser may have pending at once (tabs).
        pkce: send an S256 PKCE challenge with every login.
        token_store: a :mod:`gist_authlib.tokens` store, or where one is: a SQLite file's path or a database URL
            (``postgresql://...``), opened with :func:`~gist_authlib.tokens.open_token_store` and the key(s) in
            the environment variable ``GIST_TOKEN_KEY``. Every finished login then saves its token under a
            subject (the one the app names, else the Gist workspace), the session keeps only that subject,
            and Authlib's ``fetch_token`` and ``update_token`` read and write the store (so
            ``gist.get(..., request=request)`` finds the token). A shared store (SQLite, SQLAlchemy) also keeps
            the used login states and codes and the install limit's counts, for every instance using its
            database; without one they live in this process's memory (docs/INSTANCES.md). With
            ``"gist_authlib.django"`` in a Django project's ``INSTALLED_APPS``, the project's database is the default.
        allow_insecure_http: allow ``http://`` endpoints and redirect URIs on hosts that are not loopback
            (a development flag; loopback is always allowed).
        install_limit: how many Gist-initiated install attempts may cost a token request, per network and in
            total (an :class:`~gist_authlib.InstallLimit`; by default 10 per network and 100 in all per minute,
            counted by the socket's address unless you name your reverse proxies in its ``trusted_proxies``).
        error_page: renders the page of a failed login instead of the library's: ``error_page(error, *,
            retry_url, debug)`` returns HTML (the ready-made routes without ``on_error`` use it).
        **overrides: passed on to ``oauth.register`` (``authorize_params``, ``fetch_token``,
            ``update_token``, ``client_kwargs``, an explicit ``authorize_url``, ...).

    Returns:
        The framework's Gist app; on Flask before ``init_app``, a lazy proxy to it. The adapters' own
        ``register`` functions return it typed.

    Raises:
        UnknownScopeError: a scope is not in the provider's catalogue (the message names the nearest).
        ConfigurationError: the framework's registry is not one of Authlib's three, or scopes disagree.
    """
    given_provider, provider = provider is not None, provider or GistProvider()
    app_cls = _app_class(oauth)
    client_kwargs = dict(overrides.pop("client_kwargs", None) or {})
    authorize_params = dict(overrides.get("authorize_params") or {})
    granted = _one_source_of_scopes(
        provider, scopes, client_kwargs.pop("scope", None), authorize_params.pop("scope", None)
    )
    if "authorize_params" in overrides:
        overrides["authorize_params"] = authorize_params
    if redirect_uri is not None:
        check_transport(redirect_uri, "redirect URI", allow_insecure_http=allow_insecure_http)
    store = _open_store(token_store) if isinstance(token_store, (str, os.PathLike)) else token_store
    store = store if store is not None else app_cls.gist_default_store()
    from .tokens import LoginState, MemoryLoginState  # here: import gist_authlib need not load the token stores

    # Used states and codes and the limits' counts are recorded where the tokens are, when every process sees them.
    state = store if isinstance(store, LoginState) and store.shared else MemoryLoginState()
    if not state.shared:  # a warning where the app asked for storage that is not shared; news for a minimal app
        (log.info if store is None else log.warning)(
            "Gist registration %r has no token store shared between processes: used login states and codes and "
            "the install limit live in this process's memory. Running several instances, give register() "
            "token_store= a database every instance uses (docs/INSTANCES.md).",
            name,
        )
    limit = install_limit or InstallLimit()
    # Callbacks no browser can finish record their code: a network may make 30 such records a minute.
    refusals = InstallLimit(30, 300, trusted_proxies=limit.trusted_proxy_names())
    defaults = {"token_endpoint_auth_method": provider.token_endpoint_auth_method, "timeout": timeout}
    client_kwargs = {**defaults, "trust_env": False, **client_kwargs, "scope": " ".join(granted)}
    client_kwargs["follow_redirects"] = False  # a redirected token request could carry the code elsewhere
    gist: dict[str, Any] = {
        "oauth": oauth,
        # Where the framework reads no GIST_* from the environment itself (Flask), they are read too; an explicit
        # provider's endpoints still win over the environment's.
        "environ": () if not app_cls.gist_reads_environment else _SETTINGS if not given_provider else _CREDENTIALS,
        "provider": provider,
        "scopes": granted,
        "redirect_uri": redirect_uri,
        "allow_insecure_http": allow_insecure_http,
        "state_ttl": state_ttl,
        "max_pending": max_pending_logins,
        "pkce": pkce,
        "timeout": float(client_kwargs["timeout"]),
        "store": store,
        "login_state": state,
        "install_limit": limit.for_registration(name, state),
        "refusal_limit": refusals.for_registration(f"{name}:refused", state),
        "setting_names": app_cls.gist_setting_names(name),
        "error_page": error_page,
    }
    kwargs: dict[str, Any] = {"client_cls": app_cls, "client_kwargs": client_kwargs, "gist": gist}
    kwargs.update({"compliance_fix": _compliance_fix, "user_agent": USER_AGENT})
    if client_id is not None:
        kwargs["client_id"] = client_id
    if client_secret is not None:
        kwargs["client_secret"] = client_secret
    kwargs.update(overrides)
    app = oauth.register(name, **kwargs)
    if getattr(oauth, "app", True) is None:
        # Flask before init_app: Authlib hands back an anonymous lazy proxy. Ours also knows its name, so that
        # adapters can name their routes before the Flask app exists.
        claims = oauth.__dict__.setdefault("_gist_route_claims", {})
        lazy: GistApp = app_cls.gist_lazy(oauth, name, claims)
        return lazy
    app._gist_route_claims = oauth.__dict__.setdefault("_gist_route_claims", {})
    registered: GistApp = app
    return registered


def _open_store(location: str | os.PathLike[str]) -> TokenStore:
    """The store ``register(token_store="...")`` names, with its key(s) from ``GIST_TOKEN_KEY``."""
    from .tokens import open_token_store

    key = os.environ.get("GIST_TOKEN_KEY")
    if not key:
        raise ConfigurationError(
            "register(token_store=...) was given a path or a database URL, and its tokens are encrypted with the key "
            "in the environment variable GIST_TOKEN_KEY, which is not set. Set it (make a key with "
            "gist_authlib.tokens.TokenCipher.generate_key()), or pass open_token_store(..., key=...)."
        )
    store: TokenStore = open_token_store(location, key=key)
    return store


def _one_source_of_scopes(
    provider: GistProvider, scopes: str | Iterable[str] | None, *elsewhere: str | Iterable[str] | None
) -> tuple[str, ...]:
    """The registration's scopes, checked against the catalogue wherever they were given (``scopes=``, Authlib's
    ``client_kwargs["scope"]`` or ``authorize_params["scope"]``); two places that disagree are an error, so that
    the routes and hand-written calls always ask Gist for the same scopes."""
    given = [provider.validate_scopes(value) for value in (scopes, *elsewhere) if value]
    if not given:
        return provider.validate_scopes(None)
    for other in given[1:]:
        if set(other) != set(given[0]):
            raise ConfigurationError(
                f"The Gist scopes are given twice and disagree ({' '.join(given[0])!r} and {' '.join(other)!r}). "
                "Name them once, with register(..., scopes=[...])."
            )
    return given[0]


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


def _compliance_fix(session: Any) -> None:
    """Authlib's refresh answers (``gist.get`` with a refreshable token) are checked as the exchange's are."""
    from ._flow import check_token_answer

    def check(response: Any) -> Any:
        check_token_answer(int(response.status_code), response.content)
        return response

    session.register_compliance_hook("refresh_token_response", check)

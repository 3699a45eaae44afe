"""The one Gist login sequence: check the callback, exchange the code, look up the workspace, store, answer.

It is written once, without I/O of its own, over a typed :class:`Registration` (credentials, provider, flow,
scopes, store, replay guard, install limit, issuer). :func:`callback_steps` is a flow of the package's effects
(:mod:`gist_authlib._effects`) plus two of its own, :class:`FetchToken` and :class:`ReadWorkspace`, which a
:class:`LoginEffects` (or :class:`AsyncLoginEffects`) object performs: :func:`run` and :func:`run_async` drive
it with the package's one pair of drivers. A failure of a step is thrown back into the flow, which turns it
into the package's typed error.

Every login goes through here: the registered Authlib app's own methods (``authorize_redirect``,
``authorize_access_token``, ``create_authorization_url``, ``save_authorize_data``), the routes of the
framework adapters, which call them, and ``gist-authlib login``, whose effects object posts the code from the
command line.
"""

from __future__ import annotations

import collections
import functools
import hashlib
import ipaddress
import logging
import secrets
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias, TypedDict
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx2

from ._effects import Blocking, Steps, UserCode, drive, drive_async
from ._flow import (
    CallbackGrant,
    CookieToSet,
    InstallGrant,
    LoginCookie,
    LoginFlow,
    PendingJar,
    check_token_http_response,
    check_token_response,
    check_transport,
    translate_token_error,
)
from ._version import USER_AGENT
from .client import AsyncGistClient, GistClient, RetryPolicy
from .errors import (
    ConfigurationError,
    GistAuthError,
    InstallError,
    MissingCredentialsError,
    StateError,
    TokenEndpointError,
    TokenExchangeError,
    UnknownStateError,
)
from .provider import GistProvider

if TYPE_CHECKING:
    from authlib.oidc.core import UserInfo

    from .tokens import InstallCounter

__all__ = [
    "AsyncLoginEffects",
    "CallbackOptions",
    "FetchToken",
    "InstallLimit",
    "LoginEffects",
    "LoginResult",
    "LoginStart",
    "MemoryReplayGuard",
    "ReadWorkspace",
    "Registration",
    "ReplayGuard",
    "SubjectSource",
    "authorization",
    "callback_steps",
    "canonical_move",
    "forget_login",
    "login_subject",
    "open_login_cookie",
    "read_workspace",
    "read_workspace_async",
    "remember",
    "request_token",
    "run",
    "run_async",
    "start_login",
    "userinfo_of",
]

log = logging.getLogger("gist_authlib.login")

#: What names the subject a fresh login's token is stored under: a fixed id, a function of the token (plain
#: or async) returning one, or ``None`` (then the Gist workspace, else a random opaque id).
SubjectSource: TypeAlias = str | Callable[[dict[str, Any]], str | Awaitable[str | None] | None] | None

# Keys of the dict ``create_authorization_url`` returns that only ``save_authorize_data`` reads. Authlib's own
# ``authorize_redirect`` passes ``redirect_uri=`` beside that dict, so the effective one travels under our name.
_REDIRECT_KEY = "gist_redirect_uri"
_NEXT_KEY = "gist_next"
# The query parameter a login moved to the redirect URI's host carries, so that it is never moved twice.
_MOVED_KEY = "gist_moved"
# OpenID Connect arguments Authlib's authorize_access_token accepts; Gist issues no ID token.
_OPENID_ONLY = ("claims_options", "claims_cls", "leeway")
# The workspace lookup after a login: one retry, within five seconds.
_LOOKUP_RETRY = RetryPolicy(max_attempts=2, deadline=5.0)
# The trusted_proxies entry that stands for a Unix socket (a request with no peer address).
_UNIX = "unix:"


class ReplayGuard(Protocol):
    """Where consumed states and codes are recorded: :class:`MemoryReplayGuard`, or a token store."""

    def consume(self, digests: Iterable[str], *, ttl: float) -> bool:
        """Record ``digests`` as consumed; False when any of them was consumed before."""
        ...


@dataclass(frozen=True, slots=True)
class Registration:
    """Everything the login sequence knows about one Gist registration, typed.

    A registered Authlib app makes one from its settings (``app.gist_registration``); ``gist-authlib login``
    makes its own. Nothing here performs I/O.

    Attributes:
        name: the registration's name (``"gist"``).
        client_id: the client id, or ``None`` when it is not configured.
        client_secret: the client secret, or ``None`` (secret: never log it).
        provider: the endpoints and scope catalogue.
        scopes: the scopes a login asks for, checked against the catalogue.
        flow: the state, PKCE and pending-login rules.
        authorize_url: the authorization endpoint in use (the provider's, or a configured one).
        token_url: the token endpoint in use.
        api_base_url: the REST API's base URL, for the workspace lookup.
        redirect_uri: the configured redirect URI, which wins over any other.
        default_redirect_uri: the redirect URI used when neither the configured one nor the caller's is set.
        allow_insecure_http: allow ``http://`` off loopback.
        store: the token store, or ``None``.
        replay_guard: where consumed states and codes are recorded.
        install_limit: the cost limit of Gist-initiated installs, or ``None`` for none.
        setting_names: the configuration names of the client id and secret, for error messages.
        pkce_key: what PKCE verifiers are derived under: ``None`` for the client secret (a confidential web
            app, whose verifier then needs no storage), or a random key kept in memory for one login (a public
            client such as the command line, whose secret is not confidential).
    """

    name: str
    client_id: str | None
    client_secret: str | None = field(repr=False)
    provider: GistProvider
    scopes: tuple[str, ...]
    flow: LoginFlow
    authorize_url: str
    token_url: str
    api_base_url: str
    redirect_uri: str | None = None
    default_redirect_uri: str | None = None
    allow_insecure_http: bool = False
    store: Any = None
    replay_guard: ReplayGuard = field(default_factory=lambda: MemoryReplayGuard())
    install_limit: InstallLimit | None = None
    setting_names: Mapping[str, str] = field(
        default_factory=lambda: {"client_id": "GIST_CLIENT_ID", "client_secret": "GIST_CLIENT_SECRET"}
    )
    pkce_key: str | None = field(default=None, repr=False)

    def credentials(self) -> tuple[str, str]:
        """The client id and secret.

        Raises:
            MissingCredentialsError: one is not configured (the message names the setting to fill in).
        """
        if not self.client_id:
            raise MissingCredentialsError(self.setting_names["client_id"], "client id")
        if not self.client_secret:
            raise MissingCredentialsError(self.setting_names["client_secret"], "client secret")
        return str(self.client_id), str(self.client_secret)

    @property
    def issuer(self) -> str:
        """The issuer a callback may name: the provider's, else the authorization endpoint's origin."""
        if self.provider.issuer and self.authorize_url == self.provider.authorize_url:
            return str(self.provider.issuer)
        parts = urlsplit(self.authorize_url)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def install_ack_url(self) -> str:
        """Where an install is acknowledged: the provider's URL, or, when the authorize endpoint was configured
        elsewhere (the sandbox, a staging host), the same path on that endpoint's origin."""
        if self.authorize_url == self.provider.authorize_url:
            return str(self.provider.install_ack_url)
        parts = urlsplit(self.authorize_url)
        return f"{parts.scheme}://{parts.netloc}{urlsplit(self.provider.install_ack_url).path}"

    def effective_redirect_uri(self, given: str | None) -> str:
        """The redirect URI of a login: the configured one when set (never the Host header), else ``given``.

        Raises:
            ConfigurationError: none is known.
            InsecureTransportError: it is ``http://`` off loopback.
        """
        uri = self.redirect_uri or (str(given) if given else None) or self.default_redirect_uri
        if not uri:
            raise ConfigurationError(
                "No redirect URI: pass redirect_uri to authorize_redirect, or set it once for the registration "
                "(register(..., redirect_uri=...), or its REDIRECT_URI setting: GIST_REDIRECT_URI for a registration "
                "named gist; in Django, redirect_uri in AUTHLIB_OAUTH_CLIENTS)."
            )
        check_transport(uri, "redirect URI", allow_insecure_http=self.allow_insecure_http)
        return uri


# -- the effects of the sequence, and who performs them ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FetchToken:
    """Send the token request with these parameters; answer: the validated token."""

    params: dict[str, str] = field(repr=False)


@dataclass(frozen=True, slots=True)
class ReadWorkspace:
    """Ask Gist which workspace ``token`` belongs to; answer: ``(workspace_id, workspace_name)``."""

    token: dict[str, Any] = field(repr=False)


class LoginEffects(Protocol):
    """What a sync caller of the sequence performs: the registered Flask or Django app, the command line."""

    def gist_exchange(self, params: dict[str, str]) -> dict[str, Any]:
        """Send the token request (``code``, ``redirect_uri``, ``code_verifier``, extras); the checked token."""
        ...

    def gist_workspace(self, token: Mapping[str, Any]) -> tuple[str | None, str | None]:
        """(workspace id, name) of a fresh token; (None, None) when Gist will not say."""
        ...


class AsyncLoginEffects(Protocol):
    """The async form of :class:`LoginEffects` (the registered Starlette app)."""

    async def gist_exchange(self, params: dict[str, str]) -> dict[str, Any]:
        """Send the token request; the checked token."""
        ...

    async def gist_workspace(self, token: Mapping[str, Any]) -> tuple[str | None, str | None]:
        """(workspace id, name) of a fresh token; (None, None) when Gist will not say."""
        ...


@dataclass(frozen=True, slots=True)
class LoginResult:
    """What a finished callback gave.

    Attributes:
        token: the validated token (secret: never log it).
        next_path: the checked same-origin path to go to afterwards (``"/"`` when none was given).
        subject: the key the token was stored under, or ``None`` without a token store.
        workspace_id: the Gist workspace of the token, when it was looked up.
        workspace_name: its name, when Gist said.
        install: whether this was a Gist-initiated install rather than a login this browser started.
        ack_url: for an install, where Gist expects the browser next (its acknowledgement URL).
    """

    token: dict[str, Any] = field(repr=False)
    next_path: str = "/"
    subject: str | None = None
    workspace_id: str | None = None
    workspace_name: str | None = None
    install: bool = False
    ack_url: str | None = None


# -- starting a login (no I/O) --------------------------------------------------------------------------


def authorization(
    reg: Registration, redirect_uri: str | None, params: Mapping[str, Any], *, browser: str | None = None
) -> dict[str, Any]:
    """What ``create_authorization_url`` returns: the URL, the state, and what ``save_authorize_data`` records.

    ``params`` are the extra authorization parameters; gist_authlib reads ``next`` (a same-origin path to
    return to) and ``scope`` (checked against the catalogue) out of them and refuses ``state`` (it issues
    its own).

    Raises:
        MissingCredentialsError: the client id or secret is not configured.
        UnknownScopeError: a scope is not in the provider's catalogue.
        InsecureTransportError: the redirect URI is ``http://`` off loopback.
        ConfigurationError: no redirect URI is known, or a ``state`` was passed in.
    """
    client_id, client_secret = reg.credentials()
    extra = dict(params)
    next_path = extra.pop("next", None)
    if "state" in extra:
        raise ConfigurationError(
            "gist_authlib issues and checks the login state itself; do not pass state= to the Gist app."
        )
    for name in (*_OPENID_ONLY, "code_verifier", "nonce"):
        extra.pop(name, None)
    scope = extra.pop("scope", None)
    scopes = reg.provider.validate_scopes(scope) if scope else reg.scopes
    uri = reg.effective_redirect_uri(redirect_uri)
    request = reg.flow.issue(
        authorize_url=reg.authorize_url,
        client_id=client_id,
        client_secret=reg.pkce_key or client_secret,
        redirect_uri=uri,
        scopes=scopes,
        extra_params={key: str(value) for key, value in extra.items() if value is not None},
        browser=browser,
    )
    data: dict[str, Any] = {"url": request.url, "state": request.state, _REDIRECT_KEY: uri, _NEXT_KEY: next_path}
    if request.code_verifier:
        data["code_verifier"] = request.code_verifier  # as Authlib returns it; it is derived again at the callback
    return data


def remember(reg: Registration, session: MutableMapping[str, Any], data: Mapping[str, Any]) -> None:
    """Record a login started by :func:`authorization` in the browser's session (``save_authorize_data``).

    The session keeps the state, its expiry, the redirect URI and the checked ``next`` path: never the PKCE
    verifier (derived again from the state) nor any other secret.
    """
    state = data.get("state")
    if not isinstance(state, str) or not state:
        raise ConfigurationError("save_authorize_data needs the state create_authorization_url returned.")
    uri = data.get(_REDIRECT_KEY) or data.get("redirect_uri")
    if not uri:
        raise ConfigurationError("save_authorize_data needs the redirect URI of the login it records.")
    reg.flow.remember(session, state, redirect_uri=str(uri), next_path=data.get(_NEXT_KEY))


@dataclass(frozen=True, slots=True)
class LoginStart:
    """How the login start answers: send the browser to ``url`` and, when given, set ``cookie`` (the login
    cookie with the new pending login). Without a cookie, ``url`` moves the browser to the redirect URI's host
    first (:func:`canonical_move`)."""

    url: str
    cookie: CookieToSet | None = None


def open_login_cookie(reg: Registration, cookies: Mapping[str, str], url: str | None) -> PendingJar:
    """The request's login cookie of ``reg``, opened and checked; ``url`` is the login's redirect URI as the
    caller knows it (a configured one wins): on https only the ``__Host-`` cookie is read.

    Raises:
        MissingCredentialsError: the client secret (the cookie's signing key derives from it) is not set.
    """
    _, client_secret = reg.credentials()
    secure = urlsplit(reg.redirect_uri or url or "").scheme == "https"
    return LoginCookie(reg.flow).open(cookies, reg.pkce_key or client_secret, secure=secure)


def canonical_move(reg: Registration, request_url: str, redirect_uri: str) -> str | None:
    """Where to move a login that started on another host than its redirect URI's, or ``None``.

    The login cookie is set on the host the login starts on and must come back to the callback's: a login
    started on ``localhost`` for a ``127.0.0.1`` redirect URI (or ``www.`` against a bare host) would never
    meet its cookie. The move goes to the same path and query on the redirect URI's scheme and host, once:
    a request that was moved already (behind a proxy that hides the browser's host) is not moved again.
    """
    target, here = urlsplit(redirect_uri), urlsplit(request_url)
    if not target.hostname or not here.hostname or target.hostname == here.hostname:
        return None
    query = [pair for pair in parse_qsl(here.query, keep_blank_values=True)]
    if any(key == _MOVED_KEY for key, _ in query):
        log.warning(
            "Gist login %r: the login was moved to %s, the redirect URI's host, but arrived as %s again; a proxy "
            "in front of the app may not pass the browser's Host header on.",
            reg.name,
            target.hostname,
            here.hostname,
        )
        return None
    query.append((_MOVED_KEY, "1"))
    return urlunsplit((target.scheme, target.netloc, here.path or "/", urlencode(query), ""))


def _check_callback_path(reg: Registration, configured: str, callback: str | None) -> None:
    """Refuse a configured redirect URI whose path cannot reach the app's callback route, before any user is sent
    to Gist (a redirect URI copied from another provider's ``/auth`` would come back to the wrong route).

    A proxy may strip a path prefix the app does not know about, so a configured path that ends with the
    callback's is accepted.
    """
    if not reg.redirect_uri or not callback:
        return
    # A trailing slash is the framework's to settle (Starlette redirects to the route without it).
    wanted = urlsplit(configured).path.rstrip("/") or "/"
    mounted = urlsplit(str(callback)).path.rstrip("/") or "/"
    if wanted == mounted or wanted.endswith(mounted):
        return
    setting = reg.setting_names.get("redirect_uri", f"{reg.name.upper()}_REDIRECT_URI")
    raise ConfigurationError(
        f"{setting} is {configured!r}, whose path {wanted!r} is not where this app's Gist callback is mounted "
        f"({mounted!r}): Gist would send every user back to a route that cannot finish the login. Set {setting} "
        f"to the callback's URL (ending in {mounted!r}) and register it in Gist's Developer Hub, or mount the "
        f"callback at {wanted!r}."
    )


def start_login(
    reg: Registration,
    cookies: Mapping[str, str],
    request_url: str,
    redirect_uri: str | None,
    params: Mapping[str, Any],
) -> LoginStart:
    """The login start of ``authorize_redirect``, framework-free: move to the canonical host, or issue a state,
    record it in the login cookie and answer with the authorization URL and the cookie to set.

    Raises:
        the errors of :func:`authorization`.
    """
    uri = reg.effective_redirect_uri(redirect_uri)
    _check_callback_path(reg, uri, redirect_uri)
    moved = canonical_move(reg, request_url, uri)
    if moved is not None:
        reg.credentials()  # a missing client id is reported here, not after the move
        return LoginStart(moved)
    jar = open_login_cookie(reg, cookies, uri)
    data = authorization(reg, uri, params, browser=jar.browser)
    remember(reg, jar.session, data)
    return LoginStart(data["url"], jar.to_set())


# -- finishing a login: the sequence ------------------------------------------------------------------------


class CallbackOptions(TypedDict, total=False):
    """The keyword options of :func:`callback_steps`, as the apps' ``gist_finish`` passes them on."""

    redirect_uri: str | None
    installs: bool
    subject: SubjectSource
    token_params: Mapping[str, Any] | None
    client: str | None
    forwarded_for: str | None
    cookie: PendingJar | None


def callback_steps(
    reg: Registration,
    session: MutableMapping[str, Any],
    query: Iterable[tuple[str, str]],
    *,
    redirect_uri: str | None = None,
    installs: bool = False,
    subject: SubjectSource = None,
    token_params: Mapping[str, Any] | None = None,
    client: str | None = None,
    forwarded_for: str | None = None,
    cookie: PendingJar | None = None,
) -> Steps[LoginResult]:
    """The callback of a login, as a flow of effects (drive it with :func:`run` or :func:`run_async`).

    Check the callback against the session (state, issuer, error, code), exchange the code, look up the
    workspace when it is needed, store the token under its subject, and return a :class:`LoginResult`. The
    token is stored before the result reaches the app, so an app never acts on a login that was not kept.

    Args:
        reg: the registration.
        session: the browser's session (a plain dict for the command line).
        query: the callback's parameters.
        redirect_uri: this callback's own URL: the redirect URI of an install (a login is exchanged with the
            redirect URI it was started with).
        installs: accept a callback with a code and a state this browser was never issued as a
            Gist-initiated install.
        subject: names the stored token's subject (see :data:`SubjectSource`).
        token_params: extra parameters for the token request (they never replace the code, the redirect
            URI or the PKCE verifier).
        client: the address the request came from (the socket's), for the install rate limit.
        forwarded_for: the request's ``X-Forwarded-For``, read only when ``client`` is a trusted proxy of the
            install limit.
        cookie: the request's login cookie (:func:`open_login_cookie`), where the login start kept the
            pending login; the callback consumes its state there (send ``cookie.to_set()`` back when
            ``cookie.changed``), and marks the login completed when it succeeds.

    Raises:
        GistAuthError: every failure, as its typed subclass (each is an Authlib ``OAuthError`` too).
    """
    _, client_secret = reg.credentials()
    install_uri = reg.effective_redirect_uri(redirect_uri) if installs and redirect_uri else redirect_uri
    query = list(query)
    try:
        grant = reg.flow.finish(
            session,
            query,
            client_secret=reg.pkce_key or client_secret,
            redirect_uri=install_uri,
            issuer=reg.issuer,
            installs=installs,
            install_state_pattern=reg.provider.install_state_pattern,
            cookie=cookie,
        )
    except UnknownStateError as refused:
        if refused.error_code == "state_unknown":
            raise
        # Issued by this app, but this browser has no pending login for it: the callback URL reached a request
        # that cannot finish it. Its (state, code) pair is consumed, so that this callback is never used anywhere;
        # a pair consumed before (by the login that completed, or here) is a replay. The state alone is not:
        # anyone who saw the authorization URL knows it, and must not be able to burn the login with it.
        states, codes = [v for k, v in query if k == "state"], [v for k, v in query if k == "code"]
        if len(states) == 1 and len(codes) == 1 and not (yield from _single_use(reg, [_pair(states[0], codes[0])])):
            raise StateError.replayed() from None
        raise
    if isinstance(grant, InstallGrant):
        limit = reg.install_limit
        if limit is not None:
            admit = functools.partial(limit.allow, limit.client_address(client, forwarded_for))
            # Counted in a shared store's database: blocking I/O (a worker thread in async apps).
            allowed = (yield Blocking(admit)) if limit.shared else admit()
            if not allowed:
                raise InstallError.rate_limited()
        if not (yield from _single_use(reg, [("code", grant.code)])):
            raise StateError.replayed()
        return (yield from _install_steps(reg, grant))
    # The browser said the state was pending; a second callback racing the first (a double click), or a copy of
    # an older cookie, would say so too. What was consumed is also recorded server-side, so neither sends a
    # token request.
    pair = _pair(grant.state, grant.code)
    if not (yield from _single_use(reg, [("state", grant.state), ("code", grant.code), pair])):
        raise StateError.repeated(grant.next_path, completed=False)

    params = {key: str(value) for key, value in (token_params or {}).items() if key not in _OPENID_ONLY}
    token = yield from _exchange(grant, params)
    store = reg.store
    # Who logged in, as Authlib's OpenID providers put it in the token: a Gist login identifies the workspace
    # that granted access (Gist has no endpoint for the teammate who clicked Approve).
    workspace_id, workspace_name = yield ReadWorkspace(token)
    if workspace_id is not None:
        token["userinfo"] = userinfo_of(workspace_id, workspace_name)
    named: Any = subject
    if callable(subject):
        named = yield UserCode(subject, (dict(token),))
    if named is not None and not isinstance(named, str):
        raise ConfigurationError(f"The login's subject must be a string (a user id) or None, not {type(named)!r}.")
    key = None
    if store is not None:
        if named:
            key = named
        elif workspace_id is not None:
            key = f"workspace:{workspace_id}"
        else:
            key = f"login:{secrets.token_urlsafe(16)}"
        yield Blocking(
            functools.partial(
                store.save, key, token, scopes=reg.scopes, workspace_id=workspace_id, workspace_name=workspace_name
            )
        )
        session[reg.flow.subject_key] = key
    for holder in (session, cookie.session if cookie is not None else None):
        if holder is not None:
            reg.flow.complete(holder, grant.state)
    log.info("Gist login %r completed", reg.name)
    return LoginResult(
        token=token,
        next_path=grant.next_path or "/",
        subject=key,
        workspace_id=workspace_id,
        workspace_name=workspace_name,
    )


def _exchange(grant: CallbackGrant | InstallGrant, extra: Mapping[str, str]) -> Steps[dict[str, Any]]:
    params = {**extra, **grant.token_params()}
    try:
        token = yield FetchToken(params)
    except Exception as exc:  # every failure of the exchange becomes a typed error, with no request text in it
        raise translate_token_error(exc) from None
    return check_token_response(token)


def _pair(state: str, code: str) -> tuple[str, str]:
    """The one-time value of a whole callback: its state and code together."""
    return ("callback", f"{state}\0{code}")


def _single_use(reg: Registration, values: list[tuple[str, str]]) -> Steps[bool]:
    """Record one-time values (state, code) as consumed; False (recording nothing) when one was consumed before."""
    guard = reg.replay_guard
    salt = f"{reg.name}\0{reg.client_id}"
    digests = [hashlib.sha256(f"{salt}\0{kind}\0{value}".encode()).hexdigest() for kind, value in values]
    consume = functools.partial(guard.consume, digests, ttl=reg.flow.state_ttl)
    # A token store's database is blocking I/O (a worker thread in async apps); process memory is not.
    fresh: bool = consume() if isinstance(guard, MemoryReplayGuard) else (yield Blocking(consume))
    return fresh


def _install_steps(reg: Registration, grant: InstallGrant) -> Steps[LoginResult]:
    try:
        token = yield from _exchange(grant, {})
    except TokenEndpointError as refused:
        if refused.http_status < 500:  # Gist refused the code: a stale or forged link, not Gist failing
            raise InstallError.link_invalid() from None
        raise
    workspace_id, workspace_name = yield ReadWorkspace(token)
    if workspace_id is None:
        raise TokenExchangeError(
            "Gist did not say which workspace installed the app (its token information could not be read), "
            "so the installation was not recorded. Try installing again.",
            error_code="workspace_unknown",
        )
    # The workspace comes from Gist's answer about the token itself; the state (anyone can forge it) must agree.
    if str(workspace_id) != grant.workspace_hint:
        raise InstallError("The installation callback names another workspace than its token; nothing was stored.")
    token["userinfo"] = userinfo_of(workspace_id, workspace_name)
    key = f"workspace:{workspace_id}"
    if reg.store is not None:
        yield Blocking(
            functools.partial(
                reg.store.save, key, token, scopes=reg.scopes, workspace_id=workspace_id, workspace_name=workspace_name
            )
        )
    query = urlencode({"client_id": reg.client_id, "workspace_id": workspace_id})
    ack = reg.install_ack_url
    log.info("Gist install %r completed", reg.name)
    return LoginResult(
        token=token,
        subject=key if reg.store is not None else None,
        workspace_id=str(workspace_id),
        workspace_name=workspace_name,
        install=True,
        ack_url=f"{ack}{'&' if '?' in ack else '?'}{query}",
    )


# -- server-side single use and the install rate limit ---------------------------------------------------------


class MemoryReplayGuard:
    """Consumed states and codes (hashes only) in process memory, for a registration without a token store.

    A token store records them in its database instead (``consume``), which also covers several processes.
    Entries expire with the state lifetime; at most ``max_entries`` are kept (the oldest go first).
    """

    def __init__(self, *, max_entries: int = 100_000, clock: Callable[[], float] = time.time) -> None:
        # Keys are the first 16 bytes of each digest: 128 bits tell used values apart, at a fraction of the memory.
        self._seen: collections.OrderedDict[bytes, float] = collections.OrderedDict()
        self._lock = threading.Lock()
        self._max = max_entries
        self._clock = clock

    def consume(self, digests: Iterable[str], *, ttl: float) -> bool:
        """Record ``digests`` as consumed; False when any of them was consumed before (and not expired)."""
        now = self._clock()
        with self._lock:
            while self._seen and next(iter(self._seen.values())) < now:
                self._seen.popitem(last=False)
            keys = [bytes.fromhex(digest)[:16] for digest in digests]
            if any(self._seen.get(key, 0.0) >= now for key in keys):
                return False
            for key in keys:
                self._seen[key] = now + ttl
                self._seen.move_to_end(key)
            while len(self._seen) > self._max:
                self._seen.popitem(last=False)
            return True

    def __len__(self) -> int:
        return len(self._seen)


class InstallLimit:
    """How many Gist-initiated install attempts may cost a token request, per network and in total.

    Every forged install callback with a plausible state costs one token request signed with the client
    secret; past these limits the callback answers 429 with no token request. Callers are counted by network
    (a /24 for IPv4, a /48 for IPv6: what one attacker usually holds), not by address. When the total is spent,
    a network that has made no attempt within the window still gets one, so a few networks cannot lock every
    genuine install out, up to ``total`` more first attempts a window; the cost stays bounded by twice
    ``total`` a window (:func:`gist_authlib.tokens.admit_install_attempt` is the rule).

    The attempts are counted by ``counter``: in process memory by default, so each app instance has a limit of
    its own; ``register`` counts them in its token store instead when that store is shared (SQLite, SQLAlchemy),
    which makes one limit for every instance using the database.

    Args:
        per_client: attempts per network within ``window`` seconds.
        total: attempts from all networks within ``window`` seconds, before only first attempts pass.
        window: the sliding window, in seconds.
        trusted_proxies: the networks of reverse proxies in front of the app (``["10.0.0.0/8"]``, or one string
            of them separated by commas or spaces, as an environment variable holds them). A request from one of
            them is counted by the right-most address of its ``X-Forwarded-For`` that is not itself a trusted
            proxy; from anywhere else, by the socket's address (the header is ignored, as anyone can send it).
            ``"unix:"`` trusts a request with no peer address: the app served on a Unix socket behind its proxy
            (``uvicorn --uds``, ``gunicorn --bind unix:``). Empty by default.
        max_networks: how many networks the default counter remembers at once (older ones are forgotten first).
        counter: where the attempts are counted (an :class:`~gist_authlib.tokens.InstallCounter`: a
            :class:`~gist_authlib.tokens.MemoryInstallCounter` by default, or a shared token store).
        name: what the attempts are counted under in ``counter`` (the registration's name), so that two
            registrations sharing one store have a limit each.
    """

    def __init__(
        self,
        per_client: int = 10,
        total: int = 100,
        window: float = 60.0,
        *,
        trusted_proxies: str | Iterable[str] = (),
        max_networks: int = 100_000,
        clock: Callable[[], float] = time.time,
        counter: InstallCounter | None = None,
        name: str = "",
    ) -> None:
        self.per_client, self.total, self.window = per_client, total, window
        proxies = trusted_proxies.replace(",", " ").split() if isinstance(trusted_proxies, str) else trusted_proxies
        proxies = [net.strip() for net in proxies if net.strip()]
        #: ``unix:`` among the trusted proxies: the app is served on a Unix socket behind its proxy, so a request
        #: with no peer address came through that proxy.
        self.trusts_unix_socket = _UNIX in proxies
        try:
            self.trusted_proxies = tuple(ipaddress.ip_network(net, strict=False) for net in proxies if net != _UNIX)
        except ValueError as exc:
            raise ConfigurationError(f"A trusted proxy is not a network or an address: {exc}.") from None
        self._counter_given = counter is not None
        if counter is None:
            from .tokens import MemoryInstallCounter  # here: import gist_authlib need not load the token stores

            counter = MemoryInstallCounter(max_networks=max_networks)
        self.counter: InstallCounter = counter
        self.name = name
        self._max_networks = max_networks
        self._clock = clock

    def counting_in(self, counter: InstallCounter, name: str) -> InstallLimit:
        """The same limit, counting in ``counter`` (a shared token store) under ``name``."""
        return InstallLimit(
            self.per_client,
            self.total,
            self.window,
            trusted_proxies=[str(net) for net in self.trusted_proxies] + ([_UNIX] if self.trusts_unix_socket else []),
            max_networks=self._max_networks,
            clock=self._clock,
            counter=counter,
            name=name,
        )

    def for_registration(self, name: str, store: Any) -> InstallLimit:
        """The limit registration ``name`` uses: this one; or, when this one counts in its default memory counter
        and the registration's token store is shared (SQLite, SQLAlchemy), the same limit counting in the store,
        which every instance using its database shares."""
        if self._counter_given or not getattr(store, "shared", False) or not hasattr(store, "count_install_attempt"):
            return self
        return self.counting_in(store, name)

    def client_address(self, peer: str | None, forwarded_for: str | None = None) -> str | None:
        """The address a request is counted by: ``peer``, or, when ``peer`` is a trusted proxy, the right-most
        untrusted address of ``forwarded_for``."""
        if not forwarded_for or not self._trusted(peer):
            return peer
        for hop in reversed([_host_only(part) for part in forwarded_for.split(",")]):
            if hop and not self._trusted(hop):
                return hop
        return peer

    def _trusted(self, address: str | None) -> bool:
        if not address:  # no peer address: a Unix socket, trusted only when "unix:" was named
            return self.trusts_unix_socket
        ip = _ip(address)
        return ip is not None and any(ip in net for net in self.trusted_proxies)

    @staticmethod
    def network_of(address: str | None) -> str:
        """The bucket an address is counted in: its /24 (IPv4) or /48 (IPv6: a site, as one home line or small
        server may hold the 256 /64s of a /56); the address itself otherwise."""
        ip = _ip(address)
        if ip is None:
            return address or "?"
        prefix = 24 if ip.version == 4 else 48
        return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))

    def allow(self, client: str | None) -> bool:
        """Count one attempt from ``client``'s network; False (and nothing counted) when a limit is reached.

        With a token store as the counter this is one short database transaction (blocking I/O).

        Raises:
            TokenStoreError: the store's database failed.
        """
        return self.counter.count_install_attempt(
            self.network_of(client),
            registration=self.name,
            now=self._clock(),
            window=self.window,
            per_client=self.per_client,
            total=self.total,
        )

    @property
    def shared(self) -> bool:
        """Whether the counts are shared by every process using the counter (a shared token store)."""
        return bool(getattr(self.counter, "shared", False))

    def __repr__(self) -> str:
        where = f", counter={self.counter!r}" if self.shared else ""
        return f"InstallLimit(per_client={self.per_client}, total={self.total}, window={self.window}{where})"


def _host_only(hop: str) -> str:
    """An ``X-Forwarded-For`` hop without its port (``9.9.9.9:1234``, ``[2001:db8::1]:443``)."""
    hop = hop.strip()
    if hop.startswith("["):
        return hop[1:].partition("]")[0]
    if hop.count(":") == 1:
        return hop.partition(":")[0]
    return hop


def _ip(address: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address, an IPv4-mapped IPv6 one as its IPv4 address; None when it is none."""
    try:
        ip = ipaddress.ip_address((address or "").strip().strip("[]").partition("%")[0])
    except ValueError:
        return None
    if ip.version == 6 and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


# -- the drivers and the shared effects ------------------------------------------------------------------------


def run(effects: LoginEffects, steps: Steps[LoginResult]) -> LoginResult:
    """Drive the login sequence in a plain thread (Flask, Django, the command line)."""

    def perform(effect: Any) -> Any:
        if isinstance(effect, FetchToken):
            return effects.gist_exchange(effect.params)
        if isinstance(effect, ReadWorkspace):
            return effects.gist_workspace(effect.token)
        raise TypeError(f"The login sequence yielded an unknown effect {type(effect).__name__}.")

    return drive(steps, perform)


async def run_async(effects: AsyncLoginEffects, steps: Steps[LoginResult]) -> LoginResult:
    """Drive the login sequence in an event loop (Starlette, FastAPI)."""

    async def perform(effect: Any) -> Any:
        if isinstance(effect, FetchToken):
            return await effects.gist_exchange(effect.params)
        if isinstance(effect, ReadWorkspace):
            return await effects.gist_workspace(effect.token)
        raise TypeError(f"The login sequence yielded an unknown effect {type(effect).__name__}.")

    return await drive_async(steps, perform)


def request_token(
    reg: Registration,
    params: Mapping[str, str],
    *,
    timeout: float = 10.0,
    transport: httpx2.BaseTransport | None = None,
) -> dict[str, Any]:
    """Exchange a code at the registration's token endpoint, outside any Authlib app (the command line).

    The request is Authlib's (its httpx2 ``OAuth2Client``: client credentials in the body, as Gist expects;
    no redirect followed) and its answer is checked by the same hook as the registered apps' token requests.

    Raises:
        TokenExchangeError: every failure, typed (the message never quotes the request).
    """
    from authlib.integrations.httpx_client import OAuth2Client

    client_id, client_secret = reg.credentials()
    options: dict[str, Any] = {"timeout": timeout, "follow_redirects": False, "trust_env": False}
    if transport is not None:
        options["transport"] = transport
    try:
        with OAuth2Client(
            client_id,
            client_secret,
            token_endpoint_auth_method=reg.provider.token_endpoint_auth_method,
            headers={"User-Agent": USER_AGENT},
            **options,
        ) as http:
            http.register_compliance_hook("access_token_response", check_token_http_response)
            token = http.fetch_token(reg.token_url, **params)
    except Exception as exc:  # every failure of the exchange becomes a typed error
        raise translate_token_error(exc) from None
    return check_token_response(token)


def read_workspace(
    reg: Registration, token: Mapping[str, Any], *, transport: httpx2.BaseTransport | None = None
) -> tuple[str | None, str | None]:
    """(workspace id, name) of a fresh token via Gist's ``GET /token``; (None, None) when Gist will not say."""
    try:
        with GistClient(token, base_url=reg.api_base_url, retry=_LOOKUP_RETRY, transport=transport) as client:
            info = client.token_info()
    except (GistAuthError, ValueError):
        return None, None
    return _workspace(info)


async def read_workspace_async(
    reg: Registration, token: Mapping[str, Any], *, transport: httpx2.AsyncBaseTransport | None = None
) -> tuple[str | None, str | None]:
    """The async form of :func:`read_workspace`."""
    try:
        async with AsyncGistClient(
            token, base_url=reg.api_base_url, retry=_LOOKUP_RETRY, transport=transport
        ) as client:
            info = await client.token_info()
    except (GistAuthError, ValueError):
        return None, None
    return _workspace(info)


def _workspace(info: Any) -> tuple[str | None, str | None]:
    workspace_id = info.workspace_id
    return (str(workspace_id) if workspace_id is not None else None), info.workspace_name


def userinfo_of(workspace_id: str, workspace_name: str | None) -> UserInfo:
    """What a Gist login identifies, as the OpenID claims Authlib's providers put in ``token["userinfo"]``:
    ``sub`` (the workspace id: stable, and unique per workspace) and ``name`` (its name), plus Gist's own
    ``workspace_id`` and ``workspace_name``. A Gist login identifies the workspace that granted access, not the
    teammate who clicked Approve (Gist's API has no endpoint for that person)."""
    from authlib.oidc.core import UserInfo  # here: the OpenID package takes a tenth of a second to import

    claims = {"sub": str(workspace_id), "workspace_id": str(workspace_id)}
    if workspace_name is not None:
        claims.update(name=workspace_name, workspace_name=workspace_name)
    return UserInfo(claims)


# -- around a login --------------------------------------------------------------------------------------------


def login_subject(reg: Registration, session: Mapping[str, Any]) -> str | None:
    """The subject the session's user logged in as, or ``None``."""
    value = session.get(reg.flow.subject_key)
    return value if isinstance(value, str) else None


def forget_login(reg: Registration, session: MutableMapping[str, Any], *, forget_token: bool = False) -> str | None:
    """Log the session's user out: drop the subject and, if asked, the stored token. Returns the subject."""
    subject = session.pop(reg.flow.subject_key, None)
    if forget_token and reg.store is not None and isinstance(subject, str):
        reg.store.delete(subject)
    return subject if isinstance(subject, str) else None

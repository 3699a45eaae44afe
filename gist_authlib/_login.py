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
from typing import Any, Protocol, TypeAlias, TypedDict
from urllib.parse import urlencode, urlsplit

import httpx2

from ._effects import Blocking, Steps, UserCode, drive, drive_async
from ._flow import (
    CallbackGrant,
    InstallGrant,
    LoginFlow,
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
)
from .provider import GistProvider

__all__ = [
    "AsyncLoginEffects",
    "CallbackOptions",
    "FetchToken",
    "InstallLimit",
    "LoginEffects",
    "LoginResult",
    "MemoryReplayGuard",
    "ReadWorkspace",
    "Registration",
    "ReplayGuard",
    "SubjectSource",
    "authorization",
    "callback_steps",
    "forget_login",
    "login_subject",
    "read_workspace",
    "read_workspace_async",
    "remember",
    "request_token",
    "run",
    "run_async",
]

log = logging.getLogger("gist_authlib.login")

#: What names the subject a fresh login's token is stored under: a fixed id, a function of the token (plain
#: or async) returning one, or ``None`` (then the Gist workspace, else a random opaque id).
SubjectSource: TypeAlias = str | Callable[[dict[str, Any]], str | Awaitable[str | None] | None] | None

# Keys of the dict ``create_authorization_url`` returns that only ``save_authorize_data`` reads. Authlib's own
# ``authorize_redirect`` passes ``redirect_uri=`` beside that dict, so the effective one travels under our name.
_REDIRECT_KEY = "gist_redirect_uri"
_NEXT_KEY = "gist_next"
# OpenID Connect arguments Authlib's authorize_access_token accepts; Gist issues no ID token.
_OPENID_ONLY = ("claims_options", "claims_cls", "leeway")
# The workspace lookup after a login: one retry, within five seconds.
_LOOKUP_RETRY = RetryPolicy(max_attempts=2, deadline=5.0)


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


def authorization(reg: Registration, redirect_uri: str | None, params: Mapping[str, Any]) -> dict[str, Any]:
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


# -- finishing a login: the sequence ------------------------------------------------------------------------


class CallbackOptions(TypedDict, total=False):
    """The keyword options of :func:`callback_steps`, as the apps' ``gist_finish`` passes them on."""

    redirect_uri: str | None
    installs: bool
    subject: SubjectSource
    token_params: Mapping[str, Any] | None
    client: str | None
    forwarded_for: str | None


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

    Raises:
        GistAuthError: every failure, as its typed subclass (each is an Authlib ``OAuthError`` too).
    """
    _, client_secret = reg.credentials()
    install_uri = reg.effective_redirect_uri(redirect_uri) if installs and redirect_uri else redirect_uri
    grant = reg.flow.finish(
        session,
        query,
        client_secret=reg.pkce_key or client_secret,
        redirect_uri=install_uri,
        issuer=reg.issuer,
        installs=installs,
        install_state_pattern=reg.provider.install_state_pattern,
    )
    if isinstance(grant, InstallGrant):
        limit = reg.install_limit
        if limit is not None and not limit.allow(limit.client_address(client, forwarded_for)):
            raise InstallError.rate_limited()
        yield from _single_use(reg, [("code", grant.code)])
        return (yield from _install_steps(reg, grant))
    # The session said the state was pending; a copy of an older cookie, or a second callback racing the first,
    # would say so too. What was consumed is also recorded server-side, so neither sends a token request.
    yield from _single_use(reg, [("state", grant.state), ("code", grant.code)])

    params = {key: str(value) for key, value in (token_params or {}).items() if key not in _OPENID_ONLY}
    token = yield from _exchange(grant, params)
    store = reg.store
    workspace_id, workspace_name = (yield ReadWorkspace(token)) if store is not None else (None, None)
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


def _single_use(reg: Registration, values: list[tuple[str, str]]) -> Steps[None]:
    """Record one-time values (state, code) as consumed; a value consumed before means a replayed callback."""
    guard = reg.replay_guard
    salt = f"{reg.name}\0{reg.client_id}"
    digests = [hashlib.sha256(f"{salt}\0{kind}\0{value}".encode()).hexdigest() for kind, value in values]
    consume = functools.partial(guard.consume, digests, ttl=reg.flow.state_ttl)
    # A token store's database is blocking I/O (a worker thread in async apps); process memory is not.
    fresh = consume() if isinstance(guard, MemoryReplayGuard) else (yield Blocking(consume))
    if not fresh:
        raise StateError.replayed()


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
    (a /24 for IPv4, a /64 for IPv6: what one attacker usually holds), not by address. When the total is spent,
    a network that has made no attempt within the window still gets one, so a few networks cannot lock every
    genuine install out, up to ``total`` more first attempts a window; the cost stays bounded by twice
    ``total`` a window.

    Args:
        per_client: attempts per network within ``window`` seconds.
        total: attempts from all networks within ``window`` seconds, before only first attempts pass.
        window: the sliding window, in seconds.
        trusted_proxies: the networks of reverse proxies in front of the app (``["10.0.0.0/8"]``). A request
            from one of them is counted by the right-most address of its ``X-Forwarded-For`` that is not itself
            a trusted proxy; from anywhere else, by the socket's address (the header is ignored, as anyone can
            send it). Empty by default.
        max_networks: how many networks are remembered at once (older ones are forgotten first).
    """

    def __init__(
        self,
        per_client: int = 10,
        total: int = 100,
        window: float = 60.0,
        *,
        trusted_proxies: Iterable[str] = (),
        max_networks: int = 100_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.per_client, self.total, self.window = per_client, total, window
        self.trusted_proxies = tuple(ipaddress.ip_network(net, strict=False) for net in trusted_proxies)
        self._max_networks = max_networks
        self._clock = clock
        self._lock = threading.Lock()
        self._all: collections.deque[float] = collections.deque()
        self._grace: collections.deque[float] = collections.deque()  # first attempts let through past the total
        self._by_network: collections.OrderedDict[str, collections.deque[float]] = collections.OrderedDict()

    def client_address(self, peer: str | None, forwarded_for: str | None = None) -> str | None:
        """The address a request is counted by: ``peer``, or, when ``peer`` is a trusted proxy, the right-most
        untrusted address of ``forwarded_for``."""
        if not forwarded_for or not self.trusted_proxies or not self._trusted(peer):
            return peer
        for hop in reversed([_host_only(part) for part in forwarded_for.split(",")]):
            if hop and not self._trusted(hop):
                return hop
        return peer

    def _trusted(self, address: str | None) -> bool:
        ip = _ip(address)
        return ip is not None and any(ip in net for net in self.trusted_proxies)

    @staticmethod
    def network_of(address: str | None) -> str:
        """The bucket an address is counted in: its /24 (IPv4) or /64 (IPv6); the address itself otherwise."""
        ip = _ip(address)
        if ip is None:
            return address or "?"
        prefix = 24 if ip.version == 4 else 64
        return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))

    def allow(self, client: str | None) -> bool:
        """Count one attempt from ``client``'s network; False (and nothing counted) when a limit is reached."""
        now = self._clock()
        start = now - self.window
        key = self.network_of(client)
        with self._lock:
            for times in (self._all, self._grace):
                while times and times[0] <= start:
                    times.popleft()
            mine = self._by_network.get(key)
            if mine is None:
                mine = self._by_network[key] = collections.deque()
            self._by_network.move_to_end(key)
            while mine and mine[0] <= start:
                mine.popleft()
            if len(mine) >= self.per_client:
                return False
            if len(self._all) >= self.total:
                # Past the total, only a network's first attempt passes, and only so many of those.
                if mine or len(self._grace) >= self.total:
                    return False
                self._grace.append(now)
            else:
                self._all.append(now)
            mine.append(now)
            # Bounded: networks idle for a whole window go, and at most max_networks are kept.
            while self._by_network:
                oldest_key, oldest = next(iter(self._by_network.items()))
                if len(self._by_network) <= self._max_networks and oldest and oldest[-1] > start:
                    break
                del self._by_network[oldest_key]
            return True

    def __repr__(self) -> str:
        return f"InstallLimit(per_client={self.per_client}, total={self.total}, window={self.window})"


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

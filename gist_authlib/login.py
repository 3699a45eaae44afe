"""The one Gist login sequence: check the callback, exchange the code, look up the workspace, store, answer.

It is written once, without I/O of its own. :func:`callback_steps` is a generator that yields what it needs
done (:class:`FetchToken`, :class:`ReadWorkspace`, :class:`CallApp`, :class:`Blocking`) and is sent the
results; :func:`run` drives it for the sync Authlib apps (Flask, Django) and :func:`run_async` for the async
one (Starlette), as httpx's ``Auth.auth_flow`` is driven by its sync and async clients. A failure of a step
is thrown back into the generator, which turns it into the package's typed error.

Every call path goes through here: the registered app's own Authlib methods (``authorize_redirect``,
``authorize_access_token``, ``create_authorization_url``, ``save_authorize_data``) and, through them, the
routes of :mod:`gist_authlib.starlette`, :mod:`gist_authlib.flask` and :mod:`gist_authlib.django`.
"""

from __future__ import annotations

import collections
import functools
import hashlib
import inspect
import logging
import secrets
import threading
import time
from collections.abc import Awaitable, Callable, Generator, Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias
from urllib.parse import urlencode, urlsplit

from .client import AsyncGistClient, GistClient, RetryPolicy
from .errors import (
    ConfigurationError,
    GistAuthError,
    InstallError,
    InstallLinkError,
    InstallRateLimitedError,
    ReplayedCallbackError,
    TokenEndpointError,
)
from .flow import (
    CallbackGrant,
    InstallGrant,
    LoginFlow,
    check_token_response,
    check_transport,
    translate_token_error,
)

__all__ = [
    "Blocking",
    "CallApp",
    "FetchToken",
    "InstallLimit",
    "LoginResult",
    "MemoryReplayGuard",
    "ReadWorkspace",
    "SubjectSource",
    "authorization",
    "callback_steps",
    "expected_issuer",
    "forget_login",
    "install_ack_url",
    "login_subject",
    "remember",
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


# -- the effects the sequence asks its driver for ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FetchToken:
    """Send the token request with these parameters (the app's ``fetch_access_token``); result: the token."""

    params: dict[str, str] = field(repr=False)


@dataclass(frozen=True, slots=True)
class ReadWorkspace:
    """Ask Gist which workspace ``token`` belongs to; result: ``(workspace_id, workspace_name)``."""

    token: dict[str, Any] = field(repr=False)


@dataclass(frozen=True, slots=True)
class CallApp:
    """Call the app's own code (plain or async); result: what it returned."""

    call: Callable[[], Any]


@dataclass(frozen=True, slots=True)
class Blocking:
    """Run blocking work (a token store write); an async driver runs it in a worker thread."""

    call: Callable[[], Any]


Effect: TypeAlias = FetchToken | ReadWorkspace | CallApp | Blocking
Steps: TypeAlias = Generator[Effect, Any, "LoginResult"]


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


def authorization(app: Any, redirect_uri: str | None, params: dict[str, Any]) -> dict[str, Any]:
    """What the registered ``app``'s ``create_authorization_url`` returns: the URL, the state, and what
    ``save_authorize_data`` must record with it.

    ``params`` are Authlib's extra authorization parameters; gist_authlib reads ``next`` (a same-origin path
    to return to) and ``scope`` (checked against the catalogue) out of them and refuses ``state`` (it issues
    its own).

    Raises:
        MissingCredentialsError: the client id or secret is not configured.
        UnknownScopeError: a scope is not in the provider's catalogue.
        InsecureTransportError: the redirect URI is ``http://`` off loopback.
        ConfigurationError: no redirect URI is known, or a ``state`` was passed in.
    """
    client_id, client_secret = app.gist_credentials()
    extra = {**(app.authorize_params or {}), **params}
    next_path = extra.pop("next", None)
    if "state" in extra:
        raise ConfigurationError(
            "gist_authlib issues and checks the login state itself; do not pass state= to the Gist app."
        )
    for name in (*_OPENID_ONLY, "code_verifier", "nonce"):
        extra.pop(name, None)
    scope = extra.pop("scope", None)
    scopes = app.gist_provider.validate_scopes(scope) if scope else app.gist_scopes
    uri = effective_redirect_uri(app, redirect_uri)
    flow: LoginFlow = app.gist_flow
    request = flow.issue(
        authorize_url=app.authorize_url,
        client_id=client_id,
        client_secret=client_secret,
        redirect_uri=uri,
        scopes=scopes,
        extra_params={key: str(value) for key, value in extra.items() if value is not None},
    )
    data: dict[str, Any] = {"url": request.url, "state": request.state, _REDIRECT_KEY: uri, _NEXT_KEY: next_path}
    if request.code_verifier:
        data["code_verifier"] = request.code_verifier  # as Authlib returns it; it is derived again at the callback
    return data


def remember(app: Any, session: MutableMapping[str, Any], data: Mapping[str, Any]) -> None:
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
    flow: LoginFlow = app.gist_flow
    flow.remember(session, state, redirect_uri=str(uri), next_path=data.get(_NEXT_KEY))


def effective_redirect_uri(app: Any, given: str | None) -> str:
    """The redirect URI of a login: the configured one when set (never the Host header), else ``given``.

    Raises:
        ConfigurationError: neither is set.
        InsecureTransportError: it is ``http://`` off loopback.
    """
    uri = getattr(app, "gist_redirect_uri", None) or (str(given) if given else None)
    uri = uri or (app.client_kwargs or {}).get("redirect_uri")
    if not uri:
        raise ConfigurationError(
            "No redirect URI: pass redirect_uri to authorize_redirect, or set it once for the registration "
            "(register(..., redirect_uri=...), or the framework setting named in the README)."
        )
    check_transport(str(uri), "redirect URI", allow_insecure_http=bool(getattr(app, "gist_allow_insecure_http", 0)))
    return str(uri)


# -- finishing a login: the sequence ------------------------------------------------------------------------


def callback_steps(
    app: Any,
    session: MutableMapping[str, Any],
    query: Iterable[tuple[str, str]],
    *,
    redirect_uri: str | None = None,
    installs: bool = False,
    subject: SubjectSource = None,
    token_params: Mapping[str, Any] | None = None,
    client: str | None = None,
) -> Steps:
    """The callback of a login, as a generator of effects (drive it with :func:`run` or :func:`run_async`).

    Check the callback against the session (state, issuer, error, code), exchange the code, look up the
    workspace when it is needed, store the token under its subject, and return a :class:`LoginResult`. The
    token is stored before the result reaches the app, so an app never acts on a login that was not kept.

    Args:
        redirect_uri: this callback's own URL: the redirect URI of an install (a login is exchanged with the
            redirect URI it was started with).
        installs: accept a callback with a code and a state this browser was never issued as a
            Gist-initiated install.
        subject: names the stored token's subject (see :data:`SubjectSource`).
        token_params: extra parameters for the token request (they never replace the code, the redirect
            URI or the PKCE verifier).
        client: the browser's network address, for the install rate limit.

    Raises:
        GistAuthError: every failure, as its typed subclass (each is an Authlib ``OAuthError`` too).
    """
    _, client_secret = app.gist_credentials()
    flow: LoginFlow = app.gist_flow
    install_uri = effective_redirect_uri(app, redirect_uri) if installs and redirect_uri else redirect_uri
    grant = flow.finish(
        session,
        query,
        client_secret=client_secret,
        redirect_uri=install_uri,
        issuer=expected_issuer(app),
        installs=installs,
        install_state_pattern=app.gist_provider.install_state_pattern,
    )
    store = getattr(app, "gist_token_store", None)
    if isinstance(grant, InstallGrant):
        limit: InstallLimit | None = getattr(app, "gist_install_limit", None)
        if limit is not None and not limit.allow(client):
            raise InstallRateLimitedError()
        yield from _single_use(app, [("code", grant.code)])
        return (yield from _install_steps(app, grant, store))
    # The session said the state was pending; a copy of an older cookie, or a second callback racing the first,
    # would say so too. What was consumed is also recorded server-side, so neither sends a token request.
    yield from _single_use(app, [("state", grant.state), ("code", grant.code)])

    params = {key: str(value) for key, value in (token_params or {}).items() if key not in _OPENID_ONLY}
    token = yield from _exchange(grant, params)
    workspace_id, workspace_name = (yield ReadWorkspace(token)) if store is not None else (None, None)
    named: Any = subject
    if callable(subject):
        named = yield CallApp(functools.partial(subject, dict(token)))
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
                store.save,
                key,
                token,
                scopes=app.gist_scopes,
                workspace_id=workspace_id,
                workspace_name=workspace_name,
            )
        )
        session[flow.subject_key] = key
    log.info("Gist login %r completed", app.name)
    return LoginResult(
        token=token,
        next_path=grant.next_path or "/",
        subject=key,
        workspace_id=workspace_id,
        workspace_name=workspace_name,
    )


def _exchange(grant: CallbackGrant | InstallGrant, extra: Mapping[str, str]) -> Generator[Effect, Any, dict[str, Any]]:
    params = {**extra, **grant.token_params()}
    try:
        token = yield FetchToken(params)
    except Exception as exc:  # every failure of the exchange becomes a typed error, with no request text in it
        raise translate_token_error(exc) from None
    return check_token_response(token)


def _single_use(app: Any, values: list[tuple[str, str]]) -> Generator[Effect, Any, None]:
    """Record one-time values (state, code) as consumed; a value consumed before means a replayed callback."""
    guard = app.gist_replay_guard
    salt = f"{app.name}\0{app.client_id}"
    digests = [hashlib.sha256(f"{salt}\0{kind}\0{value}".encode()).hexdigest() for kind, value in values]
    consume = functools.partial(guard.consume, digests, ttl=app.gist_flow.state_ttl)
    # A token store's database is blocking I/O (a worker thread in async apps); process memory is not.
    fresh = consume() if isinstance(guard, MemoryReplayGuard) else (yield Blocking(consume))
    if not fresh:
        raise ReplayedCallbackError()


def _install_steps(app: Any, grant: InstallGrant, store: Any) -> Steps:
    try:
        token = yield from _exchange(grant, {})
    except TokenEndpointError as refused:
        if refused.http_status < 500:  # Gist refused the code: a stale or forged link, not Gist failing
            raise InstallLinkError() from None
        raise
    workspace_id, workspace_name = yield ReadWorkspace(token)
    if workspace_id is None:
        raise InstallError(
            "Gist did not say which workspace installed the app (its token information could not be read), "
            "so the installation was not recorded. Try installing again."
        )
    # The workspace comes from Gist's answer about the token itself; the state (anyone can forge it) must agree.
    if str(workspace_id) != grant.workspace_hint:
        raise InstallError("The installation callback names another workspace than its token; nothing was stored.")
    key = f"workspace:{workspace_id}"
    if store is not None:
        yield Blocking(
            functools.partial(
                store.save, key, token, scopes=app.gist_scopes, workspace_id=workspace_id, workspace_name=workspace_name
            )
        )
    query = urlencode({"client_id": app.client_id, "workspace_id": workspace_id})
    ack = install_ack_url(app)
    log.info("Gist install %r completed", app.name)
    return LoginResult(
        token=token,
        subject=key if store is not None else None,
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
    """How many Gist-initiated install attempts may cost a token request, per browser address and in total.

    Every forged install callback with a plausible state costs one token request signed with the client
    secret; past these limits the callback answers 429 with no token request.

    Args:
        per_client: attempts per client address within ``window`` seconds.
        total: attempts from all addresses within ``window`` seconds.
        window: the sliding window, in seconds.
    """

    def __init__(
        self, per_client: int = 10, total: int = 100, window: float = 60.0, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.per_client, self.total, self.window = per_client, total, window
        self._clock = clock
        self._lock = threading.Lock()
        self._all: collections.deque[float] = collections.deque()
        self._by_client: dict[str, collections.deque[float]] = {}

    def allow(self, client: str | None) -> bool:
        """Count one attempt from ``client``; False (and nothing counted) when a limit is reached."""
        now = self._clock()
        start = now - self.window
        with self._lock:
            while self._all and self._all[0] <= start:
                self._all.popleft()
            for key in [k for k, times in self._by_client.items() if not times or times[-1] <= start]:
                del self._by_client[key]  # bounded: only addresses seen within the window are kept
            mine = self._by_client.setdefault(client or "?", collections.deque())
            while mine and mine[0] <= start:
                mine.popleft()
            if len(self._all) >= self.total or len(mine) >= self.per_client:
                return False
            self._all.append(now)
            mine.append(now)
            return True

    def __repr__(self) -> str:
        return f"InstallLimit(per_client={self.per_client}, total={self.total}, window={self.window})"


# -- the drivers ---------------------------------------------------------------------------------------------


def _advance(steps: Steps, sent: Any, failure: BaseException | None) -> Effect | LoginResult:
    """Send the last effect's result (or throw its failure) into the sequence: the next effect, or the result."""
    try:
        return steps.throw(failure) if failure is not None else steps.send(sent)
    except StopIteration as done:
        result: LoginResult = done.value
        return result


def run(app: Any, steps: Steps) -> LoginResult:
    """Drive the login sequence for a sync Authlib app (Flask, Django)."""
    sent: Any = None
    failure: BaseException | None = None
    while not isinstance(effect := _advance(steps, sent, failure), LoginResult):
        sent, failure = None, None
        try:
            if isinstance(effect, FetchToken):
                sent = app.fetch_access_token(**effect.params)
            elif isinstance(effect, ReadWorkspace):
                sent = read_workspace(app, effect.token)
            else:
                sent = effect.call()
                if inspect.isawaitable(sent):
                    _close(sent)
                    raise ConfigurationError("This app is synchronous: its login callbacks cannot be async.")
        except Exception as exc:  # thrown back into the sequence, which decides what it means
            failure = exc
    return effect


async def run_async(app: Any, steps: Steps) -> LoginResult:
    """Drive the login sequence for an async Authlib app (Starlette, FastAPI)."""
    import anyio.to_thread

    sent: Any = None
    failure: BaseException | None = None
    while not isinstance(effect := _advance(steps, sent, failure), LoginResult):
        sent, failure = None, None
        try:
            if isinstance(effect, FetchToken):
                sent = await app.fetch_access_token(**effect.params)
            elif isinstance(effect, ReadWorkspace):
                sent = await read_workspace_async(app, effect.token)
            elif isinstance(effect, Blocking):
                sent = await anyio.to_thread.run_sync(effect.call)
            else:
                sent = effect.call()
                if inspect.isawaitable(sent):
                    sent = await sent
        except Exception as exc:  # thrown back into the sequence, which decides what it means
            failure = exc
    return effect


def _close(awaitable: Any) -> None:
    close = getattr(awaitable, "close", None)
    if close is not None:
        close()


# -- the workspace of a token ----------------------------------------------------------------------------------

_LOOKUP_RETRY = RetryPolicy(max_attempts=2, deadline=5.0)


def read_workspace(app: Any, token: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(workspace id, name) of a fresh token via Gist's ``GET /token``; (None, None) when Gist will not say."""
    try:
        with GistClient.from_authlib(app, token, retry=_LOOKUP_RETRY, transport=app.gist_transport()) as client:
            info = client.token_info()
    except (GistAuthError, ValueError):
        return None, None
    return _workspace(info)


async def read_workspace_async(app: Any, token: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """The async form of :func:`read_workspace`."""
    try:
        transport = app.gist_transport()
        async with AsyncGistClient.from_authlib(app, token, retry=_LOOKUP_RETRY, transport=transport) as client:
            info = await client.token_info()
    except (GistAuthError, ValueError):
        return None, None
    return _workspace(info)


def _workspace(info: Any) -> tuple[str | None, str | None]:
    workspace_id = info.workspace_id
    return (str(workspace_id) if workspace_id is not None else None), info.workspace_name


# -- around a login --------------------------------------------------------------------------------------------


def expected_issuer(app: Any) -> str:
    """The issuer a callback of ``app`` may name: the provider's, else the authorization endpoint's origin."""
    provider = app.gist_provider
    if provider.issuer and app.authorize_url == provider.authorize_url:
        return str(provider.issuer)
    parts = urlsplit(app.authorize_url)
    return f"{parts.scheme}://{parts.netloc}"


def install_ack_url(app: Any) -> str:
    """Where an install is acknowledged: the provider's URL, or, when the app's authorize endpoint was
    configured elsewhere (the sandbox, a staging host), the same path on that endpoint's origin."""
    provider = app.gist_provider
    if app.authorize_url == provider.authorize_url:
        return str(provider.install_ack_url)
    parts = urlsplit(app.authorize_url)
    return f"{parts.scheme}://{parts.netloc}{urlsplit(provider.install_ack_url).path}"


def login_subject(app: Any, session: Mapping[str, Any]) -> str | None:
    """The subject the session's user logged in as, or ``None``."""
    flow: LoginFlow = app.gist_flow
    value = session.get(flow.subject_key)
    return value if isinstance(value, str) else None


def forget_login(app: Any, session: MutableMapping[str, Any], *, forget_token: bool = False) -> str | None:
    """Log the session's user out of ``app``: drop the subject and, if asked, the stored token. Returns the subject."""
    flow: LoginFlow = app.gist_flow
    subject = session.pop(flow.subject_key, None)
    store = getattr(app, "gist_token_store", None)
    if forget_token and store is not None and isinstance(subject, str):
        store.delete(subject)
    return subject if isinstance(subject, str) else None

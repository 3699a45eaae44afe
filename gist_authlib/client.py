"""GistClient and AsyncGistClient: Gist's REST API over one pooled httpx2 client, retries, typed errors.

Every rule is written once. A call runs as a *flow*: a generator that yields what it needs done (an httpx2
request to send, a pause, a token-store call, a user hook) and is sent the answer, as httpx's
``Auth.auth_flow`` is. :class:`_Core` holds the per-token rules (which answers are retried and for how
long, what each error means, when a token is refreshed), the endpoints are written once in
:mod:`gist_authlib.api`, and the two clients only differ in their drivers, which perform the steps by
blocking or by awaiting (``_drive`` and ``_walk``), and in how they close.
"""

from __future__ import annotations

import contextlib
import copy
import random
import secrets
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Protocol, Self, TypeAlias, TypedDict, TypeVar, TypeVarTuple, Unpack, cast
from urllib.parse import urljoin, urlsplit

import httpx2

from ._effects import Blocking, Pause, UserCode, drive, drive_async
from ._flow import check_token_response
from ._limits import AnswerTooLarge, Deadline, aread_bounded, read_bounded, read_json
from ._types import JSON
from ._version import USER_AGENT
from .api import Page, TokenInfo
from .api._endpoint import AsyncSide, Call, Pages, QueryValue, SyncSide, endpoint
from .api._models import ShapeError
from .api._resources import AsyncResources, SyncResources
from .errors import (
    GistAPIError,
    GistConnectionError,
    InsufficientScopeError,
    InvalidTokenResponseError,
    NotFoundError,
    RateLimitedError,
    StaleTokenError,
    TokenEndpointError,
    TokenRevokedError,
    TokenStoreError,
    UnexpectedAnswerError,
)
from .provider import GistProvider

if TYPE_CHECKING:
    import anyio

    from .tokens import AsyncTokenStore, StoredToken, TokenStore

__all__ = ["AsyncGistClient", "ClientOptions", "GistClient", "RefreshSettings", "RetryPolicy"]

T = TypeVar("T")
Ts = TypeVarTuple("Ts")
#: A token as the client holds it: Gist's token answer (``access_token``, and more keys Gist may add).
Token: TypeAlias = dict[str, object]
#: An app's callback given a token (after a 401, or a refresh); plain or ``async``, its result is not used.
TokenHook: TypeAlias = Callable[[Token], object]
IDEMPOTENT_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
RETRY_STATUSES: Final = frozenset({429, 502, 503, 504})
DEFAULT_TIMEOUT: Final = httpx2.Timeout(10.0, connect=5.0)
DEFAULT_LIMITS: Final = httpx2.Limits(max_connections=100, max_keepalive_connections=20)
#: The largest answer body a client reads by default (a page of 60 contacts is tens of KiB).
DEFAULT_MAX_ANSWER_BYTES: Final = 4 * 1024 * 1024
# A timeout cut to what is left of a deadline fires about when the deadline passes, a hair before or after.
_DEADLINE_SLACK: Final = 0.05


@dataclass(frozen=True)
class RetryPolicy:
    """When and how long to retry.

    429, 502, 503 and 504 answers, connection errors and timeouts are retried for idempotent requests only
    (GET, PUT, DELETE, and upserts keyed by email or user_id); a non-idempotent POST is never repeated.
    A ``Retry-After`` header (seconds or an HTTP date) sets the pause; otherwise the pause is a capped
    exponential backoff with full jitter.

    Attributes:
        max_attempts: attempts in all, the first included (1 disables retries).
        backoff_base: the first backoff's upper bound, in seconds.
        backoff_cap: the longest backoff, in seconds.
        deadline: seconds one call may take, every attempt, pause and body read included: each request's
            timeouts are cut to what is left, and a body still arriving past it is dropped
            (``GistConnectionError`` with ``error_code == "deadline_exceeded"``).
        max_retry_after: the longest ``Retry-After`` pause honoured; a longer one ends the retries.
    """

    max_attempts: int = 4
    backoff_base: float = 0.5
    backoff_cap: float = 8.0
    deadline: float = 30.0
    max_retry_after: float = 60.0

    def backoff(self, attempt: int) -> float:
        """The pause before retry number ``attempt`` (1-based) when Gist gave no ``Retry-After``."""
        return random.uniform(0, min(self.backoff_cap, self.backoff_base * 2 ** (attempt - 1)))


@dataclass(frozen=True)
class RefreshSettings:
    """How to refresh a token that carries ``expires_at`` and ``refresh_token``.

    Gist's tokens do not expire today; this is for the day they do. The refresh request carries the client
    credentials in the body, as Gist's token endpoint expects.
    """

    token_url: str
    client_id: str
    client_secret: str
    leeway: float = 60.0

    def __repr__(self) -> str:
        return f"RefreshSettings(token_url={self.token_url!r}, client_id={self.client_id!r})"


# --- the steps a flow yields; the drivers perform them and send back the answer ------------------------
# A failure of a step (a transport error, an answer too large) is thrown into the flow. Each step's answer has
# its own type: the flows read them through _sent, _exclusive and _blocking, which name it.
_Flow: TypeAlias = Generator["_Step", object, T]


@dataclass(frozen=True, slots=True)
class _Send:
    """Send ``request``, its timeouts cut to what is left of ``deadline``, and read its answer's body, capped,
    before the deadline; the answer is (response, body)."""

    request: httpx2.Request
    deadline: Deadline

    def cut(self) -> httpx2.Request:
        """The request, each of its timeouts cut to what is left of the deadline.

        Raises:
            httpx2.ReadTimeout: the deadline has passed.
        """
        left = self.deadline.remaining()
        if left is not None:
            if left <= 0:
                raise httpx2.ReadTimeout("the call ran past its deadline")
            waits = self.request.extensions["timeout"]  # what build_request set: the client's timeouts
            # Most attempts have more time left than any of their timeouts: nothing to cut, nothing to build.
            if any(wait is None or wait > left for wait in waits.values()):
                self.request.extensions["timeout"] = {
                    name: left if wait is None or wait > left else wait for name, wait in waits.items()
                }
        return self.request


@dataclass(frozen=True)
class _Exclusive:
    """Run this flow holding the client's refresh lock; the answer is what the flow returns."""

    flow: _Flow[object]


_Step: TypeAlias = _Send | _Exclusive | Blocking | UserCode | Pause


def _sent(request: httpx2.Request, deadline: Deadline) -> _Flow[tuple[httpx2.Response, bytes]]:
    """The answer to ``request`` and its body (see :class:`_Send`)."""
    answer = yield _Send(request, deadline)
    return cast("tuple[httpx2.Response, bytes]", answer)


def _exclusive(flow: _Flow[T]) -> _Flow[T]:
    """What ``flow`` returns, run holding the client's refresh lock."""
    answer = yield _Exclusive(flow)
    return cast("T", answer)


def _blocking(call: Callable[[*Ts], T], *args: *Ts) -> _Flow[T]:
    """What ``call(*args)`` returns, run where blocking is allowed (see :class:`~gist_authlib._effects.Blocking`)."""
    answer = yield Blocking(call, args)
    return cast("T", answer)


class _StoreBinding:
    """A client's token lives in a token store: refreshes are coordinated across processes through it.

    Whoever takes the store's refresh lease refreshes and writes the new token with a compare-and-set; the
    others wait for that write and adopt the token, so any number of processes make one refresh request.
    """

    def __init__(
        self, store: TokenStore, subject: str, *, leeway: float, lease_ttl: float = 30.0, poll: float = 0.05
    ) -> None:
        self.store = store
        self.subject = subject
        self.leeway = leeway
        self.lease_ttl = lease_ttl
        self.poll = poll
        self.holder = secrets.token_hex(16)  # a lease holder's name; uuid costs an import of platform

    def _step(self, current: Mapping[str, object]) -> tuple[Token | None, StoredToken | None]:
        """One look at the store: (token, None) to adopt a fresher token, (None, record) after winning the lease
        to refresh ``record``, or (None, None) to wait."""
        record = self.store.get(self.subject)
        if record is None:
            raise TokenStoreError(f"No token is stored for {self.subject!r} any more: log in again.")
        stored = record.token
        expires_at = stored.get("expires_at")
        fresh = not isinstance(expires_at, (int, float)) or expires_at - self.leeway > time.time()
        if stored.get("access_token") != current.get("access_token") and fresh:
            return stored, None
        if self.store.acquire_refresh_lease(
            self.subject, version=record.version, holder=self.holder, ttl=self.lease_ttl
        ):
            return None, record
        return None, None

    def _save(self, record: StoredToken, token: Token) -> None:
        with contextlib.suppress(StaleTokenError):  # a newer token is stored already; ours is valid as well
            self.store.compare_and_set(self.subject, token, expected_version=record.version)

    def coordinate(
        self, current: Mapping[str, object], refresh: Callable[[Mapping[str, object]], _Flow[Token]]
    ) -> _Flow[tuple[Token, bool]]:
        """The fresh token, and whether this process refreshed it."""
        deadline = time.monotonic() + self.lease_ttl * 2
        while time.monotonic() < deadline:
            adopt, won = yield from _blocking(self._step, current)
            if adopt is not None:
                return dict(adopt), False
            if won is not None:
                token = yield from refresh(won.token)
                yield from _blocking(self._save, won, token)
                return token, True
            yield Pause(self.poll)
        raise TokenStoreError(f"The token of {self.subject!r} was being refreshed elsewhere for too long.")


class _Core:
    """One token's state and rules: its headers, when and how it is refreshed, what each answer means."""

    def __init__(
        self,
        token: str | Mapping[str, object] | None,
        *,
        base_url: str,
        retry: RetryPolicy,
        refresh: RefreshSettings | None,
        on_token_revoked: TokenHook | None,
        on_token_update: TokenHook | None,
        store: _StoreBinding | None = None,
    ) -> None:
        self.token = _as_token(token) if token is not None else None
        self.store = store
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"base_url must be an absolute http(s) URL, not {base_url!r}.")
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.origin = (parts.scheme, parts.netloc)
        self._urls: dict[str, str] = {}
        self.retry = retry
        self.refresh = refresh
        self.on_token_revoked = on_token_revoked
        self.on_token_update = on_token_update
        # The pool's headers are shared by every client on it; the bearer header goes with each request, so
        # clients for different tokens can share one pool (see with_token).
        self.headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        self.auth = {"Authorization": f"Bearer {self.token['access_token']}"} if self.token is not None else {}

    def url(self, path: str) -> str:
        """The absolute URL of ``path``; an absolute URL (a pagination link) must stay on Gist's origin."""
        cached = self._urls.get(path)
        if cached is not None:
            return cached
        url = urljoin(self.base_url, path.lstrip("/") if not _is_absolute(path) else path)
        parts = urlsplit(url)
        if (parts.scheme, parts.netloc) != self.origin:
            # Never send the bearer token to another host, whatever a response's links say.
            raise ValueError(f"Refusing to send the token to {parts.scheme}://{parts.netloc}: not the API's origin.")
        if len(self._urls) < 256 and not _is_absolute(path):  # resources use a handful of fixed paths
            self._urls[path] = url
        return url

    def needs_refresh(self, now: float) -> bool:
        if self.token is None:
            return False
        expires_at = self.token.get("expires_at")
        return (
            self.refresh is not None
            and isinstance(expires_at, (int, float))
            and bool(self.token.get("refresh_token"))
            and expires_at - self.refresh.leeway <= now
        )

    def refresh_request(self, http: httpx2.Client | httpx2.AsyncClient, token: Mapping[str, object]) -> httpx2.Request:
        """The refresh request for ``token``: client credentials in the body, and no bearer header."""
        assert self.refresh is not None
        form = {
            "grant_type": "refresh_token",
            "refresh_token": str(token["refresh_token"]),
            "client_id": self.refresh.client_id,
            "client_secret": self.refresh.client_secret,
        }
        return http.build_request("POST", self.refresh.token_url, data=form)

    def parse_refresh(self, status: int, content: bytes, now: float, old: Mapping[str, object]) -> Token:
        """Validate a refresh answer; returns the new token (keeping the old refresh token if none came)."""
        if not 200 <= status < 300:
            body = _error_body(content)
            raise TokenEndpointError(status, str(body["error"]) if isinstance(body, dict) and "error" in body else None)
        try:
            body = read_json(content)
        except ValueError:
            raise InvalidTokenResponseError("the refresh answer is not JSON") from None
        token = check_token_response(body)
        if "expires_in" in token and "expires_at" not in token:
            token["expires_at"] = int(now + float(token["expires_in"]))
        token.setdefault("refresh_token", old.get("refresh_token"))
        return token

    def set_token(self, token: Token) -> None:
        self.token = token
        self.auth = {"Authorization": f"Bearer {token['access_token']}"}

    def answer(self, response: httpx2.Response, content: bytes, *, method: str, path: str, scope: str | None) -> JSON:
        """The parsed JSON of a success, or the typed error an answer means (after any retries)."""
        status = response.status_code
        if 200 <= status < 300:
            if not content:
                return None
            try:
                return read_json(content)
            except ValueError:
                raise UnexpectedAnswerError(status, "its body is not JSON", method=method, path=path) from None
        body = _error_body(content)
        if status in RETRY_STATUSES:
            retry_after = _retry_after(response)
            if status == 429 or (status == 503 and retry_after is not None):
                raise RateLimitedError(status, body, retry_after=retry_after, method=method, path=path)
            raise GistAPIError(status, body, method=method, path=path)
        if status == 401:
            if self.on_token_revoked is not None:
                self.on_token_revoked(dict(self.token or {}))
            raise TokenRevokedError(status, body, method=method, path=path)
        if status == 403:
            raise InsufficientScopeError(status, body, scope=_scope_from(body) or scope, method=method, path=path)
        if status == 404:
            raise NotFoundError(status, body, method=method, path=path)
        raise GistAPIError(status, body, method=method, path=path)

    def retry_delay(self, attempt: int, deadline: Deadline, retry_after: float | None) -> float | None:
        """The pause before the next attempt, or ``None`` when no retry is left."""
        if attempt >= self.retry.max_attempts:
            return None
        if retry_after is not None:
            if retry_after > self.retry.max_retry_after:
                return None
            delay = retry_after
        else:
            delay = self.retry.backoff(attempt)
        left = deadline.remaining()
        if left is not None and delay >= left:
            return None
        return delay

    def unreachable(self, failure: Exception, deadline: Deadline, *, method: str, path: str) -> GistConnectionError:
        """The error for a call whose last attempt got no whole answer."""
        left = deadline.remaining()
        if left is not None and left < _DEADLINE_SLACK:
            return GistConnectionError.deadline_exceeded(self.retry.deadline, method=method, path=path)
        timed_out = isinstance(failure, httpx2.TimeoutException)
        return GistConnectionError(
            "no answer within the timeout" if timed_out else type(failure).__name__, method=method, path=path
        )


def _sync_store(store: TokenStore | AsyncTokenStore) -> TokenStore:
    """The synchronous store itself (an AsyncTokenStore wraps one; the client calls it in a worker thread)."""
    from .tokens import AsyncTokenStore  # here: import gist_authlib need not load the token stores

    return store.sync if isinstance(store, AsyncTokenStore) else store


def _stored(store: TokenStore | AsyncTokenStore, subject: str) -> Token:
    record = _sync_store(store).get(subject)
    if record is None:
        raise TokenStoreError(f"No Gist token is stored for {subject!r}: log in with Gist first.")
    return record.token


def _bind(
    store: TokenStore | AsyncTokenStore | None, subject: str | None, refresh: RefreshSettings | None
) -> _StoreBinding | None:
    if store is None:
        return None
    if subject is None:
        raise ValueError("A client on a token store needs the subject whose token it uses.")
    return _StoreBinding(_sync_store(store), subject, leeway=refresh.leeway if refresh else 60.0)


def _forget_in(store: TokenStore | AsyncTokenStore | None) -> TokenHook | None:
    """After a 401: delete the token from the store, if it is still the stored one."""
    if store is None:
        return None
    return _sync_store(store).delete_token


def _is_idempotent(method: str, idempotent: bool | None) -> bool:
    return method in IDEMPOTENT_METHODS if idempotent is None else idempotent


def _is_absolute(path: str) -> bool:
    return path.startswith(("http://", "https://", "//"))


def _as_token(token: str | Mapping[str, object]) -> Token:
    if isinstance(token, str):
        token = {"access_token": token}
    if not isinstance(token, Mapping):
        raise TypeError("token must be an access token string or a token dict.")
    return check_token_response(token)


def _error_body(content: bytes) -> object:
    """An error answer's body: its JSON, else the start of its text."""
    try:
        return read_json(content)
    except ValueError:
        return content[:500].decode("utf-8", "replace") or None


def _scope_from(body: object) -> str | None:
    if isinstance(body, dict):
        if isinstance(body.get("scope"), str):
            return str(body["scope"])
        errors = body.get("errors")
        if (
            isinstance(errors, list)
            and errors
            and isinstance(errors[0], dict)
            and isinstance(errors[0].get("scope"), str)
        ):
            return str(errors[0]["scope"])
    return None


def _retry_after(response: httpx2.Response) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date."""
    value = response.headers.get("retry-after", "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        import email.utils  # only for a Retry-After given as a date; slow to import

        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    # An HTTP date is wall-clock time (the retry deadline runs on the monotonic clock).
    return max(0.0, when.timestamp() - time.time())


def _make_core(
    token: str | Mapping[str, object] | None,
    provider: GistProvider | None,
    base_url: str | None,
    retry: RetryPolicy | None,
    refresh: RefreshSettings | None,
    on_token_revoked: TokenHook | None,
    on_token_update: TokenHook | None,
    store: TokenStore | AsyncTokenStore | None,
    subject: str | None,
) -> _Core:
    return _Core(
        token,
        base_url=_base_url(provider, base_url),
        retry=retry or RetryPolicy(),
        refresh=refresh,
        on_token_revoked=on_token_revoked or _forget_in(store),
        on_token_update=on_token_update,
        store=_bind(store, subject, refresh),
    )


class _PoolOptions(TypedDict):
    base_url: str
    headers: dict[str, str]
    timeout: httpx2.Timeout | float
    limits: httpx2.Limits
    follow_redirects: bool
    trust_env: bool


def _pool_options(core: _Core, timeout: httpx2.Timeout | float, limits: httpx2.Limits) -> _PoolOptions:
    """One pooled connection set: the API's base URL and headers, explicit timeouts, no redirects, no env proxies."""
    return {
        "base_url": core.base_url,
        "headers": core.headers,
        "timeout": timeout,
        "limits": limits,
        "follow_redirects": False,
        "trust_env": False,
    }


def _base_url(provider: GistProvider | None, base_url: str | None) -> str:
    if base_url is not None:
        return base_url
    return (provider or GistProvider()).api_base_url


class ClientOptions(TypedDict, total=False):
    """The keyword arguments of :class:`GistClient` and :class:`AsyncGistClient` besides the token and store, as
    the constructors that pass them on (:meth:`GistClient.from_api_key`, ``from_store``, ``from_authlib``) take
    them; each client's own signature says which transport and ``sleep`` it takes."""

    provider: GistProvider | None
    base_url: str | None
    transport: httpx2.BaseTransport | httpx2.AsyncBaseTransport | None
    timeout: httpx2.Timeout | float
    retry: RetryPolicy | None
    refresh: RefreshSettings | None
    on_token_revoked: TokenHook | None
    on_token_update: TokenHook | None
    sleep: Callable[[float], None] | Callable[[float], Awaitable[None]] | None
    limits: httpx2.Limits
    max_answer_bytes: int


class _AuthlibApp(Protocol):
    """What a client reads of a registered Authlib app (``oauth.gist``)."""

    @property
    def api_base_url(self) -> str | None: ...
    @property
    def client_id(self) -> object: ...
    @property
    def client_secret(self) -> object: ...
    @property
    def access_token_url(self) -> str | None: ...


class _ClientBase:
    """What both clients have besides their drivers: settings, the token, constructors, and every call's flow."""

    _core: _Core
    _http: httpx2.Client | httpx2.AsyncClient
    _refresh_lock: object
    _max_answer_bytes: int
    _owns_pool = True

    @property
    def token(self) -> Token:
        """The current token (a copy; empty for a client made without one); it changes after a refresh."""
        return dict(self._core.token or {})

    @property
    def base_url(self) -> str:
        """The API's base URL."""
        return self._core.base_url

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._core.base_url}>"

    # --- the raw API: endpoints written once, methods on both clients -------------------------------------

    @endpoint
    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, QueryValue] | None = None,
        json: object = None,
        idempotent: bool | None = None,
        scope: str | None = None,
    ) -> Call[JSON]:
        """Send a request to ``path`` (relative to the API's base URL) and return the parsed JSON answer.

        Args:
            method: the HTTP method.
            path: the endpoint, e.g. ``"segments"``; an absolute URL must be on the API's origin.
            params: query parameters.
            json: a JSON body.
            idempotent: whether the request may be repeated safely; by default only GET, HEAD, OPTIONS,
                PUT and DELETE are.
            scope: the scope the endpoint needs, named in an :class:`InsufficientScopeError` on 403.

        Raises:
            GistAPIError: and its subclasses, for every error answer; :class:`GistConnectionError` when
                Gist could not be reached.
        """
        return Call(method, path, _as_is, params=params, json=json, idempotent=idempotent, scope=scope)

    @endpoint
    def get(self, /, path: str, **params: QueryValue) -> Call[JSON]:
        """GET ``path`` with ``params`` as the query; returns the parsed JSON."""
        return Call("GET", path, _as_is, params=params or None)

    @endpoint
    def post(self, path: str, json: object = None, *, idempotent: bool | None = None) -> Call[JSON]:
        """POST ``json`` to ``path``; not retried unless ``idempotent=True``."""
        return Call("POST", path, _as_is, json=json, idempotent=idempotent)

    @endpoint
    def put(self, path: str, json: object = None) -> Call[JSON]:
        """PUT ``json`` to ``path``."""
        return Call("PUT", path, _as_is, json=json)

    @endpoint
    def patch(self, path: str, json: object = None) -> Call[JSON]:
        """PATCH ``json`` to ``path`` (not retried)."""
        return Call("PATCH", path, _as_is, json=json)

    @endpoint
    def delete(self, path: str) -> Call[JSON]:
        """DELETE ``path``."""
        return Call("DELETE", path, _as_is)

    @endpoint
    def token_info(self) -> Call[TokenInfo]:
        """The workspace this token belongs to (``GET /token``)."""
        return Call("GET", "token", TokenInfo.from_shape)

    # --- the flows --------------------------------------------------------------------------------------

    @property
    def _client(self) -> Self:
        """Who runs the endpoints read on this object (a resource's ``_client`` is its client)."""
        return self

    def _call_flow(self, call: Call[T]) -> _Flow[T]:
        """One API call: refresh the token when due, send, retry what may be retried, read the answer."""
        core = self._core
        url, method, path = core.url(call.path), call.method.upper(), _path_only(call.path)
        if core.token is None:
            raise ValueError("This client has no token: make one for a token with client.with_token(token).")
        idempotent = _is_idempotent(method, call.idempotent)
        deadline, attempt = Deadline(core.retry.deadline), 0
        while True:
            attempt += 1
            if core.needs_refresh(time.time()):
                token = yield from _exclusive(self._refresh_flow())
                if token is not None and core.on_token_update is not None:
                    yield UserCode(core.on_token_update, (dict(token),))
            # The bearer header is read at each attempt: a refresh between attempts changes it.
            request = self._http.build_request(method, url, params=call.params, json=call.json, headers=core.auth)
            try:
                response, content = yield from _sent(request, deadline)
            except httpx2.TransportError as exc:
                delay = core.retry_delay(attempt, deadline, None) if idempotent else None
                if delay is None:
                    raise core.unreachable(exc, deadline, method=method, path=path) from None
                yield Pause(delay)
                continue
            except AnswerTooLarge as exc:
                raise UnexpectedAnswerError.too_large(exc.status or 0, exc.limit, method=method, path=path) from None
            if response.status_code in RETRY_STATUSES and idempotent:
                delay = core.retry_delay(attempt, deadline, _retry_after(response))
                if delay is not None:
                    yield Pause(delay)
                    continue
            try:
                return call.parse(core.answer(response, content, method=method, path=path, scope=call.scope))
            except NotFoundError:
                if call.none_if_missing:
                    return cast(T, None)
                raise
            except ShapeError as wrong:
                raise UnexpectedAnswerError(response.status_code, wrong.sentence, method=method, path=path) from None

    def _refresh_flow(self) -> _Flow[Token | None]:
        """Refresh the token (run holding the refresh lock); the new token if this call refreshed it."""
        core = self._core
        if not core.needs_refresh(time.time()):
            return None  # another thread or task refreshed it while this one waited for the lock
        current = core.token
        assert current is not None  # needs_refresh() is False without a token
        if core.store is None:
            token = yield from self._refresh_http(current)
            refreshed = True
        else:
            token, refreshed = yield from core.store.coordinate(current, self._refresh_http)
        core.set_token(token)
        return token if refreshed else None

    def _refresh_http(self, token: Mapping[str, object]) -> _Flow[Token]:
        deadline = Deadline(self._core.retry.deadline)
        try:
            response, content = yield from _sent(self._core.refresh_request(self._http, token), deadline)
        except httpx2.TransportError as exc:
            raise self._core.unreachable(exc, deadline, method="POST", path="token refresh") from None
        except AnswerTooLarge as exc:
            raise InvalidTokenResponseError(f"the refresh answer is larger than {exc.limit} bytes") from None
        return self._core.parse_refresh(response.status_code, content, time.time(), token)

    # --- more clients on the same pool, and constructors ---------------------------------------------------

    def with_token(
        self,
        token: str | Mapping[str, object],
        *,
        refresh: RefreshSettings | None = None,
        on_token_revoked: TokenHook | None = None,
        on_token_update: TokenHook | None = None,
        store: TokenStore | AsyncTokenStore | None = None,
        subject: str | None = None,
    ) -> Self:
        """A client for another token on this client's connection pool (one pool per process, many users).

        The new client shares the pool, base URL, retry policy and timeouts, and has its own token, refresh
        and hooks (the refresh settings default to this client's). Close the client that made the pool.
        """
        sibling = copy.copy(self)
        sibling._core = _make_core(
            token,
            None,
            self._core.base_url,
            self._core.retry,
            refresh or self._core.refresh,
            on_token_revoked,
            on_token_update,
            store,
            subject,
        )
        sibling._refresh_lock = self._new_lock()
        sibling._owns_pool = False
        sibling._init_resources()
        return sibling

    def for_subject(
        self,
        store: TokenStore | AsyncTokenStore,
        subject: str,
        *,
        refresh: RefreshSettings | None = None,
        on_token_revoked: TokenHook | None = None,
        on_token_update: TokenHook | None = None,
    ) -> Self:
        """:meth:`with_token` for the token stored under ``subject`` (a 401 deletes it from ``store``)."""
        return self.with_token(
            _stored(store, subject),
            refresh=refresh,
            on_token_revoked=on_token_revoked,
            on_token_update=on_token_update,
            store=store,
            subject=subject,
        )

    def _new_lock(self) -> object:
        raise NotImplementedError

    def _init_resources(self) -> None:
        raise NotImplementedError

    @classmethod
    def from_api_key(cls, api_key: str, **kwargs: Unpack[ClientOptions]) -> Self:
        """A client authenticated with a workspace API key (for code that only touches your own workspace)."""
        return cls(api_key, **kwargs)

    @classmethod
    def from_store(
        cls,
        store: TokenStore | AsyncTokenStore,
        subject: str,
        *,
        app: _AuthlibApp | None = None,
        **kwargs: Unpack[ClientOptions],
    ) -> Self:
        """A client for the token stored under ``subject``.

        A 401 deletes that token from the store; an expiring token is refreshed once across every process
        sharing the store (a lease, then a compare-and-set write). With ``app`` (a registered Authlib app),
        the base URL and refresh settings come from it.

        Raises:
            TokenStoreError: no token is stored for ``subject``.
        """
        token = _stored(store, subject)
        settings = cls._authlib_settings(app, kwargs) if app is not None else kwargs
        return cls(token, store=store, subject=subject, **settings)

    @classmethod
    def from_authlib(
        cls, app: _AuthlibApp, token: str | Mapping[str, object] | None, **kwargs: Unpack[ClientOptions]
    ) -> Self:
        """A client for a token of a registered Authlib app: its API base URL, refreshing at its token URL.

        With ``token=None`` it is a pool for many users: give each call a token with :meth:`with_token`.
        """
        return cls(token, **cls._authlib_settings(app, kwargs))

    def __init__(  # each client defines its own
        self,
        token: str | Mapping[str, object] | None,
        *,
        store: TokenStore | AsyncTokenStore | None = None,
        subject: str | None = None,
        **options: Unpack[ClientOptions],
    ) -> None:
        raise NotImplementedError

    @staticmethod
    def _authlib_settings(app: _AuthlibApp, kwargs: ClientOptions) -> ClientOptions:
        settings = kwargs.copy()
        settings.setdefault("base_url", app.api_base_url)
        if "refresh" not in settings and app.client_id and app.client_secret and app.access_token_url:
            settings["refresh"] = RefreshSettings(app.access_token_url, str(app.client_id), str(app.client_secret))
        return settings


class GistClient(_ClientBase, SyncResources, SyncSide):
    """A synchronous client for Gist's REST API: one pooled httpx2 connection set, reused across calls.

    Args:
        token: an OAuth token dict (as ``on_login`` receives it) or an access token string.
        provider: where the API lives; production Gist by default. ``base_url`` overrides it.
        base_url: the API's base URL (e.g. the sandbox's).
        transport: an httpx2 transport, the seam for tests (``httpx2.MockTransport``) and custom networking.
        timeout: an httpx2 timeout; 10 s (5 s to connect) by default.
        retry: the :class:`RetryPolicy`.
        refresh: how to refresh an expiring token (see :class:`RefreshSettings`).
        on_token_revoked: called with the token when Gist answers 401 (e.g. to delete it from a store).
        on_token_update: called with the new token after a refresh (e.g. to save it).
        sleep: how to wait between retries (``time.sleep``); a seam for tests.
        limits: httpx2 connection-pool limits.
        max_answer_bytes: the largest answer body read (4 MiB by default); a larger one is dropped unread
            (:class:`~gist_authlib.errors.UnexpectedAnswerError`, ``answer_too_large``).

    Use it as a context manager, or call :meth:`close`. Resources: :attr:`teammates`, :attr:`teams`,
    :attr:`contacts`, :attr:`tags`; :meth:`token_info`; and :meth:`request` for any other endpoint.
    """

    _http: httpx2.Client
    _refresh_lock: threading.Lock

    def __init__(
        self,
        token: str | Mapping[str, object] | None,
        *,
        provider: GistProvider | None = None,
        base_url: str | None = None,
        transport: httpx2.BaseTransport | None = None,
        timeout: httpx2.Timeout | float = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        refresh: RefreshSettings | None = None,
        on_token_revoked: TokenHook | None = None,
        on_token_update: TokenHook | None = None,
        sleep: Callable[[float], None] = time.sleep,
        limits: httpx2.Limits = DEFAULT_LIMITS,
        store: TokenStore | AsyncTokenStore | None = None,
        subject: str | None = None,
        max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES,
    ) -> None:
        self._core = _make_core(
            token, provider, base_url, retry, refresh, on_token_revoked, on_token_update, store, subject
        )
        self._sleep = sleep
        self._max_answer_bytes = max_answer_bytes
        self._refresh_lock = self._new_lock()
        self._http = httpx2.Client(transport=transport, **_pool_options(self._core, timeout, limits))
        self._init_resources()

    def _new_lock(self) -> threading.Lock:
        return threading.Lock()

    def _init_resources(self) -> None:
        SyncResources.__init__(self, self)

    def _run(self, call: Call[T]) -> T:
        """``call``'s result."""
        return self._drive(self._call_flow(call))

    def _drive(self, flow: _Flow[T]) -> T:
        """Run ``flow`` to its end, performing each step it yields; its return value."""
        return drive(flow, self._perform, sleep=self._sleep)

    def _perform(self, step: _Send | _Exclusive) -> object:
        if isinstance(step, _Send):
            response = self._http.send(step.cut(), stream=True)
            return response, read_bounded(response, limit=self._max_answer_bytes, deadline=step.deadline)
        with self._refresh_lock:
            return self._drive(step.flow)

    def _walk(self, pages: Pages[T]) -> Iterator[T]:
        """Every item of the pages that ``pages`` asks for, one call after another."""
        call = _next_call(pages, None)
        while call is not None:
            page = self._run(call)
            yield from page.items
            call = _next_call(pages, page)

    def close(self) -> None:
        """Close the pooled connections (a client made by :meth:`with_token` leaves them to its maker)."""
        if self._owns_pool:
            self._http.close()

    def __enter__(self) -> GistClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncGistClient(_ClientBase, AsyncResources, AsyncSide):
    """The asynchronous twin of :class:`GistClient` (same arguments; ``sleep`` is an async function).

    One pooled ``httpx2.AsyncClient`` per instance; concurrent calls with an expired, refreshable token
    make exactly one refresh request between them. Every method of :class:`GistClient` and of its
    resources is here a coroutine function (``iter_all`` gives an async iterator); token-store calls
    run in a worker thread.
    """

    _http: httpx2.AsyncClient
    _refresh_lock: anyio.Lock

    def __init__(
        self,
        token: str | Mapping[str, object] | None,
        *,
        provider: GistProvider | None = None,
        base_url: str | None = None,
        transport: httpx2.AsyncBaseTransport | None = None,
        timeout: httpx2.Timeout | float = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        refresh: RefreshSettings | None = None,
        on_token_revoked: TokenHook | None = None,
        on_token_update: TokenHook | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        limits: httpx2.Limits = DEFAULT_LIMITS,
        store: TokenStore | AsyncTokenStore | None = None,
        subject: str | None = None,
        max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES,
    ) -> None:
        import anyio

        self._core = _make_core(
            token, provider, base_url, retry, refresh, on_token_revoked, on_token_update, store, subject
        )
        self._sleep = sleep or anyio.sleep
        self._max_answer_bytes = max_answer_bytes
        self._refresh_lock = self._new_lock()
        self._http = httpx2.AsyncClient(transport=transport, **_pool_options(self._core, timeout, limits))
        self._init_resources()

    def _new_lock(self) -> anyio.Lock:
        import anyio

        return anyio.Lock()

    def _init_resources(self) -> None:
        AsyncResources.__init__(self, self)

    def _run(self, call: Call[T]) -> Awaitable[T]:
        """``call``'s result, to await."""
        return self._drive(self._call_flow(call))

    async def _drive(self, flow: _Flow[T]) -> T:
        """Run ``flow`` to its end, performing each step it yields; its return value."""
        return await drive_async(flow, self._perform, sleep=self._sleep)

    async def _perform(self, step: _Send | _Exclusive) -> object:
        if isinstance(step, _Send):
            response = await self._http.send(step.cut(), stream=True)
            return response, await aread_bounded(response, limit=self._max_answer_bytes, deadline=step.deadline)
        async with self._refresh_lock:
            return await self._drive(step.flow)

    async def _walk(self, pages: Pages[T]) -> AsyncIterator[T]:
        """Every item of the pages that ``pages`` asks for, one call after another."""
        call = _next_call(pages, None)
        while call is not None:
            page = await self._run(call)
            for item in page.items:
                yield item
            call = _next_call(pages, page)

    async def aclose(self) -> None:
        """Close the pooled connections (a client made by :meth:`with_token` leaves them to its maker)."""
        if self._owns_pool:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncGistClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _as_is(body: JSON) -> JSON:
    return body


def _next_call(pages: Pages[T], page: Page[T] | None) -> Call[Page[T]] | None:
    """The call for the page after ``page`` (the first when it is ``None``); ``None`` when the walk is over."""
    try:
        return next(pages) if page is None else pages.send(page)
    except StopIteration:
        return None


def _path_only(path: str) -> str:
    """A path for error messages: no query string (it may carry an email address)."""
    return urlsplit(path).path or path

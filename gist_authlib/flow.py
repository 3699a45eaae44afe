"""Framework-free rules of a Gist login: state, PKCE, callback checks, safe ``next`` paths, token checks.

The web adapters (``gist_authlib.starlette``, ...) only move data between a request and these functions;
every decision is made here, once, so that all frameworks behave alike.

State handling, and why it differs from Authlib's:

* a state is 256 bits from :mod:`secrets`, single use, and expires (10 minutes by default);
* it is kept in the browser's session, so a state issued to one browser is unknown to another;
* several logins may be pending at once (two tabs), up to ``max_pending`` per registration;
* the PKCE verifier is not stored anywhere: it is an HMAC of the state under the client secret, so the
  session cookie (signed, not encrypted, in Starlette and Flask) never carries it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import secrets
import time
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

from .errors import (
    AccessDeniedError,
    AuthorizationError,
    ExpiredStateError,
    GistAuthError,
    InsecureTransportError,
    InvalidTokenResponseError,
    MissingCodeError,
    MissingStateError,
    MixUpError,
    ReplayedCallbackError,
    TokenEndpointError,
    TokenEndpointUnreachableError,
    UnknownStateError,
)

__all__ = [
    "AuthorizationRequest",
    "CallbackGrant",
    "InstallGrant",
    "LoginFlow",
    "begin_login",
    "check_callback",
    "check_token_response",
    "exchange_code",
    "exchange_code_async",
    "finish_install",
    "forget_login",
    "login_subject",
    "safe_next_path",
    "store_login",
    "translate_token_error",
]

SESSION_KEY_PREFIX = "_gist_authlib:"
_MAX_PARAM_LENGTH = 2048


@dataclass(frozen=True, slots=True)
class AuthorizationRequest:
    """Where to send the browser to start a login.

    Attributes:
        url: the authorization URL, with every query parameter.
        state: the state issued for this login (already recorded in the session).
    """

    url: str
    state: str

    def __repr__(self) -> str:
        return "AuthorizationRequest(url=<authorize url>, state=<hidden>)"


@dataclass(frozen=True, slots=True)
class CallbackGrant:
    """A callback that passed every check: what the token request needs, and where to go afterwards.

    Attributes:
        code: the authorization code (secret: never log it).
        redirect_uri: the redirect URI used when the login started.
        code_verifier: the PKCE verifier, or ``None`` when PKCE is off (secret).
        next_path: the same-origin path to return to after login, or ``None``.
    """

    code: str
    redirect_uri: str
    code_verifier: str | None
    next_path: str | None

    def token_params(self) -> dict[str, str]:
        """Keyword arguments for Authlib's ``fetch_access_token``, as a new dict."""
        params = {"code": self.code, "redirect_uri": self.redirect_uri}
        if self.code_verifier:
            params["code_verifier"] = self.code_verifier
        return params

    def __repr__(self) -> str:
        return f"CallbackGrant(code=<hidden>, redirect_uri={self.redirect_uri!r}, next_path={self.next_path!r})"


@dataclass(frozen=True, slots=True)
class InstallGrant:
    """A callback of a Gist-initiated install: a code, and a state this browser was never issued.

    Gist sends the installing workspace's id as the state; it is a hint only (anyone can forge it): the
    workspace a token belongs to is read from Gist with the token itself.

    Attributes:
        code: the authorization code (secret).
        redirect_uri: this callback's URL, to send with the code.
        workspace_hint: the state, as Gist sent it.
    """

    code: str
    redirect_uri: str
    workspace_hint: str

    def token_params(self) -> dict[str, str]:
        """Keyword arguments for Authlib's ``fetch_access_token`` (no PKCE: Gist started this flow)."""
        return {"code": self.code, "redirect_uri": self.redirect_uri}

    def __repr__(self) -> str:
        return f"InstallGrant(code=<hidden>, workspace_hint={self.workspace_hint[:40]!r})"


class LoginFlow:
    """The login rules of one registration (one provider name).

    Args:
        name: the registration's name; pending logins are kept under a session key of their own, so two
            registrations never see each other's state.
        state_ttl: seconds a started login stays valid.
        max_pending: how many logins may be pending at once per browser (tabs); the oldest is dropped.
        pkce: send an S256 PKCE challenge (on by default; Gist ignores it, RFC 6749 servers must).
        clock: the time source, for tests.
    """

    def __init__(
        self,
        name: str,
        *,
        state_ttl: float = 600.0,
        max_pending: int = 8,
        pkce: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if state_ttl <= 0:
            raise ValueError("state_ttl must be a positive number of seconds.")
        if max_pending < 1:
            raise ValueError("max_pending must be at least 1.")
        self.name = name
        self.state_ttl = state_ttl
        self.max_pending = max_pending
        self.pkce = pkce
        self.clock = clock
        self.session_key = SESSION_KEY_PREFIX + name
        #: Where the session keeps the subject of this registration's logged-in user (never a token).
        self.subject_key = self.session_key + ":subject"

    def __repr__(self) -> str:
        return f"LoginFlow(name={self.name!r}, state_ttl={self.state_ttl}, pkce={self.pkce})"

    # -- starting a login ---------------------------------------------------------------------------

    def start(
        self,
        session: MutableMapping[str, Any],
        *,
        authorize_url: str,
        client_id: str,
        client_secret: str,
        redirect_uri: str,
        scopes: Iterable[str],
        next_path: str | None = None,
        extra_params: Mapping[str, str] | None = None,
    ) -> AuthorizationRequest:
        """Issue a state, record it in ``session`` and build the authorization URL."""
        state = secrets.token_urlsafe(32)
        now = self.clock()
        record = self._load(session, now)
        pending: dict[str, list[Any]] = record["p"]
        pending[state] = [now + self.state_ttl, safe_next_path(next_path)]
        while len(pending) > self.max_pending:
            oldest = min(pending, key=lambda s: pending[s][0])
            del pending[oldest]
        self._save(session, record)

        params: dict[str, str] = {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "scope": " ".join(scopes),
            "state": state,
        }
        if self.pkce:
            params["code_challenge"] = _s256(self._verifier(client_secret, state))
            params["code_challenge_method"] = "S256"
        if extra_params:
            for key, value in extra_params.items():
                params.setdefault(key, value)
        separator = "&" if "?" in authorize_url else "?"
        return AuthorizationRequest(url=f"{authorize_url}{separator}{urlencode(params)}", state=state)

    # -- finishing a login --------------------------------------------------------------------------

    def finish(
        self,
        session: MutableMapping[str, Any],
        query: Iterable[tuple[str, str]],
        *,
        client_secret: str,
        redirect_uri: str,
        issuer: str | None = None,
        installs: bool = False,
    ) -> CallbackGrant | InstallGrant:
        """Check a callback's query against the session and consume its state.

        The state is consumed before anything else can fail, so a callback can never be used twice.

        Args:
            issuer: the authorization server's issuer; a callback carrying another ``iss`` (RFC 9207) is
                refused as a mix-up attempt.
            installs: treat a callback with a code and a state this browser was never issued as a
                Gist-initiated install (an :class:`InstallGrant`) instead of refusing it.

        Raises:
            MissingStateError, UnknownStateError, ExpiredStateError, ReplayedCallbackError: the state
                does not belong to a login this browser started (no token request may follow).
            MixUpError: the callback names another issuer.
            AccessDeniedError, AuthorizationError: Gist reported an error for a login we started.
            MissingCodeError: no usable code.
        """
        params = _collect(query)
        issuers = params.get("iss", [])
        if issuers and (len(issuers) > 1 or issuer is None or not _same(issuers[0], issuer)):
            raise MixUpError(issuers[0] if len(issuers) == 1 else None)
        states = params.get("state", [])
        if len(states) != 1 or not states[0] or len(states[0]) > _MAX_PARAM_LENGTH:
            # An unauthenticated error callback is reported as what it claims only when it is
            # harmless to believe it; without a state it proves nothing.
            raise MissingStateError(
                None if len(states) < 2 else "The callback carries more than one state, so it was refused."
            )
        state = states[0]
        if not _vschar(state):
            raise MissingStateError("The callback's state is malformed, so it was refused.")
        now = self.clock()
        record = self._load(session, now, drop_expired=False)
        entry = record["p"].pop(state, None)
        digest = _digest(state)
        if entry is None:
            self._save(session, self._prune(record, now))
            if digest in record["u"]:
                raise ReplayedCallbackError()
            codes = params.get("code", [])
            with_code = (
                len(codes) == 1
                and 0 < len(codes[0]) <= _MAX_PARAM_LENGTH
                and _vschar(codes[0])
                and not params.get("error")
            )
            if installs and with_code:
                return InstallGrant(code=codes[0], redirect_uri=redirect_uri, workspace_hint=state)
            raise UnknownStateError(install_hint=with_code)
        record["u"][digest] = now + self.state_ttl
        self._save(session, self._prune(record, now))
        expires_at, next_path = entry
        if expires_at < now:
            raise ExpiredStateError()

        errors = params.get("error", [])
        if errors:
            descriptions = params.get("error_description")
            description = descriptions[0] if descriptions else None
            if errors[0] == "access_denied":
                raise AccessDeniedError(description)
            raise AuthorizationError(errors[0], description)

        codes = params.get("code", [])
        if len(codes) != 1 or not codes[0]:
            raise MissingCodeError(
                None if len(codes) < 2 else "The callback carries more than one code, so it was refused."
            )
        if len(codes[0]) > _MAX_PARAM_LENGTH:
            raise MissingCodeError("The callback's code is too long to be genuine.")
        if not _vschar(codes[0]):
            raise MissingCodeError("The callback's code is malformed (RFC 6749 codes are printable ASCII).")
        verifier = self._verifier(client_secret, state) if self.pkce else None
        return CallbackGrant(code=codes[0], redirect_uri=redirect_uri, code_verifier=verifier, next_path=next_path)

    def pending_count(self, session: Mapping[str, Any]) -> int:
        """How many logins this browser has started and not finished (expired ones included)."""
        value = session.get(self.session_key)
        return len(value.get("p", {})) if isinstance(value, dict) else 0

    # -- internals ----------------------------------------------------------------------------------

    def _verifier(self, client_secret: str, state: str) -> str:
        message = f"gist-authlib pkce\0{self.name}\0{state}".encode()
        mac = hmac.new(client_secret.encode(), message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()

    def _load(self, session: Mapping[str, Any], now: float, *, drop_expired: bool = True) -> dict[str, dict[str, Any]]:
        value = session.get(self.session_key)
        pending: dict[str, list[Any]] = {}
        used: dict[str, float] = {}
        if isinstance(value, dict):
            # A session is data we wrote, but a cookie session can be old or odd: keep only well-formed rows.
            for state, entry in (value.get("p") or {}).items():
                if (
                    isinstance(entry, list)
                    and len(entry) == 2
                    and isinstance(entry[0], (int, float))
                    and (entry[1] is None or isinstance(entry[1], str))
                ):
                    pending[str(state)] = entry
            for digest, expiry in (value.get("u") or {}).items():
                if isinstance(expiry, (int, float)):
                    used[str(digest)] = float(expiry)
        record: dict[str, dict[str, Any]] = {"p": pending, "u": used}
        return self._prune(record, now) if drop_expired else record

    def _prune(self, record: dict[str, dict[str, Any]], now: float) -> dict[str, dict[str, Any]]:
        record["p"] = {s: e for s, e in record["p"].items() if e[0] >= now}
        used = {d: t for d, t in record["u"].items() if t >= now}
        while len(used) > self.max_pending:
            del used[min(used, key=used.__getitem__)]
        record["u"] = used
        return record

    def _save(self, session: MutableMapping[str, Any], record: dict[str, dict[str, Any]]) -> None:
        # Assign a new value every time: Django only saves a session whose keys were assigned.
        if record["p"] or record["u"]:
            session[self.session_key] = json.loads(json.dumps(record))
        else:
            session.pop(self.session_key, None)


# -- the steps every adapter runs, on a registered app (see gist_authlib.registry.GistAppMixin) -------


def begin_login(
    app: Any, session: MutableMapping[str, Any], *, redirect_uri: str, next_path: str | None = None
) -> AuthorizationRequest:
    """Start a login for the registered ``app``: check its credentials, issue a state, build the URL.

    Raises:
        MissingCredentialsError: the client id or secret is not configured.
    """
    client_id, client_secret = app.gist_credentials()
    check_transport(redirect_uri, "redirect URI", allow_insecure_http=getattr(app, "gist_allow_insecure_http", False))
    flow: LoginFlow = app.gist_flow
    return flow.start(
        session,
        authorize_url=app.authorize_url,
        client_id=client_id,
        client_secret=client_secret,
        redirect_uri=redirect_uri,
        scopes=app.gist_scopes,
        next_path=next_path,
    )


def check_callback(
    app: Any,
    session: MutableMapping[str, Any],
    query: Iterable[tuple[str, str]],
    *,
    redirect_uri: str,
    installs: bool = False,
) -> CallbackGrant | InstallGrant:
    """Check a callback for the registered ``app`` (see :meth:`LoginFlow.finish`)."""
    _, client_secret = app.gist_credentials()
    flow: LoginFlow = app.gist_flow
    return flow.finish(
        session,
        query,
        client_secret=client_secret,
        redirect_uri=redirect_uri,
        issuer=expected_issuer(app),
        installs=installs,
    )


def expected_issuer(app: Any) -> str:
    """The issuer a callback of ``app`` may name: the provider's, else the authorization endpoint's origin."""
    provider = getattr(app, "gist_provider", None)
    configured = getattr(provider, "issuer", None)
    if configured and provider is not None and app.authorize_url == provider.authorize_url:
        return str(configured)
    parts = urlsplit(app.authorize_url)
    return f"{parts.scheme}://{parts.netloc}"


def check_transport(url: str, what: str, *, allow_insecure_http: bool) -> None:
    """Refuse ``http://`` for ``url`` unless its host is loopback or insecure HTTP was allowed explicitly.

    Raises:
        InsecureTransportError: an ``http://`` URL on a host that is not loopback.
    """
    parts = urlsplit(url)
    if parts.scheme == "https" or allow_insecure_http:
        return
    if parts.scheme == "http" and is_loopback(parts.hostname or ""):
        return
    raise InsecureTransportError(what, url)


def is_loopback(host: str) -> bool:
    """Whether ``host`` is this machine (localhost, 127.0.0.0/8, ::1)."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def exchange_code(app: Any, grant: CallbackGrant | InstallGrant) -> dict[str, Any]:
    """Exchange the grant's code at the token endpoint (sync Authlib apps: Flask, Django).

    Raises:
        TokenExchangeError: any failure, as one of its typed subclasses.
    """
    try:
        token = app.fetch_access_token(**grant.token_params())
    except Exception as exc:  # every failure of the exchange becomes a typed error
        raise translate_token_error(exc) from None
    return check_token_response(token)


async def exchange_code_async(app: Any, grant: CallbackGrant | InstallGrant) -> dict[str, Any]:
    """Exchange the grant's code at the token endpoint (async Authlib apps: Starlette, FastAPI)."""
    try:
        token = await app.fetch_access_token(**grant.token_params())
    except Exception as exc:  # every failure of the exchange becomes a typed error
        raise translate_token_error(exc) from None
    return check_token_response(token)


# -- after the login: the stored token and the session's subject ---------------------------------------


def subject_key(app: Any) -> str:
    """The session key holding the subject of ``app``'s logged-in user (an opaque id, never a token)."""
    flow: LoginFlow = app.gist_flow
    return flow.subject_key


def store_login(
    app: Any,
    session: MutableMapping[str, Any],
    token: Mapping[str, Any],
    *,
    subject: str | None,
    workspace_id: Any = None,
    workspace_name: str | None = None,
) -> str | None:
    """Save a fresh login's token in the registration's token store and remember its subject in the session.

    ``subject`` is what the app's ``on_login`` named (its user id). Without one, the subject is the Gist
    workspace id (``workspace:<id>``) when Gist's token info gave it, else a random opaque id
    (``login:<random>``) that only this browser session knows. Returns the subject, or ``None`` when the
    registration has no token store.

    Raises:
        TokenStoreError: the store failed; nothing was written.
    """
    store = getattr(app, "gist_token_store", None)
    if store is None:
        return None
    if subject:
        key = str(subject)
    elif workspace_id is not None:
        key = f"workspace:{workspace_id}"
    else:
        key = f"login:{secrets.token_urlsafe(16)}"
    store.save(
        key,
        token,
        scopes=getattr(app, "gist_scopes", None),
        workspace_id=workspace_id,
        workspace_name=workspace_name,
    )
    session[subject_key(app)] = key
    return key


def finish_install(
    app: Any, grant: InstallGrant, token: Mapping[str, Any], workspace: tuple[Any, str | None]
) -> tuple[str, str]:
    """Store a Gist-initiated install's token under its workspace; return (workspace id, acknowledgement URL).

    The workspace comes from Gist's answer about the token itself (``workspace`` is what ``GET /token``
    said), never from the callback's state, which anyone can forge; the state must agree with it. The token
    is never attached to the browser session's user.

    Raises:
        InstallError: Gist did not say which workspace the token belongs to, or the state disagrees.
    """
    from .errors import InstallError

    workspace_id, workspace_name = workspace
    if workspace_id is None:
        raise InstallError(
            "Gist did not say which workspace installed the app (its token information could not be read), "
            "so the installation was not recorded. Try installing again."
        )
    if str(workspace_id) != grant.workspace_hint:
        raise InstallError("The installation callback names another workspace than its token; nothing was stored.")
    store = getattr(app, "gist_token_store", None)
    if store is not None:
        store.save(
            f"workspace:{workspace_id}",
            token,
            scopes=getattr(app, "gist_scopes", None),
            workspace_id=workspace_id,
            workspace_name=workspace_name,
        )
    ack_url = install_ack_url(app)
    query = urlencode({"client_id": app.client_id, "workspace_id": workspace_id})
    separator = "&" if "?" in ack_url else "?"
    return str(workspace_id), f"{ack_url}{separator}{query}"


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
    value = session.get(subject_key(app))
    return value if isinstance(value, str) else None


def forget_login(app: Any, session: MutableMapping[str, Any], *, forget_token: bool = False) -> str | None:
    """Log the session's user out of ``app``: drop the subject and, if asked, the stored token. Returns the subject."""
    subject = session.pop(subject_key(app), None)
    store = getattr(app, "gist_token_store", None)
    if forget_token and store is not None and isinstance(subject, str):
        store.delete(subject)
    return subject if isinstance(subject, str) else None


def safe_next_path(value: str | None) -> str | None:
    """Return ``value`` if it is a same-origin relative path (``/dashboard?tab=1``), else ``None``.

    Refused: anything with a scheme or host (``https://evil``, ``//evil``, ``/\\evil``), backslashes,
    control characters (tabs and newlines that browsers strip), and over-long values.
    """
    if not value or len(value) > _MAX_PARAM_LENGTH:
        return None
    if not value.startswith("/") or value.startswith("//"):
        return None
    if "\\" in value or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        return None
    lowered = value.lower()
    # Encoded slashes and backslashes can be decoded once more by a proxy or a framework.
    if lowered.startswith(("/%2f", "/%5c")) or "%0" in lowered[:4]:
        return None
    return value


def check_token_response(token: Any) -> dict[str, Any]:
    """Validate what the token endpoint returned and return it as a plain dict.

    Raises:
        InvalidTokenResponseError: not a JSON object, an ``error`` inside a success answer, or no
            usable ``access_token`` string.
    """
    if not isinstance(token, Mapping):
        raise InvalidTokenResponseError("the answer is not a JSON object")
    if "error" in token:
        raise InvalidTokenResponseError(f"the answer carries the error {str(token['error'])[:60]!r}")
    access_token = token.get("access_token")
    if not isinstance(access_token, str) or not access_token.strip():
        raise InvalidTokenResponseError("the answer has no access_token string")
    if len(access_token) > 8192 or any(ch.isspace() for ch in access_token):
        raise InvalidTokenResponseError("the access_token is not a plausible bearer token")
    token_type = token.get("token_type")
    if token_type is not None and str(token_type).lower() != "bearer":
        raise InvalidTokenResponseError(f"the token type {str(token_type)[:30]!r} is not bearer")
    return dict(token)


def translate_token_error(exc: BaseException) -> GistAuthError:
    """Turn what Authlib or httpx2 raised during the token request into the package's error type.

    The original exception is never put into the message: its text may quote the request.
    """
    import httpx2
    from authlib.integrations.base_client import OAuthError

    if isinstance(exc, GistAuthError):
        return exc
    if isinstance(exc, httpx2.HTTPStatusError):
        return TokenEndpointError(exc.response.status_code)
    if isinstance(exc, httpx2.TimeoutException):
        return TokenEndpointUnreachableError("no answer within the timeout")
    if isinstance(exc, httpx2.TooManyRedirects):
        return TokenEndpointUnreachableError("too many redirects")
    if isinstance(exc, httpx2.TransportError):
        return TokenEndpointUnreachableError(type(exc).__name__)
    if isinstance(exc, OAuthError):
        status = 400
        return TokenEndpointError(status, exc.error or "oauth_error", exc.description)
    if isinstance(exc, ValueError):
        return InvalidTokenResponseError("the answer is not a JSON object")
    return InvalidTokenResponseError(type(exc).__name__)


def _collect(query: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    params: dict[str, list[str]] = {}
    for key, value in query:
        params.setdefault(key, []).append(value)
    return params


def _same(a: str, b: str) -> bool:
    """Constant-time equality of two strings of any characters (compare_digest refuses non-ASCII str)."""
    return hmac.compare_digest(a.encode("utf-8", "surrogatepass"), b.encode("utf-8", "surrogatepass"))


def _vschar(value: str) -> bool:
    """RFC 6749's VSCHAR: printable ASCII, which every genuine code and state is made of."""
    return all(0x20 <= ord(ch) <= 0x7E for ch in value)


def _digest(state: str) -> str:
    return hashlib.sha256(state.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def _s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()

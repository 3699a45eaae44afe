"""Framework-free rules of a Gist login: state, PKCE, callback checks, safe ``next`` paths, token checks.

The login sequence (:mod:`gist_authlib._login`) and through it every framework take their decisions from
these functions, once, so that all frameworks and call paths behave alike. Nothing here does I/O.

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
import re
import secrets
import time
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

from .errors import (
    AccessDeniedError,
    AuthorizationError,
    GistAuthError,
    InsecureTransportError,
    InvalidTokenResponseError,
    LoginError,
    MixUpError,
    StateError,
    TokenEndpointError,
    TokenExchangeError,
    UnknownStateError,
)

__all__ = [
    "AuthorizationRequest",
    "CallbackGrant",
    "InstallGrant",
    "LoginFlow",
    "check_token_http_response",
    "check_token_response",
    "check_transport",
    "is_loopback",
    "safe_next_path",
    "translate_token_error",
]

SESSION_KEY_PREFIX = "_gist_authlib:"
_MAX_PARAM_LENGTH = 2048
#: The longest ``next`` path kept; a longer one falls back to ``/`` (it would only bloat the session cookie).
MAX_NEXT_LENGTH = 512
#: The most bytes (as JSON) one registration's pending logins may take in the session: browsers drop cookies
#: over 4,096 bytes, so whatever logins an attacker forces a browser to start, the session cookie stays usable.
PENDING_BUDGET = 1536


@dataclass(frozen=True, slots=True)
class AuthorizationRequest:
    """Where to send the browser to start a login.

    Attributes:
        url: the authorization URL, with every query parameter.
        state: the state issued for this login.
        code_verifier: the PKCE verifier of this login, or ``None`` when PKCE is off (secret; it is derived
            from the state again at the callback, so nothing needs to keep it).
    """

    url: str
    state: str
    code_verifier: str | None = None

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
        state: the state the callback carried (consumed from the session already).
    """

    code: str
    redirect_uri: str
    code_verifier: str | None
    next_path: str | None
    state: str = ""

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

    def issue(
        self,
        *,
        authorize_url: str,
        client_id: str,
        client_secret: str,
        redirect_uri: str,
        scopes: Iterable[str],
        extra_params: Mapping[str, str] | None = None,
    ) -> AuthorizationRequest:
        """Issue a fresh state and build the authorization URL; nothing is recorded yet (see :meth:`remember`)."""
        state = secrets.token_urlsafe(32)
        params: dict[str, str] = {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "scope": " ".join(scopes),
            "state": state,
        }
        verifier = None
        if self.pkce:
            verifier = self._verifier(client_secret, state)
            params["code_challenge"] = _s256(verifier)
            params["code_challenge_method"] = "S256"
        if extra_params:
            for key, value in extra_params.items():
                params.setdefault(key, value)
        separator = "&" if "?" in authorize_url else "?"
        return AuthorizationRequest(
            url=f"{authorize_url}{separator}{urlencode(params)}", state=state, code_verifier=verifier
        )

    def remember(
        self, session: MutableMapping[str, Any], state: str, *, redirect_uri: str, next_path: str | None = None
    ) -> None:
        """Record an issued ``state`` in ``session`` as a pending login, with its redirect URI and checked ``next``."""
        now = self.clock()
        record = self._load(session, now)
        pending: dict[str, list[Any]] = record["p"]
        checked = safe_next_path(next_path)
        if checked is not None and len(checked) > MAX_NEXT_LENGTH:
            checked = None
        pending[state] = [round(now + self.state_ttl, 1), checked, redirect_uri]
        # Drop the oldest pending logins past the count, and past the byte budget (the newest always stays).
        while len(pending) > self.max_pending or (len(pending) > 1 and _size(record) > PENDING_BUDGET):
            oldest = min(pending, key=lambda s: pending[s][0])
            del pending[oldest]
        self._save(session, record)

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
        """Issue a state, record it in ``session`` and build the authorization URL (``issue`` + ``remember``)."""
        request = self.issue(
            authorize_url=authorize_url,
            client_id=client_id,
            client_secret=client_secret,
            redirect_uri=redirect_uri,
            scopes=scopes,
            extra_params=extra_params,
        )
        self.remember(session, request.state, redirect_uri=redirect_uri, next_path=next_path)
        return request

    # -- finishing a login --------------------------------------------------------------------------

    def finish(
        self,
        session: MutableMapping[str, Any],
        query: Iterable[tuple[str, str]],
        *,
        client_secret: str,
        redirect_uri: str | None = None,
        issuer: str | None = None,
        installs: bool = False,
        install_state_pattern: str | None = None,
    ) -> CallbackGrant | InstallGrant:
        """Check a callback's query against the session and consume its state.

        The state is consumed before anything else can fail, so a callback can never be used twice.

        Args:
            redirect_uri: this callback's URL: used for a login recorded without one, and for installs (a
                login recorded by :meth:`remember` is exchanged with the redirect URI it was started with).
            issuer: the authorization server's issuer; a callback carrying another ``iss`` (RFC 9207) is
                refused as a mix-up attempt.
            installs: treat a callback with a code and a state this browser was never issued as a
                Gist-initiated install (an :class:`InstallGrant`) instead of refusing it.
            install_state_pattern: with ``installs``, only a state matching this regular expression (the shape
                of a Gist workspace id) may be an install; any other unknown state is refused.

        Raises:
            StateError (and its UnknownStateError and MixUpError): the state
                does not belong to a login this browser started (no token request may follow).
            MixUpError: the callback names another issuer.
            AccessDeniedError, AuthorizationError: Gist reported an error for a login we started.
            LoginError: no usable code (``code_missing``).
        """
        params = _collect(query)
        issuers = params.get("iss", [])
        if issuers and (len(issuers) > 1 or issuer is None or not _same(issuers[0], issuer)):
            raise MixUpError(issuers[0] if len(issuers) == 1 else None)
        states = params.get("state", [])
        if len(states) != 1 or not states[0] or len(states[0]) > _MAX_PARAM_LENGTH:
            # An unauthenticated error callback is reported as what it claims only when it is
            # harmless to believe it; without a state it proves nothing.
            raise StateError.missing(
                None if len(states) < 2 else "The callback carries more than one state, so it was refused."
            )
        state = states[0]
        if not _vschar(state):
            raise StateError.missing("The callback's state is malformed, so it was refused.")
        now = self.clock()
        record = self._load(session, now, drop_expired=False)
        entry = record["p"].pop(state, None)
        digest = _digest(state)
        if entry is None:
            self._save(session, self._prune(record, now))
            if digest in record["u"]:
                raise StateError.replayed()
            codes = params.get("code", [])
            with_code = (
                len(codes) == 1
                and 0 < len(codes[0]) <= _MAX_PARAM_LENGTH
                and _vschar(codes[0])
                and not params.get("error")
            )
            shaped = install_state_pattern is None or re.fullmatch(install_state_pattern, state) is not None
            if installs and with_code and redirect_uri and shaped:
                return InstallGrant(code=codes[0], redirect_uri=redirect_uri, workspace_hint=state)
            # Nothing of this registration in the session at all: most likely the session cookie did not come
            # back with the callback (SameSite=Strict, a Secure cookie over http, another host name).
            empty = not record["p"] and not record["u"]
            raise UnknownStateError(install_hint=with_code and not installs and shaped, no_session=empty)
        record["u"][digest] = round(now + self.state_ttl, 1)
        self._save(session, self._prune(record, now))
        expires_at, next_path, started_with = (*entry, None)[:3]
        if expires_at < now:
            raise StateError.expired()

        errors = params.get("error", [])
        if errors:
            descriptions = params.get("error_description")
            description = descriptions[0] if descriptions else None
            if errors[0] == "access_denied":
                raise AccessDeniedError(description)
            raise AuthorizationError(errors[0], description)

        codes = params.get("code", [])
        if len(codes) != 1 or not codes[0]:
            raise LoginError.missing_code(
                None if len(codes) < 2 else "The callback carries more than one code, so it was refused."
            )
        if len(codes[0]) > _MAX_PARAM_LENGTH:
            raise LoginError.missing_code("The callback's code is too long to be genuine.")
        if not _vschar(codes[0]):
            raise LoginError.missing_code("The callback's code is malformed (RFC 6749 codes are printable ASCII).")
        verifier = self._verifier(client_secret, state) if self.pkce else None
        exchange_uri = started_with or redirect_uri
        if not exchange_uri:
            raise StateError.missing("This login was recorded without its redirect URI, so it cannot be finished.")
        return CallbackGrant(
            code=codes[0], redirect_uri=exchange_uri, code_verifier=verifier, next_path=next_path, state=state
        )

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
                    and len(entry) in (2, 3)
                    and isinstance(entry[0], (int, float))
                    and all(item is None or isinstance(item, str) for item in entry[1:])
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


def check_token_http_response(response: Any) -> Any:
    """Authlib's compliance hook for every token answer: validate it before Authlib parses it (a typed error
    otherwise). The registered apps and the command line's token request both use it."""
    status = int(response.status_code)
    try:
        body = response.json()
        parsed = True
    except (ValueError, UnicodeDecodeError):
        body, parsed = None, False
    if not 200 <= status < 300:
        error = body.get("error") if isinstance(body, dict) else None
        description = body.get("error_description") if isinstance(body, dict) else None
        raise TokenEndpointError(
            status,
            str(error) if error is not None else None,
            str(description) if description is not None else None,
        )
    if not parsed:
        raise InvalidTokenResponseError("the answer is not JSON")
    check_token_response(body)
    return response


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
        return TokenExchangeError.unreachable("no answer within the timeout")
    if isinstance(exc, httpx2.TooManyRedirects):
        return TokenExchangeError.unreachable("too many redirects")
    if isinstance(exc, httpx2.TransportError):
        return TokenExchangeError.unreachable(type(exc).__name__)
    if isinstance(exc, OAuthError):
        status = 400
        return TokenEndpointError(status, exc.error or "oauth_error", exc.description)
    if isinstance(exc, ValueError):
        return InvalidTokenResponseError("the answer is not a JSON object")
    return InvalidTokenResponseError(type(exc).__name__)


def _size(record: Mapping[str, Any]) -> int:
    return len(json.dumps(record, separators=(",", ":")))


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

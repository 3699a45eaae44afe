"""Framework-free rules of a Gist login: state, PKCE, callback checks, safe ``next`` paths, token checks.

The login sequence (:mod:`gist_authlib._login`) and through it every framework take their decisions from
these functions, once, so that all frameworks and call paths behave alike. Nothing here does I/O.

State handling, and why it differs from Authlib's:

* a state is 256 bits from :mod:`secrets`, single use, and expires (10 minutes by default); it also carries
  when it was issued, a tag of the browser it was issued to and a MAC under a key derived from the client
  secret, so a refused callback can be told apart: forged, expired, issued to another browser, or issued to
  this one whose login cookie did not come back;
* pending logins are kept in the browser, in a signed cookie of their own per registration
  (:class:`LoginCookie`), which only the login start writes and only the callback reads: nothing else an app
  does with its session (another tab's write, a ``SameSite=Strict`` session cookie) can lose them. A login
  recorded with ``save_authorize_data`` (no response to set a cookie on) is kept in the session, as before;
* several logins may be pending at once (two tabs), up to ``max_pending`` per registration;
* the PKCE verifier is not stored anywhere: it is an HMAC of the state under the client secret, so no cookie
  (signed, not encrypted) ever carries it.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import ipaddress
import json
import re
import secrets
import time
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlencode, urlsplit

from itsdangerous import BadSignature, URLSafeSerializer

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
    "LoginCookie",
    "LoginFlow",
    "PendingJar",
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
#: The login cookie's name, after the ``__Host-`` prefix (https) and before the registration's name.
LOGIN_COOKIE_PREFIX = "gist_login_"
# A state: 32 random bytes, the issue time (5 bytes, seconds), a tag of the browser (6 bytes), a MAC (10 bytes).
_NONCE, _TIME, _TAG, _MAC = 32, 5, 6, 10
_STATE_BYTES = _NONCE + _TIME + _TAG + _MAC


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
        browser: str | None = None,
    ) -> AuthorizationRequest:
        """Issue a fresh state and build the authorization URL; nothing is recorded yet (see :meth:`remember`).

        ``browser`` is the id of the browser's login cookie (:attr:`PendingJar.browser`): a tag of it goes
        into the state, so a callback brought back by another browser is named as such.
        """
        state = self._new_state(client_secret, browser)
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
        while len(pending) > self.max_pending:  # the oldest pending logins past the count go first
            del pending[min(pending, key=lambda s: pending[s][0])]
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
        cookie: PendingJar | None = None,
    ) -> CallbackGrant | InstallGrant:
        """Check a callback's query against the browser's pending logins and consume its state.

        The state is consumed before anything else can fail, so a callback can never be used twice. Pending
        logins are looked up in the login cookie (``cookie``), then in ``session`` (logins recorded with
        ``save_authorize_data``, and the command line's).

        Args:
            redirect_uri: this callback's URL: used for a login recorded without one, and for installs (a
                login recorded by :meth:`remember` is exchanged with the redirect URI it was started with).
            issuer: the authorization server's issuer; a callback carrying another ``iss`` (RFC 9207) is
                refused as a mix-up attempt.
            installs: treat a callback with a code and a state this app never issued as a Gist-initiated
                install (an :class:`InstallGrant`) instead of refusing it.
            install_state_pattern: with ``installs``, only a state matching this regular expression (the shape
                of a Gist workspace id) may be an install; any other unknown state is refused.
            cookie: the request's login cookie, opened (:meth:`LoginCookie.open`).

        Raises:
            StateError (and its UnknownStateError and MixUpError): the state does not belong to a login this
                browser has pending; ``error_code`` names the one cause (no token request may follow).
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
        digest = _digest(state)
        holders: list[MutableMapping[str, Any]] = [cookie.session] if cookie and cookie.status == "ok" else []
        holders.append(session)
        entry, holder, record = None, session, self._load(session, now, drop_expired=False)
        for place in holders:
            found = self._load(place, now, drop_expired=False)
            entry = found["p"].pop(state, None)
            if entry is not None or digest in found["u"]:
                holder, record = place, found
                break
        if entry is None:
            used = record["u"].get(digest)
            if used is not None:  # this browser's own login, whose callback came back once more
                raise StateError.repeated(used[1], completed=used[2])
            return self._unknown(
                state, params, now, cookie, client_secret, redirect_uri, installs, install_state_pattern
            )
        expires_at, next_path, started_with = (*entry, None)[:3]
        record["u"][digest] = [round(now + self.state_ttl, 1), next_path, False]
        self._save(holder, self._prune(record, now))
        if expires_at < now:
            raise StateError.expired(next_path)

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

    def complete(self, holder: MutableMapping[str, Any], state: str) -> None:
        """Mark the consumed ``state`` in ``holder`` (a session, or a login cookie's) as a completed login: a
        repeated callback of it then sends the browser on instead of failing."""
        now = self.clock()
        record = self._load(holder, now)
        used = record["u"].get(_digest(state))
        if used is not None:
            used[2] = True
            self._save(holder, record)

    def _unknown(
        self,
        state: str,
        params: dict[str, list[str]],
        now: float,
        cookie: PendingJar | None,
        client_secret: str,
        redirect_uri: str | None,
        installs: bool,
        install_state_pattern: str | None,
    ) -> InstallGrant:
        """A state this browser has no pending login for: an install, or the one cause of the refusal."""
        issued = self._read_state(client_secret, state)
        if issued is None:  # not a state of ours: a Gist-initiated install, or forged
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
            raise UnknownStateError(install_hint=with_code and not installs and shaped)
        issued_at, tag = issued
        if issued_at + self.state_ttl < now:
            raise StateError.expired()
        if cookie is None or cookie.status == "ok":
            mine = cookie is not None and hmac.compare_digest(tag, self._tag(client_secret, cookie.browser))
            raise UnknownStateError("login_dropped" if mine else "state_other_browser")
        raise UnknownStateError("login_cookie_missing" if cookie.status == "absent" else "login_cookie_invalid")

    def pending_count(self, session: Mapping[str, Any]) -> int:
        """How many logins this browser has started and not finished (expired ones included)."""
        value = session.get(self.session_key)
        return len(value.get("p", {})) if isinstance(value, dict) else 0

    # -- internals ----------------------------------------------------------------------------------

    def _new_state(self, client_secret: str, browser: str | None) -> str:
        body = (
            secrets.token_bytes(_NONCE)
            + int(self.clock()).to_bytes(_TIME, "big")
            + (self._tag(client_secret, browser) if browser else bytes(_TAG))
        )
        mac = _mac(client_secret, "state", self.name, body)[:_MAC]
        return base64.urlsafe_b64encode(body + mac).rstrip(b"=").decode()

    def _read_state(self, client_secret: str, state: str) -> tuple[float, bytes] | None:
        """When a state of this registration was issued, and its browser tag; ``None`` for any other state."""
        if len(state) != -(-_STATE_BYTES * 4 // 3):
            return None
        try:
            raw = base64.urlsafe_b64decode(state + "=" * (-len(state) % 4))
        except ValueError:
            return None
        body, mac = raw[:-_MAC], raw[-_MAC:]
        if len(raw) != _STATE_BYTES or not hmac.compare_digest(
            mac, _mac(client_secret, "state", self.name, body)[:_MAC]
        ):
            return None
        issued_at = int.from_bytes(body[_NONCE : _NONCE + _TIME], "big")
        return float(issued_at), body[_NONCE + _TIME :]

    def _tag(self, client_secret: str, browser: str) -> bytes:
        return _mac(client_secret, "browser", self.name, browser.encode())[:_TAG]

    def _verifier(self, client_secret: str, state: str) -> str:
        message = f"gist-authlib pkce\0{self.name}\0{state}".encode()
        mac = hmac.new(client_secret.encode(), message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()

    def _load(self, session: Mapping[str, Any], now: float, *, drop_expired: bool = True) -> dict[str, dict[str, Any]]:
        value = session.get(self.session_key)
        pending: dict[str, list[Any]] = {}
        used: dict[str, list[Any]] = {}
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
            for digest, entry in (value.get("u") or {}).items():
                # [expiry, next path, completed]; a bare expiry is an older session's record.
                if isinstance(entry, (int, float)):
                    used[str(digest)] = [float(entry), None, False]
                elif (
                    isinstance(entry, list)
                    and len(entry) == 3
                    and isinstance(entry[0], (int, float))
                    and (entry[1] is None or isinstance(entry[1], str))
                    and isinstance(entry[2], bool)
                ):
                    used[str(digest)] = entry
        record: dict[str, dict[str, Any]] = {"p": pending, "u": used}
        return self._prune(record, now) if drop_expired else record

    def _prune(self, record: dict[str, dict[str, Any]], now: float) -> dict[str, dict[str, Any]]:
        # An expired login is kept for one more state_ttl: its callback is then named "expired", with its next.
        record["p"] = {s: e for s, e in record["p"].items() if e[0] + self.state_ttl >= now}
        used = {d: e for d, e in record["u"].items() if e[0] >= now}
        while len(used) > self.max_pending:
            del used[min(used, key=lambda d: used[d][0])]
        record["u"] = used
        return record

    def _save(self, session: MutableMapping[str, Any], record: dict[str, dict[str, Any]]) -> None:
        _fit(record)
        # Assign a new value every time: Django only saves a session whose keys were assigned.
        if record["p"] or record["u"]:
            session[self.session_key] = json.loads(json.dumps(record))
        else:
            session.pop(self.session_key, None)


CookieStatus = Literal["absent", "invalid", "ok"]


@dataclass(frozen=True, slots=True)
class CookieToSet:
    """A ``Set-Cookie`` to send, as the keyword arguments Starlette's, Flask's and Django's
    ``response.set_cookie`` all take."""

    key: str
    value: str
    max_age: int
    secure: bool
    path: str = "/"
    httponly: bool = True
    samesite: str = "lax"

    def kwargs(self) -> dict[str, Any]:
        """The keyword arguments of ``response.set_cookie``."""
        return {name: getattr(self, name) for name in self.__slots__}

    def __repr__(self) -> str:
        return f"CookieToSet(key={self.key!r}, max_age={self.max_age}, secure={self.secure})"


class PendingJar:
    """One request's login cookie, opened: its status, the browser's id and its pending logins.

    Attributes:
        status: ``"absent"`` (no login cookie came back), ``"invalid"`` (signed under another key, or not
            ours), or ``"ok"``.
        browser: the browser's random id (a fresh one when the cookie was absent or invalid).
        session: the pending logins, in the shape :class:`LoginFlow` keeps in a session (pass it where a
            session is asked for).
        secure: whether the login's redirect URI is https: the cookie is then named ``__Host-...`` and
            ``Secure``.
    """

    __slots__ = ("_cookie", "_key", "_original", "browser", "secure", "session", "status")

    def __init__(
        self, cookie: LoginCookie, key: str, secure: bool, status: CookieStatus, browser: str, record: Any = None
    ) -> None:
        self._cookie, self._key, self.secure = cookie, key, secure
        self.status: CookieStatus = status
        self.browser = browser
        self.session: dict[str, Any] = {cookie.flow.session_key: record} if record else {}
        self._original = json.dumps(self.session, sort_keys=True)

    @property
    def changed(self) -> bool:
        """Whether the pending logins changed since the cookie was read (the response must set it again)."""
        return json.dumps(self.session, sort_keys=True) != self._original

    def to_set(self) -> CookieToSet:
        """The cookie to send back (``Secure`` and ``__Host-`` on https): the pending logins signed, or an
        expired cookie when none is left."""
        record = self.session.get(self._cookie.flow.session_key)
        name = self._cookie.cookie_name(secure=self.secure)
        if not record:
            return CookieToSet(name, "", 0, self.secure)
        value = self._cookie.serializer(self._key).dumps({"b": self.browser, "r": record, "s": self.secure})
        return CookieToSet(name, value, self._cookie.max_age, self.secure)

    def __repr__(self) -> str:
        return f"PendingJar(status={self.status!r})"


class LoginCookie:
    """The cookie that keeps one registration's pending logins in the browser, out of the app's session.

    Written only by the login start and read only by the callback, so nothing else an app does with its
    session can lose a pending login. It is signed (HMAC-SHA256 under a key derived from the client secret),
    ``HttpOnly``, ``SameSite=Lax`` (the return from Gist is a cross-site top-level navigation), ``Secure`` and
    named with the ``__Host-`` prefix when the redirect URI is https, and lives ``2 * state_ttl`` seconds. It
    holds states, expiry times, redirect URIs and checked ``next`` paths: no secret (the PKCE verifier is
    derived from the state again at the callback). Its path is ``/``: the login start must read the logins
    other tabs have pending to keep them.

    Args:
        flow: the registration's login rules (its name, ``state_ttl`` and budget).
    """

    def __init__(self, flow: LoginFlow) -> None:
        self.flow = flow
        self.max_age = int(2 * flow.state_ttl)

    def cookie_name(self, *, secure: bool) -> str:
        """The cookie's name: ``__Host-gist_login_<name>`` on https, ``gist_login_<name>`` on http."""
        return ("__Host-" if secure else "") + LOGIN_COOKIE_PREFIX + self.flow.name

    def serializer(self, secret: str) -> URLSafeSerializer:
        """The signer of the cookie's value, under a key derived from ``secret`` (the client secret)."""
        return _serializer(secret, self.flow.name)

    def open(self, cookies: Mapping[str, str], secret: str, *, secure: bool) -> PendingJar:
        """Read the request's login cookie, checking its signature.

        ``secure`` (an https redirect URI) reads the ``__Host-`` name only: a cookie under the plain name can be
        planted from a sibling subdomain or over plain http, and must never stand for this browser's login.
        The flag is signed into the value too, so a value copied from one name to the other is refused.
        """
        return self._read(cookies.get(self.cookie_name(secure=secure)), secret, secure)

    def _read(self, raw: str | None, secret: str, secure: bool) -> PendingJar:
        fresh = secrets.token_urlsafe(12)
        if not raw:
            return PendingJar(self, secret, secure, "absent", fresh)
        try:
            value = self.serializer(secret).loads(raw)
        except BadSignature:
            return PendingJar(self, secret, secure, "invalid", fresh)
        browser = value.get("b") if isinstance(value, dict) else None
        if not isinstance(browser, str) or not 8 <= len(browser) <= 32 or value.get("s") is not secure:
            return PendingJar(self, secret, secure, "invalid", fresh)
        return PendingJar(self, secret, secure, "ok", browser, value.get("r"))


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


def _fit(record: dict[str, dict[str, Any]]) -> None:
    """Keep the whole record (pending and used logins) within :data:`PENDING_BUDGET`, whatever logins were
    forced on the browser: used logins lose their ``next`` path first (oldest first), then go (oldest first),
    then the oldest pending logins go; the newest pending login always stays."""
    pending, used = record["p"], record["u"]
    while _size(record) > PENDING_BUDGET:
        with_next = [d for d in used if used[d][1] is not None]
        if with_next:
            used[min(with_next, key=lambda d: used[d][0])][1] = None
        elif used:
            del used[min(used, key=lambda d: used[d][0])]
        elif len(pending) > 1:
            del pending[min(pending, key=lambda s: pending[s][0])]
        else:
            return


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


@functools.lru_cache(maxsize=64)
def _serializer(secret: str, name: str) -> URLSafeSerializer:
    """One signer per client secret and registration (itsdangerous derives its key again for each new one)."""
    key = _mac(secret, "login cookie", name, b"")
    return URLSafeSerializer(key, salt="gist-authlib login cookie", signer_kwargs={"digest_method": hashlib.sha256})


def _mac(secret: str, purpose: str, name: str, message: bytes) -> bytes:
    """An HMAC under a key derived from ``secret`` for one purpose of one registration."""
    key = hmac.new(secret.encode(), f"gist-authlib {purpose}\0{name}".encode(), hashlib.sha256).digest()
    return hmac.new(key, message, hashlib.sha256).digest()


def _digest(state: str) -> str:
    return hashlib.sha256(state.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def _s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()

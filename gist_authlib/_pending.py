"""Where a browser's pending logins live: the one module that knows (a signed cookie per registration).

The login start records a pending login here and the callback consumes it, through :class:`LoginCookie`'s
``load`` and ``save`` over a typed record, :class:`PendingLogins`. Nothing else an app does with its session
(another tab's write, a ``SameSite=Strict`` session cookie) can lose it. A login recorded with Authlib's
``save_authorize_data`` (there is no response to set a cookie on) is kept in the session instead, in the same
record. Moving pending logins elsewhere means changing this module only.

The cookie is signed (HMAC-SHA256 under a key derived from the client secret), ``HttpOnly``, ``SameSite=Lax``
(the return from Gist is a cross-site top-level navigation), ``Secure`` and named with the ``__Host-`` prefix
when the redirect URI is https, and lives ``2 * state_ttl`` seconds. It holds states, expiry times, redirect URIs
and checked ``next`` paths: no secret. It is read by its exact name from the raw ``Cookie`` header, never through
a framework's cookie parser (Django's would take ``\\u2000__Host-gist_login_gist``, planted from a sibling
subdomain, for the ``__Host-`` cookie).
"""

from __future__ import annotations

import functools
import hashlib
import secrets
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeGuard

from itsdangerous import BadSignature, URLSafeSerializer

from ._flow import SESSION_KEY_PREFIX, digest, mac

__all__ = ["COOKIE_BUDGET", "CookieToSet", "LoginCookie", "Pending", "PendingLogins", "Used", "cookie_value"]

#: The most characters the login cookie's value may take: browsers drop a cookie whose name, value and
#: attributes pass 4,096 bytes, so whatever logins an attacker forces on a browser, the cookie stays usable.
COOKIE_BUDGET = 3072
_PREFIX = "gist_login_"


@dataclass(slots=True)
class Pending:
    """A login this browser started and has not finished."""

    expires_at: float
    next_path: str | None
    redirect_uri: str | None


@dataclass(slots=True)
class Used:
    """A login whose callback came back (kept for ``state_ttl``, so that a repeat of it is named as such)."""

    expires_at: float
    next_path: str | None
    completed: bool = False


@dataclass(slots=True, eq=False)
class PendingLogins:
    """One browser's pending and used logins of one registration, as read from where they live.

    Attributes:
        status: ``"absent"`` (nothing came back), ``"invalid"`` (signed under another key, or not ours), ``"ok"``.
        browser: the browser's random id (a fresh one when nothing valid came back).
        secure: whether the login's redirect URI is https (the cookie is then ``__Host-`` and ``Secure``).
        pending: the pending logins, by state.
        used: the used logins, by :func:`~gist_authlib._flow.digest` of their state.
        changed: whether anything changed since they were read (the answer must save them).
    """

    status: Literal["absent", "invalid", "ok"]
    browser: str
    secure: bool = False
    pending: dict[str, Pending] = field(default_factory=dict)
    used: dict[str, Used] = field(default_factory=dict)
    changed: bool = False

    def add(self, state: str, login: Pending, max_pending: int) -> None:
        """Record a started login; past ``max_pending`` the oldest pending logins go."""
        self.pending[state] = login
        while len(self.pending) > max_pending:
            del self.pending[min(self.pending, key=lambda s: self.pending[s].expires_at)]
        self.changed = True

    def take(self, state: str, now: float, ttl: float, max_used: int) -> Pending | None:
        """Consume a pending login: it becomes a used one (the newest ``max_used`` are kept). ``None`` when this
        browser has none for ``state``."""
        login = self.pending.pop(state, None)
        if login is not None:
            self.used[digest(state)] = Used(round(now + ttl, 1), login.next_path)
            while len(self.used) > max_used:
                del self.used[min(self.used, key=lambda d: self.used[d].expires_at)]
            self.changed = True
        return login

    def complete(self, state: str) -> None:
        """Mark a consumed login completed: a repeat of its callback then sends the browser on."""
        used = self.used.get(digest(state))
        if used is not None and not used.completed:
            used.completed = self.changed = True

    def prune(self, now: float, ttl: float) -> None:
        """Forget used logins past their time, and pending ones past it by a whole ``ttl`` (until then their
        callback is named "expired", with its ``next``)."""
        pending = {s: p for s, p in self.pending.items() if p.expires_at + ttl >= now}
        used = {d: u for d, u in self.used.items() if u.expires_at >= now}
        if len(pending) != len(self.pending) or len(used) != len(self.used):
            self.pending, self.used, self.changed = pending, used, True

    def to_json(self) -> dict[str, object]:
        """The record as compact JSON-able data (lists, not objects: it travels in a cookie)."""
        return {
            "b": self.browser,
            "s": self.secure,
            "p": {s: [p.expires_at, p.next_path, p.redirect_uri] for s, p in self.pending.items()},
            "u": {d: [u.expires_at, u.next_path, u.completed] for d, u in self.used.items()},
        }

    @classmethod
    def from_json(cls, value: object, status: Literal["ok"] = "ok") -> PendingLogins | None:
        """The record :meth:`to_json` wrote, or ``None`` when ``value`` is not one (every row checked)."""
        if not isinstance(value, dict):
            return None
        browser, pending, used = value.get("b"), value.get("p"), value.get("u")
        if not (isinstance(browser, str) and 8 <= len(browser) <= 32 and isinstance(pending, dict)):
            return None
        if not isinstance(used, dict) or not isinstance(value.get("s"), bool):
            return None
        logins = cls(status, browser, value["s"])
        for state, row in pending.items():
            if _row(row, str, str):
                logins.pending[state] = Pending(float(row[0]), row[1], row[2])
        for key, row in used.items():
            if _row(row, str, bool):
                logins.used[key] = Used(float(row[0]), row[1], bool(row[2]))
        return logins


def _row(row: object, second: type, third: type) -> TypeGuard[list[Any]]:
    return (
        isinstance(row, list)
        and len(row) == 3
        and isinstance(row[0], (int, float))
        and (row[1] is None or isinstance(row[1], second))
        and (row[2] is None or isinstance(row[2], third))
    )


@dataclass(frozen=True, slots=True)
class CookieToSet:
    """A ``Set-Cookie`` to send, as the keyword arguments Starlette's, Flask's and Django's
    ``response.set_cookie`` all take."""

    key: str
    value: str = field(repr=False)
    max_age: int
    secure: bool
    path: str = "/"
    httponly: bool = True
    samesite: str = "lax"

    def kwargs(self) -> dict[str, Any]:  # str, int and bool values, as set_cookie's keywords
        """The keyword arguments of ``response.set_cookie``."""
        return {
            "key": self.key,
            "value": self.value,
            "max_age": self.max_age,
            "secure": self.secure,
            "path": self.path,
            "httponly": self.httponly,
            "samesite": self.samesite,
        }


def cookie_value(header: str | None, name: str) -> str | None:
    """The value of the first cookie named exactly ``name`` in a raw ``Cookie`` header (RFC 6265: pairs
    separated by ``;`` and spaces), or ``None``. No other character is stripped from a name."""
    if not header:
        return None
    for pair in header.split(";"):
        key, sep, value = pair.strip(" \t").partition("=")
        if sep and key.rstrip(" \t") == name:
            return value.strip(" \t").strip('"')
    return None


class LoginCookie:
    """Where one registration keeps its pending logins: a signed cookie (``load``/``save``), or, for logins
    recorded by ``save_authorize_data``, the session (``load_session``/``save_session``).

    Args:
        name: the registration's name (the cookie is ``gist_login_<name>``).
        state_ttl: seconds a started login stays valid (the cookie lives twice as long).
        max_pending: how many logins a browser may have pending at once.
        clock: the time source.
    """

    def __init__(self, name: str, *, state_ttl: float, max_pending: int, clock: Callable[[], float]) -> None:
        self.name, self.state_ttl, self.max_pending, self.clock = name, state_ttl, max_pending, clock
        self.max_age = int(2 * state_ttl)
        self.session_key = SESSION_KEY_PREFIX + name

    def cookie_name(self, *, secure: bool) -> str:
        """``__Host-gist_login_<name>`` on https, ``gist_login_<name>`` on http."""
        return ("__Host-" if secure else "") + _PREFIX + self.name

    def load(self, cookie_header: str | None, secret: str, *, secure: bool) -> PendingLogins:
        """The pending logins of the request's login cookie, its signature checked.

        ``secure`` (an https redirect URI) reads the ``__Host-`` name only: a cookie under the plain name can be
        planted from a sibling subdomain or over plain http. The flag is signed into the value too, so a value
        copied from one name to the other is refused.
        """
        fresh = PendingLogins("absent", secrets.token_urlsafe(12), secure)
        raw = cookie_value(cookie_header, self.cookie_name(secure=secure))
        if not raw:
            return fresh
        try:
            logins = PendingLogins.from_json(_signer(secret, self.name).loads(raw))
        except BadSignature:
            logins = None
        if logins is None or logins.secure is not secure:
            fresh.status = "invalid"
            return fresh
        logins.prune(self.clock(), self.state_ttl)
        logins.changed = False
        return logins

    def save(self, logins: PendingLogins, secret: str) -> CookieToSet:
        """The ``Set-Cookie`` that keeps ``logins`` (an expired cookie when none is left), within
        :data:`COOKIE_BUDGET`: used logins lose their ``next`` path, then go; then pending logins lose their
        ``next`` path, longest first; only then do pending logins go, oldest first, the newest always staying."""
        name = self.cookie_name(secure=logins.secure)
        if not logins.pending and not logins.used:
            return CookieToSet(name, "", 0, logins.secure)
        signer = _signer(secret, self.name)
        value = signer.dumps(logins.to_json())
        while len(value) > COOKIE_BUDGET and _evict(logins):
            value = signer.dumps(logins.to_json())
        return CookieToSet(name, value, self.max_age, logins.secure)

    def load_session(self, session: MutableMapping[str, object]) -> PendingLogins:
        """The logins ``save_authorize_data`` recorded in ``session`` (unsigned there: the session is)."""
        logins = PendingLogins.from_json(session.get(self.session_key)) or PendingLogins("absent", "session-kept")
        logins.prune(self.clock(), self.state_ttl)
        logins.changed = False
        return logins

    def save_session(self, logins: PendingLogins, session: MutableMapping[str, object]) -> None:
        """Keep ``logins`` in ``session`` (assigned anew: Django saves a session only when a key is set)."""
        if logins.pending or logins.used:
            session[self.session_key] = logins.to_json()
        else:
            session.pop(self.session_key, None)


def _evict(logins: PendingLogins) -> bool:
    """Make the record smaller by one step of the budget's order; False when nothing more may go."""
    used, pending = logins.used, logins.pending
    with_next = [d for d in used if used[d].next_path is not None]
    if with_next:
        used[min(with_next, key=lambda d: used[d].expires_at)].next_path = None
    elif used:
        del used[min(used, key=lambda d: used[d].expires_at)]
    elif any(p.next_path for p in pending.values()):
        max(pending.values(), key=lambda p: len(p.next_path or "")).next_path = None
    elif len(pending) > 1:
        del pending[min(pending, key=lambda s: pending[s].expires_at)]
    else:
        return False
    return True


@functools.lru_cache(maxsize=64)
def _signer(secret: str, name: str) -> URLSafeSerializer:
    """One signer per client secret and registration (itsdangerous derives its key again for each new one)."""
    key = mac(secret, "login cookie", name, b"")
    return URLSafeSerializer(key, salt="gist-authlib login cookie", signer_kwargs={"digest_method": hashlib.sha256})

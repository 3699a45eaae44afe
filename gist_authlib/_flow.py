"""Framework-free rules of a Gist login: states, PKCE, safe ``next`` paths, transports and token answers.

Pure functions of their arguments (no I/O, no clock of their own), which the login sequence
(:mod:`gist_authlib._login`) and through it every framework take their decisions from, once.

A state is 32 random bytes from :mod:`secrets`, the time it was issued, a tag of the browser it was issued to
and a MAC under a key derived from the client secret: a refused callback can then be named by its one cause
(forged, expired, issued to another browser, or to this one whose login cookie did not come back). The PKCE
verifier is an HMAC of the state under the client secret, so no cookie (signed, not encrypted) ever carries it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import secrets
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from .errors import InsecureTransportError, InvalidTokenResponseError, TokenEndpointError

__all__ = [
    "MAX_NEXT_LENGTH",
    "MAX_PARAM_LENGTH",
    "SESSION_KEY_PREFIX",
    "check_token_answer",
    "check_token_response",
    "check_transport",
    "digest",
    "is_loopback",
    "mac",
    "new_state",
    "pkce_challenge",
    "pkce_verifier",
    "read_state",
    "safe_next_path",
    "same",
    "vschar",
]

#: The prefix of every key the login keeps in an app's session (the subject, logins ``save_authorize_data`` records).
SESSION_KEY_PREFIX = "_gist_authlib:"
#: The longest state, code or ``next`` value a callback may carry.
MAX_PARAM_LENGTH = 2048
#: The longest ``next`` path kept for after a login; a longer one falls back to ``/``.
MAX_NEXT_LENGTH = 512
# A state: 32 random bytes, the issue time (5 bytes, seconds), a tag of the browser (6 bytes), a MAC (10 bytes).
_NONCE, _TIME, _TAG, _MAC = 32, 5, 6, 10
_STATE_BYTES = _NONCE + _TIME + _TAG + _MAC
_STATE_CHARS = -(-_STATE_BYTES * 4 // 3)


def mac(secret: str, purpose: str, name: str, message: bytes) -> bytes:
    """An HMAC-SHA256 under a key derived from ``secret`` for one purpose of one registration."""
    key = hmac.new(secret.encode(), f"gist-authlib {purpose}\0{name}".encode(), hashlib.sha256).digest()
    return hmac.new(key, message, hashlib.sha256).digest()


def browser_tag(secret: str, name: str, browser: str) -> bytes:
    """The tag of a browser's id that goes into the states issued to it."""
    return mac(secret, "browser", name, browser.encode())[:_TAG]


def new_state(secret: str, name: str, now: float, browser: str | None) -> str:
    """A fresh state of registration ``name``, issued at ``now`` to ``browser`` (the id of its login cookie)."""
    body = secrets.token_bytes(_NONCE) + int(now).to_bytes(_TIME, "big")
    body += browser_tag(secret, name, browser) if browser else bytes(_TAG)
    return base64.urlsafe_b64encode(body + mac(secret, "state", name, body)[:_MAC]).rstrip(b"=").decode()


def read_state(secret: str, name: str, state: str) -> tuple[float, bytes] | None:
    """When a state of registration ``name`` was issued, and its browser tag; ``None`` for any other value."""
    if len(state) != _STATE_CHARS:
        return None
    try:
        raw = base64.urlsafe_b64decode(state + "=" * (-len(state) % 4))
    except ValueError:
        return None
    body, tag = raw[:-_MAC], raw[-_MAC:]
    if len(raw) != _STATE_BYTES or not hmac.compare_digest(tag, mac(secret, "state", name, body)[:_MAC]):
        return None
    return float(int.from_bytes(body[_NONCE : _NONCE + _TIME], "big")), body[_NONCE + _TIME :]


def pkce_verifier(secret: str, name: str, state: str) -> str:
    """The PKCE verifier of a login: derived from its state, so that it needs no storage."""
    value = hmac.new(secret.encode(), f"gist-authlib pkce\0{name}\0{state}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(value).rstrip(b"=").decode()


def pkce_challenge(verifier: str) -> str:
    """The S256 challenge of a PKCE verifier (RFC 7636)."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def digest(value: str) -> str:
    """A short one-way fingerprint of a state, as the login cookie remembers a used one."""
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def same(a: str, b: str) -> bool:
    """Constant-time equality of two strings of any characters (compare_digest refuses non-ASCII str)."""
    return hmac.compare_digest(a.encode("utf-8", "surrogatepass"), b.encode("utf-8", "surrogatepass"))


def vschar(value: str) -> bool:
    """RFC 6749's VSCHAR: printable ASCII, which every genuine code and state is made of."""
    return value.isascii() and value.isprintable()


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
    if not value or len(value) > MAX_PARAM_LENGTH:
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


def check_token_response(token: object) -> dict[str, Any]:
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


def check_token_answer(status: int, body: bytes) -> dict[str, Any]:
    """The token endpoint's answer (its status and body), validated: the token, or a typed error.

    Raises:
        TokenEndpointError: the endpoint refused (any status but 2xx), with Gist's ``error`` and description.
        InvalidTokenResponseError: a 2xx answer that is not a usable token.
    """
    try:
        parsed: object = json.loads(body)
    except ValueError:
        parsed = None
    if not 200 <= status < 300:
        fields = parsed if isinstance(parsed, dict) else {}
        error, description = fields.get("error"), fields.get("error_description")
        raise TokenEndpointError(
            status, str(error) if error is not None else None, str(description) if description is not None else None
        )
    if parsed is None:
        raise InvalidTokenResponseError("the answer is not JSON")
    return check_token_response(parsed)

"""The RFC rules the sandbox applies to what a client sends: parameters, redirect URIs, PKCE challenges, error text.

Pure functions, apart from the sandbox's handlers (``_app``) so that each rule can be read, and tested, alone.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Iterable
from urllib.parse import urlsplit

__all__ = [
    "CHALLENGE_PATTERN",
    "REALM",
    "description",
    "params_once",
    "redirect_uri_matches",
    "secret_digest",
]

#: The realm the sandbox names in its ``WWW-Authenticate`` challenges.
REALM = "Gist sandbox"

#: An S256 code challenge, or any RFC 7636 (section 4.2) one: 43 to 128 unreserved characters.
CHALLENGE_PATTERN = re.compile(r"[A-Za-z0-9._~-]{43,128}")

# A netloc as a loopback redirect URI may carry it: a host (a bracketed IPv6 literal, or a name or IPv4 literal),
# then at most a port written as browsers write it (digits, no leading zero). No user information.
_NETLOC = re.compile(r"(?P<host>\[[0-9A-Fa-f:.]+\]|[^:@\[\]/]+)(?::(?P<port>[1-9][0-9]{0,4}))?")

# RFC 6749 (appendix A.7): the characters an error_description may hold. Anything else becomes "?".
_NOT_IN_DESCRIPTION = re.compile(r"[^\x20\x21\x23-\x5b\x5d-\x7e]")


def params_once(items: Iterable[tuple[str, str]]) -> tuple[dict[str, str], list[str]]:
    """The parameters of a request, and the names sent more than once, by RFC 6749 section 3.1 and 3.2.

    A parameter sent without a value counts as omitted; one sent twice (with values) is an error the caller
    answers with ``invalid_request``. The first value of a repeated parameter is kept, for the answer's sake only.
    """
    params: dict[str, str] = {}
    repeated: list[str] = []
    for key, value in items:
        if value == "":
            continue
        if key in params:
            if key not in repeated:
                repeated.append(key)
            continue
        params[key] = value
    return params, repeated


def _loopback_host(host: str) -> bool:
    """``localhost`` or a loopback IP literal (127.0.0.0/8, ``[::1]``) in the form a browser sends it."""
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host[1:-1] if host.startswith("[") else host)
    except ValueError:
        return False
    return address.is_loopback and (":" in host) == host.startswith("[") and str(address) == host.strip("[]")


def redirect_uri_matches(registered: str, received: str, *, any_loopback_port: bool = True) -> bool:
    """Whether ``received`` is the ``registered`` redirect URI.

    Exactly equal, or, when ``any_loopback_port`` and the registered URI's host is ``localhost`` or a loopback IP
    literal, equal in everything but the port (RFC 8252 section 7.3: a native app, or a development server, listens
    on whatever port it got). Scheme, host (as written), path and query must still be equal, and the port must be
    written as a browser writes it, so that the URI the app is sent back to is the one it asked for.
    """
    if received == registered:
        return True
    if not any_loopback_port or any(ch <= " " or ch == "\x7f" for ch in received):
        return False  # urlsplit drops tabs and line breaks anywhere: such a URI would compare equal to another
    try:
        want, got = urlsplit(registered), urlsplit(received)
    except ValueError:  # not a URI at all (an unclosed IPv6 bracket): it matches nothing
        return False
    want_netloc, got_netloc = _NETLOC.fullmatch(want.netloc), _NETLOC.fullmatch(got.netloc)
    if want_netloc is None or got_netloc is None or not _loopback_host(want_netloc["host"]):
        return False
    got_port = got_netloc["port"]
    return (
        got.scheme == want.scheme
        and got.scheme in ("http", "https")
        and got_netloc["host"] == want_netloc["host"]
        and (got_port is None or int(got_port) <= 65535)
        and (got.path, got.query, got.fragment) == (want.path, want.query, want.fragment)
        and "#" not in received
        # What follows the authority, as written: urlsplit cannot tell "cb?" from "cb".
        and received[len(got.scheme) + 3 + len(got.netloc) :] == registered[len(want.scheme) + 3 + len(want.netloc) :]
    )


def description(text: str) -> str:
    """``text`` as an ``error_description`` may carry it (RFC 6749: printable ASCII without ``"`` or ``\\``)."""
    return _NOT_IN_DESCRIPTION.sub("?", text)


def secret_digest(secret: str) -> str:
    """The SHA-256 hex digest of a client secret: what the sandbox keeps of a secret it no longer accepts."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()

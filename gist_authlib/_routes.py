"""What the ready-made routes of the three framework adapters share, written once and framework-free.

The default paths and their claims, the callback's login-or-install decision, the callback's headers, the
failure log line, logout and the stored token of a session: each adapter only reads its framework's request
into these and turns what they answer into its framework's response.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from ._login import LoginResult, Registration, forget_login, login_subject
from ._pages import CALLBACK_HEADERS
from .errors import ConfigurationError, GistAuthError, StateError

__all__ = [
    "CALLBACK_HEADERS",
    "Answer",
    "answer_callback",
    "bounce_target",
    "claim_paths",
    "default_paths",
    "log_failure",
    "logout_session",
    "needs_bounce",
    "registration_name",
    "repeat_target",
    "retry_url",
    "stored_token_of",
]


def registration_name(app: Any) -> str:
    """The name ``app`` was registered under, without resolving a lazy Flask proxy."""
    own = getattr(type(app), "gist_registration_name", None)
    if isinstance(own, str):
        return own
    return str(app.name)


def default_paths(
    app: Any, login_path: str | None, callback_path: str | None, *, leading_slash: bool = True
) -> tuple[str, str]:
    """The login and callback paths of ``app``'s routes (``/auth/<name>``, ``/oauth/<name>/callback`` unless
    given), claimed for it.

    Raises:
        ConfigurationError: another registration of the same Authlib registry already routes one of them.
    """
    name = registration_name(app)
    slash = "/" if leading_slash else ""
    login = login_path if login_path is not None else f"{slash}auth/{name}"
    callback = callback_path if callback_path is not None else f"{slash}oauth/{name}/callback"
    claim_paths(app, login, callback)
    return login, callback


def claim_paths(app: Any, *paths: str) -> None:
    """Claim URL paths for the routes of the registration ``app``; a path another registration claimed is an error.

    Works on Flask's lazy proxy before ``init_app`` too (it does not resolve it).

    Raises:
        ConfigurationError: two registrations of one Authlib registry would serve the same path, and the
            second would never be reached.
    """
    claims: dict[str, str] | None = getattr(type(app), "_gist_route_claims", None)
    if claims is None:
        claims = getattr(app, "_gist_route_claims", None)
    if claims is None:
        return
    name = registration_name(app)
    for path in paths:
        owner = claims.setdefault(path.strip("/"), name)
        if owner != name:
            raise ConfigurationError(
                f"The Gist registrations {owner!r} and {name!r} both route {path!r}, so the second would never be "
                "reached. Leave the paths to their defaults (they follow the registration name) or give each "
                "registration paths of its own."
            )


@dataclass(frozen=True, slots=True)
class Answer:
    """How a finished callback is answered: call ``call`` with the framework's leading arguments and
    ``args``; when it returns nothing, send the browser (303) to ``fallback``."""

    call: Callable[..., Any]
    args: tuple[Any, ...]
    fallback: str


def answer_callback(result: LoginResult, on_login: Callable[..., Any], on_install: Callable[..., Any] | None) -> Answer:
    """The login-or-install decision of a finished callback."""
    if result.install:
        assert on_install is not None and result.ack_url is not None and result.workspace_id is not None
        return Answer(on_install, (result.token, result.workspace_id), result.ack_url)
    return Answer(on_login, (result.token,), result.next_path)


def log_failure(logger: logging.Logger, name: str, error: GistAuthError) -> None:
    """The one log line of a failed login, on the adapter's logger: the RFC 6749 ``error``, the library's
    ``error_code`` and the developer's explanation (never the message, which may quote the callback)."""
    # A configuration error's message is the developer's, and quotes nothing from the callback.
    explained = error.hint or (error.message if isinstance(error, ConfigurationError) else None)
    hint = f": {explained}" if explained else ""
    logger.warning("Gist login %r failed: %s (%s)%s", name, error.error, error.error_code, hint)


def repeat_target(error: GistAuthError) -> str | None:
    """Where a repeated callback of a login this browser completed goes (its ``next`` page), else ``None``."""
    if isinstance(error, StateError) and error.error_code == "callback_repeated" and error.completed:
        return error.next_path or "/"
    return None


def retry_url(login_url: str | None, error: GistAuthError) -> str | None:
    """The error page's "Log in again" link: the login route, with the failed login's ``next`` when known."""
    next_path = getattr(error, "next_path", None)
    if login_url is None or not next_path:
        return login_url
    return f"{login_url}{'&' if '?' in login_url else '?'}{urlencode({'next': next_path})}"


def bounce_target(configured: str | None, request_url: str) -> str:
    """Where the same-site bounce of a callback goes: the request's own URL, on the configured redirect URI's
    scheme, host and path when one is set (behind a TLS proxy the app may see its own URL as ``http://``, and the
    bounce must not carry the code over plain http)."""
    if not configured:
        return request_url
    target = urlsplit(configured)
    return urlunsplit((target.scheme, target.netloc, target.path, urlsplit(request_url).query, ""))


def needs_bounce(method: str, fetch_site: str | None, session_empty: bool) -> bool:
    """Whether a callback must be opened again from this site first: it came from Gist cross-site (the
    browser says so in its ``Sec-Fetch-Site`` header, ``fetch_site``) and brought no session. A
    ``SameSite=Strict`` session cookie is not sent on a cross-site navigation, nor on the redirects that follow
    it, so without the bounce the app would overwrite that session, and the page after the login would not see
    the one it wrote. The bounce costs one same-site hop when the session is merely new (``Lax`` cookies)."""
    return method == "GET" and session_empty and fetch_site == "cross-site"


def logout_session(
    reg: Registration, session: MutableMapping[str, Any], *, forget_token: bool, flush: bool
) -> str | None:
    """Forget the session's Gist login (and, if asked, its stored token), then, unless ``flush`` is False,
    clear the whole session. Returns the subject. Blocking (a token store's database)."""
    subject = forget_login(reg, session, forget_token=forget_token)
    if flush:
        session.clear()
    return subject


def stored_token_of(reg: Registration, session: MutableMapping[str, Any]) -> Any:
    """The :class:`~gist_authlib.tokens.StoredToken` of the session's user, or ``None``. Blocking."""
    subject = login_subject(reg, session)
    if subject is None or reg.store is None:
        return None
    return reg.store.get(subject)

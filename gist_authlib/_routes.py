"""The ready-made login and callback routes, written once over the framework-neutral request and reply.

Each framework adapter mounts them (``gist_routes``, ``gist_blueprint``, ``gist_urls``): it translates its
request into a :class:`~gist_authlib._web.Request`, binds the app's callbacks to its own request, drives the
route's flow with the registered app's driver, and turns the :class:`~gist_authlib._web.Reply` back into its
response. The paths, their claims, the bounce, logout and the stored token of a session are here too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, MutableMapping
from typing import TYPE_CHECKING
from urllib.parse import urlencode, urlsplit, urlunsplit

from ._effects import Steps, UserCode
from ._login import LoginResult, Registration, SubjectSource, callback_steps, log_failure, start_login
from ._pages import CALLBACK_HEADERS, PAGE_HEADERS, bounce_page, error_page
from ._web import Reply, Request
from .errors import ConfigurationError, GistAuthError, StateError

if TYPE_CHECKING:
    from .tokens import StoredToken

__all__ = [
    "bounce_reply",
    "callback_route",
    "claim_paths",
    "default_paths",
    "error_reply",
    "login_route",
    "logout_session",
    "page_reply",
    "registration_name",
    "stored_token_of",
]

#: The app's answer to a finished login or install (bound by the adapter to its request): a native response, or
#: ``None`` for the default redirect.
Answer = Callable[..., object]


def registration_name(app: object) -> str:
    """The name ``app`` was registered under, without resolving a lazy Flask proxy."""
    own = getattr(type(app), "gist_registration_name", None)
    return own if isinstance(own, str) else str(getattr(app, "name"))  # noqa: B009  # any registered app


def default_paths(app: object, login: str | None, callback: str | None, *, slash: str = "/") -> tuple[str, str]:
    """The login and callback paths of ``app``'s routes (``/auth/<name>``, ``/oauth/<name>/callback`` unless
    given), claimed for it.

    Raises:
        ConfigurationError: another registration of the same Authlib registry already routes one of them.
    """
    name = registration_name(app)
    paths = (login or f"{slash}auth/{name}", callback or f"{slash}oauth/{name}/callback")
    claim_paths(app, *paths)
    return paths


def claim_paths(app: object, *paths: str) -> None:
    """Claim URL paths for the routes of the registration ``app`` (a Flask lazy proxy is not resolved).

    Raises:
        ConfigurationError: two registrations of one Authlib registry would serve the same path.
    """
    claims: dict[str, str] | None = getattr(type(app), "_gist_route_claims", None) or getattr(
        app, "_gist_route_claims", None
    )
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


def login_route(
    reg: Registration,
    request: Request,
    redirect_uri: str,
    *,
    on_error: Answer | None,
    login_url: Callable[[], str | None],
    default_next: str | None = None,
) -> Steps[Reply]:
    """``GET /auth/<name>``: the login start (``?next=`` kept for after the login, else ``default_next``), or its
    error page."""
    next_path = next((value for key, value in request.params if key == "next"), default_next)
    try:
        return start_login(reg, request, redirect_uri, {"next": next_path})
    except GistAuthError as error:
        return (yield from error_reply(reg, request, error, on_error, login_url))


def callback_route(
    reg: Registration,
    request: Request,
    redirect_uri: str,
    *,
    on_login: Answer,
    on_install: Answer | None,
    on_error: Answer | None,
    subject: SubjectSource,
    logged_in: Callable[[Request, LoginResult], None],
    login_url: Callable[[], str | None],
) -> Steps[Reply]:
    """``GET /oauth/<name>/callback``: finish the login (or install), then the app's answer or a 303 to ``next``
    (Gist's acknowledgement URL for an install); a failure's error page; a repeat of a completed login's
    callback goes on to its ``next`` page. ``logged_in`` is the adapter's own step after a login (a new session
    id, ``gist_next``). Every answer carries :data:`~gist_authlib._pages.CALLBACK_HEADERS`."""
    bounce = bounce_reply(reg, request)
    if bounce is not None:
        return bounce
    cookie = reg.pending_logins(request, redirect_uri)
    reply: Reply
    try:
        result = yield from callback_steps(
            reg, request, cookie, redirect_uri=redirect_uri, installs=on_install is not None, subject=subject
        )
        logged_in(request, result)
        try:  # the app's answer may refuse the login too (a GistAuthError): logged once, as the core's are
            if result.install:
                assert on_install is not None and result.ack_url is not None
                native, fallback = (yield UserCode(on_install, (result.token, result.workspace_id))), result.ack_url
            else:
                native, fallback = (yield UserCode(on_login, (result.token,))), result.next_path
        except GistAuthError as refused:
            log_failure(reg, refused)
            raise
        reply = Reply(native=native) if native is not None else Reply(303, fallback)
    except GistAuthError as error:
        done = isinstance(error, StateError) and error.error_code == "callback_repeated" and error.completed
        if done:
            reply = Reply(303, getattr(error, "next_path", None) or "/")
        else:
            reply = yield from error_reply(reg, request, error, on_error, login_url)
    if cookie.changed:
        reply.cookies.append(reg.cookie.save(cookie, reg.secret))
    reply.headers.update(CALLBACK_HEADERS)
    return reply


def error_reply(
    reg: Registration,
    request: Request,
    error: GistAuthError,
    on_error: Answer | None,
    login_url: Callable[[], str | None],
) -> Steps[Reply]:
    """A failed login's answer: the app's ``on_error``, else the error page (:func:`page_reply`). ``login_url``
    gives the login route's URL (the adapter keeps it for its ``default_on_error`` too), asked for only here."""
    url = login_url()
    if on_error is None:
        return page_reply(error, url, debug=request.debug, render=reg.error_page)
    native = yield UserCode(on_error, (error,))
    if native is None:
        raise TypeError(f"{getattr(on_error, '__name__', on_error)!r} must return a response.")
    return Reply(native=native)


def page_reply(
    error: GistAuthError, login_url: str | None, *, debug: bool, render: Callable[..., str] | None = None
) -> Reply:
    """The error page of a failed login (the registration's own renderer, else the library's): 400 for the
    user's side, 502 for Gist's, 503 for the site's; its "Log in again" link keeps the login's ``next``."""
    next_path = getattr(error, "next_path", None)
    retry = login_url
    if login_url and next_path:
        retry = f"{login_url}{'&' if '?' in login_url else '?'}{urlencode({'next': next_path})}"
    return Reply(
        error.status_code, body=(render or error_page)(error, retry_url=retry, debug=debug), headers=dict(PAGE_HEADERS)
    )


def bounce_reply(reg: Registration, request: Request) -> Reply | None:
    """The same-site bounce of a callback, or ``None`` when none is needed.

    A callback that came from Gist cross-site (the browser's ``Sec-Fetch-Site``) with no session is opened again
    from this site: a ``SameSite=Strict`` session cookie is not sent on a cross-site navigation, nor on the
    redirects that follow it, so without the bounce the app would overwrite that session. It goes to the request's
    own URL on the configured redirect URI's scheme and host (behind a TLS proxy the app may see ``http://``, and
    the code must not travel over plain http). No script: a meta refresh, which a CSP does not block.
    """
    cross_site = request.headers.get("sec-fetch-site") == "cross-site"
    if request.method != "GET" or not cross_site or not request.session_empty or request.session is None:
        return None
    target = request.url
    if reg.redirect_uri:
        own = urlsplit(reg.redirect_uri)
        target = urlunsplit((own.scheme, own.netloc, own.path, urlsplit(request.url).query, ""))
    return Reply(200, body=bounce_page(target), headers={**CALLBACK_HEADERS, **PAGE_HEADERS})


def logout_session(
    reg: Registration, session: MutableMapping[str, object], *, forget_token: bool, flush: bool
) -> str | None:
    """Forget the session's Gist login (and, if asked, its stored token), then, unless ``flush`` is False,
    clear the whole session. Returns the subject. Blocking (a token store's database)."""
    popped = session.pop(reg.subject_key, None)
    subject = popped if isinstance(popped, str) else None
    if forget_token and reg.store is not None and subject is not None:
        reg.store.delete(subject)
    if flush:
        session.clear()
    return subject


def stored_token_of(reg: Registration, session: Mapping[str, object]) -> StoredToken | None:
    """The :class:`~gist_authlib.tokens.StoredToken` of the session's user, or ``None``. Blocking."""
    subject = session.get(reg.subject_key)
    if not isinstance(subject, str) or reg.store is None:
        return None
    return reg.store.get(subject)

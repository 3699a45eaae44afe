"""Django adapter: Authlib's app methods over Django requests, and ready-made URL patterns.

Hand-written Authlib views work unchanged and get every protection::

    def login(request):
        return oauth.gist.authorize_redirect(request, request.build_absolute_uri(reverse("auth")), next="/")

    def auth(request):
        try:
            token = oauth.gist.authorize_access_token(request)
        except OAuthError as error:  # every failure is a GistAuthError and an Authlib OAuthError
            return HttpResponseBadRequest(error.description, content_type="text/plain")

:func:`gist_urls` gives the same two views with error pages, installs and a token store wired in. This module
only translates between Django and the login core (:mod:`gist_authlib._routes`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, cast

from authlib.integrations.django_client import DjangoOAuth2App
from authlib.integrations.httpx_client import OAuth2Client
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.http.response import HttpResponseBase
from django.urls import URLPattern, path, reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET

from .. import _web
from .._login import LoginResult
from .._registry import GistApp, SyncGistApp
from .._registry import register as _register
from .._routes import callback_route, default_paths, login_route, logout_session, page_reply, stored_token_of
from ..canvas._endpoint import (
    DEFAULT_MAX_BODY_BYTES,
    REPLY_HEADERS,
    CanvasHandler,
    handle_canvas_request,
    read_limit,
    read_upto,
)
from ..errors import ConfigurationError, GistAuthError
from ..provider import GistProvider
from ._store import DjangoTokenStore

__all__ = [
    "DjangoTokenStore",
    "GistBackend",
    "GistDjangoApp",
    "canvas_urls",
    "default_on_error",
    "gist_urls",
    "logout",
    "register",
    "stored_token",
]

OnLogin = Callable[[HttpRequest, dict[str, Any]], HttpResponseBase | None]
OnInstall = Callable[[HttpRequest, dict[str, Any], str], HttpResponseBase | None]
OnError = Callable[[HttpRequest, GistAuthError], HttpResponseBase]
#: Names the user a fresh login's token is stored under: ``subject(request, token)`` returns your user id.
Subject = Callable[[HttpRequest, dict[str, Any]], str | None]


class GistDjangoApp(SyncGistApp, DjangoOAuth2App):  # type: ignore[misc]  # Authlib ships no type hints
    """Authlib's Django app with every protection of a Gist login: what :func:`gist_authlib.register` returns
    for a Django ``OAuth``. After ``authorize_access_token``, ``request.gist_next`` holds the login's checked
    ``next`` path and ``request.gist_subject`` the stored subject. The login cookie cannot be rewritten there (a
    token is returned, not a response): a second use of the callback fails as ``callback_repeated`` with the
    login's ``next_path`` on the error. Its API calls go through httpx2 (Authlib's Django app defaults to
    requests)."""

    client_cls = OAuth2Client

    def gist_request(self, request: HttpRequest, params: list[tuple[str, str]] | None = None) -> _web.Request:
        """The Django request as the login reads it."""
        from django.conf import settings

        query = request.GET if request.method == "GET" else request.POST
        session = getattr(request, "session", None)
        return _web.Request(
            request.method or "GET",
            request.build_absolute_uri(),
            [(key, value) for key, values in query.lists() for value in values] if params is None else params,
            request.headers,
            session,
            session_empty=session is not None and session.is_empty(),
            client=request.META.get("REMOTE_ADDR"),
            debug=bool(settings.DEBUG),
            native=request,
        )

    def gist_response(self, reply: _web.Reply) -> HttpResponseBase:
        """The Django response of a reply."""
        response = reply.native
        if response is None:
            response = HttpResponse(reply.body, status=reply.status, content_type="text/html; charset=utf-8")
            if reply.location is not None:
                response = HttpResponseRedirect(reply.location)
                response.status_code = reply.status
        elif not isinstance(response, HttpResponseBase):
            raise TypeError(f"A Gist callback must return a Django HttpResponse or None, not {type(response)!r}.")
        for header, value in reply.headers.items():
            response[header] = value
        for cookie in reply.cookies:
            response.set_cookie(**cookie.kwargs())
        return response

    def gist_logged_in(self, request: _web.Request, result: LoginResult) -> None:
        """``request.gist_next`` and ``request.gist_subject``, and a new session id for the logged-in session, as
        ``django.contrib.auth.login()`` does: a session id planted before the login is worth nothing after it."""
        native = cast(HttpRequest, request.native)
        if not result.install:
            native.session.cycle_key()
        native.gist_next, native.gist_subject = result.next_path, result.subject

    @staticmethod
    def gist_session_of(request: Any) -> Any:
        """The session Authlib's ``fetch_token(request)`` reads the logged-in subject from."""
        return getattr(request, "session", None)

    @staticmethod
    def gist_setting_names(name: str) -> dict[str, str]:
        """The settings are ``AUTHLIB_OAUTH_CLIENTS[name][...]``."""
        keys = ("client_id", "client_secret", "redirect_uri")
        return {key: f'settings.AUTHLIB_OAUTH_CLIENTS["{name}"]["{key}"]' for key in keys}

    @staticmethod
    def gist_default_store() -> Any:
        """With ``"gist_authlib.django"`` in ``INSTALLED_APPS``, the project's database (:class:`DjangoTokenStore`)."""
        from ._store import default_store

        return default_store()


def register(oauth: Any, name: str = "gist", **options: Any) -> GistDjangoApp:
    """:func:`gist_authlib.register` for a Django ``OAuth``, typed: the same arguments, and the app as a
    :class:`GistDjangoApp`."""
    app = _register(oauth, name, **options)
    if not isinstance(app, GistDjangoApp):
        raise TypeError("gist_authlib.django.register() takes a Django OAuth registry.")
    return app


def default_on_error(request: HttpRequest, error: GistAuthError) -> HttpResponse:
    """The error page :func:`gist_urls` answers a failed login with, for an ``on_error`` that adds to it: 400 for
    the user's side, 502 for Gist's, 503 for the site's; the developer's explanation only with ``DEBUG``."""
    from django.conf import settings

    reply = page_reply(error, getattr(request, "gist_login_url", None), debug=bool(settings.DEBUG))
    return HttpResponse(reply.body, status=reply.status, headers=reply.headers, content_type="text/html; charset=utf-8")


def gist_urls(
    gist: GistApp,
    *,
    on_login: OnLogin | None = None,
    on_error: OnError | None = None,
    subject: Subject | None = None,
    login_path: str | None = None,
    callback_path: str | None = None,
    redirect_uri: str | None = None,
    on_install: OnInstall | None = None,
) -> list[URLPattern]:
    """Return the URL patterns of a Gist registration's login and callback views, to ``include()``.

    ``login_path`` is ``authorize_redirect`` (``?next=/path`` is kept for after the login); ``callback_path``
    finishes the login, then answers with ``on_login(request, token)``'s response or a 303 to the ``next`` path;
    ``request.gist_next`` holds that path and ``request.gist_subject`` the stored subject. Failures go to
    ``on_error(request, error)`` (by default :func:`default_on_error`). Needs Django's ``SessionMiddleware``; both
    views are GET-only, so ``CsrfViewMiddleware`` may stay on. The URL names are ``<name>_login`` and
    ``<name>_callback``. The arguments are those of :func:`gist_authlib.starlette.gist_routes`; paths are Django
    style, without a leading slash (``auth/<name>``, ``oauth/<name>/callback`` by default). Without ``on_login``,
    the login's Django user is logged in (:func:`gist_authlib.django.auth.login_from_gist`, which needs
    ``django.contrib.auth`` and this app in ``INSTALLED_APPS``) and sent to ``next``, else ``LOGIN_REDIRECT_URL``.

    Raises:
        ConfigurationError: another registration of the same Authlib registry already routes these paths, or
            without ``on_login``, ``django.contrib.auth`` or the ``gist_authlib.django`` app is not installed.
    """
    assert isinstance(gist, GistDjangoApp)
    logs_users_in = on_login is None
    on_login = on_login or _login_django_user()
    login_path, callback_path = default_paths(gist, login_path, callback_path, slash="")
    login_name, callback_name = f"{gist.name}_login", f"{gist.name}_callback"

    def bind(call: Callable[..., Any] | None, request: HttpRequest) -> Any:
        return functools.partial(call, request) if call is not None else None  # still seen as async when it is

    def run(request: HttpRequest, route: Any, **options: Any) -> HttpResponseBase:
        namespace = request.resolver_match.namespace if request.resolver_match else ""

        def url_of(name: str) -> str:
            return str(reverse(f"{namespace}:{name}" if namespace else name))

        def login_url() -> str:
            url = request.gist_login_url = url_of(login_name)  # read by default_on_error
            return url

        uri = redirect_uri or request.build_absolute_uri(url_of(callback_name))
        options.update(on_error=bind(on_error, request), login_url=login_url)
        return gist.gist_response(
            gist.gist_run(route(gist.gist_registration, gist.gist_request(request), uri, **options))
        )

    def login(request: HttpRequest) -> HttpResponseBase:
        from django.conf import settings
        from django.shortcuts import resolve_url  # at a request: a URL name resolves only once the URLconf is loaded

        default_next = resolve_url(settings.LOGIN_REDIRECT_URL) if logs_users_in else None
        return run(request, login_route, default_next=default_next)

    def callback(request: HttpRequest) -> HttpResponseBase:
        return run(
            request,
            callback_route,
            on_login=bind(on_login, request),
            on_install=bind(on_install, request),
            subject=bind(subject, request),
            logged_in=gist.gist_logged_in,
        )

    get_only = cast(Callable[[Callable[[HttpRequest], HttpResponseBase]], Any], require_GET)
    return [
        path(login_path, get_only(login), name=login_name),
        path(callback_path, get_only(callback), name=callback_name),
    ]


def _login_django_user() -> OnLogin:
    """The ``on_login`` of :func:`gist_urls` given none: log the login's Django user in."""
    from django.apps import apps

    if not apps.is_installed("django.contrib.auth"):
        raise ConfigurationError(
            "gist_urls() needs on_login=..., or django.contrib.auth in INSTALLED_APPS to log Django users in."
        )
    if not apps.is_installed("gist_authlib.django"):
        raise ConfigurationError(
            'gist_urls() without on_login logs Django users in through the app "gist_authlib.django": add it to '
            "INSTALLED_APPS and run python manage.py migrate, or pass on_login=..."
        )
    from .auth import login_from_gist

    return lambda request, token: login_from_gist(request, token, getattr(request, "gist_next", None))


def __getattr__(name: str) -> Any:
    # The backend's module imports django.contrib.auth's models, which exist only once the apps are loaded (this
    # package is imported while they load, as an INSTALLED_APPS entry).
    if name == "GistBackend":
        from .auth import GistBackend

        return GistBackend
    raise AttributeError(name)


def __dir__() -> list[str]:
    return sorted([*globals(), "GistBackend"])


def logout(request: HttpRequest, gist: GistApp, *, forget_token: bool = False, flush: bool = True) -> str | None:
    """Log the session's user out: forget the Gist login (and, with ``forget_token=True``, its stored token)
    and, unless ``flush=False``, flush the session (its data and its id, as Django's own ``logout()`` does).
    Returns the subject."""
    reg = gist.gist_registration
    subject = logout_session(reg, reg.session_of(gist.gist_request(request)), forget_token=forget_token, flush=False)
    if flush:
        request.session.flush()
    return subject


def stored_token(request: HttpRequest, gist: GistApp) -> Any:
    """The :class:`~gist_authlib.tokens.StoredToken` of the session's user, or ``None`` (needs a token store)."""
    reg = gist.gist_registration
    return stored_token_of(reg, reg.session_of(gist.gist_request(request)))


def canvas_urls(
    gist_or_secret: Any,
    *,
    on_initialize: CanvasHandler,
    on_submit: CanvasHandler,
    initialize_path: str = "gist/canvas/initialize",
    submit_path: str = "gist/canvas/submit",
    provider: GistProvider | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> list[URLPattern]:
    """Return the URL patterns of the ``POST`` views Gist calls, to ``include()``.

    The handlers, checks and arguments are those of :func:`gist_authlib.starlette.canvas_routes` (paths Django
    style). Both views are exempt from ``CsrfViewMiddleware``: Gist proves where a request comes from by signing
    its body, and a request not signed with the app's client secret is refused (401) before any handler runs.
    The URL names are ``<name>_canvas_initialize`` and ``<name>_canvas_submit``.
    """

    def endpoint(kind: Any, handler: CanvasHandler) -> Any:
        def answer(request: HttpRequest) -> HttpResponse:
            if request.method != "POST":
                return HttpResponseNotAllowed(["POST"])
            body = read_upto(request.read, read_limit(request.headers, max_body_bytes))
            reply = handle_canvas_request(
                body, request.headers, kind, handler, secret=gist_or_secret, provider=provider,
                max_body_bytes=max_body_bytes,
            )  # fmt: skip
            return HttpResponse(reply.body, status=reply.status, headers=dict(REPLY_HEADERS))

        return csrf_exempt(answer)

    prefix = getattr(gist_or_secret, "name", "gist") if not isinstance(gist_or_secret, str) else "gist"
    return [
        path(initialize_path, endpoint("initialize", on_initialize), name=f"{prefix}_canvas_initialize"),
        path(submit_path, endpoint("submit", on_submit), name=f"{prefix}_canvas_submit"),
    ]

"""Django adapter: Authlib's app methods read from Django requests, and ready-made URL patterns.

Hand-written Authlib views work unchanged and get every protection::

    def login(request):
        return oauth.gist.authorize_redirect(request, request.build_absolute_uri(reverse("auth")), next="/")

    def auth(request):
        try:
            token = oauth.gist.authorize_access_token(request)
        except OAuthError as error:  # every failure is a GistAuthError and an Authlib OAuthError
            return HttpResponseBadRequest(error.description, content_type="text/plain")

:func:`gist_urls` gives the same two views with error pages, installs and a token store wired in.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, cast

from authlib.integrations.django_client import DjangoOAuth2App
from authlib.integrations.httpx_client import OAuth2Client
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.http.response import HttpResponseBase
from django.urls import URLPattern, path, reverse
from django.views.decorators.csrf import csrf_exempt

from .._flow import PendingJar
from .._login import LoginResult, SubjectSource, remember
from .._pages import bounce_page, error_page
from .._registry import GistApp, SyncGistApp
from .._registry import register as _register
from .._routes import (
    CALLBACK_HEADERS,
    answer_callback,
    bounce_target,
    default_paths,
    log_failure,
    logout_session,
    needs_bounce,
    repeat_target,
    retry_url,
    stored_token_of,
)
from ..canvas._endpoint import (
    DEFAULT_MAX_BODY_BYTES,
    REPLY_HEADERS,
    CanvasHandler,
    handle_canvas_request,
    read_limit,
    read_upto,
)
from ..canvas._requests import CanvasKind
from ..errors import ConfigurationError, GistAuthError
from ..provider import GistProvider
from ._store import DjangoTokenStore, default_store

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

log = logging.getLogger("gist_authlib.django")

OnLogin = Callable[[HttpRequest, dict[str, Any]], HttpResponseBase | None]
OnInstall = Callable[[HttpRequest, dict[str, Any], str], HttpResponseBase | None]
OnError = Callable[[HttpRequest, GistAuthError], HttpResponseBase]
#: Names the user a fresh login's token is stored under: ``subject(request, token)`` returns your user id.
Subject = Callable[[HttpRequest, dict[str, Any]], str | None]


class GistDjangoApp(SyncGistApp, DjangoOAuth2App):  # type: ignore[misc]  # Authlib ships no type hints
    """Authlib's Django app with every protection of a Gist login: what :func:`gist_authlib.register` returns
    for a Django ``OAuth``.

    Its login methods read the Django request and build the response; every decision is the login core's.
    Its token requests go through httpx2, like the other frameworks' (Authlib's Django app defaults to requests).
    """

    client_cls = OAuth2Client

    def save_authorize_data(self, request: HttpRequest, **kwargs: Any) -> None:
        """Record a login started with ``create_authorization_url`` in the session (never its secrets).

        There is no response here to set the login cookie on, so such a login lives in the session, as with
        plain Authlib: prefer ``authorize_redirect``, whose pending login nothing else can overwrite.
        """
        remember(self.gist_registration, _session(request), kwargs)

    def authorize_redirect(
        self, request: HttpRequest, redirect_uri: str | None = None, *, next: str | None = None, **params: Any
    ) -> HttpResponse:
        """Send the browser to Gist: credentials and scopes checked, a fresh state kept in the registration's
        login cookie (not in the session), S256 PKCE.

        With a configured redirect URI on another host than this request's, the browser is first sent to the
        same path on that host (the login cookie must be set where the callback will arrive).

        Args:
            request: the Django request.
            redirect_uri: the callback URL (``request.build_absolute_uri(...)``); a configured one wins.
            next: where to return after the login (checked: same-origin paths only).
            **params: extra authorization parameters (``scope=`` is checked against the catalogue).
        """
        _session(request)
        start = self.gist_start(request.COOKIES, request.build_absolute_uri(), redirect_uri, {"next": next, **params})
        response = HttpResponseRedirect(start.url)
        response["Cache-Control"] = "no-store"
        if start.cookie is not None:
            response.set_cookie(**start.cookie.kwargs())
        return response

    def authorize_access_token(
        self, request: HttpRequest, *, subject: SubjectSource = None, **token_params: Any
    ) -> dict[str, Any]:
        """Check the callback (state, issuer, error, code), exchange the code and return the validated token.

        With a token store the token is stored first, under ``subject`` (a user id, or a function of the token
        returning one) or else the Gist workspace. Extra keyword arguments go to the token request. Afterwards
        ``request.gist_next`` holds the checked ``next`` path (``"/"`` by default) and ``request.gist_subject``
        the stored subject.

        The login cookie is read here but cannot be rewritten (this returns a token, not a response): its
        consumed state is recorded server-side too, so a second use of the callback fails as
        ``callback_repeated`` with the login's ``next_path`` on the error.

        Raises:
            GistAuthError: every failure, typed; each is also an Authlib ``OAuthError``.
        """
        return self.gist_callback(request, subject=subject, token_params=token_params).token

    def gist_callback(
        self,
        request: HttpRequest,
        *,
        installs: bool = False,
        subject: SubjectSource = None,
        redirect_uri: str | None = None,
        token_params: dict[str, Any] | None = None,
    ) -> LoginResult:
        """The whole callback as a :class:`~gist_authlib.LoginResult` (what :func:`gist_urls` uses).

        The opened login cookie is left in ``request.gist_login_cookie``: a view that answers sets it again
        when it ``changed`` (:func:`gist_urls` does).
        """
        params = request.GET if request.method == "GET" else request.POST
        own_url = redirect_uri or request.build_absolute_uri(request.path)
        jar = request.gist_login_cookie = self.gist_login_cookie(request.COOKIES, own_url)
        result = self.gist_finish(
            _session(request),
            [(key, value) for key, values in params.lists() for value in values],
            redirect_uri=own_url,
            installs=installs,
            subject=subject,
            token_params=token_params,
            client=request.META.get("REMOTE_ADDR"),
            forwarded_for=request.META.get("HTTP_X_FORWARDED_FOR"),
            cookie=jar,
        )
        if not result.install:
            # A new session id for the logged-in session, as django.contrib.auth.login() does: a session id an
            # attacker planted before the login (a sibling subdomain, a plain-http hop) is worth nothing after it.
            request.session.cycle_key()
        request.gist_next, request.gist_subject = result.next_path, result.subject
        return result

    def gist_bounce(self, request: HttpRequest) -> HttpResponse | None:
        """The same-site bounce of a callback, or ``None`` when none is needed: answer with it first in a
        hand-written callback view when ``SESSION_COOKIE_SAMESITE = "Strict"`` (:func:`gist_urls` does). A
        callback that came from Gist cross-site with no session is opened again from this site, and a
        ``SameSite=Strict`` session cookie comes back with it."""
        session = getattr(request, "session", None)
        fetch_site = request.headers.get("Sec-Fetch-Site")
        if session is None or not needs_bounce(request.method or "", fetch_site, session.is_empty()):
            return None
        response = HttpResponse(bounce_page(bounce_target(self.gist_redirect_uri, request.build_absolute_uri())))
        for header, value in CALLBACK_HEADERS.items():
            response[header] = value
        return response

    @staticmethod
    def gist_session_of(request: Any) -> Any:
        """The session Authlib's ``fetch_token(request)`` reads the logged-in subject from."""
        return getattr(request, "session", None)


def register(oauth: Any, name: str = "gist", **options: Any) -> GistDjangoApp:
    """:func:`gist_authlib.register` for a Django ``OAuth``, typed: the same arguments, and the app as a
    :class:`GistDjangoApp`. With ``"gist_authlib.django"`` in ``INSTALLED_APPS`` and no ``token_store`` given,
    tokens are kept in the project's database (:class:`DjangoTokenStore`)."""
    if "token_store" not in options:
        options["token_store"] = default_store()
    app = _register(oauth, name, **options)
    if not isinstance(app, GistDjangoApp):
        raise TypeError("gist_authlib.django.register() takes a Django OAuth registry.")
    return app


def default_on_error(request: HttpRequest, error: GistAuthError) -> HttpResponse:
    """Answer a failed login with a short HTML page: 400 for the user's side, 502 for Gist's side. The
    developer's explanation is on it only in debug mode (``settings.DEBUG``); it is always logged."""
    from django.conf import settings

    retry = retry_url(getattr(request, "gist_login_url", None), error)
    page = error_page(error, retry_url=retry, debug=bool(settings.DEBUG))
    return HttpResponse(page, status=error.status_code, content_type="text/html; charset=utf-8")


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
    is ``authorize_access_token``, then ``on_login(request, token)``'s answer or a 303 to the ``next`` path;
    ``request.gist_next`` holds that path and ``request.gist_subject`` the stored subject. Failures go to
    ``on_error(request, error)``. Needs Django's ``SessionMiddleware``; both views are GET-only, so
    ``CsrfViewMiddleware`` may stay on. The URL names are ``<name>_login`` and ``<name>_callback``.

    Args:
        gist: the app returned by :func:`gist_authlib.register` on a Django ``OAuth``.
        on_login: receives the request and the validated token dict, after the token was stored. Without it,
            with ``django.contrib.auth`` installed, the login's Django user is logged in
            (:func:`gist_authlib.django.auth.login_from_gist`) and sent to ``next``, else ``LOGIN_REDIRECT_URL``.
        on_error: receives the request and the error; defaults to :func:`default_on_error`.
        subject: with a token store, ``subject(request, token)`` returns the user id to store the token under.
        login_path: where the login starts (Django style, no leading slash); defaults to ``auth/<name>``.
        callback_path: the redirect URI's path; defaults to ``oauth/<name>/callback``.
        redirect_uri: a fixed, absolute redirect URI (behind a proxy); by default the registration's
            configured one, else built with ``reverse``.
        on_install: accept Gist-initiated installs (see :func:`gist_authlib.starlette.gist_routes`):
            ``on_install(request, token, workspace_id)``; returning None sends the browser to Gist's
            acknowledgement URL.

    Raises:
        ConfigurationError: another registration of the same Authlib registry already routes these paths, or
            without ``on_login``, ``django.contrib.auth`` or the ``gist_authlib.django`` app is not installed.
    """
    default_next = on_login is None
    if on_login is None:
        on_login = _login_django_user()
    login_path, callback_path = default_paths(gist, login_path, callback_path, leading_slash=False)
    name = gist.name
    login_name, callback_name = f"{name}_login", f"{name}_callback"
    handle_error: OnError = on_error or default_on_error

    def _reverse(request: HttpRequest, url_name: str) -> str:
        match = request.resolver_match
        namespace = match.namespace if match is not None else ""
        return str(reverse(f"{namespace}:{url_name}" if namespace else url_name))

    def _redirect_uri(request: HttpRequest) -> str:
        return redirect_uri or request.build_absolute_uri(_reverse(request, callback_name))

    def _fail(request: HttpRequest, error: GistAuthError) -> HttpResponseBase:
        log_failure(log, name, error)
        request.gist_login_url = _reverse(request, login_name)
        return _checked(handle_error, handle_error(request, error), optional=False)

    def login(request: HttpRequest) -> HttpResponseBase:
        try:
            next_path = request.GET.get("next")
            if default_next and not next_path:
                from django.conf import settings
                from django.shortcuts import resolve_url

                next_path = resolve_url(settings.LOGIN_REDIRECT_URL)
            response: HttpResponseBase = gist.authorize_redirect(request, _redirect_uri(request), next=next_path)
        except GistAuthError as error:
            return _fail(request, error)
        return response

    def callback(request: HttpRequest) -> HttpResponseBase:
        response: HttpResponseBase | None
        response = cast(GistDjangoApp, gist).gist_bounce(request)
        if response is not None:
            return response
        try:
            name_subject = None
            if subject is not None:
                name_subject = lambda token: subject(request, token)  # noqa: E731
            result = cast(GistDjangoApp, gist).gist_callback(
                request,
                installs=on_install is not None,
                subject=name_subject,
                redirect_uri=_redirect_uri(request),
            )
            answer = answer_callback(result, on_login, on_install)
            response = _checked(answer.call, answer.call(request, *answer.args)) or _see_other(answer.fallback)
        except GistAuthError as error:
            target = repeat_target(error)
            response = _see_other(target) if target else _fail(request, error)
        jar: PendingJar | None = getattr(request, "gist_login_cookie", None)
        if jar is not None and jar.changed:
            response.set_cookie(**jar.to_set().kwargs())
        for header, value in CALLBACK_HEADERS.items():
            response[header] = value
        return response

    return [
        path(login_path, _get_only(login), name=login_name),
        path(callback_path, _get_only(callback), name=callback_name),
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


def _checked(func: Callable[..., Any], result: Any, *, optional: bool = True) -> Any:
    """A callback's answer, which must be a Django response (or None where that is allowed)."""
    if (result is None and optional) or isinstance(result, HttpResponseBase):
        return result
    raise TypeError(f"{getattr(func, '__name__', func)!r} must return a Django HttpResponse{' or None' * optional}.")


def _see_other(url: str) -> HttpResponse:
    response = HttpResponseRedirect(url)
    response.status_code = 303
    return response


def _get_only(view: Callable[[HttpRequest], HttpResponseBase]) -> Callable[[HttpRequest], HttpResponseBase]:
    from django.views.decorators.http import require_GET

    wrapped: Callable[[HttpRequest], HttpResponseBase] = require_GET(view)
    return wrapped


def _session(request: HttpRequest) -> Any:
    if not hasattr(request, "session"):
        raise ConfigurationError.no_session(
            "The Gist login keeps its state in Django's session, but this request has none. Add "
            "'django.contrib.sessions.middleware.SessionMiddleware' to MIDDLEWARE (and a SESSION_ENGINE)."
        )
    return request.session


def logout(request: HttpRequest, gist: GistApp, *, forget_token: bool = False, flush: bool = True) -> str | None:
    """Log the session's user out: forget the Gist login (and, with ``forget_token=True``, its stored token)
    and, unless ``flush=False``, flush the session (its data and its id, as Django's own ``logout()`` does).
    Returns the subject."""
    subject = logout_session(gist.gist_registration, _session(request), forget_token=forget_token, flush=False)
    if flush:
        request.session.flush()
    return subject


def stored_token(request: HttpRequest, gist: GistApp) -> Any:
    """The :class:`~gist_authlib.tokens.StoredToken` of the session's user, or ``None`` (needs a token store)."""
    return stored_token_of(gist.gist_registration, _session(request))


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

    The handlers and checks are those of :func:`gist_authlib.starlette.canvas_routes`. Both views
    are exempt from ``CsrfViewMiddleware``: Gist proves where a request comes from by signing its body,
    and a request that is not signed with the app's client secret is refused (401) before any handler
    runs. The URL names are ``<name>_canvas_initialize`` and ``<name>_canvas_submit``.

    Args:
        gist_or_secret: the app returned by :func:`gist_authlib.register` on a Django ``OAuth``, or the
            client secret itself.
        on_initialize: answers the initialize request.
        on_submit: answers each submit request.
        initialize_path: the initialize view's path (Django style, no leading slash).
        submit_path: the submit view's path.
        provider: the signature header's name and scheme (by default the registration's provider).
        max_body_bytes: the largest body accepted.
    """

    def endpoint(kind: CanvasKind, handler: CanvasHandler) -> Any:
        def answer(request: HttpRequest) -> HttpResponse:
            if request.method != "POST":
                return HttpResponseNotAllowed(["POST"])
            body = read_upto(request.read, read_limit(request.headers, max_body_bytes))
            reply = handle_canvas_request(
                body,
                request.headers,
                kind,
                handler,
                secret=gist_or_secret,
                provider=provider,
                max_body_bytes=max_body_bytes,
            )
            return HttpResponse(reply.body, status=reply.status, headers=dict(REPLY_HEADERS))

        return csrf_exempt(answer)

    prefix = getattr(gist_or_secret, "name", "gist") if not isinstance(gist_or_secret, str) else "gist"
    return [
        path(initialize_path, endpoint("initialize", on_initialize), name=f"{prefix}_canvas_initialize"),
        path(submit_path, endpoint("submit", on_submit), name=f"{prefix}_canvas_submit"),
    ]

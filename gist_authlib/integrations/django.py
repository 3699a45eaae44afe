"""Django adapter: URL patterns for the login and callback views over :mod:`gist_authlib.flow`."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import URLPattern, path, reverse

from .._pages import CALLBACK_HEADERS, error_page
from ..client import workspace_of
from ..errors import GistAuthError, SessionNotConfiguredError
from ..flow import (
    InstallGrant,
    begin_login,
    check_callback,
    exchange_code,
    finish_install,
    forget_login,
    login_subject,
    store_login,
)

__all__ = ["OnError", "OnInstall", "OnLogin", "default_on_error", "gist_urls", "logout", "stored_token"]

log = logging.getLogger("gist_authlib.django")

OnLogin = Callable[[HttpRequest, dict[str, Any]], HttpResponse | None]
OnInstall = Callable[[HttpRequest, dict[str, Any], str], HttpResponse | None]
OnError = Callable[[HttpRequest, GistAuthError], HttpResponse]


def default_on_error(request: HttpRequest, error: GistAuthError) -> HttpResponse:
    """Answer a failed login with a short HTML page: 400 for the user's side, 502 for Gist's side."""
    retry = getattr(request, "gist_login_url", None)
    return HttpResponse(
        error_page(error, retry_url=retry), status=error.status_code, content_type="text/html; charset=utf-8"
    )


def gist_urls(
    gist: Any,
    *,
    on_login: OnLogin,
    on_error: OnError | None = None,
    login_path: str = "auth/gist",
    callback_path: str = "oauth/gist/callback",
    redirect_uri: str | None = None,
    on_install: OnInstall | None = None,
) -> list[URLPattern]:
    """Return the URL patterns of a Gist registration's login and callback views, to ``include()``.

    ``login_path`` sends the browser to Gist (``?next=/path`` is kept server-side); ``callback_path``
    checks the state, exchanges the code and returns ``on_login(request, token)``; ``request.gist_next``
    holds the checked ``next`` path (``"/"`` by default). With a token store on the registration, set
    ``request.gist_subject`` to your user id in ``on_login``: the token is stored under it (else under the
    Gist workspace id) and the session keeps only that subject. Failures go to ``on_error(request, error)`` as a
    :class:`~gist_authlib.GistAuthError`. Needs Django's ``SessionMiddleware``; both views are GET-only,
    so ``CsrfViewMiddleware`` may stay on. The URL names are ``<name>_login`` and ``<name>_callback``.

    Args:
        gist: the app returned by :func:`gist_authlib.register` on a Django ``OAuth``.
        on_login: receives the request and the validated token dict; returns an ``HttpResponse``.
        on_error: receives the request and the error; defaults to :func:`default_on_error`.
        login_path: where the login starts (Django style, no leading slash).
        callback_path: the redirect URI's path, as registered in Gist's Developer Hub.
        redirect_uri: a fixed, absolute redirect URI (behind a proxy); by default built with ``reverse``.
        on_install: accept Gist-initiated installs (see :func:`gist_authlib.starlette.gist_routes`):
            ``on_install(request, token, workspace_id)``; returning None sends the browser to Gist's
            acknowledgement URL.

    ``on_login`` may return None: the browser is then redirected (303) to the ``next`` path.
    """
    login_name, callback_name = f"{gist.name}_login", f"{gist.name}_callback"
    handle_error: OnError = on_error or default_on_error

    def _reverse(request: HttpRequest, name: str) -> str:
        match = request.resolver_match
        namespace = match.namespace if match is not None else ""
        return str(reverse(f"{namespace}:{name}" if namespace else name))

    def _redirect_uri(request: HttpRequest) -> str:
        return redirect_uri or request.build_absolute_uri(_reverse(request, callback_name))

    def _fail(request: HttpRequest, error: GistAuthError) -> HttpResponse:
        log.warning("Gist login %r failed: %s", gist.name, error.error_code)
        request.gist_login_url = _reverse(request, login_name)
        return handle_error(request, error)

    def login(request: HttpRequest) -> HttpResponse:
        try:
            authorization = begin_login(
                gist,
                _session(request),
                redirect_uri=_redirect_uri(request),
                next_path=request.GET.get("next"),
            )
        except GistAuthError as error:
            return _fail(request, error)
        response = HttpResponseRedirect(authorization.url)
        response["Cache-Control"] = "no-store"
        return response

    def install(request: HttpRequest, grant: InstallGrant) -> HttpResponse:
        token = exchange_code(gist, grant)
        workspace_id, ack_url = finish_install(gist, grant, token, workspace_of(gist, token))
        log.info("Gist install %r completed", gist.name)
        assert on_install is not None
        return on_install(request, token, workspace_id) or _see_other(ack_url)

    def callback(request: HttpRequest) -> HttpResponse:
        try:
            query = [(key, value) for key, values in request.GET.lists() for value in values]
            grant = check_callback(
                gist, _session(request), query, redirect_uri=_redirect_uri(request), installs=on_install is not None
            )
            if isinstance(grant, InstallGrant):
                response = install(request, grant)
                for header, value in CALLBACK_HEADERS.items():
                    response[header] = value
                return response
            token = exchange_code(gist, grant)
            request.gist_next = grant.next_path or "/"
            workspace = workspace_of(gist, token) if gist.gist_token_store is not None else (None, None)
            log.info("Gist login %r completed", gist.name)
            response = on_login(request, token) or _see_other(request.gist_next)
            store_login(
                gist,
                _session(request),
                token,
                subject=getattr(request, "gist_subject", None),
                workspace_id=workspace[0],
                workspace_name=workspace[1],
            )
        except GistAuthError as error:
            response = _fail(request, error)
        for header, value in CALLBACK_HEADERS.items():
            response[header] = value
        return response

    return [
        path(login_path, _get_only(login), name=login_name),
        path(callback_path, _get_only(callback), name=callback_name),
    ]


def _see_other(url: str) -> HttpResponse:
    response = HttpResponseRedirect(url)
    response.status_code = 303
    return response


def _get_only(view: Callable[[HttpRequest], HttpResponse]) -> Callable[[HttpRequest], HttpResponse]:
    from django.views.decorators.http import require_GET

    wrapped: Callable[[HttpRequest], HttpResponse] = require_GET(view)
    return wrapped


def _session(request: HttpRequest) -> Any:
    if not hasattr(request, "session"):
        raise SessionNotConfiguredError(
            "The Gist login keeps its state in Django's session, but this request has none. Add "
            "'django.contrib.sessions.middleware.SessionMiddleware' to MIDDLEWARE (and a SESSION_ENGINE)."
        )
    return request.session


def logout(request: HttpRequest, gist: Any, *, forget_token: bool = False) -> str | None:
    """Forget the session's Gist login (and, with ``forget_token=True``, its stored token); returns the subject."""
    return forget_login(gist, _session(request), forget_token=forget_token)


def stored_token(request: HttpRequest, gist: Any) -> Any:
    """The :class:`~gist_authlib.tokens.StoredToken` of the session's user, or ``None`` (needs a token store)."""
    subject = login_subject(gist, _session(request))
    store = gist.gist_token_store
    return store.get(subject) if subject is not None and store is not None else None

"""Starlette and FastAPI adapter: Authlib's app methods over Starlette requests, and the ready-made routes.

Hand-written Authlib routes work unchanged and get every protection::

    @app.route("/login")
    async def login(request):
        return await oauth.gist.authorize_redirect(request, request.url_for("auth"), next="/dashboard")

    @app.route("/auth")
    async def auth(request):
        try:
            token = await oauth.gist.authorize_access_token(request)
        except OAuthError as error:  # every failure is a GistAuthError and an Authlib OAuthError
            return PlainTextResponse(error.description, status_code=400)  # it may quote the callback

:func:`gist_routes` gives the same two routes with error pages, installs and a token store wired in. This module
only translates between Starlette and the login core (:mod:`gist_authlib._routes`).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, cast

import anyio.to_thread
from authlib.integrations.starlette_client import StarletteOAuth2App
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from . import _web
from ._login import LoginResult, SubjectSource
from ._registry import AsyncGistApp, GistApp
from ._registry import register as _register
from ._routes import callback_route, default_paths, login_route, logout_session, page_reply, stored_token_of
from .canvas._endpoint import (
    DEFAULT_MAX_BODY_BYTES,
    REPLY_HEADERS,
    CanvasHandler,
    handle_canvas_request_async,
    read_limit,
)
from .errors import GistAuthError
from .provider import GistProvider

__all__ = [
    "GistStarletteApp",
    "canvas_routes",
    "default_on_error",
    "gist_routes",
    "logout",
    "register",
    "stored_token",
]

OnLogin = Callable[[Request, dict[str, Any]], Awaitable[Response | None] | Response | None]
OnError = Callable[[Request, GistAuthError], Awaitable[Response] | Response]
OnInstall = Callable[[Request, dict[str, Any], str], Awaitable[Response | None] | Response | None]
#: Names the user a fresh login's token is stored under: ``subject(request, token)`` returns your user id.
Subject = Callable[[Request, dict[str, Any]], Awaitable[str | None] | str | None]


class GistStarletteApp(AsyncGistApp, StarletteOAuth2App):  # type: ignore[misc]  # Authlib ships no type hints
    """Authlib's Starlette app with every protection of a Gist login: what :func:`gist_authlib.register`
    returns for a Starlette ``OAuth``. After ``authorize_access_token``, ``request.state.gist_next`` holds the
    login's checked ``next`` path (``"/"`` by default) and ``request.state.gist_subject`` the stored subject.
    The login cookie cannot be rewritten there (a token is returned, not a response): a second use of the
    callback fails as ``callback_repeated`` with the login's ``next_path`` on the error."""

    if TYPE_CHECKING:  # the signatures of the login methods (gist_authlib._registry.AsyncGistApp), for editors

        async def authorize_redirect(
            self, request: Request, redirect_uri: Any = None, *, next: str | None = None, **params: Any
        ) -> Response: ...
        async def authorize_access_token(
            self, request: Request, *, subject: SubjectSource = None, **token_params: Any
        ) -> dict[str, Any]: ...

    def gist_request(self, request: Request, params: list[tuple[str, str]] | None = None) -> _web.Request:
        """The Starlette request as the login reads it."""
        scope = request.scope
        session = scope.get("session")
        return _web.Request(
            request.method,
            str(request.url),
            request.query_params.multi_items() if params is None else params,
            request.headers,
            session,
            session_empty=session is not None and not session,
            client=request.client.host if request.client else None,
            debug=bool(getattr(scope.get("app"), "debug", False)),
            native=request,
        )

    async def gist_read(self, request: Request) -> _web.Request:
        """The request, its form read when it is a ``POST`` (``response_mode=form_post``)."""
        if request.method != "POST":
            return self.gist_request(request)
        async with request.form() as form:
            return self.gist_request(request, [(k, v) for k, v in form.multi_items() if isinstance(v, str)])

    def gist_response(self, reply: _web.Reply) -> Response:
        """The Starlette response of a reply."""
        response = reply.native
        if response is None:
            response = HTMLResponse(reply.body, reply.status)
            if reply.location is not None:
                response = RedirectResponse(reply.location, reply.status)
        elif not isinstance(response, Response):
            raise TypeError(f"A Gist callback must return a Starlette Response or None, not {type(response)!r}.")
        response.headers.update(reply.headers)
        for cookie in reply.cookies:
            response.set_cookie(**cookie.kwargs())
        return response

    def gist_logged_in(self, request: _web.Request, result: LoginResult) -> None:
        """``request.state.gist_next`` and ``gist_subject``. Starlette's sessions live in the signed cookie
        itself: there is no server-side session id to rotate."""
        state = cast(Request, request.native).state
        state.gist_next, state.gist_subject = result.next_path, result.subject

    @staticmethod
    def gist_session_of(request: Any) -> Any:
        """The session Authlib's ``fetch_token(request)`` reads the logged-in subject from."""
        scope = getattr(request, "scope", None)  # request.session itself raises without SessionMiddleware
        return scope.get("session") if isinstance(scope, dict) else getattr(request, "session", None)


def register(oauth: Any, name: str = "gist", **options: Any) -> GistStarletteApp:
    """:func:`gist_authlib.register` for a Starlette ``OAuth``, typed: the same arguments, and the app as a
    :class:`GistStarletteApp` (so an editor shows its login methods' parameters)."""
    app = _register(oauth, name, **options)
    if not isinstance(app, GistStarletteApp):
        raise TypeError("gist_authlib.starlette.register() takes a Starlette OAuth registry.")
    return app


def gist_routes(
    gist: GistApp,
    *,
    on_login: OnLogin,
    on_error: OnError | None = None,
    subject: Subject | None = None,
    login_path: str | None = None,
    callback_path: str | None = None,
    redirect_uri: str | None = None,
    on_install: OnInstall | None = None,
) -> list[Route]:
    """Return the login and callback routes of a Gist registration, for Starlette or FastAPI.

    ``GET login_path`` is ``authorize_redirect`` (an optional ``?next=/path`` is kept for after the login).
    ``GET callback_path`` checks the callback, exchanges the code, stores the token (with a token store), then
    returns what ``on_login(request, token)`` returns, or a 303 to the ``next`` path when it returns None.
    Every failure goes to ``on_error(request, error)`` (by default the error page: 400 for the user's side, 502
    for Gist's, 503 for the site's; the developer's explanation only with ``Starlette(debug=True)``). Every
    callback answer carries ``Cache-Control: no-store`` and ``Referrer-Policy: no-referrer``. Callbacks may be
    plain or ``async``. Needs Starlette's ``SessionMiddleware``.

    Args:
        gist: the app returned by :func:`gist_authlib.register` on a Starlette ``OAuth``.
        on_login: receives the request and the validated token dict, after the token was stored.
        on_error: receives the request and the error; must return a response.
        subject: with a token store, ``subject(request, token)`` returns the user id to store the token under
            (else it is stored under the Gist workspace, ``workspace:<id>``).
        login_path: where the login starts; defaults to ``/auth/<registration name>``.
        callback_path: the redirect URI's path; defaults to ``/oauth/<registration name>/callback``.
        redirect_uri: a fixed, absolute redirect URI (behind a proxy); by default the registration's
            configured one, else built from the request with ``url_for``.
        on_install: accept Gist-initiated installs: a callback with a code and a state this browser was never
            issued is exchanged, its token stored under ``workspace:<id>``, and ``on_install(request, token,
            workspace_id)`` is called; when it returns None the browser goes on to Gist's acknowledgement URL.

    Raises:
        ConfigurationError: another registration of the same Authlib registry already routes these paths.
    """
    assert isinstance(gist, GistStarletteApp)
    login_path, callback_path = default_paths(gist, login_path, callback_path)
    login_name, callback_name = f"{gist.name}_login", f"{gist.name}_callback"

    def bind(call: Callable[..., Any] | None, request: Request) -> Any:
        return functools.partial(call, request) if call is not None else None  # still seen as async when it is

    async def run(request: Request, route: Any, **options: Any) -> Response:
        native = gist.gist_request(request)

        def login_url() -> str:
            url = request.scope["gist_authlib.login_url"] = str(request.url_for(login_name))
            return url

        uri = redirect_uri or str(request.url_for(callback_name))
        options.update(on_error=bind(on_error, request), login_url=login_url)
        return gist.gist_response(await gist.gist_run(route(gist.gist_registration, native, uri, **options)))

    async def login(request: Request) -> Response:
        return await run(request, login_route)

    async def callback(request: Request) -> Response:
        return await run(
            request,
            callback_route,
            on_login=bind(on_login, request),
            on_install=bind(on_install, request),
            subject=bind(subject, request),
            logged_in=gist.gist_logged_in,
        )

    return [
        Route(login_path, login, methods=["GET"], name=login_name),
        Route(callback_path, callback, methods=["GET"], name=callback_name),
    ]


def default_on_error(request: Request, error: GistAuthError) -> Response:
    """The error page :func:`gist_routes` answers a failed login with, for an ``on_error`` that adds to it: 400 for
    the user's side, 502 for Gist's, 503 for the site's; the developer's explanation only in debug mode."""
    debug = bool(getattr(request.scope.get("app"), "debug", False))
    reply = page_reply(error, request.scope.get("gist_authlib.login_url"), debug=debug)
    return HTMLResponse(reply.body, reply.status, headers=reply.headers)


async def logout(request: Request, gist: GistApp, *, forget_token: bool = False, flush: bool = True) -> str | None:
    """Log the session's user out: forget the Gist login (and, with ``forget_token=True``, its stored token)
    and, unless ``flush=False``, clear the whole session. Returns the subject."""
    reg = gist.gist_registration
    session = reg.session_of(gist.gist_request(request))
    return await anyio.to_thread.run_sync(lambda: logout_session(reg, session, forget_token=forget_token, flush=flush))


async def stored_token(request: Request, gist: GistApp) -> Any:
    """The :class:`~gist_authlib.tokens.StoredToken` of the session's user, or ``None`` (needs a token store)."""
    reg = gist.gist_registration
    return await anyio.to_thread.run_sync(stored_token_of, reg, reg.session_of(gist.gist_request(request)))


def canvas_routes(
    gist_or_secret: Any,
    *,
    on_initialize: CanvasHandler,
    on_submit: CanvasHandler,
    initialize_path: str = "/gist/canvas/initialize",
    submit_path: str = "/gist/canvas/submit",
    provider: GistProvider | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> list[Route]:
    """Return the ``POST`` routes Gist calls: enter their URLs in the app's settings in Gist's Developer Hub.

    ``on_initialize(request)`` receives an :class:`~gist_authlib.canvas.InitializeRequest` and
    ``on_submit(request)`` a :class:`~gist_authlib.canvas.SubmitRequest`; each returns a
    :class:`~gist_authlib.canvas.Canvas`, and may be ``async`` (a plain one runs in a worker thread). Every
    request is checked first (see :func:`~gist_authlib.canvas.handle_canvas_request`): 413, 401 or 400
    before the handler, and a safe error canvas, never a 500, when the handler fails.

    Args:
        gist_or_secret: the app returned by :func:`gist_authlib.register` (its client secret and provider are
            used), or the client secret itself.
        on_initialize: answers the initialize request.
        on_submit: answers each submit request.
        initialize_path: the initialize route's path.
        submit_path: the submit route's path.
        provider: the signature header's name and scheme (by default the registration's provider).
        max_body_bytes: the largest body accepted.
    """

    def endpoint(kind: Any, handler: CanvasHandler) -> Any:
        async def answer(request: Request) -> Response:
            limit, body = read_limit(request.headers, max_body_bytes), bytearray()
            try:
                async for chunk in request.stream():
                    body += chunk
                    if len(body) >= limit:
                        break
            except ClientDisconnect:  # Gist hung up mid-body: nobody to answer, nothing to log
                return Response(status_code=400)
            reply = await handle_canvas_request_async(
                bytes(body), request.headers, kind, handler, secret=gist_or_secret, provider=provider,
                max_body_bytes=max_body_bytes,
            )  # fmt: skip
            return Response(reply.body, status_code=reply.status, headers=dict(REPLY_HEADERS))

        return answer

    prefix = getattr(gist_or_secret, "name", "gist") if not isinstance(gist_or_secret, str) else "gist"
    return [
        Route(
            initialize_path, endpoint("initialize", on_initialize), methods=["POST"], name=f"{prefix}_canvas_initialize"
        ),
        Route(submit_path, endpoint("submit", on_submit), methods=["POST"], name=f"{prefix}_canvas_submit"),
    ]

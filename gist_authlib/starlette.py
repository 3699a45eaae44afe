"""Starlette and FastAPI adapter: Authlib's app methods read from Starlette requests, and ready-made routes.

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

:func:`gist_routes` gives the same two routes with error pages, installs and a token store wired in.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any, cast

import anyio.to_thread
from authlib.integrations.starlette_client import StarletteOAuth2App
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from ._flow import PendingJar
from ._login import LoginResult, SubjectSource, remember
from ._pages import bounce_page, error_page
from ._registry import AsyncGistApp, GistApp
from ._registry import register as _register
from ._routes import (
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
from .canvas._endpoint import (
    DEFAULT_MAX_BODY_BYTES,
    REPLY_HEADERS,
    CanvasHandler,
    handle_canvas_request_async,
    read_limit,
)
from .canvas._requests import CanvasKind
from .errors import ConfigurationError, GistAuthError
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

log = logging.getLogger("gist_authlib.starlette")

OnLogin = Callable[[Request, dict[str, Any]], Awaitable[Response | None] | Response | None]
OnError = Callable[[Request, GistAuthError], Awaitable[Response] | Response]
OnInstall = Callable[[Request, dict[str, Any], str], Awaitable[Response | None] | Response | None]
#: Names the user a fresh login's token is stored under: ``subject(request, token)`` returns your user id.
Subject = Callable[[Request, dict[str, Any]], Awaitable[str | None] | str | None]


class GistStarletteApp(AsyncGistApp, StarletteOAuth2App):  # type: ignore[misc]  # Authlib ships no type hints
    """Authlib's Starlette app with every protection of a Gist login: what :func:`gist_authlib.register`
    returns for a Starlette ``OAuth``.

    Its login methods read the Starlette request and build the response; every decision is the login core's.
    """

    async def save_authorize_data(self, request: Request, **kwargs: Any) -> None:
        """Record a login started with ``create_authorization_url`` in the session (never its secrets).

        There is no response here to set the login cookie on, so such a login lives in the session, as with
        plain Authlib: prefer ``authorize_redirect``, whose pending login nothing else can overwrite.
        """
        remember(self.gist_registration, _session(request), kwargs)

    async def authorize_redirect(
        self, request: Request, redirect_uri: Any = None, *, next: str | None = None, **params: Any
    ) -> RedirectResponse:
        """Send the browser to Gist: credentials and scopes checked, a fresh state kept in the registration's
        login cookie (not in the session), S256 PKCE.

        With a configured redirect URI on another host than this request's, the browser is first sent to the
        same path on that host (the login cookie must be set where the callback will arrive).

        Args:
            request: the Starlette request.
            redirect_uri: the callback URL (``request.url_for(...)``); a configured redirect URI wins.
            next: where to return after the login (checked: same-origin paths only).
            **params: extra authorization parameters (``scope=`` is checked against the catalogue).
        """
        _session(request)
        uri = str(redirect_uri) if redirect_uri else None
        start = self.gist_start(request.cookies, str(request.url), uri, {"next": next, **params})
        response = RedirectResponse(start.url, status_code=302, headers={"Cache-Control": "no-store"})
        if start.cookie is not None:
            response.set_cookie(**start.cookie.kwargs())
        return response

    async def authorize_access_token(
        self, request: Request, *, subject: SubjectSource = None, **token_params: Any
    ) -> dict[str, Any]:
        """Check the callback (state, issuer, error, code), exchange the code and return the validated token.

        With a token store on the registration the token is stored first, under ``subject`` (a user id, or a
        function of the token returning one) or else the Gist workspace. Extra keyword arguments go to the
        token request. Afterwards ``request.state.gist_next`` holds the checked ``next`` path of the login
        (``"/"`` when none was given) and ``request.state.gist_subject`` the stored subject.

        The login cookie is read here but cannot be rewritten (this returns a token, not a response): its
        consumed state is recorded server-side too, so a second use of the callback fails as
        ``callback_repeated`` with the login's ``next_path`` on the error.

        Raises:
            GistAuthError: every failure, typed; each is also an Authlib ``OAuthError``.
        """
        result = await self.gist_callback(request, subject=subject, token_params=token_params)
        return result.token

    async def gist_callback(
        self,
        request: Request,
        *,
        installs: bool = False,
        subject: SubjectSource = None,
        redirect_uri: str | None = None,
        token_params: dict[str, Any] | None = None,
    ) -> LoginResult:
        """The whole callback as a :class:`~gist_authlib.LoginResult` (what :func:`gist_routes` uses).

        The opened login cookie is left in ``request.state.gist_login_cookie``: a route that answers sets it
        again when it ``changed`` (:func:`gist_routes` does).
        """
        session = _session(request)
        own_url = redirect_uri or str(request.url.replace(query=""))
        jar = request.state.gist_login_cookie = self.gist_login_cookie(request.cookies, own_url)
        if request.method == "POST":  # response_mode=form_post
            async with request.form() as form:
                params = [(key, value) for key, value in form.multi_items() if isinstance(value, str)]
        else:
            params = request.query_params.multi_items()
        result = await self.gist_finish(
            session,
            params,
            redirect_uri=own_url,
            installs=installs,
            subject=subject,
            token_params=token_params,
            client=request.client.host if request.client else None,
            forwarded_for=", ".join(request.headers.getlist("x-forwarded-for")) or None,
            cookie=jar,
        )
        # Starlette's sessions live in the signed cookie itself: there is no server-side session id to fix in
        # place, so nothing to rotate (a server-side session store must rotate its id here).
        request.state.gist_next, request.state.gist_subject = result.next_path, result.subject
        return result

    async def gist_bounce(self, request: Request) -> Response | None:
        """The same-site bounce of a callback, or ``None`` when none is needed: answer with it first in a
        hand-written callback route when the app's session cookie is ``SameSite=Strict`` (:func:`gist_routes`
        does). A callback that came from Gist cross-site with no session is opened again from this site, and a
        ``SameSite=Strict`` session cookie comes back with it."""
        session_empty = not request.scope.get("session", True)
        if not needs_bounce(request.method, request.headers.get("sec-fetch-site"), session_empty):
            return None
        return HTMLResponse(
            bounce_page(bounce_target(self.gist_redirect_uri, str(request.url))), headers=CALLBACK_HEADERS
        )

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


def default_on_error(request: Request, error: GistAuthError) -> Response:
    """Answer a failed login with a short HTML page: 400 for the user's side, 502 for Gist's side. The
    developer's explanation is on it only in debug mode (``Starlette(debug=True)``); it is always logged."""
    login_name = request.scope.get("gist_authlib.login_route")
    retry = retry_url(str(request.url_for(login_name)) if login_name else None, error)
    debug = bool(getattr(request.scope.get("app"), "debug", False))
    return HTMLResponse(error_page(error, retry_url=retry, debug=debug), status_code=error.status_code)


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
    ``GET callback_path`` is ``authorize_access_token``: it checks the callback, exchanges the code, stores the
    token (with a token store), then returns what ``on_login(request, token)`` returns, or a 303 to the
    ``next`` path when it returns None. ``request.state.gist_next`` holds that path and
    ``request.state.gist_subject`` the stored subject. Every failure goes to ``on_error(request, error)``;
    every callback answer carries ``Cache-Control: no-store`` and ``Referrer-Policy: no-referrer``. All
    callbacks may be plain or ``async`` functions.

    Args:
        gist: the app returned by :func:`gist_authlib.register` on a Starlette ``OAuth``.
        on_login: receives the request and the validated token dict, after the token was stored.
        on_error: receives the request and the error; defaults to :func:`default_on_error`.
        subject: with a token store, ``subject(request, token)`` returns the user id to store the token
            under (else it is stored under the Gist workspace, ``workspace:<id>``).
        login_path: where the login starts; defaults to ``/auth/<registration name>``.
        callback_path: the redirect URI's path, as registered in Gist's Developer Hub; defaults to
            ``/oauth/<registration name>/callback``.
        redirect_uri: a fixed, absolute redirect URI (behind a proxy); by default the registration's
            configured one, else built from the request with ``url_for``.
        on_install: accept Gist-initiated installs: a callback with a code and a state this browser was
            never issued (Gist sends the workspace id) is exchanged, its token stored under
            ``workspace:<id>`` (never attached to the session's user), and ``on_install(request, token,
            workspace_id)`` is called; when it returns None the browser goes on to Gist's acknowledgement URL.

    Raises:
        ConfigurationError: another registration of the same Authlib registry already routes these paths.

    Requires Starlette's ``SessionMiddleware``; without it every request fails with a
    :class:`~gist_authlib.errors.ConfigurationError` that says how to add it.
    """
    login_path, callback_path = default_paths(gist, login_path, callback_path)
    name = gist.name
    login_name, callback_name = f"{name}_login", f"{name}_callback"
    handle_error: OnError = on_error or default_on_error

    async def _fail(request: Request, error: GistAuthError) -> Response:
        log_failure(log, name, error)
        request.scope["gist_authlib.login_route"] = login_name
        return await _call(handle_error, request, error)

    async def login(request: Request) -> Response:
        try:
            response: Response = await gist.authorize_redirect(
                request, redirect_uri or request.url_for(callback_name), next=request.query_params.get("next")
            )
        except GistAuthError as error:
            return await _fail(request, error)
        return response

    async def callback(request: Request) -> Response:
        bounce = await cast(GistStarletteApp, gist).gist_bounce(request)
        if bounce is not None:
            return bounce
        try:
            name_subject = None
            if subject is not None:
                name_subject = lambda token: subject(request, token)  # noqa: E731
            result = await cast(GistStarletteApp, gist).gist_callback(
                request,
                installs=on_install is not None,
                subject=name_subject,
                redirect_uri=redirect_uri or str(request.url_for(callback_name)),
            )
            answer = answer_callback(result, on_login, on_install)
            returned = await _call_optional(answer.call, request, *answer.args)
            response = returned or RedirectResponse(answer.fallback, status_code=303)
        except GistAuthError as error:
            target = repeat_target(error)
            response = RedirectResponse(target, status_code=303) if target else await _fail(request, error)
        jar: PendingJar | None = getattr(request.state, "gist_login_cookie", None)
        if jar is not None and jar.changed:
            response.set_cookie(**jar.to_set().kwargs())
        response.headers.update(CALLBACK_HEADERS)
        return response

    return [
        Route(login_path, login, methods=["GET"], name=login_name),
        Route(callback_path, callback, methods=["GET"], name=callback_name),
    ]


def _session(request: Request) -> dict[str, Any]:
    if "session" not in request.scope:
        raise ConfigurationError.no_session(
            "The Gist login keeps its state in the session, but this app has no session. Add "
            "starlette.middleware.sessions.SessionMiddleware (secret_key=..., https_only=True in production) "
            "to the app's middleware."
        )
    session: dict[str, Any] = request.session
    return session


async def _call_optional(func: Callable[..., Any], *args: Any) -> Response | None:
    """Call a plain or async callback that may return a Response or None."""
    result = func(*args)
    if inspect.isawaitable(result):
        result = await result
    if result is not None and not isinstance(result, Response):
        raise TypeError(f"{getattr(func, '__name__', func)!r} must return a Starlette Response or None.")
    return result


async def _call(func: Callable[..., Any], *args: Any) -> Response:
    """Call a callback that must return a Response (``on_error``)."""
    result = await _call_optional(func, *args)
    if result is None:
        raise TypeError(f"{getattr(func, '__name__', func)!r} must return a Starlette Response.")
    return result


async def logout(
    request: Request, gist: GistStarletteApp, *, forget_token: bool = False, flush: bool = True
) -> str | None:
    """Log the session's user out: forget the Gist login (and, with ``forget_token=True``, its stored token)
    and, unless ``flush=False``, clear the whole session. Returns the subject."""
    session, reg = _session(request), gist.gist_registration
    return await anyio.to_thread.run_sync(lambda: logout_session(reg, session, forget_token=forget_token, flush=flush))


async def stored_token(request: Request, gist: GistApp) -> Any:
    """The :class:`~gist_authlib.tokens.StoredToken` of the session's user, or ``None`` (needs a token store)."""
    session, reg = _session(request), gist.gist_registration
    return await anyio.to_thread.run_sync(stored_token_of, reg, session)


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
        gist_or_secret: the app returned by :func:`gist_authlib.register` (its client secret and
            provider are used), or the client secret itself.
        on_initialize: answers the initialize request.
        on_submit: answers each submit request.
        initialize_path: the initialize route's path.
        submit_path: the submit route's path.
        provider: the signature header's name and scheme (by default the registration's provider).
        max_body_bytes: the largest body accepted.
    """

    def endpoint(kind: CanvasKind, handler: CanvasHandler) -> Any:
        async def answer(request: Request) -> Response:
            limit = read_limit(request.headers, max_body_bytes)
            body = bytearray()
            try:
                if limit:
                    async for chunk in request.stream():
                        body += chunk
                        if len(body) >= limit:
                            break
            except ClientDisconnect:  # Gist hung up mid-body: nobody to answer, nothing to log
                return Response(status_code=400)
            reply = await handle_canvas_request_async(
                bytes(body),
                request.headers,
                kind,
                handler,
                secret=gist_or_secret,
                provider=provider,
                max_body_bytes=max_body_bytes,
            )
            return Response(reply.body, status_code=reply.status, headers=dict(REPLY_HEADERS))

        return answer

    prefix = getattr(gist_or_secret, "name", "gist") if not isinstance(gist_or_secret, str) else "gist"
    initialize = endpoint("initialize", on_initialize)
    return [
        Route(initialize_path, initialize, methods=["POST"], name=f"{prefix}_canvas_initialize"),
        Route(submit_path, endpoint("submit", on_submit), methods=["POST"], name=f"{prefix}_canvas_submit"),
    ]

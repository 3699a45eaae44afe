"""Starlette and FastAPI adapter: a login route and a callback route over :mod:`gist_authlib.flow`."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from .._pages import CALLBACK_HEADERS, error_page
from ..client import workspace_of_async
from ..errors import GistAuthError, SessionNotConfiguredError
from ..flow import (
    InstallGrant,
    begin_login,
    check_callback,
    exchange_code_async,
    finish_install,
    forget_login,
    login_subject,
    store_login,
)

__all__ = ["OnError", "OnInstall", "OnLogin", "default_on_error", "gist_routes", "logout", "stored_token"]

log = logging.getLogger("gist_authlib.starlette")

OnLogin = Callable[[Request, dict[str, Any]], Awaitable[Response | None] | Response | None]
OnError = Callable[[Request, GistAuthError], Awaitable[Response] | Response]
OnInstall = Callable[[Request, dict[str, Any], str], Awaitable[Response | None] | Response | None]


def default_on_error(request: Request, error: GistAuthError) -> Response:
    """Answer a failed login with a short HTML page: 400 for the user's side, 502 for Gist's side."""
    login_name = request.scope.get("gist_authlib.login_route")
    retry = str(request.url_for(login_name)) if login_name else None
    return HTMLResponse(error_page(error, retry_url=retry), status_code=error.status_code)


def gist_routes(
    gist: Any,
    *,
    on_login: OnLogin,
    on_error: OnError | None = None,
    login_path: str = "/auth/gist",
    callback_path: str = "/oauth/gist/callback",
    redirect_uri: str | None = None,
    on_install: OnInstall | None = None,
) -> list[Route]:
    """Return the login and callback routes of a Gist registration, for Starlette or FastAPI.

    ``GET login_path`` sends the browser to Gist with a fresh state (an optional ``?next=/path`` is kept
    server-side for after the login). ``GET callback_path`` checks the state, exchanges the code and
    returns whatever ``on_login(request, token)`` returns; ``request.state.gist_next`` holds the checked
    ``next`` path (``"/"`` when none was given). With a token store on the registration, set
    ``request.state.gist_subject`` in ``on_login`` to your user id: the token is then stored under it (else
    under the Gist workspace id) and the session keeps only that subject. Every failure goes to
    ``on_error(request, error)`` as a :class:`~gist_authlib.GistAuthError`; both callbacks may be plain or
    ``async`` functions. Every callback answer carries ``Cache-Control: no-store`` and ``Referrer-Policy: no-referrer``.

    Args:
        gist: the app returned by :func:`gist_authlib.register` on a Starlette ``OAuth``.
        on_login: receives the request and the validated token dict.
        on_error: receives the request and the error; defaults to :func:`default_on_error`.
        login_path: where the login starts.
        callback_path: the redirect URI's path, as registered in Gist's Developer Hub.
        redirect_uri: a fixed, absolute redirect URI (behind a proxy); by default it is built from the
            request with ``url_for``.
        on_install: accept Gist-initiated installs: a callback with a code and a state this browser was
            never issued (Gist sends the workspace id) is exchanged, its token stored under
            ``workspace:<id>`` (never attached to the session's user), and ``on_install(request, token,
            workspace_id)`` is called; when it returns None the browser goes on to Gist's acknowledgement URL.

    ``on_login`` may return None: the browser is then redirected (303) to the ``next`` path, a clean URL.

    Requires Starlette's ``SessionMiddleware``; without it every request fails with a
    :class:`~gist_authlib.SessionNotConfiguredError` that says how to add it.
    """
    login_name = f"{gist.name}_login"
    callback_name = f"{gist.name}_callback"
    handle_error: OnError = on_error or default_on_error

    def _redirect_uri(request: Request) -> str:
        return redirect_uri or str(request.url_for(callback_name))

    async def _fail(request: Request, error: GistAuthError) -> Response:
        log.warning("Gist login %r failed: %s", gist.name, error.error_code)
        request.scope["gist_authlib.login_route"] = login_name
        return await _call(handle_error, request, error)

    async def login(request: Request) -> Response:
        try:
            authorization = begin_login(
                gist,
                _session(request),
                redirect_uri=_redirect_uri(request),
                next_path=request.query_params.get("next"),
            )
        except GistAuthError as error:
            return await _fail(request, error)
        return RedirectResponse(authorization.url, status_code=302, headers={"Cache-Control": "no-store"})

    async def install(request: Request, grant: InstallGrant) -> Response:
        token = await exchange_code_async(gist, grant)
        workspace = await workspace_of_async(gist, token)
        workspace_id, ack_url = await anyio.to_thread.run_sync(finish_install, gist, grant, token, workspace)
        log.info("Gist install %r completed", gist.name)
        assert on_install is not None
        response = await _call_optional(on_install, request, token, workspace_id)
        return response or RedirectResponse(ack_url, status_code=303)

    async def callback(request: Request) -> Response:
        try:
            grant = check_callback(
                gist,
                _session(request),
                request.query_params.multi_items(),
                redirect_uri=_redirect_uri(request),
                installs=on_install is not None,
            )
            if isinstance(grant, InstallGrant):
                response = await install(request, grant)
                response.headers.update(CALLBACK_HEADERS)
                return response
            token = await exchange_code_async(gist, grant)
            request.state.gist_next = grant.next_path or "/"
            workspace = await workspace_of_async(gist, token) if gist.gist_token_store is not None else (None, None)
            log.info("Gist login %r completed", gist.name)
            response = await _call_optional(on_login, request, token) or RedirectResponse(
                request.state.gist_next, status_code=303
            )
            if gist.gist_token_store is not None:
                subject = getattr(request.state, "gist_subject", None)
                session = _session(request)
                await anyio.to_thread.run_sync(
                    lambda: store_login(
                        gist, session, token, subject=subject, workspace_id=workspace[0], workspace_name=workspace[1]
                    )
                )
        except GistAuthError as error:
            response = await _fail(request, error)
        response.headers.update(CALLBACK_HEADERS)
        return response

    return [
        Route(login_path, login, methods=["GET"], name=login_name),
        Route(callback_path, callback, methods=["GET"], name=callback_name),
    ]


def _session(request: Request) -> dict[str, Any]:
    if "session" not in request.scope:
        raise SessionNotConfiguredError(
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


async def logout(request: Request, gist: Any, *, forget_token: bool = False) -> str | None:
    """Forget the session's Gist login (and, with ``forget_token=True``, its stored token); returns the subject."""
    session = _session(request)
    return await anyio.to_thread.run_sync(lambda: forget_login(gist, session, forget_token=forget_token))


async def stored_token(request: Request, gist: Any) -> Any:
    """The :class:`~gist_authlib.tokens.StoredToken` of the session's user, or ``None`` (needs a token store)."""
    subject = login_subject(gist, _session(request))
    store = gist.gist_token_store
    if subject is None or store is None:
        return None
    return await anyio.to_thread.run_sync(store.get, subject)

"""Flask adapter: a Blueprint with the login and callback routes over :mod:`gist_authlib.flow`."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, current_app, g, make_response, redirect, request, session, url_for
from flask.typing import ResponseReturnValue

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
from ..registry import registration_name

__all__ = ["OnError", "OnInstall", "OnLogin", "default_on_error", "gist_blueprint", "logout", "stored_token"]

log = logging.getLogger("gist_authlib.flask")

OnLogin = Callable[[dict[str, Any]], ResponseReturnValue | None]
OnInstall = Callable[[dict[str, Any], str], ResponseReturnValue | None]
OnError = Callable[[GistAuthError], ResponseReturnValue]


def default_on_error(error: GistAuthError) -> ResponseReturnValue:
    """Answer a failed login with a short HTML page: 400 for the user's side, 502 for Gist's side."""
    retry = g.get("gist_login_url")
    return error_page(error, retry_url=retry), error.status_code, {"Content-Type": "text/html; charset=utf-8"}


def gist_blueprint(
    gist: Any,
    *,
    on_login: OnLogin,
    on_error: OnError | None = None,
    login_path: str = "/auth/gist",
    callback_path: str = "/oauth/gist/callback",
    redirect_uri: str | None = None,
    name: str | None = None,
    on_install: OnInstall | None = None,
) -> Blueprint:
    """Return a Blueprint with the login and callback routes of a Gist registration.

    Works with ``OAuth(app)`` and with the ``init_app`` factory pattern (``gist`` may be Authlib's lazy
    proxy). ``GET login_path`` sends the browser to Gist (``?next=/path`` is kept server-side);
    ``GET callback_path`` checks the state, exchanges the code and returns ``on_login(token)``, as a Flask
    view would; ``g.gist_next`` holds the checked ``next`` path (``"/"`` by default). With a token store on
    the registration, set ``g.gist_subject`` to your user id in ``on_login``: the token is stored under it
    (else under the Gist workspace id) and the session keeps only that subject. Failures go to
    ``on_error(error)`` as a :class:`~gist_authlib.GistAuthError`. The app needs a ``secret_key`` (the
    login state lives in Flask's session).

    Args:
        gist: the app returned by :func:`gist_authlib.register` on a Flask ``OAuth``.
        on_login: receives the validated token dict; returns a response.
        on_error: receives the error; defaults to :func:`default_on_error`.
        login_path: where the login starts.
        callback_path: the redirect URI's path, as registered in Gist's Developer Hub.
        redirect_uri: a fixed, absolute redirect URI (behind a proxy); by default built with ``url_for``.
        name: the blueprint's name; defaults to ``"<registration name>_auth"``.
        on_install: accept Gist-initiated installs (see :func:`gist_authlib.starlette.gist_routes`):
            ``on_install(token, workspace_id)``; returning None sends the browser to Gist's acknowledgement.

    ``on_login`` may return None: the browser is then redirected (303) to the ``next`` path.
    """
    registration = name or f"{registration_name(gist)}_auth"
    blueprint = Blueprint(registration, __name__)
    handle_error: OnError = on_error or default_on_error

    def _redirect_uri() -> str:
        return redirect_uri or url_for(f"{registration}.callback", _external=True)

    def _fail(error: GistAuthError) -> Response:
        log.warning("Gist login failed: %s", error.error_code)
        g.gist_login_url = url_for(f"{registration}.login")
        return make_response(handle_error(error))

    @blueprint.get(login_path, endpoint="login")
    def login() -> Response:
        try:
            authorization = begin_login(
                gist, _session(), redirect_uri=_redirect_uri(), next_path=request.args.get("next")
            )
        except GistAuthError as error:
            return _fail(error)
        response = make_response("", 302)
        response.headers["Location"] = authorization.url
        response.headers["Cache-Control"] = "no-store"
        return response

    def install(grant: InstallGrant) -> Response:
        token = exchange_code(gist, grant)
        workspace_id, ack_url = finish_install(gist, grant, token, workspace_of(gist, token))
        log.info("Gist install completed")
        assert on_install is not None
        result = on_install(token, workspace_id)
        return make_response(result if result is not None else redirect(ack_url, 303))

    @blueprint.get(callback_path, endpoint="callback")
    def callback() -> Response:
        try:
            grant = check_callback(
                gist,
                _session(),
                request.args.items(multi=True),
                redirect_uri=_redirect_uri(),
                installs=on_install is not None,
            )
            if isinstance(grant, InstallGrant):
                response = install(grant)
                response.headers.update(CALLBACK_HEADERS)
                return response
            token = exchange_code(gist, grant)
            g.gist_next = grant.next_path or "/"
            workspace = workspace_of(gist, token) if gist.gist_token_store is not None else (None, None)
            log.info("Gist login completed")
            result = on_login(token)
            response = make_response(result if result is not None else redirect(g.gist_next, 303))
            store_login(
                gist,
                _session(),
                token,
                subject=g.get("gist_subject"),
                workspace_id=workspace[0],
                workspace_name=workspace[1],
            )
        except GistAuthError as error:
            response = _fail(error)
        response.headers.update(CALLBACK_HEADERS)
        return response

    return blueprint


def current_session() -> Any:
    """Flask's session inside a request, else ``None`` (for Authlib's ``fetch_token``, called without one)."""
    from flask import has_request_context

    return session if has_request_context() else None


def _session() -> Any:
    if not current_app.secret_key:
        raise SessionNotConfiguredError(
            "The Gist login keeps its state in Flask's session, which needs a secret key. Set "
            "app.secret_key (or SECRET_KEY in app.config) to a long random value."
        )
    return session


def logout(gist: Any, *, forget_token: bool = False) -> str | None:
    """Forget the session's Gist login (and, with ``forget_token=True``, its stored token); returns the subject."""
    return forget_login(gist, _session(), forget_token=forget_token)


def stored_token(gist: Any) -> Any:
    """The :class:`~gist_authlib.tokens.StoredToken` of the session's user, or ``None`` (needs a token store)."""
    subject = login_subject(gist, _session())
    store = gist.gist_token_store
    return store.get(subject) if subject is not None and store is not None else None

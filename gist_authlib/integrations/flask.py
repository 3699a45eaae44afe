"""Flask adapter: a Blueprint with the login and callback routes over :mod:`gist_authlib.flow`."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, current_app, g, make_response, request, session, url_for
from flask.typing import ResponseReturnValue

from .._pages import CALLBACK_HEADERS, error_page
from ..errors import GistAuthError, SessionNotConfiguredError
from ..flow import begin_login, check_callback, exchange_code
from ..registry import registration_name

__all__ = ["OnError", "OnLogin", "default_on_error", "gist_blueprint"]

log = logging.getLogger("gist_authlib.flask")

OnLogin = Callable[[dict[str, Any]], ResponseReturnValue]
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
) -> Blueprint:
    """Return a Blueprint with the login and callback routes of a Gist registration.

    Works with ``OAuth(app)`` and with the ``init_app`` factory pattern (``gist`` may be Authlib's lazy
    proxy). ``GET login_path`` sends the browser to Gist (``?next=/path`` is kept server-side);
    ``GET callback_path`` checks the state, exchanges the code and returns ``on_login(token)``, as a Flask
    view would; ``g.gist_next`` holds the checked ``next`` path (``"/"`` by default). Failures go to
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

    @blueprint.get(callback_path, endpoint="callback")
    def callback() -> Response:
        try:
            grant = check_callback(gist, _session(), request.args.items(multi=True), redirect_uri=_redirect_uri())
            token = exchange_code(gist, grant)
            g.gist_next = grant.next_path or "/"
            log.info("Gist login completed")
            response = make_response(on_login(token))
        except GistAuthError as error:
            response = _fail(error)
        response.headers.update(CALLBACK_HEADERS)
        return response

    return blueprint


def _session() -> Any:
    if not current_app.secret_key:
        raise SessionNotConfiguredError(
            "The Gist login keeps its state in Flask's session, which needs a secret key. Set "
            "app.secret_key (or SECRET_KEY in app.config) to a long random value."
        )
    return session

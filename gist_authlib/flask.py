"""Flask adapter: Authlib's app methods over Flask's request context, and a ready-made Blueprint.

Hand-written Authlib routes work unchanged and get every protection::

    @app.route("/login")
    def login():
        return oauth.gist.authorize_redirect(url_for("auth", _external=True), next="/dashboard")

    @app.route("/auth")
    def auth():
        try:
            token = oauth.gist.authorize_access_token()
        except OAuthError as error:  # every failure is a GistAuthError and an Authlib OAuthError
            return error.description, 400, {"Content-Type": "text/plain"}  # it may quote the callback

:func:`gist_blueprint` gives the same two routes with error pages, installs and a token store wired in. This
module only translates between Flask and the login core (:mod:`gist_authlib._routes`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast
from urllib.parse import parse_qsl

from authlib.integrations.flask_client import FlaskOAuth2App
from authlib.integrations.httpx_client import OAuth2Client
from flask import Blueprint, Response, after_this_request, current_app, g, has_request_context, make_response, url_for
from flask import request as flask_request
from flask import session as flask_session
from flask.typing import ResponseReturnValue
from werkzeug.local import LocalProxy

from . import _web
from ._login import LoginResult, SubjectSource
from ._registry import GistApp, SyncGistApp
from ._registry import register as _register
from ._routes import (
    callback_route,
    default_paths,
    login_route,
    logout_session,
    page_reply,
    registration_name,
    stored_token_of,
)
from .canvas._endpoint import (
    DEFAULT_MAX_BODY_BYTES,
    REPLY_HEADERS,
    CanvasHandler,
    handle_canvas_request,
    read_limit,
    read_upto,
)
from .errors import GistAuthError
from .provider import GistProvider

__all__ = [
    "GistFlaskApp",
    "canvas_blueprint",
    "default_on_error",
    "gist_blueprint",
    "logout",
    "register",
    "stored_token",
]

OnLogin = Callable[[dict[str, Any]], ResponseReturnValue | None]
OnInstall = Callable[[dict[str, Any], str], ResponseReturnValue | None]
OnError = Callable[[GistAuthError], ResponseReturnValue]
#: Names the user a fresh login's token is stored under: ``subject(token)`` returns your user id.
Subject = Callable[[dict[str, Any]], str | None]


class GistFlaskApp(SyncGistApp, FlaskOAuth2App):  # type: ignore[misc]  # Authlib ships no type hints
    """Authlib's Flask app with every protection of a Gist login: what :func:`gist_authlib.register` returns
    for a Flask ``OAuth`` (before ``init_app``, a lazy proxy to it). After ``authorize_access_token``,
    ``g.gist_next`` holds the login's checked ``next`` path and ``g.gist_subject`` the stored subject. Its API
    calls go through httpx2, like the other frameworks' (Authlib's Flask app defaults to requests)."""

    client_cls = OAuth2Client
    gist_reads_environment = True

    def gist_request(self, request: Any = None, params: list[tuple[str, str]] | None = None) -> _web.Request:
        """Flask's request (the context's) as the login reads it."""
        if params is None and flask_request.method == "POST":
            params = list(flask_request.form.items(multi=True))
        elif params is None:  # Werkzeug keeps an escape that is not UTF-8 as it came ("%FF"): decode it here
            params = parse_qsl(flask_request.query_string.decode("latin-1"), keep_blank_values=True, errors="replace")
        session = flask_session if current_app.secret_key else None
        return _web.Request(
            flask_request.method,
            flask_request.url,
            params,
            flask_request.headers,
            session,
            session_empty=session is not None and not session,
            client=flask_request.remote_addr,
            debug=current_app.debug,
        )

    def gist_response(self, reply: _web.Reply) -> Response:
        """Flask's response for a reply (a view's return value of the app's own is made a response)."""
        if reply.native is not None:
            response = make_response(reply.native)
        else:
            response = make_response(reply.body, reply.status)
            if reply.location is not None:
                response.headers["Location"] = reply.location
        response.headers.update(reply.headers)
        for cookie in reply.cookies:
            response.set_cookie(**cookie.kwargs())
        return response

    def gist_logged_in(self, request: _web.Request, result: LoginResult) -> None:
        """``g.gist_next`` and ``g.gist_subject``, the token as Authlib's Flask app keeps it for the request, and
        a new session id where the session interface keeps one server-side (Flask-Session's ``regenerate``)."""
        regenerate = getattr(current_app.session_interface, "regenerate", None)
        if callable(regenerate) and not result.install:
            regenerate(flask_session)
        self.token = result.token
        g.gist_next, g.gist_subject = result.next_path, result.subject

    def authorize_redirect(self, redirect_uri: Any = None, **params: Any) -> Any:  # type: ignore[override]
        """See :meth:`gist_authlib._registry.SyncGistApp.authorize_redirect` (Flask's takes no request)."""
        return super().authorize_redirect(None, redirect_uri, **params)

    def save_authorize_data(self, **kwargs: Any) -> None:  # type: ignore[override]
        """See :meth:`gist_authlib._registry.SyncGistApp.save_authorize_data`."""
        super().save_authorize_data(None, **kwargs)

    def authorize_access_token(self, *, subject: SubjectSource = None, **token_params: Any) -> Any:  # type: ignore[override]
        """See :meth:`gist_authlib._registry.SyncGistApp.authorize_access_token`; here the login cookie is also
        set again on this request's response (Flask's ``after_this_request``), whatever view answers."""
        native = self.gist_request()
        steps, cookie = self._gist_finish(native, subject, token_params)
        reg = self.gist_registration

        @after_this_request
        def keep_cookie(response: Response) -> Response:
            if cookie.changed:
                response.set_cookie(**reg.cookie.save(cookie, reg.secret).kwargs())
            return response

        result = self.gist_run(steps)
        self.gist_logged_in(native, result)
        return result.token

    @staticmethod
    def gist_session_of(request: Any = None) -> Any:
        """Flask's session inside a request, else ``None`` (Authlib's ``fetch_token`` is called without one)."""
        return flask_session if has_request_context() else None

    @classmethod
    def gist_lazy(cls, oauth: Any, name: str, claims: dict[str, str]) -> Any:
        """The registered app before ``init_app``: Authlib's lazy proxy, which also knows its registration name."""
        # A class per registration: the name and claims must be readable without resolving the proxy.
        named = type("_LazyGistApp", (LocalProxy,), {"gist_registration_name": name, "_gist_route_claims": claims})
        return named(lambda: oauth.create_client(name))


def register(oauth: Any, name: str = "gist", **options: Any) -> GistFlaskApp:
    """:func:`gist_authlib.register` for a Flask ``OAuth``, typed: the same arguments, and the app as a
    :class:`GistFlaskApp` (before ``init_app``, a lazy proxy to it, used the same way)."""
    app = _register(oauth, name, **options)
    if not (isinstance(getattr(type(app), "gist_registration_name", None), str) or isinstance(app, GistFlaskApp)):
        raise TypeError("gist_authlib.flask.register() takes a Flask OAuth registry.")
    return cast(GistFlaskApp, app)  # the proxy stands in for the app it creates


def default_on_error(error: GistAuthError) -> ResponseReturnValue:
    """The error page :func:`gist_blueprint` answers a failed login with, for an ``on_error`` that adds to it: 400
    for the user's side, 502 for Gist's, 503 for the site's; the developer's explanation only with ``app.debug``."""
    reply = page_reply(error, g.get("gist_login_url"), debug=current_app.debug)
    return reply.body, reply.status, {**reply.headers, "Content-Type": "text/html; charset=utf-8"}


def gist_blueprint(
    gist: GistApp,
    *,
    on_login: OnLogin,
    on_error: OnError | None = None,
    subject: Subject | None = None,
    login_path: str | None = None,
    callback_path: str | None = None,
    redirect_uri: str | None = None,
    name: str | None = None,
    on_install: OnInstall | None = None,
) -> Blueprint:
    """Return a Blueprint with the login and callback routes of a Gist registration.

    Works with ``OAuth(app)`` and with the ``init_app`` factory pattern (``gist`` may be Authlib's lazy proxy).
    ``GET login_path`` is ``authorize_redirect`` (``?next=/path`` is kept for after the login); ``GET
    callback_path`` finishes the login, then answers with ``on_login(token)``'s return value, as a Flask view's,
    or a 303 to the ``next`` path when it returns None; ``g.gist_next`` holds that path and ``g.gist_subject``
    the stored subject. Failures go to ``on_error(error)`` (by default :func:`default_on_error`). The app needs a
    ``secret_key``.

    Args:
        gist: the app returned by :func:`gist_authlib.register` on a Flask ``OAuth``.
        on_login: receives the validated token dict, after the token was stored; returns a response.
        on_error: receives the error; returns a response.
        subject: with a token store, ``subject(token)`` returns the user id to store the token under.
        login_path: where the login starts; defaults to ``/auth/<registration name>``.
        callback_path: the redirect URI's path; defaults to ``/oauth/<registration name>/callback``.
        redirect_uri: a fixed, absolute redirect URI (behind a proxy); by default the registration's configured
            one, else built with ``url_for``.
        name: the blueprint's name; defaults to ``"<registration name>_auth"``.
        on_install: accept Gist-initiated installs (see :func:`gist_authlib.starlette.gist_routes`):
            ``on_install(token, workspace_id)``; returning None sends the browser to Gist's acknowledgement.

    Raises:
        ConfigurationError: another registration of the same Authlib registry already routes these paths.
    """
    login_path, callback_path = default_paths(gist, login_path, callback_path)
    blueprint_name = name or f"{registration_name(gist)}_auth"
    blueprint = Blueprint(blueprint_name, __name__)

    def run(route: Any, **options: Any) -> Response:
        app = cast(GistFlaskApp, gist)

        def login_url() -> str:
            g.gist_login_url = url_for(f"{blueprint_name}.login")
            return str(g.gist_login_url)

        uri = redirect_uri or url_for(f"{blueprint_name}.callback", _external=True)
        options.update(on_error=on_error, login_url=login_url)
        steps = route(app.gist_registration, app.gist_request(), uri, **options)
        return app.gist_response(app.gist_run(steps))

    @blueprint.get(login_path, endpoint="login")
    def login() -> Response:
        return run(login_route)

    @blueprint.get(callback_path, endpoint="callback")
    def callback() -> Response:
        logged_in = cast(GistFlaskApp, gist).gist_logged_in
        return run(callback_route, on_login=on_login, on_install=on_install, subject=subject, logged_in=logged_in)

    return blueprint


def logout(gist: GistApp, *, forget_token: bool = False, flush: bool = True) -> str | None:
    """Log the session's user out: forget the Gist login (and, with ``forget_token=True``, its stored token)
    and, unless ``flush=False``, clear the whole session. Returns the subject."""
    reg = gist.gist_registration
    return logout_session(reg, reg.session_of(gist.gist_request(None)), forget_token=forget_token, flush=flush)


def stored_token(gist: GistApp) -> Any:
    """The :class:`~gist_authlib.tokens.StoredToken` of the session's user, or ``None`` (needs a token store)."""
    reg = gist.gist_registration
    return stored_token_of(reg, reg.session_of(gist.gist_request(None)))


def canvas_blueprint(
    gist_or_secret: Any,
    *,
    on_initialize: CanvasHandler,
    on_submit: CanvasHandler,
    name: str = "gist_canvas",
    initialize_path: str = "/gist/canvas/initialize",
    submit_path: str = "/gist/canvas/submit",
    provider: GistProvider | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> Blueprint:
    """Return a blueprint with the ``POST`` views Gist calls (endpoints ``<name>.initialize`` and ``<name>.submit``).

    The handlers and checks are those of :func:`gist_authlib.starlette.canvas_routes`; an ``async`` handler is run
    to completion in the request's thread. Gist signs these requests instead of sending a CSRF token: with
    Flask-WTF's ``CSRFProtect``, exempt the blueprint (``csrf.exempt(blueprint)``). The arguments are those of
    :func:`gist_authlib.starlette.canvas_routes`, plus the blueprint's ``name``.
    """
    blueprint = Blueprint(name, __name__)

    def endpoint(kind: Any, handler: CanvasHandler) -> Callable[[], Response]:
        def answer() -> Response:
            body = read_upto(flask_request.stream.read, read_limit(flask_request.headers, max_body_bytes))
            reply = handle_canvas_request(
                body, flask_request.headers, kind, handler, secret=gist_or_secret, provider=provider,
                max_body_bytes=max_body_bytes,
            )  # fmt: skip
            return Response(reply.body, status=reply.status, headers=dict(REPLY_HEADERS))

        answer.__name__ = kind
        return answer

    blueprint.add_url_rule(initialize_path, "initialize", endpoint("initialize", on_initialize), methods=["POST"])
    blueprint.add_url_rule(submit_path, "submit", endpoint("submit", on_submit), methods=["POST"])
    return blueprint

"""Flask adapter: Authlib's app methods read from Flask's request context, and a ready-made Blueprint.

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

:func:`gist_blueprint` gives the same two routes with error pages, installs and a token store wired in.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, current_app, g, has_request_context, make_response, redirect, request, session
from flask.typing import ResponseReturnValue

from ._pages import CALLBACK_HEADERS, error_page
from .canvas._endpoint import (
    DEFAULT_MAX_BODY_BYTES,
    REPLY_HEADERS,
    CanvasHandler,
    handle_canvas_request,
    read_limit,
    read_upto,
)
from .canvas._requests import CanvasKind
from .errors import GistAuthError, SessionNotConfiguredError
from .login import LoginResult, forget_login, login_subject, remember
from .provider import GistProvider
from .registry import GistApp, claim_paths, registration_name

__all__ = [
    "GistAppAdapter",
    "OnError",
    "OnInstall",
    "OnLogin",
    "Subject",
    "canvas_blueprint",
    "default_on_error",
    "gist_blueprint",
    "logout",
    "stored_token",
]

log = logging.getLogger("gist_authlib.flask")

OnLogin = Callable[[dict[str, Any]], ResponseReturnValue | None]
OnInstall = Callable[[dict[str, Any], str], ResponseReturnValue | None]
OnError = Callable[[GistAuthError], ResponseReturnValue]
#: Names the user a fresh login's token is stored under: ``subject(token)`` returns your user id.
Subject = Callable[[dict[str, Any]], str | None]


class GistAppAdapter:
    """The Flask half of a Gist registration's app class (mixed in by :func:`gist_authlib.register`)."""

    def save_authorize_data(self, **kwargs: Any) -> None:
        """Record a login started with ``create_authorization_url`` in Flask's session (never its secrets)."""
        remember(self, _session(), kwargs)

    def authorize_redirect(self, redirect_uri: str | None = None, **kwargs: Any) -> Response:
        """Send the browser to Gist: credentials and scopes checked, a fresh state recorded, S256 PKCE.

        Args:
            redirect_uri: the callback URL (``url_for(..., _external=True)``); a configured one wins.
            **kwargs: extra authorization parameters; ``next="/path"`` is where to return after the login.
        """
        data = self.create_authorization_url(redirect_uri, **kwargs)  # type: ignore[attr-defined]
        self.save_authorize_data(**data)
        response = make_response("", 302)
        response.headers["Location"] = data["url"]
        response.headers["Cache-Control"] = "no-store"
        return response

    def authorize_access_token(self, *, subject: Any = None, **kwargs: Any) -> dict[str, Any]:
        """Check the callback (state, issuer, error, code), exchange the code and return the validated token.

        With a token store the token is stored first, under ``subject`` (a user id, or a function of the token
        returning one) or else the Gist workspace. Extra keyword arguments go to the token request. Afterwards
        ``g.gist_next`` holds the checked ``next`` path (``"/"`` by default) and ``g.gist_subject`` the subject.

        Raises:
            GistAuthError: every failure, typed; each is also an Authlib ``OAuthError``.
        """
        return self.gist_callback(subject=subject, token_params=kwargs).token

    def gist_callback(
        self,
        *,
        installs: bool = False,
        subject: Any = None,
        redirect_uri: str | None = None,
        token_params: dict[str, Any] | None = None,
    ) -> LoginResult:
        """The whole callback as a :class:`~gist_authlib.login.LoginResult` (what :func:`gist_blueprint` uses)."""
        params = request.args if request.method == "GET" else request.form
        result: LoginResult = self.gist_finish(  # type: ignore[attr-defined]
            _session(),
            list(params.items(multi=True)),
            redirect_uri=redirect_uri or request.base_url,
            installs=installs,
            subject=subject,
            token_params=token_params,
            client=request.remote_addr,
        )
        if not result.install:
            _rotate_session()
        self.token = result.token  # as Authlib's Flask app keeps it for the request
        g.gist_next, g.gist_subject = result.next_path, result.subject
        return result


def lazy_app(oauth: Any, name: str, claims: dict[str, str]) -> Any:
    """The registered app before ``init_app``: Authlib's lazy proxy, which also knows its registration name
    (so that :func:`gist_blueprint` can name and claim its routes before the Flask app exists)."""
    from werkzeug.local import LocalProxy

    class LazyGistApp(LocalProxy[Any]):
        """Authlib's Flask app for this registration, created on first use inside the Flask app."""

        gist_registration_name = name
        _gist_route_claims = claims

    return LazyGistApp(lambda: oauth.create_client(name))


def session_of(request: Any = None) -> Any:
    """Flask's session inside a request, else ``None`` (Authlib's ``fetch_token`` is called without a request)."""
    return session if has_request_context() else None


def default_on_error(error: GistAuthError) -> ResponseReturnValue:
    """Answer a failed login with a short HTML page: 400 for the user's side, 502 for Gist's side."""
    retry = g.get("gist_login_url")
    return error_page(error, retry_url=retry), error.status_code, {"Content-Type": "text/html; charset=utf-8"}


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

    Works with ``OAuth(app)`` and with the ``init_app`` factory pattern (``gist`` may be Authlib's lazy
    proxy). ``GET login_path`` is ``authorize_redirect`` (``?next=/path`` is kept for after the login);
    ``GET callback_path`` is ``authorize_access_token``, then ``on_login(token)``'s answer, as a Flask view's,
    or a 303 to the ``next`` path when it returns None; ``g.gist_next`` holds that path and ``g.gist_subject``
    the stored subject. Failures go to ``on_error(error)``. The app needs a ``secret_key``.

    Args:
        gist: the app returned by :func:`gist_authlib.register` on a Flask ``OAuth``.
        on_login: receives the validated token dict, after the token was stored; returns a response.
        on_error: receives the error; defaults to :func:`default_on_error`.
        subject: with a token store, ``subject(token)`` returns the user id to store the token under.
        login_path: where the login starts; defaults to ``/auth/<registration name>``.
        callback_path: the redirect URI's path; defaults to ``/oauth/<registration name>/callback``.
        redirect_uri: a fixed, absolute redirect URI (behind a proxy); by default the registration's
            configured one, else built with ``url_for``.
        name: the blueprint's name; defaults to ``"<registration name>_auth"``.
        on_install: accept Gist-initiated installs (see :func:`gist_authlib.starlette.gist_routes`):
            ``on_install(token, workspace_id)``; returning None sends the browser to Gist's acknowledgement.

    Raises:
        ConfigurationError: another registration of the same Authlib registry already routes these paths.
    """
    registration = registration_name(gist)
    login_path = login_path or f"/auth/{registration}"
    callback_path = callback_path or f"/oauth/{registration}/callback"
    blueprint_name = name or f"{registration}_auth"
    blueprint = Blueprint(blueprint_name, __name__)
    handle_error: OnError = on_error or default_on_error
    claim_paths(gist, login_path, callback_path)

    def _fail(error: GistAuthError) -> Response:
        log.warning("Gist login %r failed: %s", registration, error.error_code)
        g.gist_login_url = _url_for(f"{blueprint_name}.login")
        return make_response(handle_error(error))

    @blueprint.get(login_path, endpoint="login")
    def login() -> Response:
        try:
            target = redirect_uri or _url_for(f"{blueprint_name}.callback", _external=True)
            response: Response = gist.authorize_redirect(target, next=request.args.get("next"))
        except GistAuthError as error:
            return _fail(error)
        return response

    @blueprint.get(callback_path, endpoint="callback")
    def callback() -> Response:
        try:
            result: LoginResult = gist.gist_callback(  # type: ignore[attr-defined]
                installs=on_install is not None,
                subject=subject,
                redirect_uri=redirect_uri or _url_for(f"{blueprint_name}.callback", _external=True),
            )
            if result.install:
                assert on_install is not None and result.ack_url is not None and result.workspace_id is not None
                answer = on_install(result.token, result.workspace_id)
                response = make_response(answer if answer is not None else redirect(result.ack_url, 303))
            else:
                answer = on_login(result.token)
                response = make_response(answer if answer is not None else redirect(result.next_path, 303))
        except GistAuthError as error:
            response = _fail(error)
        response.headers.update(CALLBACK_HEADERS)
        return response

    return blueprint


def _url_for(endpoint: str, **values: Any) -> str:
    from flask import url_for

    return url_for(endpoint, **values)


def _session() -> Any:
    if not current_app.secret_key:
        raise SessionNotConfiguredError(
            "The Gist login keeps its state in Flask's session, which needs a secret key. Set "
            "app.secret_key (or SECRET_KEY in app.config) to a long random value."
        )
    return session


def _rotate_session() -> None:
    """Give the logged-in session a new id where the session interface keeps one server-side (session fixation).

    Flask's own cookie sessions have no id (the cookie is the session), so there is nothing to rotate; server-side
    interfaces such as Flask-Session's expose ``regenerate(session)``.
    """
    regenerate = getattr(current_app.session_interface, "regenerate", None)
    if callable(regenerate):
        regenerate(session)


def logout(gist: GistApp, *, forget_token: bool = False, flush: bool = True) -> str | None:
    """Log the session's user out: forget the Gist login (and, with ``forget_token=True``, its stored token)
    and, unless ``flush=False``, clear the whole session. Returns the subject."""
    subject = forget_login(gist, _session(), forget_token=forget_token)
    if flush:
        session.clear()
    return subject


def stored_token(gist: GistApp) -> Any:
    """The :class:`~gist_authlib.tokens.StoredToken` of the session's user, or ``None`` (needs a token store)."""
    subject = login_subject(gist, _session())
    store = gist.gist_token_store
    return store.get(subject) if subject is not None and store is not None else None


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

    The handlers and checks are those of :func:`gist_authlib.starlette.canvas_routes`; an ``async``
    handler is run to completion in the request's thread. Gist signs these requests instead of sending a
    CSRF token: with Flask-WTF's ``CSRFProtect``, exempt the blueprint (``csrf.exempt(blueprint)``).

    Args:
        gist_or_secret: the app returned by :func:`gist_authlib.register` on a Flask ``OAuth`` (its
            client secret, which ``init_app`` may fill in later, is read at each request), or the secret.
        on_initialize: answers the initialize request.
        on_submit: answers each submit request.
        name: the blueprint's name.
        initialize_path: the initialize view's path.
        submit_path: the submit view's path.
        provider: the signature header's name and scheme (by default the registration's provider).
        max_body_bytes: the largest body accepted.
    """
    blueprint = Blueprint(name, __name__)

    def endpoint(kind: CanvasKind, handler: CanvasHandler) -> Any:
        def answer() -> Response:
            body = read_upto(request.stream.read, read_limit(request.headers, max_body_bytes))
            reply = handle_canvas_request(
                body,
                request.headers,
                kind,
                handler,
                secret=gist_or_secret,
                provider=provider,
                max_body_bytes=max_body_bytes,
            )
            return Response(reply.body, status=reply.status, headers=dict(REPLY_HEADERS))

        answer.__name__ = kind
        return answer

    blueprint.add_url_rule(initialize_path, "initialize", endpoint("initialize", on_initialize), methods=["POST"])
    blueprint.add_url_rule(submit_path, "submit", endpoint("submit", on_submit), methods=["POST"])
    return blueprint

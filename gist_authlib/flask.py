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
from typing import Any, cast
from urllib.parse import unquote_to_bytes

from authlib.integrations.flask_client import FlaskOAuth2App
from authlib.integrations.httpx_client import OAuth2Client
from flask import (
    Blueprint,
    Response,
    after_this_request,
    current_app,
    g,
    has_request_context,
    make_response,
    redirect,
    request,
    session,
)
from flask.typing import ResponseReturnValue
from werkzeug.local import LocalProxy

from ._login import LoginResult, SubjectSource, remember
from ._pages import bounce_page, error_page
from ._registry import GistApp, SyncGistApp
from ._registry import register as _register
from ._routes import (
    CALLBACK_HEADERS,
    answer_callback,
    bounce_target,
    default_paths,
    log_failure,
    logout_session,
    needs_bounce,
    registration_name,
    repeat_target,
    retry_url,
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
from .canvas._requests import CanvasKind
from .errors import ConfigurationError, GistAuthError, LoginError
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

log = logging.getLogger("gist_authlib.flask")

OnLogin = Callable[[dict[str, Any]], ResponseReturnValue | None]
OnInstall = Callable[[dict[str, Any], str], ResponseReturnValue | None]
OnError = Callable[[GistAuthError], ResponseReturnValue]
#: Names the user a fresh login's token is stored under: ``subject(token)`` returns your user id.
Subject = Callable[[dict[str, Any]], str | None]


class GistFlaskApp(SyncGistApp, FlaskOAuth2App):  # type: ignore[misc]  # Authlib ships no type hints
    """Authlib's Flask app with every protection of a Gist login: what :func:`gist_authlib.register` returns
    for a Flask ``OAuth`` (before ``init_app``, a lazy proxy to it).

    Its login methods read Flask's request context and build the response; every decision is the login core's.
    Its token requests go through httpx2, like the other frameworks' (Authlib's Flask app defaults to requests).
    """

    client_cls = OAuth2Client

    def save_authorize_data(self, **kwargs: Any) -> None:
        """Record a login started with ``create_authorization_url`` in Flask's session (never its secrets).

        There is no response here to set the login cookie on, so such a login lives in the session, as with
        plain Authlib: prefer ``authorize_redirect``, whose pending login nothing else can overwrite.
        """
        remember(self.gist_registration, _session(), kwargs)

    def authorize_redirect(
        self, redirect_uri: str | None = None, *, next: str | None = None, **params: Any
    ) -> Response:
        """Send the browser to Gist: credentials and scopes checked, a fresh state kept in the registration's
        login cookie (not in the session), S256 PKCE.

        With a configured redirect URI on another host than this request's, the browser is first sent to the
        same path on that host (the login cookie must be set where the callback will arrive).

        Args:
            redirect_uri: the callback URL (``url_for(..., _external=True)``); a configured one wins.
            next: where to return after the login (checked: same-origin paths only).
            **params: extra authorization parameters (``scope=`` is checked against the catalogue).
        """
        _session()
        start = self.gist_start(request.cookies, request.url, redirect_uri, {"next": next, **params})
        response = make_response("", 302)
        response.headers["Location"] = start.url
        response.headers["Cache-Control"] = "no-store"
        if start.cookie is not None:
            response.set_cookie(**start.cookie.kwargs())
        return response

    def authorize_access_token(self, *, subject: SubjectSource = None, **token_params: Any) -> dict[str, Any]:
        """Check the callback (state, issuer, error, code), exchange the code and return the validated token.

        With a token store the token is stored first, under ``subject`` (a user id, or a function of the token
        returning one) or else the Gist workspace. Extra keyword arguments go to the token request. Afterwards
        ``g.gist_next`` holds the checked ``next`` path (``"/"`` by default) and ``g.gist_subject`` the subject.

        Raises:
            GistAuthError: every failure, typed; each is also an Authlib ``OAuthError``.
        """
        return self.gist_callback(subject=subject, token_params=token_params).token

    def gist_callback(
        self,
        *,
        installs: bool = False,
        subject: SubjectSource = None,
        redirect_uri: str | None = None,
        token_params: dict[str, Any] | None = None,
    ) -> LoginResult:
        """The whole callback as a :class:`~gist_authlib.LoginResult` (what :func:`gist_blueprint` uses).

        The login cookie is read here and set again on this request's response when its pending logins
        changed (Flask's ``after_this_request``), whatever route answers.
        """
        params = request.args if request.method == "GET" else request.form
        try:  # Werkzeug keeps an escape that is not UTF-8 as it came ("%FF"), which would pass for printable text
            unquote_to_bytes(request.query_string).decode("utf-8")
        except UnicodeDecodeError:
            raise LoginError.missing_code("The callback's parameters are not valid UTF-8, so it was refused.") from None
        jar = self.gist_login_cookie(request.cookies, redirect_uri or request.base_url)

        @after_this_request
        def keep_cookie(response: Response) -> Response:
            if jar.changed:
                response.set_cookie(**jar.to_set().kwargs())
            return response

        result = self.gist_finish(
            _session(),
            list(params.items(multi=True)),
            redirect_uri=redirect_uri or request.base_url,
            installs=installs,
            subject=subject,
            token_params=token_params,
            client=request.remote_addr,
            forwarded_for=request.headers.get("X-Forwarded-For"),
            cookie=jar,
        )
        if not result.install:
            _rotate_session()
        self.token = result.token  # as Authlib's Flask app keeps it for the request
        g.gist_next, g.gist_subject = result.next_path, result.subject
        return result

    def gist_bounce(self) -> Response | None:
        """The same-site bounce of a callback, or ``None`` when none is needed: answer with it first in a
        hand-written callback view when the app's session cookie is ``SameSite=Strict`` (:func:`gist_blueprint`
        does). A callback that came from Gist cross-site with no session is opened again from this site, and a
        ``SameSite=Strict`` session cookie comes back with it."""
        if not current_app.secret_key:
            return None
        if not needs_bounce(request.method, request.headers.get("Sec-Fetch-Site"), not session):
            return None
        response = make_response(bounce_page(bounce_target(self.gist_redirect_uri, request.url)))
        response.headers.update(CALLBACK_HEADERS)
        return response

    @staticmethod
    def gist_session_of(request: Any = None) -> Any:
        """Flask's session inside a request, else ``None`` (Authlib's ``fetch_token`` is called without one)."""
        return session if has_request_context() else None

    @classmethod
    def gist_lazy(cls, oauth: Any, name: str, claims: dict[str, str]) -> Any:
        """The registered app before ``init_app``: Authlib's lazy proxy, which also knows its registration name
        (so that :func:`gist_blueprint` can name and claim its routes before the Flask app exists)."""
        return _LazyGistApp.of(oauth, name, claims)


class _LazyGistApp(LocalProxy[GistFlaskApp]):
    """A Gist registration's :class:`GistFlaskApp`, created on first use inside the Flask app."""

    gist_registration_name: str
    _gist_route_claims: dict[str, str]

    @classmethod
    def of(cls, oauth: Any, name: str, claims: dict[str, str]) -> Any:
        # A class per registration: the name and claims must be readable without resolving the proxy.
        named = type(cls.__name__, (cls,), {"gist_registration_name": name, "_gist_route_claims": claims})
        return named(lambda: oauth.create_client(name))


def register(oauth: Any, name: str = "gist", **options: Any) -> GistFlaskApp:
    """:func:`gist_authlib.register` for a Flask ``OAuth``, typed: the same arguments, and the app as a
    :class:`GistFlaskApp` (before ``init_app``, a lazy proxy to it, used the same way)."""
    app = _register(oauth, name, **options)
    if not (issubclass(type(app), _LazyGistApp) or isinstance(app, GistFlaskApp)):  # never resolve the proxy
        raise TypeError("gist_authlib.flask.register() takes a Flask OAuth registry.")
    return cast(GistFlaskApp, app)  # the proxy stands in for the app it creates


def default_on_error(error: GistAuthError) -> ResponseReturnValue:
    """Answer a failed login with a short HTML page: 400 for the user's side, 502 for Gist's side. The
    developer's explanation is on it only in debug mode (``app.debug``); it is always logged."""
    retry = retry_url(g.get("gist_login_url"), error)
    page = error_page(error, retry_url=retry, debug=current_app.debug)
    return page, error.status_code, {"Content-Type": "text/html; charset=utf-8"}


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
    login_path, callback_path = default_paths(gist, login_path, callback_path)
    registration = registration_name(gist)
    blueprint_name = name or f"{registration}_auth"
    blueprint = Blueprint(blueprint_name, __name__)
    handle_error: OnError = on_error or default_on_error

    def _fail(error: GistAuthError) -> Response:
        log_failure(log, registration, error)
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
        bounce = cast(GistFlaskApp, gist).gist_bounce()
        if bounce is not None:
            return bounce
        try:
            result = cast(GistFlaskApp, gist).gist_callback(
                installs=on_install is not None,
                subject=subject,
                redirect_uri=redirect_uri or _url_for(f"{blueprint_name}.callback", _external=True),
            )
            answer = answer_callback(result, on_login, on_install)
            returned = answer.call(*answer.args)
            response = make_response(returned if returned is not None else redirect(answer.fallback, 303))
        except GistAuthError as error:
            target = repeat_target(error)
            response = make_response(redirect(target, 303)) if target else _fail(error)
        response.headers.update(CALLBACK_HEADERS)
        return response

    return blueprint


def _url_for(endpoint: str, **values: Any) -> str:
    from flask import url_for

    return url_for(endpoint, **values)


def _session() -> Any:
    if not current_app.secret_key:
        raise ConfigurationError.no_session(
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
    return logout_session(gist.gist_registration, _session(), forget_token=forget_token, flush=flush)


def stored_token(gist: GistApp) -> Any:
    """The :class:`~gist_authlib.tokens.StoredToken` of the session's user, or ``None`` (needs a token store)."""
    return stored_token_of(gist.gist_registration, _session())


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

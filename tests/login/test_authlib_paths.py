"""Authlib's own call paths on a registered Gist app: one source of scopes, errors Authlib's handlers catch, the
low-level methods, a configured redirect URI, route paths per registration, and the store written before the app
answers.

The whole login through hand-written routes runs in the contract and adversarial suites ("+authlib" route
styles); these tests cover what those scenarios do not. Apps run in process (Starlette's TestClient, Flask's
and Django's test clients); the sandbox they exchange codes with is served on loopback.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from authlib.integrations.base_client import OAuthError
from authlib.integrations.flask_client import OAuth as FlaskOAuth
from authlib.integrations.starlette_client import OAuth as StarletteOAuth
from starlette.applications import Starlette
from starlette.config import Config
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient
from support.web import query_of

import gist_authlib
from gist_authlib import ConfigurationError, GistAuthError, GistProvider
from gist_authlib.errors import (
    AccessDeniedError,
    GistAPIError,
    InstallError,
    InvalidTokenResponseError,
    LoginError,
    MissingCredentialsError,
    MixUpError,
    StateError,
    TokenEndpointError,
    TokenExchangeError,
    TokenStoreError,
    UnknownScopeError,
    UnknownStateError,
)
from gist_authlib.sandbox import GistSandbox, SandboxClient, ServerThread, create_app
from gist_authlib.tokens import MemoryTokenStore

APP = "http://127.0.0.1"
CALLBACK = f"{APP}/auth"


@pytest.fixture(scope="module")
def sandbox() -> Iterator[tuple[GistSandbox, str]]:
    """One auto-approving sandbox on loopback for the whole module."""
    server = ServerThread()
    app = create_app(clients=[SandboxClient("the-id", "the-secret", (CALLBACK,))], auto_approve=True)
    server.start(app)
    yield app, server.url
    server.stop()


def hand_written_app(oauth: StarletteOAuth, **register: Any) -> tuple[Starlette, Any, list[Any]]:
    """A Starlette app with the two routes Authlib's documentation shows, and nothing of gist_authlib's routes."""
    gist = gist_authlib.register(oauth, **register)
    errors: list[Any] = []

    async def login(request: Request) -> Response:
        response: Response = await oauth.gist.authorize_redirect(request, request.url_for("auth"))
        return response

    async def auth(request: Request) -> Response:
        try:
            token = await oauth.gist.authorize_access_token(request)
        except OAuthError as error:
            errors.append(error)
            return PlainTextResponse(error.error or "", status_code=400)
        return JSONResponse({"access_token": token["access_token"], "next": request.state.gist_next})

    app = Starlette(
        routes=[Route("/login", login), Route("/auth", auth, name="auth")],
        middleware=[Middleware(SessionMiddleware, secret_key="test")],
    )
    return app, gist, errors


def log_in(client: TestClient, path: str = "/login") -> httpx2.Response:
    """Walk login -> the sandbox (auto-approving, on loopback) -> callback; return the callback's answer."""
    authorize = client.get(path, follow_redirects=False).headers["location"]
    callback = httpx2.get(authorize, follow_redirects=False, trust_env=False).headers["location"]
    return client.get(callback.removeprefix(APP), follow_redirects=False)


# --- one source of scopes ----------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["client_kwargs", "authorize_params"])
def test_a_scope_typo_in_authlibs_own_settings_is_refused_at_register(where: str) -> None:
    with pytest.raises(UnknownScopeError, match="read_contact"):
        gist_authlib.register(StarletteOAuth(), client_id="i", client_secret="s", **{where: {"scope": "read_contacts"}})


def test_scopes_from_client_kwargs_are_the_scopes_every_path_asks_for(sandbox: tuple[GistSandbox, str]) -> None:
    _, url = sandbox
    oauth = StarletteOAuth()
    app, gist, _ = hand_written_app(
        oauth,
        client_id="the-id",
        client_secret="the-secret",
        provider=GistProvider.at(url),
        client_kwargs={"scope": "read_teams read_teammates"},
    )
    assert gist.gist_registration.scopes == ("read_teams", "read_teammates")
    with TestClient(app, base_url=APP) as client:
        authorize = client.get("/login", follow_redirects=False).headers["location"]
    assert query_of(authorize)["scope"] == "read_teams read_teammates"
    assert gist.client_kwargs["scope"] == "read_teams read_teammates"


def test_scopes_given_in_two_places_must_agree() -> None:
    with pytest.raises(ConfigurationError, match="disagree"):
        gist_authlib.register(
            StarletteOAuth(),
            client_id="i",
            client_secret="s",
            scopes=["read_teams"],
            client_kwargs={"scope": "read_tags"},
        )
    same = gist_authlib.register(
        StarletteOAuth(), client_id="i", client_secret="s", scopes="read_tags", authorize_params={"scope": "read_tags"}
    )
    assert same.gist_registration.scopes == ("read_tags",)


def test_a_scope_passed_to_create_authorization_url_is_checked_too() -> None:
    gist = gist_authlib.register(StarletteOAuth(), client_id="i", client_secret="s")
    with pytest.raises(UnknownScopeError):
        asyncio.run(gist.create_authorization_url("https://app.example/cb", scope="Read_Teammates"))
    data = asyncio.run(gist.create_authorization_url("https://app.example/cb", scope=["read_teams"]))
    assert query_of(data["url"])["scope"] == "read_teams"


# --- errors fit Authlib's contract ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "name"),
    [
        (MissingCredentialsError("GIST_CLIENT_ID", "client id"), "invalid_client"),
        (UnknownScopeError("read_contacts", "read_contact"), "invalid_scope"),
        (UnknownStateError(), "mismatching_state"),
        (StateError.missing(), "mismatching_state"),
        (StateError.expired(), "mismatching_state"),
        (StateError.replayed(), "mismatching_state"),
        (MixUpError("https://evil.example"), "mismatching_state"),
        (AccessDeniedError(), "access_denied"),
        (LoginError.missing_code(), "invalid_request"),
        (InstallError.link_invalid(), "invalid_grant"),
        (InstallError.rate_limited(), "temporarily_unavailable"),
        (ConfigurationError.no_session("no session"), "server_error"),
        (TokenEndpointError(400), "invalid_grant"),
        (TokenEndpointError(401), "invalid_client"),
        (TokenEndpointError(400, "invalid_scope"), "invalid_scope"),
        (TokenExchangeError.unreachable("timeout"), "temporarily_unavailable"),
        (InvalidTokenResponseError("no token"), "invalid_token_response"),
    ],
)
def test_every_login_error_is_an_authlib_oauth_error_with_an_rfc_name(error: GistAuthError, name: str) -> None:
    assert isinstance(error, OAuthError)
    assert error.error == name
    assert error.description == error.message
    # A configuration error is mostly raised to the developer's code at setup: its text is the developer's fix.
    assert str(error) == (error.hint if isinstance(error, ConfigurationError) else error.message)


def test_api_and_token_store_errors_are_not_oauth_errors() -> None:
    # They are not failures of an OAuth login: an app's "except OAuthError" around a login must not swallow them.
    for error in (TokenStoreError("down"), GistAPIError(500, None)):
        assert isinstance(error, GistAuthError)
        assert not isinstance(error, OAuthError)


def _branches() -> list[type[GistAuthError]]:
    import gist_authlib.canvas
    import gist_authlib.errors

    names = [*gist_authlib.errors.__all__, *(n for n in gist_authlib.canvas.__all__ if n.endswith("Error"))]
    found = {getattr(gist_authlib.errors, n, None) or getattr(gist_authlib.canvas, n) for n in names}
    return sorted(found, key=lambda cls: cls.__name__)


@pytest.mark.parametrize("cls", _branches(), ids=lambda cls: cls.__name__)
def test_each_error_class_status_agrees_with_its_branch(cls: type[GistAuthError]) -> None:
    # 4xx under LoginError (the user's side), 502 under TokenExchangeError and GistAPIError (Gist's side), 503
    # under ConfigurationError and TokenStoreError (this deployment's side).
    expected = {LoginError: range(400, 500), TokenExchangeError: (502,), GistAPIError: (502,)}
    expected.update({ConfigurationError: (503,), TokenStoreError: (503,)})
    for branch, statuses in expected.items():
        if issubclass(cls, branch):
            assert cls.status_code in statuses, (cls, branch)


def test_leaves_that_differ_only_by_message_are_error_codes() -> None:
    codes = [
        StateError.missing().error_code,
        StateError.expired().error_code,
        StateError.replayed().error_code,
        UnknownStateError().error_code,
        InstallError.link_invalid().error_code,
        InstallError.rate_limited().error_code,
    ]
    assert len(set(codes)) == len(codes)
    assert InstallError.rate_limited().status_code == 429
    assert len(_branches()) <= 29  # 25 in errors, 4 in canvas (there were 44 classes in all)


def test_a_wrong_client_secret_is_an_oauth_error_in_a_hand_written_route(sandbox: tuple[GistSandbox, str]) -> None:
    gist_sandbox, url = sandbox
    before = len(gist_sandbox.token_requests)
    app, _, errors = hand_written_app(
        StarletteOAuth(), client_id="the-id", client_secret="not-the-secret", provider=GistProvider.at(url)
    )
    with TestClient(app, base_url=APP, raise_server_exceptions=True) as client:
        response = log_in(client)
    assert response.status_code == 400
    assert response.text == "invalid_client"
    # 400: the secret went in the body, no HTTP authentication a 401 could name (the sandbox's RFC 9110 rule).
    assert isinstance(errors[0], TokenEndpointError) and errors[0].http_status == 400
    assert len(gist_sandbox.token_requests) == before + 1


# --- the low-level methods ----------------------------------------------------------------------------------


def test_create_authorization_url_then_save_authorize_data_is_a_protected_login(
    sandbox: tuple[GistSandbox, str],
) -> None:
    _, url = sandbox
    oauth = StarletteOAuth()
    gist = gist_authlib.register(oauth, client_id="the-id", client_secret="the-secret", provider=GistProvider.at(url))

    async def login(request: Request) -> Response:
        data = await gist.create_authorization_url(CALLBACK, next="/reports")
        await gist.save_authorize_data(request, redirect_uri=CALLBACK, **data)
        return JSONResponse({"url": data["url"], "keys": sorted(request.session)})

    async def auth(request: Request) -> Response:
        token = await gist.authorize_access_token(request)
        return JSONResponse({"ok": bool(token["access_token"]), "next": request.state.gist_next})

    app = Starlette(
        routes=[Route("/login", login), Route("/auth", auth)],
        middleware=[Middleware(SessionMiddleware, secret_key="test")],
    )
    with TestClient(app, base_url=APP) as client:
        started = client.get("/login").json()
        params = query_of(started["url"])
        assert params["code_challenge_method"] == "S256"
        assert started["keys"] == ["_gist_authlib:gist"]  # the pending login, under gist_authlib's own key
        callback = httpx2.get(started["url"], follow_redirects=False, trust_env=False).headers["location"]
        assert client.get(callback.removeprefix(APP)).json() == {"ok": True, "next": "/reports"}
        with pytest.raises(StateError):  # this bare route has no except: TestClient re-raises
            client.get(callback.removeprefix(APP))


def test_state_cannot_be_chosen_by_the_caller() -> None:
    gist = gist_authlib.register(StarletteOAuth(), client_id="i", client_secret="s")
    with pytest.raises(ConfigurationError, match="state"):
        asyncio.run(gist.create_authorization_url("https://app.example/cb", state="predictable"))


def test_fetch_access_token_checks_credentials_and_types_every_failure() -> None:
    answers = iter([httpx2.Response(200, json={"token_type": "mac", "access_token": "t"}), httpx2.Response(503)])
    transport = httpx2.MockTransport(lambda request: next(answers))
    flask_app = __import__("flask").Flask(__name__)
    oauth = FlaskOAuth(flask_app)
    gist = gist_authlib.register(oauth, client_id="i", client_secret="s", client_kwargs={"transport": transport})
    with pytest.raises(InvalidTokenResponseError):
        gist.fetch_access_token(code="c", redirect_uri="https://app.example/cb")
    with pytest.raises(TokenEndpointError) as failed:
        gist.fetch_access_token(code="c", redirect_uri="https://app.example/cb")
    assert failed.value.error == "server_error"
    nameless = gist_authlib.register(FlaskOAuth(flask_app), client_secret="s", client_kwargs={"transport": transport})
    with pytest.raises(MissingCredentialsError, match="GIST_CLIENT_ID"):
        nameless.fetch_access_token(code="c", redirect_uri="https://app.example/cb")


# --- a configured redirect URI ------------------------------------------------------------------------------


def test_a_configured_redirect_uri_wins_over_the_host_header(sandbox: tuple[GistSandbox, str]) -> None:
    _, url = sandbox
    oauth = StarletteOAuth(Config(environ={"GIST_REDIRECT_URI": CALLBACK}))
    app, gist, _ = hand_written_app(
        oauth, client_id="the-id", client_secret="the-secret", provider=GistProvider.at(url)
    )
    assert gist.gist_registration.redirect_uri == CALLBACK
    with TestClient(app, base_url="http://127.0.0.1") as client:
        forged = client.get("/login", headers={"Host": "evil.example"}, follow_redirects=False)
        # The login moves to the configured redirect URI's host first, where its cookie will come back...
        moved = forged.headers["location"]
        assert moved == f"{APP}/login?gist_moved=1"
        assert "set-cookie" not in forged.headers
        # ...and is sent to Gist from there, with the configured redirect URI.
        started = client.get(moved.removeprefix(APP), follow_redirects=False)
        assert query_of(started.headers["location"])["redirect_uri"] == CALLBACK
        assert log_in(client).json()["access_token"]


def test_a_configured_redirect_uri_is_checked_like_the_endpoints() -> None:
    from gist_authlib.errors import InsecureTransportError

    with pytest.raises(InsecureTransportError):
        gist_authlib.register(StarletteOAuth(), client_id="i", client_secret="s", redirect_uri="http://app.example/cb")


# --- two registrations --------------------------------------------------------------------------------------


def test_default_paths_follow_the_registration_name() -> None:
    from gist_authlib.starlette import gist_routes

    oauth = StarletteOAuth()
    first = gist_authlib.register(oauth, client_id="i", client_secret="s")
    second = gist_authlib.register(oauth, "gist_eu", client_id="j", client_secret="t")
    paths = [r.path for r in gist_routes(first, on_login=lambda r, t: None)]
    paths += [r.path for r in gist_routes(second, on_login=lambda r, t: None)]
    assert paths == ["/auth/gist", "/oauth/gist/callback", "/auth/gist_eu", "/oauth/gist_eu/callback"]


@pytest.mark.parametrize("framework", ["starlette", "flask", "django"])
def test_two_registrations_on_one_path_are_refused(framework: str) -> None:
    if framework == "starlette":
        from gist_authlib.starlette import gist_routes as routes

        oauth: Any = StarletteOAuth()
    elif framework == "flask":
        from gist_authlib.flask import gist_blueprint as routes

        oauth = FlaskOAuth()
    else:
        from authlib.integrations.django_client import OAuth as DjangoOAuth

        from gist_authlib.django import gist_urls as routes

        oauth = DjangoOAuth()
    first = gist_authlib.register(oauth, client_id="i", client_secret="s")
    second = gist_authlib.register(oauth, "gist_eu", client_id="j", client_secret="t")
    routes(first, on_login=lambda *a: None, login_path="/auth/gist")
    routes(first, on_login=lambda *a: None, login_path="/auth/gist")  # the same registration again: fine
    with pytest.raises(ConfigurationError, match="'gist' and 'gist_eu' both route '/auth/gist'"):
        routes(second, on_login=lambda *a: None, login_path="/auth/gist")


# --- the store is written before the app answers -------------------------------------------------------------


class BrokenStore(MemoryTokenStore):
    """A token store whose writes fail, as a database that is down would."""

    def save(self, *args: Any, **kwargs: Any) -> Any:
        raise TokenStoreError("The token database is unavailable.")


def test_a_failed_store_write_means_on_login_never_runs(sandbox: tuple[GistSandbox, str]) -> None:
    from gist_authlib.starlette import gist_routes

    _gist_sandbox, url = sandbox
    oauth = StarletteOAuth()
    gist = gist_authlib.register(
        oauth, client_id="the-id", client_secret="the-secret", provider=GistProvider.at(url), token_store=BrokenStore()
    )
    acted_on: list[Any] = []
    routes = gist_routes(gist, on_login=lambda request, token: acted_on.append(token), callback_path="/auth")
    app = Starlette(routes=routes, middleware=[Middleware(SessionMiddleware, secret_key="test")])
    with TestClient(app, base_url=APP) as client:
        response = log_in(client, "/auth/gist")
    assert response.status_code == 503
    # The end user reads that the site could not keep the connection; the store's own words go to the log.
    assert "could not save or read your connection to Gist" in response.text
    assert "token database is unavailable" not in response.text
    assert acted_on == []


def test_the_subject_can_be_named_by_an_async_function_and_the_store_holds_it(
    sandbox: tuple[GistSandbox, str],
) -> None:
    from gist_authlib.starlette import gist_routes

    _, url = sandbox
    store = MemoryTokenStore()
    gist = gist_authlib.register(
        StarletteOAuth(),
        client_id="the-id",
        client_secret="the-secret",
        provider=GistProvider.at(url),
        token_store=store,
    )

    async def subject(request: Request, token: dict[str, Any]) -> str:
        return "user-42"

    async def on_login(request: Request, token: dict[str, Any]) -> Response:
        record = store.get(request.state.gist_subject)  # already stored when the app sees the login
        return JSONResponse({"subject": request.state.gist_subject, "stored": record is not None})

    routes = gist_routes(gist, on_login=on_login, subject=subject, callback_path="/auth")
    app = Starlette(routes=routes, middleware=[Middleware(SessionMiddleware, secret_key="test")])
    with TestClient(app, base_url=APP) as client:
        assert log_in(client, "/auth/gist").json() == {"subject": "user-42", "stored": True}


def test_a_sync_app_runs_an_async_subject_to_completion(sandbox: tuple[GistSandbox, str]) -> None:
    from flask import Flask

    from gist_authlib.flask import gist_blueprint

    _, url = sandbox
    flask_app = Flask(__name__)
    flask_app.secret_key = "test"
    oauth = FlaskOAuth(flask_app)
    gist = gist_authlib.register(
        oauth,
        client_id="the-id",
        client_secret="the-secret",
        provider=GistProvider.at(url),
        token_store=MemoryTokenStore(),
    )

    async def subject(token: dict[str, Any]) -> str:
        return "user-42"

    flask_app.register_blueprint(
        gist_blueprint(gist, on_login=lambda token: "ok", subject=subject, callback_path="/auth")  # type: ignore[arg-type]
    )
    with flask_app.test_client() as client:
        authorize = client.get("/auth/gist", base_url=APP).headers["location"]
        callback = httpx2.get(authorize, follow_redirects=False, trust_env=False).headers["location"]
        response = client.get(callback.removeprefix(APP), base_url=APP)
        # The one rule of the package's drivers: an async callback in sync code runs in a new event loop.
        assert response.status_code == 200
    assert gist.gist_registration.store.get("user-42") is not None

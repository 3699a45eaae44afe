"""Who logged in, and settings where the user put them: userinfo as Authlib's OpenID providers give it, a
multi-provider app on Authlib's generic routes, Flask settings from the environment, a redirect URI that cannot
reach the callback, and the log line of a refused token request.

The sandbox is served on loopback; the apps run in process behind their frameworks' test clients.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from authlib.integrations.base_client import OAuthError
from authlib.integrations.flask_client import OAuth as FlaskOAuth
from authlib.integrations.starlette_client import OAuth as StarletteOAuth
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

import gist_authlib
import gist_authlib.flask
import gist_authlib.starlette
from gist_authlib import GistProvider
from gist_authlib.errors import ConfigurationError
from gist_authlib.sandbox import GistSandbox, SandboxClient, ServerThread, create_app
from gist_authlib.starlette import gist_routes

APP = "http://127.0.0.1"


@pytest.fixture(scope="module")
def sandbox() -> Iterator[tuple[GistSandbox, str]]:
    server = ServerThread()
    app = create_app(
        clients=[
            SandboxClient(
                "the-id", "the-secret", (f"{APP}/oauth/gist/callback", "http://localhost/oauth/gist/callback")
            )
        ],
        auto_approve=True,
    )
    server.start(app)
    yield app, server.url
    server.stop()


def walk(client: Any, start: str) -> Any:
    """login -> the (auto-approving) sandbox -> the callback; the callback's answer."""
    authorize = client.get(start, follow_redirects=False).headers["location"]
    callback = httpx2.get(authorize, follow_redirects=False, trust_env=False).headers["location"]
    return client.get(callback, follow_redirects=False)


def multi_provider_app(oauth: StarletteOAuth) -> Starlette:
    """Authlib's generic routes for every provider, as a multi-provider app writes them: nothing Gist-specific."""

    async def login(request: Request) -> Response:
        client = oauth.create_client(request.path_params["name"])
        redirect_uri = request.url_for("auth", name=request.path_params["name"])
        response: Response = await client.authorize_redirect(request, redirect_uri)
        return response

    async def auth(request: Request) -> Response:
        client = oauth.create_client(request.path_params["name"])
        try:
            token = await client.authorize_access_token(request)
        except OAuthError as error:
            return PlainTextResponse(f"{error.error} ({getattr(error, 'error_code', '')})", status_code=400)
        user = token.get("userinfo") or await client.userinfo(token=token)
        request.session["user"] = dict(user)
        return JSONResponse({"user": dict(user), "again": dict(await client.userinfo(token=token))})

    return Starlette(
        routes=[Route("/login/{name}", login), Route("/oauth/{name}/callback", auth, name="auth")],
        middleware=[Middleware(SessionMiddleware, secret_key="test")],
    )


def test_a_multi_provider_app_on_authlibs_generic_routes_learns_who_logged_in(sandbox: tuple[GistSandbox, str]) -> None:
    box, url = sandbox
    oauth = StarletteOAuth()
    gist_authlib.register(oauth, client_id="the-id", client_secret="the-secret", provider=GistProvider.at(url))
    api_calls = box.api_requests
    with TestClient(multi_provider_app(oauth), base_url=APP) as client:
        answer = walk(client, "/login/gist")
    assert answer.status_code == 200, answer.text
    workspace = box.workspace
    expected = {"sub": str(workspace.id), "name": workspace.name, "workspace_id": str(workspace.id)}
    assert {k: answer.json()["user"][k] for k in expected} == expected
    assert answer.json()["again"] == answer.json()["user"]  # from the token: no second lookup needed
    assert box.api_requests - api_calls == 1  # the callback's one lookup; userinfo() then asks nothing


def test_userinfo_asks_gist_for_a_token_that_carries_none(sandbox: tuple[GistSandbox, str]) -> None:
    box, url = sandbox
    oauth = FlaskOAuth()
    gist = gist_authlib.register(oauth, client_id="the-id", client_secret="the-secret", provider=GistProvider.at(url))
    from flask import Flask

    flask_app = Flask("userinfo")
    oauth.init_app(flask_app)
    # A real login's token, without what the callback added to it.
    flask_app.secret_key = "test"
    flask_app.add_url_rule("/login", "login", lambda: gist.authorize_redirect("http://localhost/oauth/gist/callback"))
    seen: list[dict[str, Any]] = []

    def callback() -> Any:
        seen.append(gist.authorize_access_token())
        return "ok"

    flask_app.add_url_rule("/oauth/gist/callback", "callback", callback)
    assert walk(flask_app.test_client(), "/login").status_code == 200
    token = {"access_token": seen[0]["access_token"]}
    before = box.api_requests
    with flask_app.app_context():
        info = gist.userinfo(token=token)
        assert info["sub"] == str(box.workspace.id) and info["name"] == box.workspace.name
        assert box.api_requests == before + 1
        with pytest.raises(ConfigurationError, match="token="):
            gist.userinfo()
        with pytest.raises(OAuthError) as caught:
            gist.userinfo(token={"access_token": "not-a-token"})
    assert caught.value.error_code == "workspace_unknown"


def test_flask_reads_gist_settings_exported_in_the_shell(
    sandbox: tuple[GistSandbox, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from flask import Flask

    _, url = sandbox
    monkeypatch.setenv("GIST_CLIENT_ID", "the-id")
    monkeypatch.setenv("GIST_CLIENT_SECRET", "the-secret")
    monkeypatch.setenv("GIST_REDIRECT_URI", "http://localhost/oauth/gist/callback")
    flask_app = Flask("from_env")
    flask_app.secret_key = "test"
    oauth = FlaskOAuth(flask_app)  # app.config has no GIST_* at all
    gist = gist_authlib.flask.register(oauth, provider=GistProvider.at(url))
    flask_app.register_blueprint(gist_authlib.flask.gist_blueprint(gist, on_login=lambda token: "logged in"))
    answer = walk(flask_app.test_client(), "/auth/gist")
    assert (answer.status_code, answer.text) == (200, "logged in")


def test_a_redirect_uri_that_cannot_reach_the_callback_is_refused_before_gist(
    sandbox: tuple[GistSandbox, str], caplog: pytest.LogCaptureFixture
) -> None:
    box, url = sandbox
    requests_before = box.api_requests, len(box.token_requests)
    oauth = StarletteOAuth()
    gist = gist_authlib.starlette.register(
        oauth, client_id="the-id", client_secret="the-secret", provider=GistProvider.at(url), redirect_uri=f"{APP}/auth"
    )
    app = Starlette(
        routes=gist_routes(gist, on_login=lambda request, token: None),
        middleware=[Middleware(SessionMiddleware, secret_key="test")],
    )
    with TestClient(app, base_url=APP) as client:
        answer = client.get("/auth/gist", follow_redirects=False)
    assert answer.status_code == 503  # the developer's to fix; no user was sent to Gist
    assert "location" not in answer.headers
    assert "GIST_REDIRECT_URI" in caplog.text and "/oauth/gist/callback" in caplog.text
    assert (box.api_requests, len(box.token_requests)) == requests_before


def test_the_log_line_of_a_refused_token_request_leads_with_gists_error(
    sandbox: tuple[GistSandbox, str], caplog: pytest.LogCaptureFixture
) -> None:
    _, url = sandbox
    oauth = StarletteOAuth()
    gist = gist_authlib.starlette.register(
        oauth, client_id="the-id", client_secret="wrong-secret-value", provider=GistProvider.at(url)
    )
    app = Starlette(
        routes=gist_routes(gist, on_login=lambda request, token: RedirectResponse("/", 303)),
        middleware=[Middleware(SessionMiddleware, secret_key="test")],
    )
    caplog.set_level(logging.WARNING, logger="gist_authlib.login")
    with TestClient(app, base_url=APP) as client:
        answer = walk(client, "/auth/gist")
    assert answer.status_code == 502
    assert "invalid_client (token_endpoint_error)" in answer.text  # the page: the RFC 6749 name first
    line = next(r.getMessage() for r in caplog.records if r.name == "gist_authlib.login")
    assert line.startswith("Gist login 'gist' failed: invalid_client (token_endpoint_error)")
    assert "error='invalid_client'" in line and "wrong-secret-value" not in line


def test_flask_reads_every_gist_setting_from_the_environment(
    sandbox: tuple[GistSandbox, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sandbox's printed lines, exported in the shell: the endpoints too, so that a Flask app with no provider
    given sends its users to the sandbox, not to the real Gist with the sandbox's client id."""
    from flask import Flask

    box, url = sandbox
    for name, value in {
        "GIST_CLIENT_ID": "the-id",
        "GIST_CLIENT_SECRET": "the-secret",
        "GIST_REDIRECT_URI": "http://localhost/oauth/gist/callback",
        "GIST_AUTHORIZE_URL": f"{url}/oauth/authorize",
        "GIST_ACCESS_TOKEN_URL": f"{url}/oauth/token",
        "GIST_API_BASE_URL": f"{url}/",
    }.items():
        monkeypatch.setenv(name, value)
    flask_app = Flask("every_setting_from_env")
    flask_app.secret_key = "test"
    gist = gist_authlib.flask.register(FlaskOAuth(flask_app))  # no provider, app.config has no GIST_*
    flask_app.register_blueprint(
        gist_authlib.flask.gist_blueprint(gist, on_login=lambda token: token["userinfo"]["sub"])
    )
    client = flask_app.test_client()
    assert client.get("/auth/gist").headers["location"].startswith(f"{url}/oauth/authorize?")
    answer = walk(flask_app.test_client(), "/auth/gist")
    assert (answer.status_code, answer.text) == (200, str(box.workspace.id))


def test_a_token_answers_own_userinfo_never_says_who_logged_in(sandbox: tuple[GistSandbox, str]) -> None:
    """Only Gist's GET /token says who logged in: a userinfo block inside the token endpoint's answer is dropped,
    so when GET /token names no workspace (here it does not know the token), the login carries no userinfo."""
    box, url = sandbox
    oauth = StarletteOAuth()
    gist = gist_authlib.register(oauth, client_id="the-id", client_secret="the-secret", provider=GistProvider.at(url))
    seen: list[dict[str, Any]] = []

    def on_login(request: Request, token: dict[str, Any]) -> Response:
        seen.append(token)
        return PlainTextResponse("ok")

    app = Starlette(
        routes=gist_routes(gist, on_login=on_login), middleware=[Middleware(SessionMiddleware, secret_key="test")]
    )
    forged = {"access_token": "forged-access-token", "userinfo": {"sub": "the-attackers-workspace"}}
    box.fail_next_token_request(200, forged)
    with TestClient(app, base_url=APP) as client:
        assert walk(client, "/auth/gist").status_code == 200
    assert seen[0]["access_token"] == "forged-access-token" and "userinfo" not in seen[0]


def test_userinfo_believes_no_userinfo_it_did_not_store_for_that_very_token(sandbox: tuple[GistSandbox, str]) -> None:
    """A token of a real login with another workspace's userinfo written into it: userinfo() asks Gist, and answers
    the token's own workspace."""
    box, url = sandbox
    oauth = StarletteOAuth()
    gist = gist_authlib.register(oauth, client_id="the-id", client_secret="the-secret", provider=GistProvider.at(url))
    token = box.issue_token("the-id", ["read_teammates"])
    spoofed = {**token, "userinfo": {"sub": "someone-else", "workspace_id": "someone-else"}}
    import asyncio

    before = box.api_requests
    info = asyncio.run(gist.userinfo(token=spoofed))
    assert info["sub"] == str(box.workspace.id) and box.api_requests == before + 1

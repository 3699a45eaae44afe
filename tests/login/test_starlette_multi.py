"""Several providers in one Starlette app, and plain Authlib calls on a gist_authlib registration."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from authlib.integrations.starlette_client import OAuth
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from support.web import browser_client, query_of

import gist_authlib
from gist_authlib import GistAuthError, GistProvider
from gist_authlib.errors import MixUpError, UnknownStateError
from gist_authlib.sandbox import SandboxClient, ServerThread, create_app
from gist_authlib.starlette import default_on_error, gist_routes


@pytest.fixture
def two_gists() -> Iterator[dict[str, Any]]:
    """One app with Gist registered twice (two sandboxes, two apps) and a plain Authlib route too."""
    app_server, sb_a, sb_b = ServerThread(), ServerThread(), ServerThread()
    sandboxes = {
        "gist_a": create_app(
            clients=[
                SandboxClient(
                    "a-id",
                    "a-secret",
                    (f"{app_server.url}/oauth/a/callback", f"{app_server.url}/raw/callback"),
                )
            ],
            auto_approve=True,
        ),
        "gist_b": create_app(
            clients=[SandboxClient("b-id", "b-secret", (f"{app_server.url}/oauth/b/callback",))],
            auto_approve=True,
        ),
    }
    oauth = OAuth()
    gist_a = gist_authlib.register(
        oauth, "gist_a", client_id="a-id", client_secret="a-secret", provider=GistProvider.at(sb_a.url)
    )
    gist_b = gist_authlib.register(
        oauth,
        "gist_b",
        client_id="b-id",
        client_secret="b-secret",
        provider=GistProvider.at(sb_b.url),
        scopes="read_teammates read_teams",
    )
    seen: dict[str, Any] = {"logins": [], "errors": []}

    def on_login_for(name: str) -> Any:
        async def on_login(request: Request, token: dict[str, Any]) -> Response:
            seen["logins"].append((name, token))
            return JSONResponse({"provider": name})

        return on_login

    def on_error(request: Request, error: GistAuthError) -> Response:
        seen["errors"].append(error)
        return default_on_error(request, error)

    async def raw_login(request: Request) -> Response:
        response: Response = await gist_a.authorize_redirect(request, f"{app_server.url}/raw/callback")
        return response

    async def raw_callback(request: Request) -> Response:
        token = await gist_a.authorize_access_token(request)
        teammates = await gist_a.get("teammates", token=token)
        return JSONResponse({"token_keys": sorted(token), "teammates": len(teammates.json()["teammates"])})

    app = Starlette(
        routes=[
            *gist_routes(
                gist_a,
                on_login=on_login_for("a"),
                on_error=on_error,
                login_path="/auth/a",
                callback_path="/oauth/a/callback",
            ),
            *gist_routes(
                gist_b,
                on_login=on_login_for("b"),
                on_error=on_error,
                login_path="/auth/b",
                callback_path="/oauth/b/callback",
            ),
            Route("/raw/login", raw_login),
            Route("/raw/callback", raw_callback),
        ],
        middleware=[Middleware(SessionMiddleware, secret_key="k")],
    )
    sb_a.start(sandboxes["gist_a"])
    sb_b.start(sandboxes["gist_b"])
    app_server.start(app)
    seen.update(url=app_server.url, sandboxes=sandboxes)
    yield seen
    for server in (app_server, sb_a, sb_b):
        server.stop()


def _follow_to_callback(browser: httpx2.Client, start_url: str) -> str:
    authorize = browser.get(start_url).headers["location"]
    return str(browser.get(authorize).headers["location"])


def test_each_registration_logs_in_with_its_own_server(two_gists: dict[str, Any]) -> None:
    url = two_gists["url"]
    with browser_client() as browser:
        a = _follow_to_callback(browser, f"{url}/auth/a")
        b = _follow_to_callback(browser, f"{url}/auth/b")
        assert browser.get(b).json() == {"provider": "b"}
        assert browser.get(a).json() == {"provider": "a"}
    assert [name for name, _ in two_gists["logins"]] == ["b", "a"]
    assert two_gists["logins"][0][1] != two_gists["logins"][1][1]
    assert query_of(a)["code"] != query_of(b)["code"]


def test_state_of_one_registration_is_refused_by_the_other(two_gists: dict[str, Any]) -> None:
    url = two_gists["url"]
    with browser_client() as browser:
        a_callback = _follow_to_callback(browser, f"{url}/auth/a")
        # With a's issuer on it, b refuses it as a mix-up (RFC 9207)...
        crossed = browser.get(f"{url}/oauth/b/callback", params=query_of(a_callback))
        assert crossed.status_code == 400
        assert isinstance(two_gists["errors"][0], MixUpError)
        # ...and without it, b does not know the state.
        without_iss = {k: v for k, v in query_of(a_callback).items() if k != "iss"}
        assert browser.get(f"{url}/oauth/b/callback", params=without_iss).status_code == 400
        assert isinstance(two_gists["errors"][1], UnknownStateError)
        assert two_gists["sandboxes"]["gist_b"].token_requests == []
        assert two_gists["sandboxes"]["gist_a"].token_requests == []
        # ...and the crossed attempt did not spend registration a's pending login.
        assert browser.get(a_callback).json() == {"provider": "a"}


def test_plain_authlib_calls_work_on_a_gist_registration(two_gists: dict[str, Any]) -> None:
    url = two_gists["url"]
    with browser_client() as browser:
        authorize = browser.get(f"{url}/raw/login").headers["location"]
        assert query_of(authorize)["scope"] == "read_teammates"
        callback = browser.get(authorize).headers["location"]
        answer = browser.get(callback)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"token_keys": ["access_token", "userinfo"], "teammates": 3}

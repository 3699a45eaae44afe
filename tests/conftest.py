"""Shared fixtures: real servers on loopback ports (uvicorn in threads), and a scripted browser."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest
from authlib.integrations.starlette_client import OAuth
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

import gist_authlib
from gist_authlib import GistAuthError, GistProvider
from gist_authlib.sandbox import GistSandbox, SandboxClient, ServerThread, create_app
from gist_authlib.starlette import default_on_error, gist_routes


def query_of(url: str) -> dict[str, str]:
    """The query parameters of ``url``, one value each."""
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query, keep_blank_values=True).items()}


@dataclass
class Stack:
    """A sandbox and a Starlette app using gist_authlib, both served on loopback."""

    sandbox: GistSandbox
    sandbox_url: str
    app_url: str
    client_id: str
    client_secret: str
    logins: list[dict[str, Any]] = field(default_factory=list)
    errors: list[GistAuthError] = field(default_factory=list)
    gist: Any = None

    def browser(self) -> httpx2.Client:
        """A fresh browser: its own cookie jar, redirects followed by hand."""
        return httpx2.Client(follow_redirects=False, timeout=10, trust_env=False)

    def start_login(self, browser: httpx2.Client, path: str = "/auth/gist", **params: str) -> str:
        """Start a login and return the authorization URL the app redirected to."""
        response = browser.get(self.app_url + path, params=params or None)
        assert response.status_code == 302, response.text
        return response.headers["location"]

    def authorize(self, browser: httpx2.Client, authorize_url: str) -> str:
        """Visit the (auto-approving) sandbox and return the callback URL it redirected to."""
        response = browser.get(authorize_url)
        assert response.status_code == 302, response.text
        return response.headers["location"]

    def login(self, browser: httpx2.Client | None = None) -> httpx2.Response:
        """A whole login; returns the callback's response."""
        browser = browser or self.browser()
        callback = self.authorize(browser, self.start_login(browser))
        return browser.get(callback)


def build_app(
    oauth: OAuth,
    gist: Any,
    stack: Stack,
    *,
    sessions: bool = True,
    extra_routes: list[Route] | None = None,
) -> Starlette:
    async def on_login(request: Request, token: dict[str, Any]) -> Response:
        stack.logins.append(token)
        response = await gist.get("teammates", token=token)
        return JSONResponse(
            {
                "teammates": [t["name"] for t in response.json()["teammates"]],
                "next": request.state.gist_next,
            }
        )

    def on_error(request: Request, error: GistAuthError) -> Response:
        stack.errors.append(error)
        return default_on_error(request, error)

    routes = [*gist_routes(gist, on_login=on_login, on_error=on_error), *(extra_routes or [])]
    middleware = [Middleware(SessionMiddleware, secret_key="test-session-secret")] if sessions else []
    return Starlette(routes=routes, middleware=middleware)


@pytest.fixture
def make_stack() -> Iterator[Any]:
    """Build a sandbox and an app; keyword arguments tune the sandbox and the registration."""
    servers: list[ServerThread] = []

    def factory(
        *,
        auto_approve: bool = True,
        sessions: bool = True,
        register_kwargs: dict[str, Any] | None = None,
        sandbox_kwargs: dict[str, Any] | None = None,
    ) -> Stack:
        sandbox_server = ServerThread()
        app_server = ServerThread()
        servers.extend([sandbox_server, app_server])
        client_id = "app-" + secrets.token_hex(4)
        client_secret = "secret-" + secrets.token_urlsafe(16)
        sandbox = create_app(
            clients=[SandboxClient(client_id, client_secret, (f"{app_server.url}/oauth/gist/callback",))],
            auto_approve=auto_approve,
            **(sandbox_kwargs or {}),
        )
        stack = Stack(sandbox, sandbox_server.url, app_server.url, client_id, client_secret)
        oauth = OAuth()
        kwargs: dict[str, Any] = {
            "client_id": client_id,
            "client_secret": client_secret,
            "provider": GistProvider.at(sandbox_server.url),
        }
        kwargs.update(register_kwargs or {})
        stack.gist = gist_authlib.register(oauth, **kwargs)
        sandbox_server.start(sandbox)
        app_server.start(build_app(oauth, stack.gist, stack, sessions=sessions))
        return stack

    yield factory
    for server in servers:
        server.stop()


@pytest.fixture
def stack(make_stack: Any) -> Stack:
    """The default stack: an auto-approving sandbox and an app with sessions."""
    result: Stack = make_stack()
    return result

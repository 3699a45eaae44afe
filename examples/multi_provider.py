"""Gist beside a second OAuth 2 provider in one Authlib registry (Starlette).

``/auth/gist`` logs in with Gist through gist_authlib's routes; ``/auth/other`` logs in with any other
OAuth 2 provider through plain Authlib. Each keeps its own login state in the session, so neither can
complete (or disturb) the other's login. Gist failing gives the library's error page (502), never a bare 500.

Settings come from the environment: the Gist ones as in the Starlette example, and for the other provider
OTHER_CLIENT_ID, OTHER_CLIENT_SECRET, OTHER_AUTHORIZE_URL, OTHER_ACCESS_TOKEN_URL, OTHER_API_BASE_URL
(Authlib's own names, prefixed with the registration's name).

Run it:  uvicorn --factory gist_authlib.examples.multi_provider:create_app --port 8000
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from html import escape
from typing import Any, cast

from authlib.integrations.starlette_client import OAuth, OAuthError
from starlette.applications import Starlette
from starlette.config import Config
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

import gist_authlib
from gist_authlib import AsyncGistClient, GistAuthError
from gist_authlib.starlette import default_on_error, gist_routes


def create_app(environ: Mapping[str, str] | None = None) -> Starlette:
    """Build the example app from ``environ`` (the process environment by default)."""
    config = Config(environ=environ if environ is not None else os.environ)
    oauth = OAuth(config)
    gist = gist_authlib.register(oauth)  # GIST_* settings
    other = oauth.register("other", client_kwargs={"scope": config("OTHER_SCOPES", default="read_teammates")})

    def teammates_page(provider: str, teammates: list[dict[str, Any]]) -> HTMLResponse:
        rows = "".join(f"<li>{escape(str(t.get('name', '')))}</li>" for t in teammates)
        return HTMLResponse(
            "<!doctype html><link rel=icon href=data:,>"
            f"<title>Logged in</title><h1>Logged in with {escape(provider)}</h1>"
            f'<ul id="teammates">{rows}</ul><p><a href="/">Home</a></p>'
        )

    async def home(request: Request) -> HTMLResponse:
        return HTMLResponse(
            "<!doctype html><link rel=icon href=data:,><title>Two providers</title><h1>Welcome</h1>"
            '<p><a href="/auth/gist">Log in with Gist</a> or <a href="/auth/other">with the other provider</a></p>'
        )

    async def on_gist_login(request: Request, token: dict[str, Any]) -> HTMLResponse:
        async with AsyncGistClient.from_authlib(gist, token) as client:  # typed answers, typed errors
            teammates = await client.teammates.list()
        return teammates_page("Gist", [dict(t.raw) for t in teammates])

    def on_gist_error(request: Request, error: Exception) -> Response:
        return default_on_error(request, cast(GistAuthError, error))

    async def other_login(request: Request) -> Response:
        redirect: Response = await other.authorize_redirect(request, str(request.url_for("other_callback")))
        return redirect

    async def other_callback(request: Request) -> Response:
        try:
            token = await other.authorize_access_token(request)
        except OAuthError as error:
            return HTMLResponse(f"<h1>Login failed</h1><p>{escape(error.error or 'error')}</p>", status_code=400)
        response = await other.get("teammates", token=token)
        return teammates_page("the other provider", response.json().get("teammates", []))

    return Starlette(
        routes=[
            Route("/", home),
            *gist_routes(gist, on_login=on_gist_login),
            Route("/auth/other", other_login),
            Route("/oauth/other/callback", other_callback, name="other_callback"),
        ],
        middleware=[Middleware(SessionMiddleware, secret_key=config("SESSION_SECRET"), same_site="lax")],
        exception_handlers={GistAuthError: on_gist_error},
    )

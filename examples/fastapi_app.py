"""Gist's Ruby quickstart with FastAPI, plus a dependency that gives a view the current user's token.

Routes: ``/`` welcomes with a login link, ``/auth/gist`` starts the login, ``/oauth/gist/callback``
exchanges the code, fetches ``/teammates`` with the new token and shows them; ``/me/teammates`` lists
them again later, through the ``current_token`` dependency.

Tokens are kept in an encrypted store (GIST_TOKEN_KEY; GIST_TOKEN_DB, a SQLite file or a database URL such as
postgresql://..., and GIST_TRUSTED_PROXIES, as in the Starlette example);
the browser session holds only the key they are stored under. Settings come from the environment. Every page
answers a failure with the library's error page: 502 when Gist fails, 503 when the token store is down.

Run it:  uvicorn --factory gist_authlib.examples.fastapi_app:create_app --port 8000
Or:      gist-authlib demo --framework fastapi
"""

# No "from __future__ import annotations" here: FastAPI reads the Depends() annotations at runtime, and
# the dependency is a local of create_app.
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from html import escape
from typing import Annotated, Any, cast

from authlib.integrations.starlette_client import OAuth
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, Response
from starlette.config import Config
from starlette.middleware.sessions import SessionMiddleware

import gist_authlib
from gist_authlib import AsyncGistClient, GistAuthError, InstallLimit
from gist_authlib.starlette import default_on_error, gist_routes, stored_token
from gist_authlib.tokens import open_token_store


def create_app(environ: Mapping[str, str] | None = None) -> FastAPI:
    """Build the example app from ``environ`` (the process environment by default)."""
    config = Config(environ=environ if environ is not None else os.environ)
    oauth = OAuth(config)
    store = open_token_store(
        config("GIST_TOKEN_DB", default="gist_tokens.sqlite3"), key=config("GIST_TOKEN_KEY", default=None)
    )
    gist = gist_authlib.register(
        oauth,
        scopes=config("GIST_SCOPES", default="read_teammates"),
        token_store=store,
        install_limit=InstallLimit(trusted_proxies=config("GIST_TRUSTED_PROXIES", default="")),
    )

    # One connection pool for the whole process; each user's calls go through with_token(...) on it.
    api = AsyncGistClient.from_authlib(gist, None)

    async def current_token(request: Request) -> dict[str, Any]:
        """The logged-in user's Gist token (from the store), or 401."""
        record = await stored_token(request, gist)  # the store down: a TokenStoreError (503 page)
        if record is None:
            raise HTTPException(status_code=401, detail="Log in with Gist first: /auth/gist")
        return dict(record.token)

    async def teammates_page(token: dict[str, Any]) -> HTMLResponse:
        teammates = await api.with_token(token).teammates.list()  # Gist failing: a GistAPIError (502 page)
        rows = "".join(f"<li>{escape(t.name or '')} &lt;{escape(t.email or '')}&gt;</li>" for t in teammates)
        return HTMLResponse(
            "<!doctype html><link rel=icon href=data:,><title>Your Gist teammates</title><h1>Logged in with Gist</h1>"
            f'<p>Your workspace has {len(teammates)} teammates:</p><ul id="teammates">{rows}</ul>'
            '<p><a href="/">Home</a></p>'
        )

    async def on_login(request: Request, token: dict[str, Any]) -> HTMLResponse:
        # Already stored, keyed by workspace; gist_routes(..., subject=...) keys it by your own user id instead.
        return await teammates_page(token)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await api.aclose()
        await gist.gist_aclose()  # the registration's pooled connections for the token exchange

    app = FastAPI(title="Gist login example", lifespan=lifespan)

    @app.exception_handler(GistAuthError)
    def on_gist_error(request: Request, error: Exception) -> Response:
        # Any GistAuthError a page raises gets the library's error page with its status, never a bare 500.
        return default_on_error(request, cast(GistAuthError, error))

    @app.get("/", response_class=HTMLResponse)
    async def home(request: Request) -> str:
        logged_in = gist.gist_registration.subject_key in request.session  # the session alone: no store read
        return (
            "<!doctype html><link rel=icon href=data:,><title>Gist example</title><h1>Welcome</h1>"
            + ('<p>Logged in with Gist. <a href="/me/teammates">Your teammates</a></p>' if logged_in else "")
            + '<p><a href="/auth/gist">Log in with Gist</a></p>'
        )

    @app.get("/me/teammates", response_class=HTMLResponse)
    async def my_teammates(token: Annotated[dict[str, Any], Depends(current_token)]) -> HTMLResponse:
        return await teammates_page(token)

    # on_install=None-returning function: installs started inside Gist are stored by workspace, then acknowledged.
    app.router.routes.extend(gist_routes(gist, on_login=on_login, on_install=lambda request, token, workspace_id: None))
    app.add_middleware(SessionMiddleware, secret_key=config("SESSION_SECRET"), same_site="lax")
    return app

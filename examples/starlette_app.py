"""Gist's Ruby quickstart, redone with Starlette and gist_authlib.

Routes: ``/`` welcomes with a login link, ``/auth/gist`` starts the login, ``/oauth/gist/callback``
exchanges the code, fetches ``/teammates`` with the new token and shows them; ``/me/teammates`` shows them
again later with the stored token. Tokens are kept in an encrypted store (a SQLite file, or a database
that several instances share), keyed by Gist workspace; the session cookie holds only that key. Every page
answers a failure with the library's error page: 502 when Gist fails, 503 when the token store is down.

Settings come from the environment, so the same file runs against real Gist, the sandbox, or any server
that speaks the same protocol:

    GIST_CLIENT_ID, GIST_CLIENT_SECRET        from your app in Gist's Developer Hub (required)
    SESSION_SECRET                            signs the session cookie (required)
    GIST_AUTHORIZE_URL, GIST_ACCESS_TOKEN_URL, GIST_API_BASE_URL   (optional; Gist's by default)
    GIST_SCOPES                               space-separated (optional; read_teammates by default)
    GIST_TOKEN_KEY                            encrypts stored tokens (required; make one with
                                              python -c "from gist_authlib.tokens import TokenCipher as C; print(C.generate_key())")
    GIST_TOKEN_DB                             the token store: a SQLite file (optional; gist_tokens.sqlite3), or
                                              a database URL (postgresql://...) that several instances share
    GIST_TRUSTED_PROXIES                      your reverse proxies' networks (optional; "10.0.0.0/8, ..."): the
                                              install limit then counts callers by X-Forwarded-For

Run it:  uvicorn --factory gist_authlib.examples.starlette_app:create_app --port 8000
Or let ``gist-authlib demo`` run it against the local sandbox.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Mapping
from html import escape
from typing import Any, cast

from authlib.integrations.starlette_client import OAuth
from starlette.applications import Starlette
from starlette.config import Config
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

import gist_authlib
from gist_authlib import AsyncGistClient, GistAuthError, InstallLimit
from gist_authlib.starlette import default_on_error, gist_routes, stored_token
from gist_authlib.tokens import open_token_store


def create_app(environ: Mapping[str, str] | None = None) -> Starlette:
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

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await api.aclose()
        await gist.gist_aclose()  # the registration's pooled connections for the token exchange

    async def home(request: Request) -> HTMLResponse:
        logged_in = gist.gist_registration.subject_key in request.session  # the session alone: no store read
        return HTMLResponse(
            "<!doctype html><link rel=icon href=data:,><title>Gist example</title><h1>Welcome</h1>"
            + ('<p>Logged in with Gist. <a href="/me/teammates">Your teammates</a></p>' if logged_in else "")
            + '<p><a href="/auth/gist">Log in with Gist</a></p>'
        )

    async def teammates_page(client: AsyncGistClient) -> HTMLResponse:
        teammates = await client.teammates.list()  # Gist failing: a GistAPIError, answered by default_on_error
        rows = "".join(f"<li>{escape(t.name or '')} &lt;{escape(t.email or '')}&gt;</li>" for t in teammates)
        return HTMLResponse(
            "<!doctype html><link rel=icon href=data:,><title>Your Gist teammates</title><h1>Logged in with Gist</h1>"
            f'<p>Your workspace has {len(teammates)} teammates:</p><ul id="teammates">{rows}</ul>'
            '<p><a href="/">Home</a></p>'
        )

    async def on_login(request: Request, token: dict[str, Any]) -> HTMLResponse:
        # The token is already stored, keyed by workspace (pass subject=lambda request, token: <your user id>
        # to gist_routes to key it by your own user instead).
        return await teammates_page(api.with_token(token))

    async def on_install(request: Request, token: dict[str, Any], workspace_id: str) -> None:
        # A workspace installed the app from inside Gist: its token is stored under workspace:<id>.
        return None  # on to Gist's install acknowledgement

    def on_gist_error(request: Request, error: Exception) -> Response:
        # Any GistAuthError a page raises gets the library's error page with its status (502 when Gist fails, 503
        # when the token store is down), never a bare 500.
        return default_on_error(request, cast(GistAuthError, error))

    async def my_teammates(request: Request) -> Response:
        record = await stored_token(request, gist)  # the store down: a TokenStoreError (503 page)
        if record is None:
            return RedirectResponse("/auth/gist?next=/me/teammates", status_code=303)
        # A 401 deletes the stored token (the app was uninstalled); the next visit logs in again.
        return await teammates_page(api.with_token(record.token, store=store, subject=record.subject))

    return Starlette(
        lifespan=lifespan,
        exception_handlers={GistAuthError: on_gist_error},
        routes=[
            Route("/", home),
            Route("/me/teammates", my_teammates),
            *gist_routes(gist, on_login=on_login, on_install=on_install),
        ],
        middleware=[
            Middleware(
                SessionMiddleware,
                secret_key=config("SESSION_SECRET"),
                https_only=config("SESSION_HTTPS_ONLY", cast=bool, default=False),
                same_site="lax",
            )
        ],
    )


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(create_app(), host="127.0.0.1", port=int(os.environ.get("PORT", "8000")))

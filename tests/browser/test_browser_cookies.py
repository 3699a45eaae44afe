"""Session cookies across the return from Gist, in a real browser (headless Chromium, Debian's package).

The return from Gist is a cross-site navigation: a ``SameSite=Lax`` session cookie comes back with it, a
``Strict`` one does not. Pending logins live in their own ``Lax`` login cookie, and a callback that arrives
without a session is opened again from the app's own site, so both log in. The sandbox runs on ``localhost``
and the app on ``127.0.0.1``: two sites.
"""

from __future__ import annotations

from typing import Any

import pytest
from authlib.integrations.starlette_client import OAuth
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from support.browser import BROWSER_TESTS

import gist_authlib
from gist_authlib import GistProvider
from gist_authlib.sandbox import SandboxClient, ServerThread, create_app
from gist_authlib.starlette import gist_routes

pytestmark = BROWSER_TESTS


def serve(same_site: str) -> tuple[ServerThread, ServerThread]:
    """An app on 127.0.0.1 whose session cookie has ``same_site``, and the sandbox (with its consent page) on
    localhost: a person approves there, so the return to the app is a navigation the other site started."""
    app_server, sandbox_server = ServerThread(), ServerThread(host="localhost")
    sandbox_server.start(
        create_app(clients=[SandboxClient("id", "secret", (f"{app_server.url}/oauth/gist/callback",))])
    )
    gist = gist_authlib.register(
        OAuth(), client_id="id", client_secret="secret", provider=GistProvider.at(sandbox_server.url)
    )

    def on_login(request: Request, token: dict[str, Any]) -> Response:
        return PlainTextResponse("Logged in with Gist")

    app_server.start(
        Starlette(
            routes=gist_routes(gist, on_login=on_login),
            middleware=[Middleware(SessionMiddleware, secret_key="cookie-test", same_site=same_site)],
        )
    )
    return app_server, sandbox_server


@pytest.mark.parametrize(
    ("same_site", "expected"),
    [("lax", "Logged in with Gist"), ("strict", "Logged in with Gist")],
)
@pytest.mark.parametrize("browser", ["chromium_browser", "full_chromium"], ids=["headless-shell", "full-browser"])
def test_the_session_cookie_across_the_return_from_gist(
    request: pytest.FixtureRequest, browser: str, same_site: str, expected: str
) -> None:
    app_server, sandbox_server = serve(same_site)
    context = request.getfixturevalue(browser).new_context()
    try:
        page = context.new_page()
        page.goto(f"{app_server.url}/auth/gist")  # -> the consent page on localhost
        page.get_by_role("button", name="Approve").click()  # -> back to 127.0.0.1, started by the other site
        page.wait_for_url(f"{app_server.url}/**")
        body = page.inner_text("body")
    finally:
        context.close()
        app_server.stop()
        sandbox_server.stop()
    assert expected in body, body

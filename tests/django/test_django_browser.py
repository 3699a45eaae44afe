"""A Django user's Gist login in headless Chromium: a ``@login_required`` page, the sandbox's consent page, and back
to the page, logged in as the workspace's user; a second visit needs no login."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser
from support.browser import BROWSER_TESTS
from support.django_project import serve_site

pytestmark = BROWSER_TESTS


def test_login_required_through_the_consent_page_and_back_in_chromium(
    chromium_browser: Browser, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Playwright's sync API keeps an event loop marked running on this thread, which Django takes for async code;
    # the project's database calls made here (emptying it) are synchronous all the same.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "1")
    with serve_site(auto_approve=False) as site:
        context = chromium_browser.new_context()
        context.set_default_timeout(15_000)
        errors: list[str] = []
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(str(error)))
        try:
            page.goto(f"{site.url}/private?tab=2")
            page.wait_for_url(f"{site.sandbox_url}/oauth/authorize?**")  # through /auth/gist?next=...
            page.get_by_role("button", name="Approve").click()
            page.wait_for_url(f"{site.url}/private?tab=2")
            first = page.inner_text("body")
            page.goto(f"{site.url}/private")
            second = page.inner_text("body")
            cookies = {cookie["name"]: cookie for cookie in context.cookies(site.url)}
        finally:
            context.close()
    assert '"user": "gist-100001"' in first and '"workspaces": ["100001"]' in first
    assert '"user": "gist-100001"' in second  # the session is the Django user's
    assert cookies["sessionid"]["httpOnly"] is True and cookies["sessionid"]["sameSite"] == "Lax"
    assert errors == []

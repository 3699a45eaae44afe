"""A Django user's Gist login in headless Chromium: a ``@login_required`` page, the sandbox's consent page, and back
to the page, logged in as the workspace's user; a second visit needs no login. And the admin's Gist pages."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from playwright.sync_api import Browser, BrowserContext, Page
from support.browser import BROWSER_TESTS
from support.django_project import serve_site

pytestmark = BROWSER_TESTS


@dataclass
class Tab:
    context: BrowserContext
    page: Page
    errors: list[str] = field(default_factory=list)


@pytest.fixture
def tab(chromium_browser: Browser, monkeypatch: pytest.MonkeyPatch) -> Iterator[Tab]:
    """A new visitor's tab, and the script errors of its pages."""
    # Playwright's sync API keeps an event loop marked running on this thread, which Django takes for async code;
    # the project's database calls made here (emptying it) are synchronous all the same.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "1")
    context = chromium_browser.new_context()
    context.set_default_timeout(15_000)
    tab = Tab(context, context.new_page())
    tab.page.on("pageerror", lambda error: tab.errors.append(str(error)))
    yield tab
    context.close()


def test_login_required_through_the_consent_page_and_back_in_chromium(tab: Tab) -> None:
    page = tab.page
    with serve_site(auto_approve=False) as site:
        page.goto(f"{site.url}/private?tab=2")
        page.wait_for_url(f"{site.sandbox_url}/oauth/authorize?**")  # through /auth/gist?next=...
        page.get_by_role("button", name="Approve").click()
        page.wait_for_url(f"{site.url}/private?tab=2")
        first = page.inner_text("body")
        page.goto(f"{site.url}/private")
        second = page.inner_text("body")
        cookies = {cookie["name"]: cookie for cookie in tab.context.cookies(site.url)}
    assert '"user": "gist-100001"' in first and '"workspaces": ["100001"]' in first
    assert '"user": "gist-100001"' in second  # the session is the Django user's
    assert cookies["sessionid"]["httpOnly"] is True and cookies["sessionid"]["sameSite"] == "Lax"
    assert tab.errors == []


def test_a_superuser_reads_and_forgets_a_token_in_the_admin_in_chromium(tab: Tab) -> None:
    """The admin pages the app adds, as a superuser meets them: the admin's own login form, the token list, the
    read-only token page with no token on it, and forgetting the token through Django's confirmation page."""
    from django.contrib.auth import get_user_model

    page = tab.page
    with serve_site() as site:
        from gist_authlib.django.models import GistToken

        page.goto(f"{site.url}/auth/gist")  # a Gist login, so that there is a token to see
        page.wait_for_url(f"{site.url}/private")
        row = GistToken.objects.get()
        access_token = site.gist.gist_registration.store.get(row.subject).token["access_token"]
        secrets = [row.token, row.token_hash, access_token]
        get_user_model().objects.create_superuser("admin", password="admin's long password")
        page.goto(f"{site.url}/admin/gist_authlib/gisttoken/")
        page.wait_for_url(f"{site.url}/admin/login/?**")  # the Gist user is not staff
        page.fill("#id_username", "admin")
        page.fill("#id_password", "admin's long password")
        page.click("input[type=submit]")
        page.wait_for_url(f"{site.url}/admin/gist_authlib/gisttoken/")
        listing = page.content()
        page.get_by_role("link", name=row.subject, exact=True).click()
        page.wait_for_url(f"{site.url}/admin/gist_authlib/gisttoken/*/change/")  # the admin quotes the key
        detail = page.content()
        page.get_by_role("link", name="Delete").click()
        page.get_by_role("button", name=re.compile("^Yes, I.m sure$")).click()
        page.wait_for_url(f"{site.url}/admin/")  # without the change permission, the admin goes home
        deleted = page.inner_text("body")
        remaining = GistToken.objects.count()
    assert row.subject in listing and site.sandbox.workspace.name in listing
    assert 'name="token"' not in detail
    assert not [secret for secret in secrets if secret in listing or secret in detail]
    assert remaining == 0 and "was deleted successfully" in deleted
    assert tab.errors == []

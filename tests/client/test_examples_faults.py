"""The example apps when things fail: the token database down (PostgreSQL refusing the app's database) gives the
503 page on every page that needs it, Gist failing gives the 502 page; never a bare 500.

The examples run on loopback against the sandbox, with Gist's API behind the fault layer (tests/support/gist_faults.py)
and their tokens in a PostgreSQL database of their own.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Any

import httpx2
import psycopg
import pytest
from support.browser import BROWSER_TESTS
from support.gist_faults import Answer, GistFaults, Huge, Reset
from support.postgres import fresh_database
from support.web import browser_client

from gist_authlib.sandbox import SandboxClient, ServerThread, WSGIServerThread, create_app
from gist_authlib.tokens import TokenCipher

#: The examples that keep tokens in a store (the Django project is another helper's).
STORED = ["starlette_app", "fastapi_app", "flask_app"]


class Example:
    """One example app served on loopback, with the sandbox, the fault layer and its own database."""

    def __init__(self, name: str, database: str) -> None:
        self.database = database
        self.server: Any = WSGIServerThread() if name == "flask_app" else ServerThread()
        self.sandbox = create_app(
            clients=[SandboxClient("ex-id", "ex-secret", (f"{self.server.url}/oauth/gist/callback",))],
            auto_approve=True,
        )
        self.gist_server = ServerThread(self.sandbox).start()
        self.faults = GistFaults(upstream=self.gist_server.url).start()
        env = {
            "GIST_CLIENT_ID": "ex-id",
            "GIST_CLIENT_SECRET": "ex-secret",
            "GIST_AUTHORIZE_URL": f"{self.gist_server.url}/oauth/authorize",
            "GIST_ACCESS_TOKEN_URL": f"{self.gist_server.url}/oauth/token",
            "GIST_API_BASE_URL": f"{self.faults.url}/",
            "SESSION_SECRET": "example-session-secret",
            "GIST_TOKEN_KEY": TokenCipher.generate_key(),
            "GIST_TOKEN_DB": database,
        }
        self.server.start(importlib.import_module(f"gist_authlib.examples.{name}").create_app(env))
        self.url = self.server.url

    def login(self, browser: httpx2.Client) -> httpx2.Response:
        """A whole login, redirects followed by hand; the callback's answer."""
        authorize = browser.get(f"{self.url}/auth/gist").headers["location"]
        return browser.get(browser.get(authorize).headers["location"])

    def stop(self) -> None:
        self.server.stop()
        self.faults.stop()
        self.gist_server.stop()


def take_down(database: str) -> None:
    """The app's database refuses every connection, and the ones it had are cut."""
    name = database.rsplit("/", 1)[1]
    admin = database.replace("postgresql+psycopg://", "postgresql://").rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))


@pytest.fixture(params=STORED)
def example(request: pytest.FixtureRequest, postgres_url: str) -> Iterator[Example]:
    made = Example(str(request.param), fresh_database(postgres_url))
    yield made
    made.stop()


def assert_error_page(response: httpx2.Response, status: int) -> None:
    assert response.status_code == status, response.text[:300]
    assert response.headers["content-type"].startswith("text/html") and "<h1>" in response.text
    assert "Traceback" not in response.text and "Internal Server Error" not in response.text


def test_gist_failing_gives_the_502_page_on_every_page_that_calls_it(example: Example) -> None:
    with browser_client(follow_redirects=False, timeout=30) as browser:
        assert example.login(browser).status_code == 200
        for fault in (Answer(b"<html>oops</html>"), Answer({"teammates": "none"}), Reset(), Huge(64 << 20)):
            example.faults.inject("/teammates", fault)
            assert_error_page(browser.get(f"{example.url}/me/teammates"), 502)
        example.faults.clear()
        assert browser.get(f"{example.url}/me/teammates").status_code == 200


def test_the_token_database_down_gives_the_503_page_never_a_500(example: Example) -> None:
    with browser_client(follow_redirects=False, timeout=30) as browser:
        assert example.login(browser).status_code == 200
        assert browser.get(f"{example.url}/me/teammates").status_code == 200
        take_down(example.database)
        assert_error_page(browser.get(f"{example.url}/me/teammates"), 503)
        assert browser.get(f"{example.url}/").status_code == 200  # a page that needs no token still works
    with browser_client(follow_redirects=False, timeout=30) as newcomer:
        assert newcomer.get(f"{example.url}/me/teammates").status_code in (302, 303, 307, 401)  # not logged in
        assert_error_page(example.login(newcomer), 503)  # the login cannot keep its token: nothing half-done


@BROWSER_TESTS
def test_chromium_shows_the_502_page_when_gist_fails(chromium_browser: Any, tmp_path: Any) -> None:
    example = Example("starlette_app", str(tmp_path / "tokens.sqlite3"))
    context = chromium_browser.new_context()
    context.set_default_timeout(15_000)
    try:
        page = context.new_page()
        page.goto(f"{example.url}/auth/gist")  # the sandbox approves at once and sends the browser back
        assert page.locator("h1").inner_text() == "Logged in with Gist"
        example.faults.inject("/teammates", Answer([]))
        response = page.goto(f"{example.url}/me/teammates")
        assert response is not None and response.status == 502
        assert page.locator("h1").inner_text() == "The Gist API refused the request"
        assert "GET teammates" in page.locator("body").inner_text()
        example.faults.clear()
        page.goto(f"{example.url}/me/teammates")
        assert page.locator("#teammates li").count() == len(example.sandbox.workspace.teammates)
    finally:
        context.close()
        example.stop()


def test_the_multi_provider_example_answers_gist_failing_with_the_502_page() -> None:
    server = ServerThread()
    sandbox = create_app(
        clients=[SandboxClient("gist-id", "gist-secret", (f"{server.url}/oauth/gist/callback",))], auto_approve=True
    )
    with ServerThread(sandbox) as gist_server, GistFaults(upstream=gist_server.url) as faults:
        env = {
            "GIST_CLIENT_ID": "gist-id",
            "GIST_CLIENT_SECRET": "gist-secret",
            "GIST_AUTHORIZE_URL": f"{gist_server.url}/oauth/authorize",
            "GIST_ACCESS_TOKEN_URL": f"{gist_server.url}/oauth/token",
            "GIST_API_BASE_URL": f"{faults.url}/",
            "SESSION_SECRET": "example-session-secret",
            **{f"OTHER_{k}": "unused" for k in ("CLIENT_ID", "CLIENT_SECRET", "AUTHORIZE_URL", "ACCESS_TOKEN_URL")},
        }
        server.start(importlib.import_module("gist_authlib.examples.multi_provider").create_app(env))
        try:
            faults.inject("/teammates", Answer([]))
            with browser_client(follow_redirects=False, timeout=30) as browser:
                authorize = browser.get(f"{server.url}/auth/gist").headers["location"]
                assert_error_page(browser.get(browser.get(authorize).headers["location"]), 502)
        finally:
            server.stop()

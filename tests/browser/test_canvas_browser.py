"""The sandbox's inbox in real headless Chromium: a person opens it, sees the app, clicks, sees the details.

Debian's chromium, driven by Playwright (no browser download). The page runs under the inbox's own
Content-Security-Policy, so a blocked stylesheet or form would show here and not with an HTTP client.
Screenshots go to the test's tmp_path.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, expect
from starlette.applications import Starlette
from support.browser import BROWSER_TESTS

from gist_authlib import demo
from gist_authlib.canvas import Canvas, InitializeRequest, Input, List, ListItem, SubmitAction, SubmitRequest, Text
from gist_authlib.sandbox import CanvasApp, GistSandbox, SandboxClient, ServerThread, create_app
from gist_authlib.starlette import canvas_routes

pytestmark = BROWSER_TESTS

ROOT = Path(__file__).resolve().parents[2]
SECRET = "browser-canvas-secret-" + "b" * 20


def notes_initialize(request: InitializeRequest) -> Canvas:
    return Canvas(
        [
            Input("note", label="Note", placeholder="Write a note", action=SubmitAction()),
            List([ListItem("pick", "Pick me")]),
        ]
    )


def notes_submit(request: SubmitRequest) -> Canvas:
    return Canvas([Text(f"Saved by {request.component_id}: {request.input_values.get('note')}")])


@dataclass
class Inbox:
    url: str
    sandbox: GistSandbox


@pytest.fixture(scope="module")
def inbox() -> Iterator[Inbox]:
    """The sandbox's inbox with examples/canvas_app.py installed, both served on loopback."""
    example = demo.example_module("canvas")
    orders = ServerThread(example.create_app({"GIST_CLIENT_SECRET": SECRET})).start()
    sandbox = create_app(
        clients=[SandboxClient("orders", SECRET, ("http://127.0.0.1:9/cb",), name="Orders")],
        canvas_apps=[CanvasApp.at("orders", f"{orders.url}/gist/canvas")],
    )
    sandbox_server = ServerThread(sandbox).start()
    yield Inbox(sandbox_server.url, sandbox)
    sandbox_server.stop()
    orders.stop()


@pytest.fixture
def page(chromium_browser: Browser) -> Iterator[tuple[Page, list[str]]]:
    """A fresh page, and the console errors and page errors it reports (CSP violations are among them)."""
    context = chromium_browser.new_context()
    opened = context.new_page()
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            problems.append(message.text)

    opened.on("console", on_console)
    opened.on("pageerror", lambda error: problems.append(str(error)))
    yield opened, problems
    context.close()


def test_inbox_shows_the_apps_list_and_a_click_shows_the_detail_view(
    inbox: Inbox, page: tuple[Page, list[str]], tmp_path: Path
) -> None:
    tab, problems = page
    tab.goto(f"{inbox.url}/inbox")
    app = tab.get_by_role("region", name="Orders")
    expect(app.get_by_role("heading", name="Orders of Beatrix")).to_be_visible()
    rows = app.get_by_role("listitem")
    expect(rows).to_have_count(3)
    expect(rows.first).to_contain_text("Order #90010")
    # The stylesheet applied under the CSP: buttons wear the pages' shared accent (#2847c9), not a browser border.
    assert app.get_by_role("button", name="Refresh").evaluate("b => getComputedStyle(b).borderTopColor") == (
        "rgb(40, 71, 201)"
    )

    app.get_by_role("button", name="Order #90011").click()
    expect(app.get_by_role("heading", name="Order #90011")).to_be_visible()
    expect(app).to_contain_text("1 order opened in this conversation.")
    assert "visit=" in tab.url
    tab.screenshot(path=str(tmp_path / "2-detail.png"), full_page=True)

    app.get_by_role("button", name="Back to the orders").click()
    expect(app.get_by_role("button", name="Order #90011")).to_contain_text("(opened)")

    submits = [c for c in inbox.sandbox.inbox.calls if c.kind == "submit"]
    assert [c.request["component_id"] for c in submits[-2:]] == ["order:90011", "back"]
    assert submits[-1].request["stored_data"] == {"opened": ["90011"]}
    assert problems == []
    assert (tmp_path / "2-detail.png").stat().st_size > 1000


def test_switching_conversation_initializes_the_app_for_that_contact(
    inbox: Inbox, page: tuple[Page, list[str]]
) -> None:
    tab, problems = page
    tab.goto(f"{inbox.url}/inbox")
    tab.get_by_role("navigation", name="Conversations").get_by_role("link", name="Dmitri").click()
    expect(tab.get_by_role("heading", name="Orders of Dmitri")).to_be_visible()
    assert inbox.sandbox.inbox.calls[-1].kind == "initialize"
    assert inbox.sandbox.inbox.calls[-1].request["contact"]["name"] == "Dmitri"
    assert problems == []


def test_enter_in_a_field_clicks_nothing_and_send_submits_the_value(
    page: tuple[Page, list[str]], tmp_path: Path
) -> None:
    tab, problems = page
    notes_app = ServerThread(
        Starlette(routes=canvas_routes(SECRET, on_initialize=notes_initialize, on_submit=notes_submit))
    )
    sandbox = create_app(
        clients=[SandboxClient("notes", SECRET, ("http://127.0.0.1:9/cb",), name="Notes")],
        canvas_apps=[CanvasApp.at("notes", f"{notes_app.url}/gist/canvas")],
    )
    with notes_app, ServerThread(sandbox) as server:
        tab.goto(f"{server.url}/inbox")
        field = tab.get_by_role("textbox", name="Note")
        field.fill("call back on Monday")
        field.press("Enter")
        tab.wait_for_load_state()
        assert [c.kind for c in sandbox.inbox.calls] == ["initialize"]  # Enter did not click "Pick me"
        tab.get_by_role("button", name="Send").click()
        expect(tab.get_by_role("region", name="Notes")).to_contain_text("Saved by note: call back on Monday")
        tab.screenshot(path=str(tmp_path / "notes.png"))
    assert sandbox.inbox.calls[-1].request["input_values"] == {"note": "call back on Monday"}
    assert problems == []

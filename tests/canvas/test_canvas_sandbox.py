"""The sandbox's inbox plays Gist for canvas apps: signed calls, the round trip with stored_data, rendering.

The apps are real servers on loopback: examples/canvas_app.py, a "kitchen" app that shows every component,
and a recorder that keeps the raw requests so their signatures can be checked by hand.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from support.web import browser_client

from gist_authlib import demo
from gist_authlib.canvas import (
    Button,
    Canvas,
    Divider,
    InitializeRequest,
    Input,
    List,
    ListItem,
    Raw,
    Spacer,
    SubmitAction,
    SubmitRequest,
    Text,
    UrlAction,
)
from gist_authlib.sandbox import CanvasApp, GistSandbox, SandboxClient, ServerThread, create_app
from gist_authlib.starlette import canvas_routes

ROOT = Path(__file__).resolve().parents[2]
ORDERS_SECRET = "orders-secret-" + "o" * 24
KITCHEN_SECRET = "kitchen-secret-" + "k" * 24
RECORDER_SECRET = "recorder-secret-" + "r" * 24
DOT = "data:image/gif;base64,R0lGODlhAQABAAAAACw="


def kitchen_canvas(request: InitializeRequest) -> Canvas:
    """Every component the sandbox draws, and some text that must be escaped."""
    return Canvas(
        [
            Text("Kitchen **sink**", style="header"),
            Text("<script>alert('x')</script>", style="muted", align="center"),
            Divider(),
            Spacer("xl"),
            Button("primary", "Primary"),
            Button("off", "Disabled", style="secondary", disabled=True),
            Button("docs", "Docs", style="link", action=UrlAction("https://example.com/docs")),
            List(
                [
                    ListItem("row-1", "Row <one>", subtitle="first", image=DOT, image_width=16, rounded_image=True),
                    ListItem("row-2", "Row two", disabled=True),
                    ListItem("row-3", "Row three, text only", action=None),
                ]
            ),
            Input("note", label="Note", placeholder="Write here", value="draft", action=SubmitAction()),
            Raw({"type": "checkbox", "id": "agree", "label": "Agree"}),
        ],
        stored_data={"visits": 1},
    )


def kitchen_submit(request: SubmitRequest) -> Canvas:
    note = request.input_values.get("note")
    visits = int(request.stored_data.get("visits", 0)) + 1
    return Canvas(
        [Text(f"You used {request.component_id}; note={note}; visits={visits}"), Button("again", "Again")],
        stored_data={"visits": visits},
    )


@dataclass
class Stack:
    sandbox: GistSandbox
    url: str
    recorded: list[tuple[bytes, dict[str, str]]]
    http: httpx2.Client

    def open(self, path: str = "/inbox") -> httpx2.Response:
        page = self.http.get(f"{self.url}{path}")
        assert page.status_code == 200, page.text
        return page

    def click(self, page: httpx2.Response, app: str, component_id: str, **inputs: str) -> httpx2.Response:
        visit = re.search(r'name="visit" value="([^"]+)"', page.text)
        assert visit is not None
        data = {"visit": visit.group(1), "app": app, "component_id": component_id}
        data.update({f"input.{k}": v for k, v in inputs.items()})
        return self.http.post(f"{self.url}/inbox/submit", data=data)


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    orders_server = ServerThread(demo.example_module("canvas").create_app({"GIST_CLIENT_SECRET": ORDERS_SECRET}))
    kitchen_server = ServerThread(
        Starlette(routes=canvas_routes(KITCHEN_SECRET, on_initialize=kitchen_canvas, on_submit=kitchen_submit))
    )
    recorded: list[tuple[bytes, dict[str, str]]] = []

    async def record(request: Request) -> JSONResponse:
        recorded.append((await request.body(), dict(request.headers)))
        button = {"type": "button", "id": "rec", "label": "Record", "action": {"type": "submit"}}
        components = [{"type": "text", "text": "recorded"}, button]
        return JSONResponse({"canvas": {"content": {"components": components}, "stored_data": {"k": "v"}}})

    recorder_server = ServerThread(Starlette(routes=[Route("/canvas/{kind}", record, methods=["POST"])]))
    sandbox_server = ServerThread()
    sandbox = create_app(
        clients=[
            SandboxClient("orders", ORDERS_SECRET, ("http://127.0.0.1:9/cb",), name="Orders"),
            SandboxClient("kitchen", KITCHEN_SECRET, ("http://127.0.0.1:9/cb",), name="Kitchen"),
            SandboxClient("recorder", RECORDER_SECRET, ("http://127.0.0.1:9/cb",), name="Recorder"),
            # registered with a secret the kitchen app does not know: its calls must be refused
            SandboxClient("impostor", "not-the-kitchen-secret", ("http://127.0.0.1:9/cb",), name="Impostor"),
        ],
        canvas_apps=[
            CanvasApp.at("orders", f"{orders_server.url}/gist/canvas"),
            CanvasApp.at("kitchen", f"{kitchen_server.url}/gist/canvas"),
            CanvasApp.at("recorder", f"{recorder_server.url}/canvas"),
            CanvasApp.at("impostor", f"{kitchen_server.url}/gist/canvas"),
        ],
    )
    servers = [orders_server, kitchen_server, recorder_server, sandbox_server]
    for server in servers[:-1]:
        server.start()
    sandbox_server.start(sandbox)
    with browser_client(follow_redirects=True, timeout=10) as http:
        yield Stack(sandbox, sandbox_server.url, recorded, http)
    for server in servers:
        server.stop()


def calls_to(stack: Stack, client_id: str) -> list[Any]:
    return [c for c in stack.sandbox.inbox.calls if c.client_id == client_id]


def test_round_trip_initialize_click_submit_keeps_stored_data(stack: Stack) -> None:
    page = stack.open()
    assert page.url.path == "/inbox/conversations/9001"
    assert "<strong>Orders of Beatrix</strong>" in page.text and "Order #90010" in page.text
    initialize = calls_to(stack, "orders")[-1]
    assert (initialize.kind, initialize.status, initialize.error) == ("initialize", 200, None)
    assert initialize.request["contact"]["name"] == "Beatrix"
    assert initialize.request["admin"]["name"] == "Ada Lovelace"
    assert initialize.request["conversation"]["id"] == 9001
    assert initialize.request["context"] == {"locale": "en", "location": "inbox"}
    assert initialize.canvas["stored_data"] == {"opened": []}

    detail = stack.click(page, "orders", "order:90010")
    assert detail.status_code == 200 and "visit=" in str(detail.url)
    assert "<strong>Order #90010</strong>" in detail.text and "1 order opened in this conversation." in detail.text
    submit = calls_to(stack, "orders")[-1]
    assert (submit.kind, submit.status) == ("submit", 200)
    assert submit.request["component_id"] == "order:90010"
    assert submit.request["current_canvas"] == initialize.canvas
    assert submit.request["stored_data"] == {"opened": []}

    back = stack.click(detail, "orders", "back")
    assert "Delivered, 66.00 EUR (opened)" in back.text
    assert calls_to(stack, "orders")[-1].request["stored_data"] == {"opened": ["90010"]}
    again = stack.click(back, "orders", "order:90011")
    assert "2 orders opened in this conversation." in again.text
    assert calls_to(stack, "orders")[-1].request["stored_data"] == {"opened": ["90010"]}


def test_reloading_after_a_click_shows_the_same_canvas_and_reopening_initializes_again(stack: Stack) -> None:
    detail = stack.click(stack.open(), "orders", "order:90012")
    before = len(calls_to(stack, "orders"))
    reloaded = stack.http.get(str(detail.url))
    assert "<strong>Order #90012</strong>" in reloaded.text
    assert len(calls_to(stack, "orders")) == before  # no new call for a reload
    fresh = stack.open("/inbox/conversations/9002")
    assert "<strong>Orders of Carlos</strong>" in fresh.text
    assert calls_to(stack, "orders")[-1].kind == "initialize"


def test_requests_are_signed_as_gist_is_said_to_sign_them(stack: Stack) -> None:
    page = stack.open()
    assert "recorded" in page.text
    stack.click(page, "recorder", "rec")
    (init_body, init_headers), (submit_body, submit_headers) = stack.recorded[-2:]
    for body, headers in ((init_body, init_headers), (submit_body, submit_headers)):
        expected = "sha256=" + hmac.new(RECORDER_SECRET.encode(), body, hashlib.sha256).hexdigest()
        assert headers["x-gist-signature"] == expected
        assert headers["content-type"] == "application/json"
    assert json.loads(init_body)["workspace_id"] == stack.sandbox.workspace.id
    sent = json.loads(submit_body)
    assert (sent["component_id"], sent["stored_data"], sent["input_values"]) == ("rec", {"k": "v"}, {})


def test_an_app_that_refuses_the_signature_is_shown_as_an_error(stack: Stack) -> None:
    page = stack.open()
    refused = calls_to(stack, "impostor")[-1]
    assert (refused.status, refused.canvas) == (401, None)
    assert "The app answered HTTP 401." in page.text
    assert calls_to(stack, "kitchen")[-1].status == 200  # the same app, signed with its own secret


def test_every_component_is_drawn_and_text_is_escaped(stack: Stack) -> None:
    page = stack.open().text
    kitchen = page[page.index('aria-label="Kitchen"') :].split("</section>")[0]
    assert '<h4 class="c-text c-header c-align-left">Kitchen <strong>sink</strong></h4>' in kitchen
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in kitchen and "<script" not in page
    assert '<hr class="c-divider">' in kitchen and 'class="c-spacer c-spacer-xl"' in kitchen
    assert 'name="component_id" value="primary">Primary</button>' in kitchen
    assert 'value="off" disabled>Disabled</button>' in kitchen
    assert (
        '<a class="c-button c-link" href="https://example.com/docs" target="_blank" rel="noopener noreferrer">'
        in kitchen
    )
    assert f'src="{DOT}"' in kitchen and "c-item-image rounded" in kitchen and "Row &lt;one&gt;" in kitchen
    assert 'value="row-2" disabled>' in kitchen
    assert '<div class="c-item"><span class="c-item-words"><span class="c-item-title">Row three' in kitchen
    assert 'name="input.note" value="draft" placeholder="Write here"' in kitchen
    assert 'value="note">Send</button>' in kitchen
    assert "A checkbox component, which the sandbox does not draw." in kitchen


def test_input_values_reach_the_app(stack: Stack) -> None:
    after = stack.click(stack.open(), "kitchen", "note", note="call the customer back")
    assert "You used note; note=call the customer back; visits=2" in after.text
    assert calls_to(stack, "kitchen")[-1].request["input_values"] == {"note": "call the customer back"}


def test_inbox_pages_carry_a_strict_csp_and_no_inline_script_or_style(stack: Stack) -> None:
    page = stack.open()
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "form-action 'self'" in csp and "script-src" not in csp
    assert "<script" not in page.text and "style=" not in page.text and "<style" not in page.text
    assert page.headers["x-frame-options"] == "DENY"
    sheet = stack.http.get(f"{stack.url}/inbox/inbox.css")
    assert sheet.status_code == 200 and sheet.headers["content-type"].startswith("text/css")


def test_submits_the_inbox_would_never_send_are_refused(stack: Stack) -> None:
    page = stack.open()
    before = len(stack.sandbox.inbox.calls)
    assert stack.click(page, "orders", "no-such-component").status_code == 400
    assert stack.click(page, "kitchen", "off").status_code == 400  # a disabled button cannot be clicked
    assert stack.click(page, "no-such-app", "order:90010").status_code == 400
    expired = stack.http.post(
        f"{stack.url}/inbox/submit", data={"visit": "forged", "app": "orders", "component_id": "back"}
    )
    assert expired.status_code == 400 and "expired" in expired.text
    visit = re.search(r'name="visit" value="([^"]+)"', page.text)
    assert visit is not None
    cross_site = stack.http.post(
        f"{stack.url}/inbox/submit",
        data={"visit": visit.group(1), "app": "orders", "component_id": "back"},
        headers={"Origin": "https://evil.example"},
    )
    assert cross_site.status_code == 403
    assert len(stack.sandbox.inbox.calls) == before


def test_messenger_location_sends_the_messenger_context(stack: Stack) -> None:
    stack.open("/inbox/conversations/9003?location=messenger")
    call = calls_to(stack, "kitchen")[-1]
    assert call.request["context"]["location"] == "messenger" and call.request["admin"] is None
    assert call.request["context"]["messenger_launcher_color"].startswith("#")


def test_unknown_conversation_is_404(stack: Stack) -> None:
    assert stack.http.get(f"{stack.url}/inbox/conversations/1").status_code == 404


def test_an_unreachable_or_unregistered_app_is_explained() -> None:
    sandbox = create_app(
        clients=[SandboxClient("gone", "s" * 30, ("http://127.0.0.1:9/cb",))],
        canvas_apps=[
            CanvasApp.at("gone", "http://127.0.0.1:9/gist/canvas"),
            CanvasApp.at("ghost", "http://127.0.0.1:9/x"),
        ],
    )
    with ServerThread(sandbox) as server, browser_client(follow_redirects=True, timeout=10) as http:
        page = http.get(f"{server.url}/inbox")
    assert "The app could not be reached (ConnectError)." in page.text
    assert "The app is not registered with the sandbox." in page.text
    with pytest.raises(ValueError, match="initialize_url"):
        CanvasApp("x", "/relative", "http://127.0.0.1:9/submit")


def test_the_whole_round_trip_through_asgi_transports() -> None:
    """No sockets: the browser reaches the sandbox, and the sandbox the app, through httpx2's ASGI transport."""
    app = demo.example_module("canvas").create_app({"GIST_CLIENT_SECRET": ORDERS_SECRET})
    sandbox = create_app(
        clients=[SandboxClient("orders", ORDERS_SECRET, ("http://127.0.0.1:9/cb",))],
        canvas_apps=[CanvasApp.at("orders", "http://canvas.test/gist/canvas")],
    )
    sandbox.inbox.transport = httpx2.ASGITransport(app=app)

    async def main() -> tuple[str, str]:
        async with httpx2.AsyncClient(
            transport=httpx2.ASGITransport(app=sandbox), base_url="http://sandbox.test", follow_redirects=True
        ) as browser:
            page = await browser.get("/inbox")
            visit = re.search(r'name="visit" value="([^"]+)"', page.text)
            assert visit is not None
            detail = await browser.post(
                "/inbox/submit",
                data={"visit": visit.group(1), "app": "orders", "component_id": "order:90011"},
            )
            return page.text, detail.text

    page, detail = asyncio.run(main())
    assert "Order #90011" in page and "<strong>Order #90011</strong>" in detail
    assert [c.kind for c in sandbox.inbox.calls] == ["initialize", "submit"]


def test_install_adds_or_replaces_an_app() -> None:
    sandbox = create_app()
    sandbox.inbox.install(CanvasApp.at("a", "http://127.0.0.1:9/one"))
    sandbox.inbox.install(CanvasApp.at("a", "http://127.0.0.1:9/two", name="Two"))
    assert [(a.client_id, a.submit_url, a.name) for a in sandbox.inbox.apps] == [
        ("a", "http://127.0.0.1:9/two/submit", "Two")
    ]


def test_sandbox_command_installs_a_canvas_url(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gist_authlib",
            "sandbox",
            "--port",
            "0",
            "--canvas-url",
            "http://127.0.0.1:9/gist/canvas",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "XDG_STATE_HOME": str(tmp_path)},  # where it keeps its secret: not the home's
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(8)]
        canvas_line = next(line for line in lines if "canvas app:" in line)
        assert "http://127.0.0.1:9/gist/canvas/initialize and http://127.0.0.1:9/gist/canvas/submit" in canvas_line
        inbox = canvas_line.rsplit("inbox at ", 1)[1].strip()
        page = httpx2.get(inbox, follow_redirects=True, trust_env=False, timeout=10)
        assert page.status_code == 200 and "The app could not be reached" in page.text
    finally:
        process.terminate()
        process.wait(10)

"""gist_authlib.canvas without a web framework: components, canvases, requests, signatures, one answer."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
from typing import Any

import pytest

from gist_authlib import GistAuthError, GistProvider
from gist_authlib.canvas import (
    Button,
    Canvas,
    CanvasRequestError,
    CanvasSignatureError,
    Divider,
    InitializeRequest,
    Input,
    InvalidCanvasError,
    List,
    ListItem,
    Raw,
    Spacer,
    SubmitAction,
    SubmitRequest,
    Text,
    UrlAction,
    canvas_signature,
    handle_canvas_request,
    handle_canvas_request_async,
    verify_canvas_signature,
)
from gist_authlib.canvas._components import MAX_CANVAS_BYTES
from gist_authlib.canvas._endpoint import ERROR_TEXT, read_limit, read_upto
from gist_authlib.canvas._signature import client_secret_of
from gist_authlib.errors import MissingCredentialsError

SECRET = "canvas-test-secret-" + "x" * 24

INITIALIZE: dict[str, Any] = {
    "workspace_id": 100001,
    "admin": {"id": 1001, "name": "Ada Lovelace", "email": "ada@sandbox.example", "has_inbox_seat": True},
    "conversation": {"id": 9001, "state": "open", "contacts": [{"id": 5001}]},
    "contact": {"id": 5001, "name": "Beatrix", "email": "beatrix@customer.example"},
    "context": {"locale": "en", "location": "inbox", "brand_new_context_field": "kept"},
    "brand_new_top_level_field": {"nested": True},
}
SUBMIT: dict[str, Any] = {
    **INITIALIZE,
    "component_id": "save",
    "input_values": {"note": "call back tomorrow"},
    "current_canvas": {"content": {"components": [{"type": "button", "id": "save", "label": "Save"}]}},
    "stored_data": {"step": 2},
}


def signed(body: bytes, secret: str = SECRET) -> dict[str, str]:
    """Headers as Gist is said to send them: computed here by hand, not with the code under test."""
    return {"X-Gist-Signature": "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()}


def encode(data: Any) -> bytes:
    return json.dumps(data).encode()


# --- components ------------------------------------------------------------------------------------


def test_text_serialises_with_its_style_and_leaves_unset_fields_out() -> None:
    assert Text("Hello **you**").to_dict() == {"type": "text", "text": "Hello **you**", "style": "paragraph"}
    assert Text("Title", style="header", align="center", id="t").to_dict() == {
        "type": "text",
        "id": "t",
        "text": "Title",
        "style": "header",
        "align": "center",
    }


def test_divider_and_spacer_serialise() -> None:
    assert Divider().to_dict() == {"type": "divider"}
    assert Spacer().to_dict() == {"type": "spacer", "size": "m"}
    assert Spacer("xl", id="gap").to_dict() == {"type": "spacer", "id": "gap", "size": "xl"}


def test_button_submits_by_default_and_can_open_a_url() -> None:
    assert Button("go", "Go").to_dict() == {
        "type": "button",
        "id": "go",
        "label": "Go",
        "style": "primary",
        "action": {"type": "submit"},
        "disabled": False,
    }
    link = Button("docs", "Docs", style="link", action=UrlAction("https://example.com/docs"), disabled=True)
    assert link.to_dict()["action"] == {"type": "url", "url": "https://example.com/docs"}
    assert link.to_dict()["disabled"] is True


def test_list_items_carry_the_fields_gists_demo_app_sends() -> None:
    rows = List(
        [
            ListItem(
                "title", "Demo App", image="https://example.com/logo.png", image_width=18, image_height=18, action=None
            ),
            ListItem("get_contact", "Get contact name", subtitle="from Gist", rounded_image=True),
        ]
    )
    assert rows.to_dict() == {
        "type": "list",
        "disabled": False,
        "items": [
            {
                "type": "item",
                "id": "title",
                "title": "Demo App",
                "image": "https://example.com/logo.png",
                "image_width": 18,
                "image_height": 18,
                "rounded_image": False,
                "disabled": False,
            },
            {
                "type": "item",
                "id": "get_contact",
                "title": "Get contact name",
                "subtitle": "from Gist",
                "rounded_image": True,
                "disabled": False,
                "action": {"type": "submit"},
            },
        ],
    }
    assert list(rows.component_ids()) == ["title", "get_contact"]


def test_input_serialises_with_an_optional_action() -> None:
    assert Input("note", label="Note", placeholder="Type", value="hi", save_state="unsaved").to_dict() == {
        "type": "input",
        "id": "note",
        "label": "Note",
        "placeholder": "Type",
        "value": "hi",
        "save_state": "unsaved",
        "disabled": False,
    }
    assert Input("q", action=SubmitAction()).to_dict()["action"] == {"type": "submit"}


def test_raw_component_is_sent_as_given_and_still_checked() -> None:
    raw = Raw({"type": "image", "url": "https://example.com/a.png", "width": 10})
    assert raw.to_dict() == {"type": "image", "url": "https://example.com/a.png", "width": 10}
    with pytest.raises(InvalidCanvasError, match="'dropdown'"):
        Raw({"type": "dropdown", "label": "Pick"})
    with pytest.raises(InvalidCanvasError, match="'option'"):
        Raw({"type": "single-select", "id": "s", "items": [{"type": "option", "text": "A"}]})
    with pytest.raises(InvalidCanvasError, match="type"):
        Raw({"label": "no type"})


@pytest.mark.parametrize(
    "build",
    [
        lambda: Button("", "Go"),
        lambda: Button("   ", "Go"),
        lambda: Button(None, "Go"),  # type: ignore[arg-type]
        lambda: ListItem("", "Row"),
        lambda: Input(""),
        lambda: Input(7),  # type: ignore[arg-type]
    ],
)
def test_an_interactive_component_without_an_id_is_refused_with_a_typed_error(build: Any) -> None:
    with pytest.raises(InvalidCanvasError) as caught:
        build()
    assert isinstance(caught.value, GistAuthError) and isinstance(caught.value, ValueError)
    assert "need a non-empty string id" in caught.value.message


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: Text(5), "text must be a string"),  # type: ignore[arg-type]
        (lambda: Button("b", None), "label must be a string"),  # type: ignore[arg-type]
        (lambda: Button("b", "B", action={"type": "submit"}), "SubmitAction"),  # type: ignore[arg-type]
        (lambda: UrlAction("javascript:alert(1)"), "absolute http"),
        (lambda: List(["row"]), "ListItem"),  # type: ignore[list-item]
        (lambda: Canvas([{"type": "text", "text": "x"}]), "components"),  # type: ignore[list-item]
        (lambda: Canvas([], stored_data=["x"]), "JSON object"),  # type: ignore[arg-type]
    ],
)
def test_malformed_components_are_refused_with_a_clear_message(build: Any, match: str) -> None:
    with pytest.raises(InvalidCanvasError, match=match):
        build()


# --- the canvas ------------------------------------------------------------------------------------


def test_canvas_serialises_to_gists_response_shape() -> None:
    canvas = Canvas([Text("Hi"), Divider(), Button("go", "Go")], stored_data={"step": 1, "name": "Zoë"})
    expected = {
        "canvas": {
            "content": {"components": [Text("Hi").to_dict(), {"type": "divider"}, Button("go", "Go").to_dict()]},
            "stored_data": {"step": 1, "name": "Zoë"},
        }
    }
    assert canvas.to_dict() == expected
    assert json.loads(canvas.to_json()) == expected
    assert "Zoë" in canvas.to_json().decode("utf-8")  # UTF-8, not \\u escapes


def test_canvas_without_stored_data_leaves_the_key_out() -> None:
    assert Canvas([Spacer()]).to_dict() == {"canvas": {"content": {"components": [{"type": "spacer", "size": "m"}]}}}


@pytest.mark.parametrize(
    "components",
    [
        [Button("same", "A"), Button("same", "B")],
        [Button("same", "A"), List([ListItem("same", "Row")])],
        [List([ListItem("same", "1"), ListItem("same", "2")])],
        [Input("same"), Text("t", id="same")],
        [Raw({"type": "button", "id": "same", "label": "x"}), Button("same", "y")],
    ],
)
def test_duplicate_ids_anywhere_in_the_canvas_are_refused(components: list[Any]) -> None:
    with pytest.raises(InvalidCanvasError) as caught:
        Canvas(components)
    assert caught.value.component_id == "same"


def test_content_over_the_limit_is_refused_before_anything_is_sent() -> None:
    canvas = Canvas([Text("x" * 1000, id=f"t{i}") for i in range(70)])
    with pytest.raises(InvalidCanvasError) as caught:
        canvas.to_json()
    assert caught.value.part == "content" and caught.value.limit == MAX_CANVAS_BYTES
    assert caught.value.size > MAX_CANVAS_BYTES


def test_stored_data_over_the_limit_is_refused_and_just_under_it_is_sent() -> None:
    with pytest.raises(InvalidCanvasError, match="stored_data") as caught:
        Canvas([Text("ok")], stored_data={"blob": "y" * MAX_CANVAS_BYTES}).to_dict()
    assert caught.value.part == "stored_data"
    overhead = len(b'{"blob":""}')
    fits = Canvas([Text("ok")], stored_data={"blob": "y" * (MAX_CANVAS_BYTES - overhead)})
    assert len(fits.to_json()) > MAX_CANVAS_BYTES


@pytest.mark.parametrize("stored", [{"when": object()}, {"nan": float("nan")}])
def test_stored_data_that_is_not_json_is_refused(stored: dict[str, Any]) -> None:
    with pytest.raises(InvalidCanvasError, match="stored_data cannot be sent as JSON"):
        Canvas([], stored_data=stored).to_json()


def test_canvas_keeps_a_copy_of_stored_data() -> None:
    data = {"step": 1}
    canvas = Canvas([], stored_data=data)
    data["step"] = 99
    assert canvas.to_dict()["canvas"]["stored_data"] == {"step": 1}


# --- the requests ----------------------------------------------------------------------------------


def test_initialize_request_is_typed_and_keeps_unknown_fields() -> None:
    request = InitializeRequest.from_api(INITIALIZE)
    assert request.workspace_id == "100001"  # a string, as the install's state is
    assert request.admin is not None and request.admin.name == "Ada Lovelace" and request.admin.has_inbox_seat
    assert request.contact is not None and request.contact.email == "beatrix@customer.example"
    assert request.conversation is not None and request.conversation.id == 9001
    assert request.conversation_id == "9001"
    assert request.location == "inbox" and request.context.locale == "en"
    assert request.context["brand_new_context_field"] == "kept"
    assert request["brand_new_top_level_field"] == {"nested": True}
    assert request.conversation["contacts"] == [{"id": 5001}]
    assert request.kind == "initialize"


def test_submit_request_adds_the_component_inputs_canvas_and_stored_data() -> None:
    request = SubmitRequest.from_api(SUBMIT)
    assert request.kind == "submit"
    assert request.component_id == "save"
    assert request.input_values == {"note": "call back tomorrow"}
    assert request.current_canvas is not None and request.current_canvas["content"]["components"][0]["id"] == "save"
    assert request.stored_data == {"step": 2}
    request.stored_data["step"] = 3  # the handler's own copy
    assert request.raw["stored_data"] == {"step": 2}


def test_a_sparse_request_gives_empty_defaults() -> None:
    request = SubmitRequest.from_api({"workspace_id": "w1", "component_id": 12, "conversation_id": 77})
    assert request.admin is None and request.contact is None and request.conversation is None
    assert request.context.location is None and request.location is None
    assert request.component_id == "12" and request.stored_data == {} and request.input_values == {}
    assert request.conversation_id == "77"  # the flat field Gist's demo app reads


@pytest.mark.parametrize(
    "body",
    [
        [1, 2],
        "text",
        {"admin": "Ada"},
        {"context": ["inbox"]},
        {"workspace_id": {"id": 1}},
        {"workspace_id": True},
        {"stored_data": "x"},
        {"input_values": [1]},
        {"component_id": [1]},
    ],
)
def test_a_request_of_the_wrong_shape_is_malformed(body: Any) -> None:
    with pytest.raises(CanvasRequestError):
        SubmitRequest.from_api(body)


# --- signatures ------------------------------------------------------------------------------------


def test_signature_is_the_hex_hmac_sha256_of_the_raw_body_under_the_client_secret() -> None:
    body = encode(INITIALIZE)
    assert canvas_signature(body, SECRET) == signed(body)["X-Gist-Signature"]
    verify_canvas_signature(body, signed(body), SECRET)
    verify_canvas_signature(
        body, {"x-gist-signature": signed(body)["X-Gist-Signature"].upper().replace("SHA", "sha")}, SECRET
    )


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "missing"),
        ({"X-Gist-Signature": ""}, "missing"),
        ({"X-Other": "sha256=00"}, "missing"),
        ({"X-Gist-Signature": "md5=" + "0" * 64}, "scheme"),
        ({"X-Gist-Signature": "0" * 64}, "scheme"),
        ({"X-Gist-Signature": "sha256=" + "z" * 64}, "scheme"),
        ({"X-Gist-Signature": "sha256=abc"}, "scheme"),
        ({"X-Gist-Signature": "sha256=" + "é" * 64}, "scheme"),
        ({"X-Gist-Signature": "sha256=" + "0" * 64}, "mismatch"),
    ],
)
def test_bad_signatures_are_refused_with_their_reason(headers: dict[str, str], reason: str) -> None:
    with pytest.raises(CanvasSignatureError) as caught:
        verify_canvas_signature(b"{}", headers, SECRET)
    assert caught.value.reason == reason and caught.value.status_code == 401
    assert SECRET not in caught.value.message


def test_a_tampered_body_or_another_secret_does_not_verify() -> None:
    body = encode(INITIALIZE)
    headers = signed(body)
    with pytest.raises(CanvasSignatureError, match="does not match"):
        verify_canvas_signature(body.replace(b"100001", b"100002"), headers, SECRET)
    with pytest.raises(CanvasSignatureError, match="does not match"):
        verify_canvas_signature(body, headers, SECRET + "-rotated")
    with pytest.raises(CanvasSignatureError, match="does not match"):
        verify_canvas_signature(body + b" ", headers, SECRET)  # the raw bytes, not the parsed JSON


def test_header_name_and_scheme_follow_the_provider() -> None:
    intercom_like = GistProvider(canvas_signature_header="X-Body-Signature", canvas_signature_scheme="")
    body = b'{"workspace_id": 1}'
    bare = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    verify_canvas_signature(body, {"X-Body-Signature": bare}, SECRET, intercom_like)
    assert canvas_signature(body, SECRET, intercom_like) == bare
    with pytest.raises(CanvasSignatureError, match="X-Body-Signature"):
        verify_canvas_signature(body, signed(body), SECRET, intercom_like)
    sha512 = GistProvider(canvas_signature_scheme="sha512")
    value = "sha512=" + hmac.new(SECRET.encode(), body, hashlib.sha512).hexdigest()
    verify_canvas_signature(body, {"X-Gist-Signature": value}, SECRET, sha512)
    with pytest.raises(CanvasSignatureError):
        verify_canvas_signature(body, signed(body), SECRET, sha512)


def test_provider_defaults_and_refusals_for_the_signature_settings() -> None:
    provider = GistProvider()
    assert (provider.canvas_signature_header, provider.canvas_signature_scheme) == ("X-Gist-Signature", "sha256")
    assert GistProvider.at("http://127.0.0.1:1").canvas_signature_header == "X-Gist-Signature"
    with pytest.raises(ValueError, match="canvas_signature_header"):
        GistProvider(canvas_signature_header="X-Bad Header:")
    with pytest.raises(ValueError, match="canvas_signature_scheme"):
        GistProvider(canvas_signature_scheme="md5")


def test_client_secret_comes_from_a_string_or_a_registered_app() -> None:
    class Registered:
        client_secret = SECRET

    class Unconfigured:
        client_secret = None

        def gist_credentials(self) -> tuple[str, str]:
            raise MissingCredentialsError("FLASK_GIST_CLIENT_SECRET", "client secret")

    assert client_secret_of(SECRET) == SECRET
    assert client_secret_of(Registered()) == SECRET
    with pytest.raises(MissingCredentialsError, match="FLASK_GIST_CLIENT_SECRET"):
        client_secret_of(Unconfigured())
    with pytest.raises(MissingCredentialsError, match="GIST_CLIENT_SECRET"):
        client_secret_of("")


# --- one request, answered -------------------------------------------------------------------------


def echo(request: InitializeRequest) -> Canvas:
    """A handler that shows what it was given."""
    component = request.component_id if isinstance(request, SubmitRequest) else None
    step = request.stored_data.get("step", 0) if isinstance(request, SubmitRequest) else 0
    return Canvas(
        [Text(f"{request.kind} {request.workspace_id} {component}")], stored_data={"step": step + 1, "seen": True}
    )


def test_a_valid_initialize_request_reaches_the_handler_and_its_canvas_is_answered() -> None:
    body = encode(INITIALIZE)
    reply = handle_canvas_request(body, signed(body), "initialize", echo, secret=SECRET)
    assert reply.status == 200
    assert reply.json() == {
        "canvas": {
            "content": {"components": [{"type": "text", "text": "initialize 100001 None", "style": "paragraph"}]},
            "stored_data": {"step": 1, "seen": True},
        }
    }


def test_a_valid_submit_request_carries_the_stored_data_to_the_handler() -> None:
    body = encode(SUBMIT)
    reply = handle_canvas_request(body, signed(body), "submit", echo, secret=SECRET)
    assert reply.status == 200
    assert reply.json()["canvas"]["content"]["components"][0]["text"] == "submit 100001 save"
    assert reply.json()["canvas"]["stored_data"] == {"step": 3, "seen": True}


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        ({}, 401, "canvas_signature_invalid"),
        ({"X-Gist-Signature": "sha1=" + "0" * 64}, 401, "canvas_signature_invalid"),
        ("wrong secret", 401, "canvas_signature_invalid"),
    ],
)
def test_unsigned_or_wrongly_signed_requests_never_reach_the_handler(headers: Any, status: int, code: str) -> None:
    called: list[Any] = []
    body = encode(INITIALIZE)
    if headers == "wrong secret":
        headers = signed(body, "another-apps-secret")
    reply = handle_canvas_request(body, headers, "initialize", called.append, secret=SECRET)  # type: ignore[arg-type]
    assert (reply.status, reply.json()["error"]) == (status, code)
    assert called == []


@pytest.mark.parametrize("body", [b"not json", b"\xff\xfe", b"[1, 2]", b'{"admin": 5}', b"[" * 100_000])
def test_a_signed_body_that_is_not_a_gist_request_answers_400(body: bytes) -> None:
    called: list[Any] = []
    reply = handle_canvas_request(body, signed(body), "submit", called.append, secret=SECRET)  # type: ignore[arg-type]
    assert reply.status == 400 and reply.json()["error"] == "canvas_request_malformed"
    assert called == []


def test_a_submit_without_component_id_is_refused_before_the_handler() -> None:
    calls: list[object] = []

    def handler(request: object) -> Canvas:
        calls.append(request)
        return Canvas([Text("hi")])

    secret = "canvas-secret"
    body = json.dumps({"workspace_id": "1", "admin": {"id": 1}, "contact": {"id": 2}}).encode()
    headers = {GistProvider().canvas_signature_header: canvas_signature(body, secret)}
    reply = handle_canvas_request(body, headers, "submit", handler, secret=secret)
    assert reply.status == 400 and calls == []
    assert b"component_id" in reply.body
    # The same body is a valid initialize request: the handler runs.
    assert handle_canvas_request(body, headers, "initialize", handler, secret=secret).status == 200
    assert len(calls) == 1


def test_a_body_over_the_limit_answers_413_before_the_signature_is_computed() -> None:
    body = b'{"pad": "' + b"x" * 2000 + b'"}'
    reply = handle_canvas_request(body, signed(body), "initialize", echo, secret=SECRET, max_body_bytes=1000)
    assert reply.status == 413 and reply.json()["error"] == "canvas_request_too_large"
    declared = handle_canvas_request(
        b"", {"Content-Length": "5000"}, "initialize", echo, secret=SECRET, max_body_bytes=1000
    )
    assert declared.status == 413
    assert CanvasRequestError.too_large(1000).status_code == 413


def test_a_missing_secret_answers_503_and_says_which_setting_to_fill() -> None:
    body = encode(INITIALIZE)
    reply = handle_canvas_request(body, signed(body), "initialize", echo, secret="")
    assert reply.status == 503 and "GIST_CLIENT_SECRET" in reply.json()["message"]


def test_read_limit_and_read_upto() -> None:
    assert read_limit({}, 10) == 11
    assert read_limit({"content-length": "10"}, 10) == 11
    assert read_limit({"Content-Length": "11"}, 10) == 0
    assert read_limit({"Content-Length": "junk"}, 10) == 11
    chunks = [b"ab", b"cd", b"ef", b""]
    assert read_upto(lambda n: chunks.pop(0)[:n], 5) == b"abcde"
    assert read_upto(lambda n: b"", 5) == b""


@pytest.mark.parametrize(
    "handler",
    [
        pytest.param(lambda request: 1 / 0, id="raises"),
        pytest.param(lambda request: {"canvas": {}}, id="returns-a-dict"),
        pytest.param(lambda request: Canvas([Button("a", "A"), Button("a", "B")]), id="duplicate-ids"),
        pytest.param(lambda request: Canvas([Text("x")], stored_data={"big": "z" * 70_000}), id="too-large"),
    ],
)
def test_a_failing_handler_answers_a_safe_error_canvas_and_keeps_the_stored_data(
    handler: Any, caplog: pytest.LogCaptureFixture
) -> None:
    body = encode(SUBMIT)
    with caplog.at_level(logging.ERROR, logger="gist_authlib.canvas"):
        reply = handle_canvas_request(body, signed(body), "submit", handler, secret=SECRET)
    assert reply.status == 200
    assert reply.json() == {
        "canvas": {
            "content": {"components": [{"type": "text", "text": ERROR_TEXT, "style": "error"}]},
            "stored_data": {"step": 2},
        }
    }
    assert "Traceback" not in reply.body.decode() and "Error" not in reply.body.decode()
    assert any("canvas submit handler failed" in r.getMessage() for r in caplog.records)


def test_a_handler_error_is_logged_without_the_secret_or_the_signature(caplog: pytest.LogCaptureFixture) -> None:
    body = encode(INITIALIZE)
    headers = signed(body)

    def leaky(request: InitializeRequest) -> Canvas:
        digest = headers["X-Gist-Signature"].split("=")[1]
        raise RuntimeError(f"could not use {SECRET} with {headers['X-Gist-Signature']} ({digest})")

    with caplog.at_level(logging.DEBUG):
        reply = handle_canvas_request(body, headers, "initialize", leaky, secret=SECRET)
    assert reply.json()["canvas"]["content"]["components"][0]["text"] == ERROR_TEXT
    assert "stored_data" not in reply.json()["canvas"]
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "RuntimeError" in logged and "[redacted]" in logged
    assert SECRET not in logged and headers["X-Gist-Signature"].split("=")[1] not in logged


def test_an_async_handler_runs_in_the_sync_form() -> None:
    async def handler(request: InitializeRequest) -> Canvas:
        await asyncio.sleep(0)
        return echo(request)

    body = encode(INITIALIZE)
    reply = handle_canvas_request(body, signed(body), "initialize", handler, secret=SECRET)
    assert reply.json()["canvas"]["content"]["components"][0]["text"] == "initialize 100001 None"


def test_the_async_form_awaits_async_handlers_and_threads_plain_ones() -> None:
    import threading

    threads: list[str] = []

    async def async_handler(request: InitializeRequest) -> Canvas:
        threads.append(threading.current_thread().name)
        return echo(request)

    def plain_handler(request: InitializeRequest) -> Canvas:
        threads.append(threading.current_thread().name)
        return echo(request)

    async def failing(request: InitializeRequest) -> Canvas:
        raise ValueError("nope")

    async def main() -> list[Any]:
        body = encode(SUBMIT)
        replies = []
        for handler in (async_handler, plain_handler, failing):
            replies.append(await handle_canvas_request_async(body, signed(body), "submit", handler, secret=SECRET))
        replies.append(await handle_canvas_request_async(body, {}, "submit", async_handler, secret=SECRET))
        # the sync form, called inside a running loop with an async handler, fails safely
        replies.append(handle_canvas_request(body, signed(body), "submit", async_handler, secret=SECRET))
        return replies

    loop_thread = threading.current_thread().name
    first, second, failed, unsigned, nested = asyncio.run(main())
    assert first.json() == second.json() and first.json()["canvas"]["stored_data"] == {"step": 3, "seen": True}
    assert threads[0] == loop_thread and threads[1] != loop_thread
    assert failed.status == 200 and failed.json()["canvas"]["content"]["components"][0]["text"] == ERROR_TEXT
    assert unsigned.status == 401
    assert nested.status == 200 and nested.json()["canvas"]["content"]["components"][0]["text"] == ERROR_TEXT
    assert len(threads) == 2  # neither the unsigned request nor the nested call reached a handler


def test_the_provider_of_a_registered_app_is_used() -> None:
    class Registered:
        client_secret = SECRET

        class gist_registration:  # the registered app's typed registration, as far as canvases read it
            provider = GistProvider(canvas_signature_header="X-Body-Signature", canvas_signature_scheme="")

    body = encode(INITIALIZE)
    bare = {"X-Body-Signature": hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()}
    assert handle_canvas_request(body, bare, "initialize", echo, secret=Registered()).status == 200
    assert handle_canvas_request(body, signed(body), "initialize", echo, secret=Registered()).status == 401


def test_an_unknown_kind_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="initialize"):
        handle_canvas_request(b"{}", {}, "delete", echo, secret=SECRET)  # type: ignore[arg-type]


def test_the_canvas_package_imports_no_web_framework_and_documents_its_names() -> None:
    import inspect
    import subprocess
    import sys

    import gist_authlib.canvas as canvas
    import gist_authlib.sandbox as sandbox

    code = (
        "import sys, gist_authlib.canvas;"
        "print(','.join(m for m in ('starlette', 'flask', 'django', 'fastapi') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""
    for module in (canvas, sandbox):
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isclass(obj) or inspect.isfunction(obj):  # not the type aliases
                assert obj.__doc__, name


def test_the_error_canvas_leaves_out_stored_data_too_large_to_send_back() -> None:
    body = encode({**SUBMIT, "stored_data": {"blob": "z" * 70_000}})
    reply = handle_canvas_request(body, signed(body), "submit", lambda request: 1 / 0, secret=SECRET)
    assert reply.status == 200
    assert reply.json() == {
        "canvas": {"content": {"components": [{"type": "text", "text": ERROR_TEXT, "style": "error"}]}}
    }

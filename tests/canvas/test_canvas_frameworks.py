"""The canvas routes in every framework, served on loopback: signatures, limits, handler failures, CSRF.

Starlette and FastAPI run under uvicorn, Flask and Django under the stdlib WSGI server. Django runs with
the test settings' ``CsrfViewMiddleware`` on, so the signed POSTs also prove the views are CSRF-exempt.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import types
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from django.conf import settings
from support.stacks import FRAMEWORKS
from support.web import browser_client, hang_up

import gist_authlib
from gist_authlib import GistProvider
from gist_authlib.canvas import Button, Canvas, InitializeRequest, SubmitRequest, Text
from gist_authlib.canvas._endpoint import ERROR_TEXT
from gist_authlib.sandbox import ServerThread, WSGIServerThread

SECRET = "framework-canvas-secret-" + "k" * 20
LIMIT = 4096
INITIALIZE = {
    "workspace_id": 100001,
    "contact": {"id": 5001, "name": "Beatrix"},
    "context": {"locale": "en", "location": "inbox"},
}


def sign(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def initialize(request: InitializeRequest) -> Canvas:
    name = request.contact.name if request.contact else None
    return Canvas([Text(f"hello {name} in {request.location}"), Button("more", "More")], stored_data={"n": 0})


def submit(request: SubmitRequest) -> Canvas:
    if request.component_id == "boom":
        raise RuntimeError(f"the handler broke while holding {SECRET}")
    if request.component_id == "dupes":
        return Canvas([Button("a", "A"), Button("a", "B")])
    n = int(request.stored_data.get("n", 0)) + 1
    note = request.input_values.get("note", "")
    return Canvas([Text(f"clicked {request.component_id} {n} {note}".strip())], stored_data={"n": n})


async def initialize_async(request: InitializeRequest) -> Canvas:
    await asyncio.sleep(0)
    return initialize(request)


async def submit_async(request: SubmitRequest) -> Canvas:
    await asyncio.sleep(0)
    return submit(request)


def _starlette_app(fastapi: bool) -> Any:
    from authlib.integrations.starlette_client import OAuth

    from gist_authlib.starlette import canvas_routes

    if fastapi:
        from fastapi import FastAPI

        app = FastAPI()
        # A plain secret and plain handlers, which run in worker threads.
        app.router.routes.extend(
            canvas_routes(SECRET, on_initialize=initialize, on_submit=submit, max_body_bytes=LIMIT)
        )
        return app
    from starlette.applications import Starlette

    gist = gist_authlib.register(OAuth(), client_id="canvas-app", client_secret=SECRET)
    intercom_like = GistProvider(canvas_signature_header="X-Body-Signature", canvas_signature_scheme="")
    return Starlette(
        routes=[
            *canvas_routes(gist, on_initialize=initialize_async, on_submit=submit_async, max_body_bytes=LIMIT),
            *canvas_routes(
                SECRET,
                on_initialize=initialize,
                on_submit=submit,
                initialize_path="/other/initialize",
                submit_path="/other/submit",
                provider=intercom_like,
            ),
        ]
    )


def _flask_app() -> Any:
    from authlib.integrations.flask_client import OAuth as FlaskOAuth
    from flask import Flask

    from gist_authlib.flask import canvas_blueprint

    oauth = FlaskOAuth()
    gist = gist_authlib.register(oauth, client_id="canvas-app", client_secret=SECRET)
    app = Flask("canvas")
    oauth.init_app(app)
    # An async submit handler in a WSGI app: run to completion in the request's thread.
    app.register_blueprint(
        canvas_blueprint(gist, on_initialize=initialize, on_submit=submit_async, max_body_bytes=LIMIT)
    )
    return app


def _django_app() -> Any:
    from django.core.handlers.wsgi import WSGIHandler, WSGIRequest

    from gist_authlib.django import canvas_urls

    urlconf = types.ModuleType("canvas_test_urls")
    urlconf.urlpatterns = canvas_urls(SECRET, on_initialize=initialize, on_submit=submit, max_body_bytes=LIMIT)  # type: ignore[attr-defined]

    class Request(WSGIRequest):
        def __init__(self, environ: Any) -> None:
            super().__init__(environ)
            # Per-request URLconf: the contract tests rewrite the shared test URLconf in this process.
            self.urlconf = urlconf

    class Handler(WSGIHandler):
        request_class = Request

    return Handler()


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, str]]:
    """One canvas app per framework, served on loopback for the whole module."""
    started = {
        "starlette": ServerThread(_starlette_app(fastapi=False)),
        "fastapi": ServerThread(_starlette_app(fastapi=True)),
        "flask": WSGIServerThread(_flask_app()),
        "django": WSGIServerThread(_django_app()),
    }
    for server in started.values():
        server.start()
    yield {name: server.url for name, server in started.items()}
    for server in started.values():
        server.stop()


@pytest.fixture(scope="module")
def client() -> Iterator[httpx2.Client]:
    with browser_client(timeout=10) as http:
        yield http


def post(
    client: httpx2.Client, url: str, data: Any, *, secret: str = SECRET, headers: dict[str, str] | None = None
) -> httpx2.Response:
    body = json.dumps(data).encode()
    sent = {"Content-Type": "application/json", "X-Gist-Signature": sign(body, secret)}
    if headers is not None:
        sent = {"Content-Type": "application/json", **headers}
    return client.post(url, content=body, headers=sent)


def texts(response: httpx2.Response) -> list[str]:
    return [c["text"] for c in response.json()["canvas"]["content"]["components"] if c["type"] == "text"]


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_initialize_then_submit_round_trip_with_stored_data(
    framework: str, servers: dict[str, str], client: httpx2.Client
) -> None:
    base = servers[framework]
    first = post(client, f"{base}/gist/canvas/initialize", INITIALIZE)
    assert first.status_code == 200, first.text
    assert first.headers["content-type"].startswith("application/json")
    assert first.headers["cache-control"] == "no-store"
    assert texts(first) == ["hello Beatrix in inbox"]
    canvas = first.json()["canvas"]
    submit_body = {
        **INITIALIZE,
        "component_id": "more",
        "input_values": {"note": "urgent"},
        "current_canvas": canvas,
        "stored_data": canvas["stored_data"],
    }
    second = post(client, f"{base}/gist/canvas/submit", submit_body)
    assert second.status_code == 200
    assert texts(second) == ["clicked more 1 urgent"]
    third = post(
        client, f"{base}/gist/canvas/submit", {**submit_body, "stored_data": second.json()["canvas"]["stored_data"]}
    )
    assert texts(third) == ["clicked more 2 urgent"]


SIGNATURE_CASES = ["missing", "wrong scheme", "wrong secret", "tampered body", "valid"]


@pytest.mark.parametrize("case", SIGNATURE_CASES)
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_every_signature_case(framework: str, case: str, servers: dict[str, str], client: httpx2.Client) -> None:
    url = f"{servers[framework]}/gist/canvas/initialize"
    body = json.dumps(INITIALIZE).encode()
    headers = {"Content-Type": "application/json"}
    if case == "wrong scheme":
        headers["X-Gist-Signature"] = sign(body).replace("sha256=", "sha1=")
    elif case == "wrong secret":
        headers["X-Gist-Signature"] = sign(body, "not-" + SECRET)
    elif case == "tampered body":
        headers["X-Gist-Signature"] = sign(body)
        body = body.replace(b"Beatrix", b"Mallory")
    elif case == "valid":
        headers["X-Gist-Signature"] = sign(body)
    response = client.post(url, content=body, headers=headers)
    if case == "valid":
        assert response.status_code == 200 and texts(response) == ["hello Beatrix in inbox"]
    else:
        assert response.status_code == 401
        assert response.json()["error"] == "canvas_signature_invalid"
        assert "canvas" not in response.json()


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_a_signed_body_that_is_not_json_answers_400(
    framework: str, servers: dict[str, str], client: httpx2.Client
) -> None:
    body = b"workspace_id=100001"
    response = client.post(
        f"{servers[framework]}/gist/canvas/submit", content=body, headers={"X-Gist-Signature": sign(body)}
    )
    assert response.status_code == 400 and response.json()["error"] == "canvas_request_malformed"


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_a_body_over_the_limit_answers_413(framework: str, servers: dict[str, str], client: httpx2.Client) -> None:
    body = json.dumps({**INITIALIZE, "pad": "x" * LIMIT}).encode()
    response = client.post(
        f"{servers[framework]}/gist/canvas/initialize", content=body, headers={"X-Gist-Signature": sign(body)}
    )
    assert response.status_code == 413 and response.json()["error"] == "canvas_request_too_large"
    # just under the limit is fine
    small = json.dumps({**INITIALIZE, "pad": "x" * (LIMIT - 200)}).encode()
    assert len(small) <= LIMIT
    ok = client.post(
        f"{servers[framework]}/gist/canvas/initialize", content=small, headers={"X-Gist-Signature": sign(small)}
    )
    assert ok.status_code == 200


@pytest.mark.parametrize("framework", ["starlette", "fastapi"])
def test_a_streamed_body_without_length_over_the_limit_answers_413(
    framework: str, servers: dict[str, str], client: httpx2.Client
) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(64):
            yield b"x" * 1024

    response = client.post(
        f"{servers[framework]}/gist/canvas/initialize", content=chunks(), headers={"X-Gist-Signature": "sha256=00"}
    )
    assert response.status_code == 413


@pytest.mark.parametrize("component", ["boom", "dupes"])
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_a_failing_handler_answers_the_error_canvas_never_a_500(
    framework: str, component: str, servers: dict[str, str], client: httpx2.Client, caplog: pytest.LogCaptureFixture
) -> None:
    body = {**INITIALIZE, "component_id": component, "stored_data": {"n": 41}}
    with caplog.at_level(logging.ERROR, logger="gist_authlib.canvas"):
        response = post(client, f"{servers[framework]}/gist/canvas/submit", body)
    assert response.status_code == 200
    assert texts(response) == [ERROR_TEXT]
    assert response.json()["canvas"]["stored_data"] == {"n": 41}
    assert "Traceback" not in response.text and SECRET not in response.text
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "canvas submit handler failed" in logged and SECRET not in logged


@pytest.mark.parametrize("fastapi", [False, True], ids=["starlette", "fastapi"])
def test_gist_hanging_up_mid_body_is_answered_quietly(fastapi: bool) -> None:
    # Without its own catch, Starlette's request.stream() raises ClientDisconnect out of the app, which uvicorn
    # logs as "Exception in ASGI application" with a traceback.
    sent = hang_up(_starlette_app(fastapi), "/gist/canvas/submit", {"content-type": "application/json"})
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 400


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_only_post_is_routed(framework: str, servers: dict[str, str], client: httpx2.Client) -> None:
    response = client.get(f"{servers[framework]}/gist/canvas/initialize")
    assert response.status_code == 405


def test_django_csrf_middleware_does_not_block_the_signed_posts(servers: dict[str, str], client: httpx2.Client) -> None:
    assert "django.middleware.csrf.CsrfViewMiddleware" in settings.MIDDLEWARE
    response = post(client, f"{servers['django']}/gist/canvas/submit", {**INITIALIZE, "component_id": "x"})
    assert response.status_code == 200 and texts(response) == ["clicked x 1"]
    unsigned = client.post(f"{servers['django']}/gist/canvas/submit", content=b"{}")
    assert unsigned.status_code == 401  # refused by the signature check, not by CSRF (403)


def test_routes_take_their_paths_and_signature_settings(servers: dict[str, str], client: httpx2.Client) -> None:
    body = json.dumps(INITIALIZE).encode()
    bare = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    url = f"{servers['starlette']}/other/initialize"
    assert client.post(url, content=body, headers={"X-Body-Signature": bare}).status_code == 200
    assert client.post(url, content=body, headers={"X-Gist-Signature": sign(body)}).status_code == 401


def test_flask_blueprint_names_its_endpoints() -> None:
    app = _flask_app()
    rules = {rule.endpoint: rule.rule for rule in app.url_map.iter_rules()}
    assert rules["gist_canvas.initialize"] == "/gist/canvas/initialize"
    assert rules["gist_canvas.submit"] == "/gist/canvas/submit"


def test_flask_and_django_adapters_work_through_httpx2_wsgi_transport() -> None:
    body = json.dumps(INITIALIZE).encode()
    for app in (_flask_app(), _django_app()):
        with httpx2.Client(transport=httpx2.WSGITransport(app=app), base_url="http://127.0.0.1") as http:
            response = http.post("/gist/canvas/initialize", content=body, headers={"X-Gist-Signature": sign(body)})
            assert response.status_code == 200 and texts(response) == ["hello Beatrix in inbox"]
            assert http.post("/gist/canvas/initialize", content=body).status_code == 401

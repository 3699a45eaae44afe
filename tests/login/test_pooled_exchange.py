"""One pooled HTTP transport per registration for the token exchange and the workspace lookup.

A token endpoint on loopback records the client port of every request: a pooled exchange reuses one kept-alive
connection where Authlib alone opens a new one (with a new TLS context) per login.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from authlib.integrations.flask_client import OAuth as FlaskOAuth
from authlib.integrations.starlette_client import OAuth as StarletteOAuth
from flask import Flask
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

import gist_authlib
from gist_authlib import GistProvider
from gist_authlib.errors import TokenEndpointError
from gist_authlib.sandbox import ServerThread


class TokenEndpoint:
    """A token endpoint (and Gist's GET /token) that records who called, from which port, with which headers."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.redirect = False
        self.lock = threading.Lock()

    def app(self) -> Starlette:
        async def token(request: Request) -> Response:
            form = await request.form()
            with self.lock:
                self.calls.append(
                    {
                        "path": "token",
                        "port": request.client.port if request.client else None,
                        "user_agent": request.headers.get("user-agent"),
                        "code": form.get("code"),
                    }
                )
            if self.redirect:
                return Response(status_code=307, headers={"Location": "http://127.0.0.1:9/elsewhere"})
            return JSONResponse({"access_token": f"tok-{form.get('code')}"})

        async def info(request: Request) -> Response:
            with self.lock:
                self.calls.append({"path": "info", "port": request.client.port if request.client else None})
            return JSONResponse({"workspace_id": "nrrjryb4", "workspace_name": "Acme"})

        return Starlette(routes=[Route("/oauth/token", token, methods=["POST"]), Route("/token", info)])


@pytest.fixture(scope="module")
def endpoint() -> Iterator[tuple[TokenEndpoint, str]]:
    recorder = TokenEndpoint()
    server = ServerThread(recorder.app()).start()
    yield recorder, server.url
    server.stop()


def _flask_gist(url: str, **kwargs: Any) -> Any:
    return gist_authlib.register(
        FlaskOAuth(Flask(__name__)), client_id="i", client_secret="s", provider=GistProvider.at(url), **kwargs
    )


def test_sync_logins_reuse_one_connection_and_keep_the_user_agent(endpoint: tuple[TokenEndpoint, str]) -> None:
    recorder, url = endpoint
    recorder.calls.clear()
    gist = _flask_gist(url)
    tokens = [gist.fetch_access_token(code=f"c{n}", redirect_uri="http://127.0.0.1/cb") for n in range(5)]
    assert [t["access_token"] for t in tokens] == [f"tok-c{n}" for n in range(5)]
    assert len({call["port"] for call in recorder.calls}) == 1  # one kept-alive connection for five exchanges
    assert {call["user_agent"] for call in recorder.calls} == {f"gist-authlib/{gist_authlib.__version__}"}
    assert gist.gist_transport().transport is gist.gist_transport().transport
    gist.gist_close()
    gist.fetch_access_token(code="after", redirect_uri="http://127.0.0.1/cb")  # a closed pool reopens
    assert len({call["port"] for call in recorder.calls}) == 2


def test_raw_authlib_opens_a_connection_per_exchange(endpoint: tuple[TokenEndpoint, str]) -> None:
    """The baseline the pool improves on, measured the same way."""
    recorder, url = endpoint
    recorder.calls.clear()
    raw = FlaskOAuth(Flask(__name__)).register(
        "raw", client_id="i", client_secret="s", access_token_url=f"{url}/oauth/token"
    )
    for n in range(3):
        raw.fetch_access_token(code=f"c{n}", redirect_uri="http://127.0.0.1/cb")
    assert len({call["port"] for call in recorder.calls}) == 3


def test_threads_share_the_pool_safely(endpoint: tuple[TokenEndpoint, str]) -> None:
    recorder, url = endpoint
    recorder.calls.clear()
    gist = _flask_gist(url)
    results: list[str] = []

    def exchange(n: int) -> None:
        results.append(gist.fetch_access_token(code=f"t{n}", redirect_uri="http://127.0.0.1/cb")["access_token"])

    threads = [threading.Thread(target=exchange, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == sorted(f"tok-t{n}" for n in range(8))
    assert len({call["port"] for call in recorder.calls}) <= 8


def test_async_logins_reuse_a_connection_per_event_loop(endpoint: tuple[TokenEndpoint, str]) -> None:
    recorder, url = endpoint
    recorder.calls.clear()
    gist = gist_authlib.register(StarletteOAuth(), client_id="i", client_secret="s", provider=GistProvider.at(url))

    async def three_logins() -> list[str]:
        return [
            (await gist.fetch_access_token(code=f"a{n}", redirect_uri="http://127.0.0.1/cb"))["access_token"]
            for n in range(3)
        ]

    # Two event loops, as Starlette's TestClient makes: each gets a pool of its own, and each works.
    assert asyncio.run(three_logins()) == ["tok-a0", "tok-a1", "tok-a2"]
    assert asyncio.run(three_logins()) == ["tok-a0", "tok-a1", "tok-a2"]
    assert len({call["port"] for call in recorder.calls}) == 2


def test_the_workspace_lookup_goes_through_the_same_pool(endpoint: tuple[TokenEndpoint, str]) -> None:
    recorder, url = endpoint
    recorder.calls.clear()
    gist = _flask_gist(url)
    token = gist.fetch_access_token(code="w", redirect_uri="http://127.0.0.1/cb")
    info = gist.userinfo(token=token)  # not a token of this process's logins: Gist is asked, on the same pool
    assert (info["workspace_id"], info["workspace_name"]) == ("nrrjryb4", "Acme")
    assert [call["path"] for call in recorder.calls] == ["token", "info"]
    assert len({call["port"] for call in recorder.calls}) == 1


def test_the_pooled_exchange_still_never_follows_a_redirect(endpoint: tuple[TokenEndpoint, str]) -> None:
    recorder, url = endpoint
    recorder.calls.clear()
    recorder.redirect = True
    try:
        with pytest.raises(TokenEndpointError):
            _flask_gist(url).fetch_access_token(code="r", redirect_uri="http://127.0.0.1/cb")
    finally:
        recorder.redirect = False
    assert len(recorder.calls) == 1


def test_a_callers_own_http_stack_is_left_alone(endpoint: tuple[TokenEndpoint, str]) -> None:
    _, url = endpoint
    seen: list[str] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request.url.path)
        return httpx2.Response(200, json={"access_token": "from-the-mock"})

    gist = _flask_gist(url, client_kwargs={"transport": httpx2.MockTransport(handler)})
    assert gist.fetch_access_token(code="m", redirect_uri="http://127.0.0.1/cb")["access_token"] == "from-the-mock"
    assert seen == ["/oauth/token"]
    proxied = _flask_gist(url, client_kwargs={"mounts": {}})
    assert proxied.gist_transport() is None  # mounts (or a proxy) mean the caller built the stack

"""The client side of the suite's HTTP: a scripted browser, a client that hangs up mid-body, a URL's query."""

from __future__ import annotations

import asyncio
import ssl
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2

#: One TLS context for every scripted browser of the suite. httpx2 builds a new one (loading the CA bundle, about
#: 30 ms) for each client made without ``verify=``; the suite makes hundreds of browsers, all talking plain HTTP on
#: loopback, so they share this one.
LOOPBACK_TLS = ssl.create_default_context()


def browser_client(**kwargs: Any) -> httpx2.Client:
    """A scripted browser of the suite: its own cookie jar, no proxies from the environment, the shared TLS
    context. Keyword arguments go to :class:`httpx2.Client`."""
    kwargs.setdefault("trust_env", False)
    kwargs.setdefault("verify", LOOPBACK_TLS)
    return httpx2.Client(**kwargs)


def hang_up(app: Any, path: str, headers: dict[str, str]) -> list[dict[str, Any]]:
    """Call the ASGI ``app`` as a client that sends half of a POST body and hangs up; what it sent back."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver"), (b"content-length", b"64")]
        + [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    arriving = [{"type": "http.request", "body": b"x" * 32, "more_body": True}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return arriving.pop(0) if arriving else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent


def query_of(url: str) -> dict[str, str]:
    """The query parameters of ``url``, one value each."""
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query, keep_blank_values=True).items()}

"""A Gist that misbehaves on request: a loopback server in front of the sandbox (or instead of it) that delays,
answers a status with Retry-After, answers garbage, sends a huge body, hangs after the headers, trickles, or resets.

It speaks HTTP/1.1 on raw asyncio streams in a thread of its own, so that each fault is written byte by byte as a
broken server would write it. A request for a path with no fault goes to the upstream (the sandbox) unchanged, its
Host header included; with no upstream it gets a 404. Every loop is bounded in count and in time, and a fault that
waits stops waiting as soon as the client goes away.

    with GistFaults(upstream=sandbox_url) as gist:
        gist.inject("/teammates", Trickle(interval=0.05))
        GistClient(token, base_url=gist.url).teammates.list()  # GistConnectionError, deadline_exceeded
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

import httpx2

_MAX_HEAD = 64 * 1024
_MAX_REQUEST_BODY = 1024 * 1024
_MAX_REQUESTS_PER_CONNECTION = 1000
_CHUNK = b" " * 65536  # the one buffer a huge body is made of (JSON allows spaces anywhere)
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding"}


@dataclass
class Exchange:
    """One request on one connection, and the means to answer it as badly as a fault wants."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes
    faults: GistFaults
    sent: int = 0
    keep_alive: bool = True

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    async def write(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()
        self.sent += len(data)

    async def head(self, status: int, headers: list[tuple[str, str]], length: int | None) -> None:
        """The status line and headers; ``length=None`` announces a chunked body."""
        lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}", *(f"{k}: {v}" for k, v in headers)]
        lines.append(f"content-length: {length}" if length is not None else "transfer-encoding: chunked")
        await self.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))

    async def answer(self, status: int, body: bytes, headers: list[tuple[str, str]] | None = None) -> None:
        await self.head(status, [("content-type", "application/json"), *(headers or [])], len(body))
        await self.write(body)

    async def gone(self, seconds: float) -> bool:
        """Wait up to ``seconds``; True as soon as the client closes the connection."""
        try:
            return await asyncio.wait_for(self.reader.read(1), seconds) == b""
        except TimeoutError:
            return False

    async def forward(self) -> None:
        """Serve the request as Gist (the upstream) would, or 404 without one."""
        if self.faults.upstream is None:
            await self.answer(404, b'{"errors": [{"code": "not_found"}]}')
            return
        headers = [(k, v) for k, v in self.headers if k.lower() not in _HOP_BY_HOP]
        response = await self.faults.http().request(
            self.method, self.faults.upstream.rstrip("/") + self.target, headers=headers, content=self.body
        )
        kept = [(k, v) for k, v in response.headers.multi_items() if k.lower() not in _HOP_BY_HOP]
        await self.head(response.status_code, kept, len(response.content))
        await self.write(response.content)


Fault = Callable[[Exchange], Awaitable[None]]


@dataclass(frozen=True)
class Delay:
    """Wait ``seconds`` (less if the client leaves), then serve the request as if there were no fault."""

    seconds: float

    async def __call__(self, x: Exchange) -> None:
        if not await x.gone(self.seconds):
            await x.forward()


@dataclass(frozen=True)
class Status:
    """Answer ``status`` with a small JSON error body, and a ``Retry-After`` header when given."""

    status: int
    retry_after: str | None = None

    async def __call__(self, x: Exchange) -> None:
        headers = [("retry-after", self.retry_after)] if self.retry_after is not None else []
        await x.answer(self.status, b'{"errors": [{"code": "fault", "message": "injected"}]}', headers)


@dataclass(frozen=True)
class Answer:
    """Answer ``body`` with ``status``: bytes as they are (garbage), anything else as JSON (the wrong shape)."""

    body: Any
    status: int = 200

    async def __call__(self, x: Exchange) -> None:
        await x.answer(self.status, self.body if isinstance(self.body, bytes) else json.dumps(self.body).encode())


@dataclass(frozen=True)
class Huge:
    """Answer 200 with ``size`` bytes of JSON, streamed from one small buffer and never held whole; without
    ``declared`` the size is left out of the headers (a chunked body), so that only counting can catch it."""

    size: int
    declared: bool = True

    async def __call__(self, x: Exchange) -> None:
        x.keep_alive = False
        await x.head(200, [("content-type", "application/json")], self.size if self.declared else None)
        left = self.size
        while left > 0:  # at most size / 64 KiB writes; a client that hangs up ends it at once
            chunk = _CHUNK[: min(left, len(_CHUNK))]
            await x.write(chunk if self.declared else b"%x\r\n%b\r\n" % (len(chunk), chunk))
            left -= len(chunk)
        if not self.declared:
            await x.write(b"0\r\n\r\n")


@dataclass(frozen=True)
class Hang:
    """Send the headers of a 200 (a body of 100 bytes announced), then nothing for ``seconds``, then close."""

    seconds: float = 30.0

    async def __call__(self, x: Exchange) -> None:
        x.keep_alive = False
        await x.head(200, [("content-type", "application/json")], 100)
        await x.gone(self.seconds)


@dataclass(frozen=True)
class Trickle:
    """Send the headers of a 200, then a JSON body one byte every ``interval`` seconds, for ``seconds`` at most
    (the body is that long: the trickle ends with it)."""

    interval: float = 0.05
    seconds: float = 30.0

    async def __call__(self, x: Exchange) -> None:
        x.keep_alive = False
        length = max(2, int(self.seconds / self.interval))
        body = b"{" + b" " * (length - 2) + b"}"
        await x.head(200, [("content-type", "application/json")], length)
        for byte in range(length):
            await x.write(body[byte : byte + 1])
            if byte + 1 < length and await x.gone(self.interval):
                return


@dataclass(frozen=True)
class Reset:
    """Read the request, then reset the connection (a TCP RST): no answer at all."""

    async def __call__(self, x: Exchange) -> None:
        x.keep_alive = False
        sock = x.writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        x.writer.transport.abort()


@dataclass
class Served:
    """One request the server saw: its path, the fault it got (``None``: forwarded) and the bytes sent back."""

    method: str
    path: str
    fault: str | None
    sent: int = 0
    done: bool = False


@dataclass
class _Armed:
    fault: Fault
    times: int | None  # None: every request until cleared


@dataclass
class GistFaults:
    """The fault server: :meth:`inject` a fault for a path; requests for other paths go to ``upstream``.

    Attributes:
        upstream: the origin to forward to (the sandbox's URL), or ``None`` (404 for every path with no fault).
        log: every request served, in order.
    """

    upstream: str | None = None
    log: list[Served] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._armed: dict[str, _Armed] = {}
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._sock = socket.socket()
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(128)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._thread = threading.Thread(target=self._loop.run_forever, name="gist-faults", daemon=True)
        self._client: httpx2.AsyncClient | None = None
        self._connections: dict[asyncio.Task[None], asyncio.StreamWriter] = {}

    def start(self) -> GistFaults:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(10)
        return self

    def inject(self, path: str, fault: Fault, *, times: int | None = None) -> None:
        """Answer requests for ``path`` (``"/teammates"``, no query) with ``fault``: the next ``times`` ones, or
        every one until :meth:`clear`."""
        with self._lock:
            self._armed[path] = _Armed(fault, times)

    def clear(self) -> None:
        """No more faults: every request goes to the upstream."""
        with self._lock:
            self._armed.clear()

    def served(self, path: str) -> list[Served]:
        """The requests for ``path`` so far."""
        return [entry for entry in list(self.log) if entry.path == path]

    def open_connections(self) -> int:
        """Connections the server still holds open (a client that leaked one keeps it open)."""
        return asyncio.run_coroutine_threadsafe(self._count(), self._loop).result(10)

    def stop(self) -> None:
        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._loop.close()

    def __enter__(self) -> GistFaults:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def http(self) -> httpx2.AsyncClient:
        """The client that forwards to the upstream (made in the server's loop, on first use)."""
        if self._client is None:
            self._client = httpx2.AsyncClient(timeout=30, trust_env=False, follow_redirects=False)
        return self._client

    # --- in the server's loop --------------------------------------------------------------------------------

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._connection, sock=self._sock, limit=_MAX_HEAD)

    async def _count(self) -> int:
        return sum(1 for task in self._connections if not task.done())

    async def _shutdown(self) -> None:
        self._server.close()
        # Cut the connections rather than cancel their tasks: each fault's wait ends on the closed connection.
        for writer in list(self._connections.values()):
            writer.transport.abort()
        if self._connections:
            await asyncio.wait(list(self._connections), timeout=5)
        if self._client is not None:
            await self._client.aclose()

    def _take(self, path: str) -> Fault | None:
        with self._lock:
            armed = self._armed.get(path)
            if armed is None:
                return None
            if armed.times is not None:
                armed.times -= 1
                if armed.times <= 0:
                    del self._armed[path]
            return armed.fault

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections[task] = writer
        try:
            for _ in range(_MAX_REQUESTS_PER_CONNECTION):
                exchange = await self._read_request(reader, writer)
                if exchange is None:
                    return
                fault = self._take(exchange.path)
                entry = Served(exchange.method, exchange.path, type(fault).__name__ if fault else None)
                self.log.append(entry)
                try:
                    await (fault or Exchange.forward)(exchange)
                finally:
                    entry.sent, entry.done = exchange.sent, True
                if not exchange.keep_alive:
                    return
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, httpx2.HTTPError):
            return
        finally:
            self._connections.pop(task, None)
            writer.close()

    async def _read_request(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Exchange | None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return None  # the client closed its idle connection
        request_line, *lines = head.decode("latin-1").rstrip("\r\n").split("\r\n")
        method, target, _ = request_line.split(" ", 2)
        headers = [(name.strip(), value.strip()) for name, _, value in (line.partition(":") for line in lines)]
        length = next((int(v) for k, v in headers if k.lower() == "content-length"), 0)
        body = await reader.readexactly(min(length, _MAX_REQUEST_BODY))
        close = any(k.lower() == "connection" and v.lower() == "close" for k, v in headers)
        return Exchange(reader, writer, method, target, headers, body, self, keep_alive=not close)

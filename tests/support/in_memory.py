"""In-memory stacks: the same apps through httpx2's transport seam, with no socket."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import httpx2


class LoopThread:
    """One asyncio event loop in a thread of its own, where the in-memory stacks run their ASGI apps (as uvicorn
    runs them in a thread of its own on a real socket)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="asgi-loop", daemon=True)
        self.thread.start()

    def run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=60)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


class SyncASGITransport(httpx2.BaseTransport):
    """A sync transport to an ASGI app: httpx2's own ``ASGITransport``, run on the :class:`LoopThread`."""

    def __init__(self, app: Any, loop: LoopThread) -> None:
        self.asgi, self.loops = httpx2.ASGITransport(app), loop

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        request.read()  # the body in memory: the loop thread iterates it asynchronously

        async def call() -> httpx2.Response:
            response = await self.asgi.handle_async_request(request)
            return httpx2.Response(response.status_code, headers=response.headers, content=await response.aread())

        return self.loops.run(call())  # type: ignore[no-any-return]


class ThreadedTransport(httpx2.BaseTransport):
    """A WSGI app's transport run in a thread other than the test's, as a server thread would run it: what the
    app logs is told apart from what the test's own client logs by thread, as on a real socket."""

    def __init__(self, inner: httpx2.BaseTransport, pool: Any) -> None:
        self.inner, self.pool = inner, pool

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        return self.pool.submit(self._whole, request).result(timeout=60)  # type: ignore[no-any-return]

    def _whole(self, request: httpx2.Request) -> httpx2.Response:
        response = self.inner.handle_request(request)
        response.read()  # the app's body is produced in its thread too, as a server would send it
        return response


class Router(httpx2.BaseTransport, httpx2.AsyncBaseTransport):
    """Routes each request by origin to the transport that serves it; any other origin is refused as a closed
    port is (``ConnectError``), so an in-memory stack can never reach the network."""

    def __init__(self, routes: dict[str, Any]) -> None:
        self.routes = routes

    def _serving(self, request: httpx2.Request) -> Any:
        origin = f"{request.url.scheme}://{request.url.netloc.decode()}"
        if origin not in self.routes:
            raise httpx2.ConnectError(f"Nothing serves {origin} in this in-memory stack.", request=request)
        return self.routes[origin]

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        return self._serving(request).handle_request(request)  # type: ignore[no-any-return]

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        return await self._serving(request).handle_async_request(request)  # type: ignore[no-any-return]


class Memory:
    """What the in-memory stacks of a session share: the event loop for ASGI apps, threads for WSGI apps, and
    origins that nothing listens on (loopback, as the library's http:// check requires; never connected to)."""

    def __init__(self) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.loop = LoopThread()
        self.threads = ThreadPoolExecutor(max_workers=8, thread_name_prefix="wsgi-app")
        self.ports = iter(range(20000, 60000))

    def origin(self) -> str:
        return f"http://127.0.0.1:{next(self.ports)}"

    def close(self) -> None:
        self.threads.shutdown(wait=True)
        self.loop.close()

"""Serve an app on a loopback port in a background thread: ASGI with uvicorn, WSGI with the stdlib."""

from __future__ import annotations

import functools
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment
    from starlette.types import ASGIApp
    from uvicorn import Config

__all__ = ["ServerThread", "WSGIServerThread", "serve"]


class _Serving(Protocol):
    """A running uvicorn server, as :class:`ServerThread` drives it (see :func:`_server_class`)."""

    started: bool
    should_exit: bool
    force_exit: bool

    def run(self, sockets: list[socket.socket] | None = None) -> None: ...

    def wake(self) -> None: ...


class ServerThread:
    """One uvicorn server in a daemon thread, on a socket bound before it starts.

    The socket is bound in the constructor, so :attr:`url` is known (port 0 picks a free port) before
    the app that needs it is built, e.g. to register a redirect URI.

    Args:
        app: any ASGI app, or ``None`` to set it later with :meth:`start`.
        host: the address to bind; loopback by default.
        port: the port; 0 picks a free one.
        ssl_certfile: serve HTTPS with this certificate chain (PEM); plain HTTP without it.
        ssl_keyfile: the certificate's private key (PEM).
        lifespan: send the app ASGI lifespan events: startup before :meth:`start` returns (a failed startup
            makes it raise), shutdown when :meth:`stop` is called (an app that opened pools or connections in
            its lifespan closes them). Off by default, so that any ASGI callable can be served, also one that
            does not answer lifespan messages.
    """

    def __init__(
        self,
        app: ASGIApp | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        ssl_certfile: str | None = None,
        ssl_keyfile: str | None = None,
        lifespan: bool = False,
    ) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._socket = socket.socket(family, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Accepted sockets inherit this: without it, a response's headers and body written apart can wait
        # out the peer's delayed ACK (about 40 ms a request on loopback).
        self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            self._socket.bind((host, port))
        except OSError as exc:
            self._socket.close()
            raise OSError(f"Cannot listen on {host}:{port}: {exc.strerror}. Choose another port.") from exc
        # Room for a burst of connections (a load test's); the kernel caps it at net.core.somaxconn.
        self._socket.listen(1024)
        self._ssl_certfile, self._ssl_keyfile = ssl_certfile, ssl_keyfile
        self._lifespan = lifespan
        self.host = host
        self.port: int = self._socket.getsockname()[1]
        self.app = app
        self._server: _Serving | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The server's origin, e.g. ``http://127.0.0.1:54321`` (``https://`` when serving TLS)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self._ssl_certfile else 'http'}://{host}:{self.port}"

    def start(self, app: ASGIApp | None = None, *, timeout: float = 10.0) -> ServerThread:
        """Start serving and wait until the server accepts connections."""
        import uvicorn

        if app is not None:
            self.app = app
        if self.app is None:
            raise ValueError("ServerThread.start() needs an ASGI app.")
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            lifespan="on" if self._lifespan else "off",
            access_log=False,
            ssl_certfile=self._ssl_certfile,
            ssl_keyfile=self._ssl_keyfile,
        )
        server = self._server = _server_class()(config)
        exits: list[object] = []

        def serve() -> None:
            try:
                server.run(sockets=[self._socket])
            except SystemExit as exc:  # uvicorn exits this way when the app's lifespan startup fails
                exits.append(exc.code)

        self._thread = threading.Thread(target=serve, name=f"uvicorn:{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                why = " (the app's lifespan startup failed; uvicorn's log says why)" if exits else ""
                self.stop()  # its socket is closed, not left to the garbage collector
                raise RuntimeError(f"The server on {self.url} did not start{why}.")
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the server to finish and wait for its thread (a few milliseconds when no request is running)."""
        if self._server is not None:
            self._server.should_exit = True
            self._server.force_exit = True  # idle keep-alive connections need not be waited for
            self._server.wake()
        if self._thread is not None:
            self._thread.join(timeout)
        self._socket.close()

    def __enter__(self) -> ServerThread:
        if self._thread is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@functools.cache
def _server_class() -> Callable[[Config], _Serving]:
    """A ``uvicorn.Server`` that stops as soon as it is asked to.

    uvicorn checks for shutdown on a 0.1 s tick and then always waits another 0.1 s for open connections, so
    every stop took about 0.2 s: a test suite that starts a server per test spends most of its time there. This
    one is woken by :meth:`wake`, and on a forced stop (the only kind :class:`ServerThread` makes) waits for open
    connections only until they have closed. uvicorn's own tick still runs (it refreshes the Date header and
    counts requests) at the same pace.
    """
    import asyncio

    import uvicorn

    class _PromptServer(uvicorn.Server):
        _stopping: asyncio.Event | None = None
        _loop: asyncio.AbstractEventLoop | None = None

        def wake(self) -> None:
            loop, stopping = self._loop, self._stopping
            if loop is not None and stopping is not None:
                with suppress(RuntimeError):  # the loop has already closed: the server has stopped
                    loop.call_soon_threadsafe(stopping.set)

        async def main_loop(self) -> None:
            self._loop, self._stopping = asyncio.get_running_loop(), asyncio.Event()
            counter = 0
            while not await self.on_tick(counter):
                counter = (counter + 1) % 864000
                with suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), 0.1)

        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            if not self.force_exit:  # a graceful stop (not ServerThread's): uvicorn's own
                await super().shutdown(sockets)
                return
            for server in self.servers:
                server.close()
            for sock in sockets or []:
                sock.close()
            for connection in list(self.server_state.connections):
                connection.shutdown()  # an idle one closes now, a busy one after its response
            # uvicorn sleeps 0.1 s here whatever is open; wait at most that long, for what is still open.
            deadline = asyncio.get_running_loop().time() + 0.1
            while self.server_state.connections and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.002)
            for server in self.servers:
                await server.wait_closed()
            if self.config.lifespan == "off":
                return
            # uvicorn skips the app's lifespan shutdown on a forced exit; this one is forced only so as not to
            # wait for idle connections, so the app still gets it, once the requests still running are answered
            # (they may use what the shutdown closes), for up to 10 s.
            deadline = asyncio.get_running_loop().time() + 10
            while self.server_state.tasks and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.002)
            await self.lifespan.shutdown()

    return _PromptServer


class WSGIServerThread:
    """A threaded WSGI server (standard library ``wsgiref``) in a daemon thread, bound on construction.

    For the Flask and Django examples and tests; no access log is written (an access log would record
    the callback's query string, authorization code included). Same interface as :class:`ServerThread`.
    """

    def __init__(self, app: WSGIApplication | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        from socketserver import ThreadingMixIn
        from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

        class _Server(ThreadingMixIn, WSGIServer):
            daemon_threads = True
            allow_reuse_address = True
            # socketserver's default backlog is 5: a burst of connections would wait out SYN retries.
            request_queue_size = 1024

        class _QuietHandler(WSGIRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

        self.app = app
        try:
            self._server = make_server(host, port, self._dispatch, server_class=_Server, handler_class=_QuietHandler)
        except OSError as exc:
            raise OSError(f"Cannot listen on {host}:{port}: {exc.strerror}. Choose another port.") from exc
        self.host = host
        self.port: int = self._server.server_port
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The server's origin, e.g. ``http://127.0.0.1:54321``."""
        return f"http://{self.host}:{self.port}"

    def _dispatch(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        assert self.app is not None  # requests are served only after start(), which needs an app
        return self.app(environ, start_response)

    def start(self, app: WSGIApplication | None = None) -> WSGIServerThread:
        """Start serving (the socket already accepts connections)."""
        if app is not None:
            self.app = app
        if self.app is None:
            raise ValueError("WSGIServerThread.start() needs a WSGI app.")
        # A short poll: stop() waits for the loop to notice, and the standard 0.5 s made every stop that long.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name=f"wsgi:{self.port}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving and close the socket."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout)
        self._server.server_close()

    def __enter__(self) -> WSGIServerThread:
        if self._thread is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextmanager
def serve(app: ASGIApp, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve ``app`` on ``host:port`` for the duration of a ``with`` block and yield its origin URL."""
    with ServerThread(app, host, port) as server:
        yield server.url

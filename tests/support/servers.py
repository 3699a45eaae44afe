"""Loopback servers: a free port, a server subprocess, and the session's pool of running servers lent to tests."""

from __future__ import annotations

from typing import Any

import httpx2

from gist_authlib.sandbox import ServerThread, WSGIServerThread


def free_port() -> int:
    """A port free on loopback right now (for servers started in subprocesses, which bind it themselves)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server_process(args: list[str], *, port: int, env: dict[str, str], cwd: Any) -> Any:
    """Start a server subprocess and wait until it answers on ``port``; its stderr explains a failure."""
    return wait_until_serving(spawn_server_process(args, env=env, cwd=cwd), port, args)


def spawn_server_process(args: list[str], *, env: dict[str, str], cwd: Any) -> Any:
    """Start a server subprocess without waiting (start several at once, then :func:`wait_until_serving`)."""
    import os
    import subprocess

    return subprocess.Popen(args, cwd=cwd, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_until_serving(process: Any, port: int, args: list[str]) -> Any:
    """Wait until the server ``process`` answers on ``port`` (30 s at most); its stderr explains a failure."""
    import time

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx2.get(f"http://127.0.0.1:{port}/", timeout=1, trust_env=False)
            return process
        except httpx2.TransportError:
            if process.poll() is not None:
                break
            time.sleep(0.02)
    process.kill()
    stderr = process.stderr.read().decode() if process.stderr else ""
    raise RuntimeError(f"The server {args[1:3]} did not start: {stderr}")


# --- servers, kept running for the whole session and lent to one test at a time ------------------------------


class _SwapASGI:
    """An ASGI app that forwards to whichever app the test that holds the server gave it."""

    def __init__(self) -> None:
        self.app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or self.app is None:
            return
        await self.app(scope, receive, send)


class PooledServer:
    """A loopback server (uvicorn for ASGI, wsgiref for WSGI) lent to one test: ``start(app)`` serves ``app``,
    ``stop()`` gives the server back. Starting and stopping real servers for every test cost most of the suite's
    time (uvicorn and wsgiref both poll for shutdown); the sockets, threads and loops stay real."""

    def __init__(self, pool: ServerPool, kind: str) -> None:
        self.pool, self.kind = pool, kind
        if kind == "asgi":
            self.swap = _SwapASGI()
            self.server: Any = ServerThread(self.swap).start()
        else:
            self.server = WSGIServerThread().start(lambda environ, start: self._wsgi(environ, start))
        self.wsgi_app: Any = None

    def _wsgi(self, environ: Any, start_response: Any) -> Any:
        return self.wsgi_app(environ, start_response)

    @property
    def url(self) -> str:
        return str(self.server.url)

    def start(self, app: Any) -> PooledServer:
        if self.kind == "asgi":
            self.swap.app = app
        else:
            self.wsgi_app = app
        return self

    def stop(self) -> None:
        self.swap_out()
        self.pool.free[self.kind].append(self)

    def swap_out(self) -> None:
        if self.kind == "asgi":
            self.swap.app = None
        else:
            self.wsgi_app = None


class ServerPool:
    """Running servers, lent out by :meth:`take` and given back by :meth:`PooledServer.stop`."""

    def __init__(self) -> None:
        self.free: dict[str, list[PooledServer]] = {"asgi": [], "wsgi": []}
        self.made: list[PooledServer] = []

    def take(self, kind: str) -> PooledServer:
        if self.free[kind]:
            return self.free[kind].pop()
        server = PooledServer(self, kind)
        self.made.append(server)
        return server

    def close(self) -> None:
        for server in self.made:
            server.server.stop()

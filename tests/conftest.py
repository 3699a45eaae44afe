"""Shared fixtures: real servers on loopback ports, apps in four frameworks, and a scripted browser.

Starlette and FastAPI apps run under uvicorn, Flask and Django apps under werkzeug's WSGI server, each in
a thread on a port of its own; the sandbox runs beside them. Nothing is patched.
"""

from __future__ import annotations

import ast
import asyncio
import gc
import secrets
import ssl
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import django
import httpx2
import pytest
from django.conf import settings

import gist_authlib
from gist_authlib import GistAuthError, GistProvider
from gist_authlib.sandbox import GistSandbox, SandboxClient, ServerThread, WSGIServerThread, create_app

if not settings.configured:
    settings.configure(
        SECRET_KEY="django-test-secret-key-not-for-production",
        ROOT_URLCONF="support.django_urlconf",
        ALLOWED_HOSTS=["127.0.0.1", "localhost"],
        MIDDLEWARE=[
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.middleware.csrf.CsrfViewMiddleware",
        ],
        SESSION_ENGINE="django.contrib.sessions.backends.signed_cookies",
        INSTALLED_APPS=["django.contrib.sessions"],
        AUTHLIB_OAUTH_CLIENTS={},
        USE_TZ=True,
    )
    django.setup()

# CPython before 3.13 keeps the depth counter of ``ast.parse`` per interpreter, not per thread (gh-106905):
# a server thread formatting a traceback (3.11's carets parse each line) while this thread imports a module
# that pytest rewrites can fail that import with "SystemError: AST constructor recursion depth mismatch".
# The suite runs servers in threads beside its imports, so it lets one thread parse at a time.
if sys.version_info < (3, 13):
    _ast_parse = ast.parse
    _ast_lock = threading.RLock()

    def _serial_parse(*args: Any, **kwargs: Any) -> Any:
        with _ast_lock:
            return _ast_parse(*args, **kwargs)

    ast.parse = _serial_parse

# The cyclic garbage collector, tuned for a test process: the frameworks, the package and the collected tests make
# a large heap that never dies, and Python's default thresholds walked it again and again (about a tenth of the
# suite's CPU, measured on the contract, adversarial and client suites: 17.3 against 15.2 core-seconds, 3 pairs).
# Collections run less often, and once the tests are collected, what exists is set aside for good (gc.freeze).
gc.set_threshold(10_000, 20, 20)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Set aside everything made while collecting: later collections need not walk it."""
    gc.collect()
    gc.freeze()


FRAMEWORKS = ["starlette", "fastapi", "flask", "django"]
#: Every route style the contract and adversarial suites run against: the library's routes in each framework,
#: and hand-written routes calling Authlib's own methods (``authorize_redirect``, ``authorize_access_token``)
#: the way Authlib's documentation shows ("+authlib").
ROUTES = [*FRAMEWORKS, "starlette+authlib", "flask+authlib", "django+authlib"]
#: Figures of the adversarial suite (tests/test_adversarial.py), printed at the end of the run.
ADVERSARIAL: Counter[str] = Counter()


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: one worker per core this process may use. The suite is CPU-bound on 2 cores, and a third
    worker costs its own start and collection (about 5 core-seconds) and more switching than the waits it fills
    (medians of 5 cold runs: 60.5 s with 2 workers, 63.2 s with 3; 4 workers were slower still)."""
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Stop Chromium if a run ended inside the browser tests (``-x``, an interrupt); in an xdist worker, hand this
    worker's adversarial figures to the controller."""
    _CHROMIUM.stop()
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["adversarial"] = dict(ADVERSARIAL)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """In the xdist controller: add up the workers' figures (the "largest" ones are maxima, not sums)."""
    for key, value in getattr(node, "workeroutput", {}).get("adversarial", {}).items():
        ADVERSARIAL[key] = max(ADVERSARIAL[key], value) if key.startswith("largest") else ADVERSARIAL[key] + value


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if ADVERSARIAL:
        figures = ", ".join(f"{key.replace('_', ' ')} {value}" for key, value in sorted(ADVERSARIAL.items()))
        terminalreporter.write_line(f"adversarial suite (all frameworks): {figures}")


# --- headless Chromium, one per run ----------------------------------------------------------------------------

#: Debian's packages of Chromium (scripts/install-test-deps.sh); Playwright downloads nothing. The browser tests
#: run in Chromium's headless shell: the same Blink and V8 as the full browser, from the same Debian source
#: package and version, and what Playwright itself uses for headless runs; it takes a quarter of the full
#: browser's CPU. The SameSite cookie tests run in the full browser too (``full_chromium``), a whole login
#: through the consent page as a person would make it.
CHROMIUM_HEADLESS_SHELL = "/usr/bin/chromium-headless-shell"
CHROMIUM = "/usr/bin/chromium"


class _Chromium:
    """Playwright's driver and the browsers it launched, started when a test first asks for a browser and stopped
    after the last browser test of a run of them (``pytest_runtest_teardown`` below). The browser tests share a
    worker and run one after another, so the driver and each browser start once, not once per module. They are
    never left running: while Playwright's sync API is active it keeps an event loop marked running on the main
    thread, which would break every later test that calls ``asyncio.run``."""

    def __init__(self) -> None:
        self._playwright: Any = None
        self._driver: Any = None
        self._browsers: dict[str, Any] = {}

    def browser(self, executable_path: str) -> Any:
        if self._driver is None:
            from playwright.sync_api import sync_playwright

            self._playwright = sync_playwright()
            self._driver = self._playwright.__enter__()
        if executable_path not in self._browsers:
            self._browsers[executable_path] = self._driver.chromium.launch(
                executable_path=executable_path, args=["--no-sandbox"]
            )
        return self._browsers[executable_path]

    def stop(self) -> None:
        try:
            while self._browsers:
                self._browsers.popitem()[1].close()
        finally:  # the driver stops even if a browser would not close
            if self._driver is not None:
                self._driver = None
                self._playwright.__exit__(None, None, None)


_CHROMIUM = _Chromium()


def _uses_chromium(item: pytest.Item | None) -> bool:
    """Whether ``item`` is a browser test: in a module marked ``BROWSER_TESTS``, or asking for a browser."""
    if item is None:
        return False
    group = item.get_closest_marker("xdist_group")
    fixtures = set(getattr(item, "fixturenames", ()))
    return bool(group and group.args == ("chromium",)) or bool(fixtures & {"chromium_browser", "full_chromium"})


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Any:
    """After a browser test's own teardown: stop Chromium unless the next test uses it too."""
    try:
        return (yield)
    finally:
        if not _uses_chromium(nextitem):
            _CHROMIUM.stop()


@pytest.fixture
def chromium_browser() -> Any:
    """Headless Chromium (the headless shell); each test opens a context of its own, so no cookie or page is
    shared between tests."""
    return _CHROMIUM.browser(CHROMIUM_HEADLESS_SHELL)


@pytest.fixture
def full_chromium() -> Any:
    """The full Chromium browser, headless, for the tests that also run in it."""
    return _CHROMIUM.browser(CHROMIUM)


#: Every browser test module carries this mark: with xdist (``--dist loadgroup``) they all run on one worker,
#: module after module, so that Chromium and each module's servers start once instead of on both workers; the
#: other worker meanwhile takes the rest of the suite.
BROWSER_TESTS = pytest.mark.xdist_group("chromium")


#: Fixtures that start something costly once per worker (a PostgreSQL server: initdb and start): the tests that
#: use them share one xdist worker (``--dist loadgroup``), so it is started once, not once on every worker.
COSTLY_FIXTURES = {"postgres_url": "postgres"}


#: Modules whose tests each run for seconds (subprocesses); with the groups, they are handed out first.
LONG_MODULES = ("test_bench.py", "test_testing_plugin.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Group the tests of costly fixtures, then put the long runners first: xdist hands out work in this order,
    and a long group handed out last would keep one worker busy after the others are done."""
    for item in items:
        for fixture, group in COSTLY_FIXTURES.items():
            if fixture in getattr(item, "fixturenames", ()) and item.get_closest_marker("xdist_group") is None:
                item.add_marker(pytest.mark.xdist_group(group))
    items.sort(key=lambda item: not (item.get_closest_marker("xdist_group") or item.path.name in LONG_MODULES))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Keep each phase's report on the test, so that a fixture can tell at teardown whether the test failed
    (the browser tests then save a screenshot of what the page showed)."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


def failed(request: pytest.FixtureRequest) -> bool:
    """Whether the test that ``request`` belongs to has failed so far (its setup or its call)."""
    return any(getattr(getattr(request.node, f"report_{when}", None), "failed", False) for when in ("setup", "call"))


#: The registrations every contract app carries: Gist, and a second Gist app beside it.
REGISTRATIONS = ("gist", "gist_b")


def free_port() -> int:
    """A port free on loopback right now (for servers started in subprocesses, which bind it themselves)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server_process(args: list[str], *, port: int, env: dict[str, str], cwd: Any) -> Any:
    """Start a server subprocess and wait until it answers on ``port``; its stderr explains a failure."""
    import os
    import subprocess
    import time

    process = subprocess.Popen(
        args, cwd=cwd, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
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


@pytest.fixture(scope="session")
def server_pool() -> Iterator[ServerPool]:
    pool = ServerPool()
    yield pool
    pool.close()


# --- in-memory stacks: the same apps through httpx2's transport seam, with no socket ------------------------------


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


@pytest.fixture(scope="session")
def memory() -> Iterator[Memory]:
    shared = Memory()
    yield shared
    shared.close()


@dataclass
class Stack:
    """A sandbox and an app in one framework using gist_authlib, both served on loopback."""

    framework: str
    sandbox: GistSandbox
    sandbox_url: str
    app_url: str
    client_id: str
    client_secret: str
    logins: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    errors: list[GistAuthError] = field(default_factory=list)
    apps: dict[str, Any] = field(default_factory=dict)
    installs: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    #: on_login returns None, so the callback answers with a 303 to the checked next path.
    redirect_after_login: bool = False
    #: the routes accept Gist-initiated installs.
    accept_installs: bool = False
    #: "socket": served on loopback; "memory": reached through httpx2's transport seam (``browser_transport``).
    wire: str = "socket"
    browser_transport: Any = None

    @property
    def tokens(self) -> list[dict[str, Any]]:
        """The tokens handed to ``on_login`` of the main registration."""
        return [token for name, token in self.logins if name == "gist"]

    def browser(self) -> httpx2.Client:
        """A fresh browser: its own cookie jar, redirects followed by hand (over the in-memory transports when
        the stack has no sockets)."""
        if self.browser_transport is not None:
            return browser_client(follow_redirects=False, timeout=10, transport=self.browser_transport)
        return browser_client(follow_redirects=False, timeout=10)

    def start_login(self, browser: httpx2.Client, name: str = "gist", **params: str) -> str:
        """Start a login and return the authorization URL the app redirected to."""
        response = browser.get(f"{self.app_url}/auth/{name}", params=params or None)
        assert response.status_code == 302, response.text
        return response.headers["location"]

    def authorize(self, browser: httpx2.Client, authorize_url: str) -> str:
        """Visit the (auto-approving) sandbox and return the callback URL it redirected to."""
        response = browser.get(authorize_url)
        assert response.status_code == 302, response.text
        return response.headers["location"]

    def callback_url(self, name: str = "gist") -> str:
        return f"{self.app_url}/oauth/{name}/callback"

    def login(self, browser: httpx2.Client | None = None, name: str = "gist") -> httpx2.Response:
        """A whole login; returns the callback's response."""
        own = browser is None
        browser = browser or self.browser()
        try:
            return browser.get(self.authorize(browser, self.start_login(browser, name)))
        finally:
            if own:
                browser.close()


# --- one app per framework, all with the same behaviour ----------------------------------------------


def _starlette_app(stack: Stack, gists: dict[str, Any], sessions: bool, fastapi: bool) -> Any:
    from starlette.middleware.sessions import SessionMiddleware
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response

    from gist_authlib.starlette import default_on_error, gist_routes

    def handlers(name: str) -> tuple[Callable[..., Any], Callable[..., Any]]:
        gist = gists[name]

        async def on_login(request: Request, token: dict[str, Any]) -> Response | None:
            stack.logins.append((name, token))
            if stack.redirect_after_login:
                return None
            teammates = (await gist.get("teammates", token=token)).json()["teammates"]
            return JSONResponse({"teammates": [t["name"] for t in teammates], "next": request.state.gist_next})

        def on_error(request: Request, error: GistAuthError) -> Response:
            stack.errors.append(error)
            return default_on_error(request, error)

        return on_login, on_error

    from starlette.routing import Route

    from gist_authlib.starlette import logout, stored_token

    async def me(request: Request) -> Response:
        # Authlib's own call, with the token its fetch_token hook finds in the store for this session
        record = await stored_token(request, gists["gist"])
        if record is None:
            return JSONResponse({"error": "not logged in"}, status_code=401)
        teammates = (await gists["gist"].get("teammates", request=request)).json()["teammates"]
        return JSONResponse({"subject": record.subject, "teammates": [t["name"] for t in teammates]})

    async def log_out(request: Request) -> Response:
        return JSONResponse({"subject": await logout(request, gists["gist"], forget_token=True)})

    routes: list[Any] = [Route("/me", me), Route("/logout", log_out)]
    for name in REGISTRATIONS:
        on_login, on_error = handlers(name)

        def on_install(request: Request, token: dict[str, Any], workspace_id: str, name: str = name) -> None:
            stack.installs.append((workspace_id, token))

        routes += gist_routes(
            gists[name],
            on_login=on_login,
            on_error=on_error,
            subject=lambda request, token, name=name: f"{name}-user",
            on_install=on_install if stack.accept_installs else None,
            login_path=f"/auth/{name}",
            callback_path=f"/oauth/{name}/callback",
        )
    if fastapi:
        from fastapi import FastAPI

        app = FastAPI()
        app.router.routes.extend(routes)
        if sessions:
            app.add_middleware(SessionMiddleware, secret_key="test-session-secret")
        return app
    from starlette.applications import Starlette
    from starlette.middleware import Middleware

    middleware = [Middleware(SessionMiddleware, secret_key="test-session-secret")] if sessions else []
    return Starlette(routes=routes, middleware=middleware)


def _flask_app(stack: Stack, gists: dict[str, Any], sessions: bool) -> Any:
    from flask import Flask, g, jsonify

    from gist_authlib.flask import default_on_error, gist_blueprint, logout, stored_token

    app = Flask("contract")
    if sessions:
        app.secret_key = "test-session-secret"

    @app.get("/me")
    def me() -> Any:
        record = stored_token(gists["gist"])
        if record is None:
            return jsonify({"error": "not logged in"}), 401
        teammates = gists["gist"].get("teammates").json()["teammates"]  # Authlib's fetch_token: the store
        return jsonify({"subject": record.subject, "teammates": [t["name"] for t in teammates]})

    @app.get("/logout")
    def log_out() -> Any:
        return jsonify({"subject": logout(gists["gist"], forget_token=True)})

    for name in REGISTRATIONS:
        gist = gists[name]

        def on_login(token: dict[str, Any], name: str = name, gist: Any = gist) -> Any:
            stack.logins.append((name, token))
            if stack.redirect_after_login:
                return None
            teammates = gist.get("teammates", token=token).json()["teammates"]
            return jsonify({"teammates": [t["name"] for t in teammates], "next": g.gist_next})

        def on_error(error: GistAuthError) -> Any:
            stack.errors.append(error)
            return default_on_error(error)

        app.register_blueprint(
            gist_blueprint(
                gist,
                on_login=on_login,
                on_error=on_error,
                subject=lambda token, name=name: f"{name}-user",
                on_install=(lambda token, workspace_id: stack.installs.append((workspace_id, token)))
                if stack.accept_installs
                else None,
                login_path=f"/auth/{name}",
                callback_path=f"/oauth/{name}/callback",
            )
        )
    return app


def _django_app(stack: Stack, gists: dict[str, Any], sessions: bool) -> Any:
    from django.http import JsonResponse
    from django.urls import clear_url_caches, path
    from support import django_urlconf

    from gist_authlib.django import default_on_error, gist_urls, logout, stored_token

    def me(request: Any) -> Any:
        record = stored_token(request, gists["gist"])
        if record is None:
            return JsonResponse({"error": "not logged in"}, status=401)
        teammates = gists["gist"].get("teammates", request=request).json()["teammates"]
        return JsonResponse({"subject": record.subject, "teammates": [t["name"] for t in teammates]})

    def log_out(request: Any) -> Any:
        return JsonResponse({"subject": logout(request, gists["gist"], forget_token=True)})

    patterns: list[Any] = [path("me", me), path("logout", log_out)]
    for name in REGISTRATIONS:
        gist = gists[name]

        def on_login(request: Any, token: dict[str, Any], name: str = name, gist: Any = gist) -> Any:
            stack.logins.append((name, token))
            if stack.redirect_after_login:
                return None
            teammates = gist.get("teammates", token=token).json()["teammates"]
            return JsonResponse({"teammates": [t["name"] for t in teammates], "next": request.gist_next})

        def on_error(request: Any, error: GistAuthError) -> Any:
            stack.errors.append(error)
            return default_on_error(request, error)

        patterns += gist_urls(
            gist,
            on_login=on_login,
            on_error=on_error,
            subject=lambda request, token, name=name: f"{name}-user",
            on_install=(lambda request, token, workspace_id: stack.installs.append((workspace_id, token)))
            if stack.accept_installs
            else None,
            login_path=f"auth/{name}",
            callback_path=f"oauth/{name}/callback",
        )
    django_urlconf.urlpatterns[:] = patterns
    clear_url_caches()
    return _django_handler(sessions)


# --- hand-written Authlib routes, as Authlib's documentation shows them ------------------------------------
#
# Nothing of gist_authlib's routes is used: only oauth.<name>.authorize_redirect / authorize_access_token, and an
# ``except OAuthError`` as any Authlib app has. ``next=`` and ``subject=`` are gist_authlib's keyword arguments.


def _failed_page(stack: Stack, error: Exception) -> tuple[str, int]:
    """What a hand-written handler shows: the error's description, escaped, with its status when it has one."""
    import html

    stack.errors.append(error)  # type: ignore[arg-type]
    return f"<h1>Login failed</h1><p>{html.escape(str(getattr(error, 'description', '')))}</p>", int(
        getattr(error, "status_code", 400)
    )


def _starlette_authlib_app(stack: Stack, oauth: Any, sessions: bool) -> Any:
    from authlib.integrations.starlette_client import OAuthError
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.middleware.sessions import SessionMiddleware
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
    from starlette.routing import Route

    async def login(request: Request) -> Response:
        name = request.path_params["name"]
        redirect_uri = request.url_for("auth", name=name)
        try:
            response: Response = await oauth.create_client(name).authorize_redirect(
                request, redirect_uri, next=request.query_params.get("next")
            )
        except OAuthError as error:
            return HTMLResponse(*_failed_page(stack, error))
        return response

    async def auth(request: Request) -> Response:
        name = request.path_params["name"]
        client = oauth.create_client(name)
        try:
            token = await client.authorize_access_token(request, subject=f"{name}-user")
        except OAuthError as error:
            response: Response = HTMLResponse(*_failed_page(stack, error))
        else:
            stack.logins.append((name, token))
            if stack.redirect_after_login:
                response = RedirectResponse(request.state.gist_next, status_code=303)
            else:
                teammates = (await client.get("teammates", token=token)).json()["teammates"]
                response = JSONResponse({"teammates": [t["name"] for t in teammates], "next": request.state.gist_next})
        response.headers.update({"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})
        return response

    async def me(request: Request) -> Response:
        subject = request.session.get(oauth.gist.gist_flow.subject_key)
        if subject is None:
            return JSONResponse({"error": "not logged in"}, status_code=401)
        teammates = (await oauth.gist.get("teammates", request=request)).json()["teammates"]
        return JSONResponse({"subject": subject, "teammates": [t["name"] for t in teammates]})

    async def log_out(request: Request) -> Response:
        subject = request.session.pop(oauth.gist.gist_flow.subject_key, None)
        if subject:
            oauth.gist.gist_token_store.delete(subject)
        return JSONResponse({"subject": subject})

    routes = [
        Route("/auth/{name}", login),
        Route("/oauth/{name}/callback", auth, name="auth"),
        Route("/me", me),
        Route("/logout", log_out),
    ]
    middleware = [Middleware(SessionMiddleware, secret_key="test-session-secret")] if sessions else []
    return Starlette(routes=routes, middleware=middleware)


def _flask_authlib_app(stack: Stack, oauth: Any, sessions: bool) -> Any:
    from authlib.integrations.flask_client import OAuthError
    from flask import Flask, g, jsonify, redirect, session, url_for

    app = Flask("contract_authlib")
    if sessions:
        app.secret_key = "test-session-secret"

    @app.get("/auth/<name>")
    def login(name: str) -> Any:
        from flask import request

        try:
            return oauth.create_client(name).authorize_redirect(
                url_for("auth", name=name, _external=True), next=request.args.get("next")
            )
        except OAuthError as error:
            return _failed_page(stack, error)

    @app.get("/oauth/<name>/callback")
    def auth(name: str) -> Any:
        client = oauth.create_client(name)
        try:
            token = client.authorize_access_token(subject=f"{name}-user")
        except OAuthError as error:
            response = app.make_response(_failed_page(stack, error))
        else:
            stack.logins.append((name, token))
            if stack.redirect_after_login:
                response = redirect(g.gist_next, 303)
            else:
                teammates = client.get("teammates", token=token).json()["teammates"]
                response = jsonify({"teammates": [t["name"] for t in teammates], "next": g.gist_next})
        response.headers.update({"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})
        return response

    @app.get("/me")
    def me() -> Any:
        subject = session.get(oauth.gist.gist_flow.subject_key)
        if subject is None:
            return jsonify({"error": "not logged in"}), 401
        teammates = oauth.gist.get("teammates").json()["teammates"]
        return jsonify({"subject": subject, "teammates": [t["name"] for t in teammates]})

    @app.get("/logout")
    def log_out() -> Any:
        subject = session.pop(oauth.gist.gist_flow.subject_key, None)
        if subject:
            oauth.gist.gist_token_store.delete(subject)
        return jsonify({"subject": subject})

    return app


def _django_authlib_app(stack: Stack, oauth: Any, sessions: bool) -> Any:
    from authlib.integrations.django_client import OAuthError
    from django.http import HttpResponse, JsonResponse
    from django.urls import clear_url_caches, path, reverse
    from support import django_urlconf

    def login(request: Any, name: str) -> Any:
        redirect_uri = request.build_absolute_uri(reverse("auth", kwargs={"name": name}))
        try:
            return oauth.create_client(name).authorize_redirect(request, redirect_uri, next=request.GET.get("next"))
        except OAuthError as error:
            body, status = _failed_page(stack, error)
            return HttpResponse(body, status=status)

    def auth(request: Any, name: str) -> Any:
        client = oauth.create_client(name)
        try:
            token = client.authorize_access_token(request, subject=f"{name}-user")
        except OAuthError as error:
            body, status = _failed_page(stack, error)
            response: Any = HttpResponse(body, status=status)
        else:
            stack.logins.append((name, token))
            if stack.redirect_after_login:
                response = HttpResponse(status=303)
                response["Location"] = request.gist_next
            else:
                teammates = client.get("teammates", token=token).json()["teammates"]
                response = JsonResponse({"teammates": [t["name"] for t in teammates], "next": request.gist_next})
        response["Cache-Control"] = "no-store"
        response["Referrer-Policy"] = "no-referrer"
        return response

    def me(request: Any) -> Any:
        subject = request.session.get(oauth.gist.gist_flow.subject_key)
        if subject is None:
            return JsonResponse({"error": "not logged in"}, status=401)
        teammates = oauth.gist.get("teammates", request=request).json()["teammates"]
        return JsonResponse({"subject": subject, "teammates": [t["name"] for t in teammates]})

    def log_out(request: Any) -> Any:
        subject = request.session.pop(oauth.gist.gist_flow.subject_key, None)
        if subject:
            oauth.gist.gist_token_store.delete(subject)
        return JsonResponse({"subject": subject})

    django_urlconf.urlpatterns[:] = [
        path("auth/<str:name>", login),
        path("oauth/<str:name>/callback", auth, name="auth"),
        path("me", me),
        path("logout", log_out),
    ]
    clear_url_caches()
    return _django_handler(sessions)


def _django_handler(sessions: bool) -> Any:
    from django.core.handlers.wsgi import WSGIHandler
    from django.test.utils import override_settings

    if sessions:
        return WSGIHandler()
    without_sessions = override_settings(MIDDLEWARE=["django.middleware.csrf.CsrfViewMiddleware"])

    def app(environ: Any, start_response: Any) -> Any:
        with without_sessions:
            return WSGIHandler()(environ, start_response)

    return app


def _oauth_registry(framework: str) -> Any:
    if framework in ("starlette", "fastapi", "starlette+authlib"):
        from authlib.integrations.starlette_client import OAuth

        return OAuth()
    if framework.startswith("flask"):
        from authlib.integrations.flask_client import OAuth as FlaskOAuth

        return FlaskOAuth()  # the init_app factory pattern: no app yet
    from authlib.integrations.django_client import OAuth as DjangoOAuth

    return DjangoOAuth()


def build_stack(
    servers: list[Any],
    pool: ServerPool,
    framework: str = "starlette",
    *,
    auto_approve: bool = True,
    sessions: bool = True,
    register_kwargs: dict[str, Any] | None = None,
    sandbox_kwargs: dict[str, Any] | None = None,
    redirect_after_login: bool = False,
    accept_installs: bool = False,
    wire: str = "socket",
    memory: Callable[[], Memory] | None = None,
) -> Stack:
    """A sandbox and an app in ``framework``, both served on loopback (their servers are appended to
    ``servers``), or with ``wire="memory"`` both reached through httpx2's transport seam, with no socket: the
    browser's requests and the app's own (token exchange, API) go to the same apps in process."""
    asgi = framework.startswith(("starlette", "fastapi"))
    if wire == "memory":
        assert memory is not None
        shared = memory()
        sandbox_server: Any = _InMemory(shared.origin())
        app_server: Any = _InMemory(shared.origin())
    else:
        sandbox_server = pool.take("asgi")
        app_server = pool.take("asgi" if asgi else "wsgi")
        servers.extend([sandbox_server, app_server])
    secret_of = {name: f"secret-{name}-" + secrets.token_urlsafe(16) for name in REGISTRATIONS}
    id_of = {name: f"{name}-" + secrets.token_hex(4) for name in REGISTRATIONS}
    sandbox = create_app(
        clients=[
            SandboxClient(id_of[name], secret_of[name], (f"{app_server.url}/oauth/{name}/callback",))
            for name in REGISTRATIONS
        ],
        auto_approve=auto_approve,
        **(sandbox_kwargs or {}),
    )
    stack = Stack(framework, sandbox, sandbox_server.url, app_server.url, id_of["gist"], secret_of["gist"])
    stack.redirect_after_login = redirect_after_login
    stack.accept_installs = accept_installs
    stack.wire = wire
    oauth = _oauth_registry(framework)
    for name in REGISTRATIONS:
        kwargs: dict[str, Any] = {
            "client_id": id_of[name],
            "client_secret": secret_of[name],
            "provider": GistProvider.at(sandbox_server.url),
        }
        if wire == "memory":  # the app's own requests reach the sandbox in process too
            to_sandbox = httpx2.ASGITransport(sandbox) if asgi else SyncASGITransport(sandbox, shared.loop)
            kwargs["client_kwargs"] = {"transport": Router({sandbox_server.url: to_sandbox})}
        if name == "gist":
            kwargs.update(register_kwargs or {})
        stack.apps[name] = gist_authlib.register(oauth, name, **kwargs)
    if framework == "starlette+authlib":
        app = _starlette_authlib_app(stack, oauth, sessions)
    elif framework == "flask+authlib":
        app = _flask_authlib_app(stack, oauth, sessions)
        oauth.init_app(app)
    elif framework == "django+authlib":
        app = _django_authlib_app(stack, oauth, sessions)
    elif framework in ("starlette", "fastapi"):
        app = _starlette_app(stack, stack.apps, sessions, framework == "fastapi")
    elif framework == "flask":
        app = _flask_app(stack, stack.apps, sessions)
        oauth.init_app(app)
    else:
        app = _django_app(stack, stack.apps, sessions)
    if wire == "memory":
        to_app = (
            SyncASGITransport(app, shared.loop)
            if asgi
            else ThreadedTransport(httpx2.WSGITransport(app), shared.threads)
        )
        stack.browser_transport = Router(
            {sandbox_server.url: SyncASGITransport(sandbox, shared.loop), app_server.url: to_app}
        )
        return stack
    sandbox_server.start(sandbox)
    app_server.start(app)
    return stack


@dataclass
class _InMemory:
    """Where an in-memory stack's app or sandbox is reached: an origin that nothing listens on."""

    url: str


@pytest.fixture
def make_stack(server_pool: ServerPool, request: pytest.FixtureRequest) -> Iterator[Callable[..., Stack]]:
    """Build a sandbox and an app; keyword arguments choose the framework and tune the parts (``wire="memory"``:
    in process, with no socket)."""
    servers: list[Any] = []

    def memory() -> Memory:
        return request.getfixturevalue("memory")  # type: ignore[no-any-return]

    yield lambda *args, **kwargs: build_stack(servers, server_pool, *args, memory=memory, **kwargs)
    for server in servers:
        server.stop()


@pytest.fixture(params=FRAMEWORKS)
def framework(request: pytest.FixtureRequest) -> str:
    """Each framework in turn."""
    return str(request.param)


@pytest.fixture(params=ROUTES)
def route(request: pytest.FixtureRequest) -> str:
    """Each route style in turn: the library's routes per framework, and hand-written Authlib routes."""
    return str(request.param)


@pytest.fixture
def stack(make_stack: Callable[..., Stack], route: str) -> Stack:
    """The default stack for each route style: an auto-approving sandbox and an app with sessions."""
    return make_stack(route)

"""Benchmark: a whole "Log in with Gist" through gist_authlib against hand-written raw Authlib routes.

Both sides do the same work for a login, in Starlette, Flask and Django (the same S256 PKCE, the same session
writes, the same redirects, the same two requests to Gist):

  the start     answers 302 to Gist's authorize URL with a fresh ``state`` and an S256 ``code_challenge``,
                keeping the state and the verifier for the callback;
  the callback  checks the state, exchanges the code (``POST /oauth/token``, client_secret_post, with the
                ``code_verifier``), asks Gist who logged in (one ``GET /token`` with the fresh token, answering
                ``{"workspace_id", "workspace_name"}``), writes ``session["workspace_id"]`` and answers 303 to ``/``.

  ours  ``gist_authlib.register`` and the ready-made routes (``gist_routes``, ``gist_blueprint``, ``gist_urls``).
        The start keeps the state and verifier in its signed login cookie (the session is not written). The
        callback reads that cookie, records the state and code as used (the in-memory replay guard), exchanges
        the code on the registration's pooled transport and checks the token, makes the ``GET /token`` through
        a ``GistClient`` on that transport, puts the workspace in ``token["userinfo"]``, calls ``on_login``
        (which copies ``workspace_id`` into the session), marks the login cookie done and, in Django, cycles the
        session key.
  raw   ``OAuth().register("gist", ...)`` and two hand-written routes as Authlib's documentation shows them, with
        S256 PKCE as ours sends it. The start is ``authorize_redirect`` (Authlib keeps the state and verifier in
        the session); the callback is ``authorize_access_token`` in a try/except OAuthError, then
        ``oauth.gist.get("token", token=token)`` (awaited in Starlette), ``workspace_id`` read from its JSON into
        the session, and a 303. Authlib builds a new HTTP client for each of the two requests. In Flask and
        Django raw Authlib is given Authlib's own httpx client class (its default there is requests), the HTTP
        stack gist_authlib uses, so that the same transport applies and the ratio is our layer's cost.

Every figure is a ratio of setups measured side by side in one run: within a run the setups take turns in rounds
(25 logins each), so that noise on the shared machine lands on all alike; the figures are medians over the runs.
A login is the app's two requests; the browser's visit to Gist in between is not timed in parts 1 and 2.

  1. in process, Gist mocked (one httpx2.MockTransport answering ``POST /oauth/token`` and ``GET /token``, given
     to both registrations in ``client_kwargs``); every app driven through httpx2's ASGITransport or
     WSGITransport. Times per login: "app", the app's own time (perf_counter around each call of the app,
     inside the transport, less the time spent in the mocked Gist's handler); "CPU", the same span in this
     process's CPU time (process_time), which a busy machine's descheduling does not inflate; and "round", the
     whole round as the browser sees it (the transport's own work included). Target: ours <= 1.05x raw, in app
     time; on a busy machine read the CPU ratio (the apps start no thread here, so it is the same work).
  2. a real token endpoint: the sandbox (ServerThread, in this process) on loopback, over HTTP and over TLS
     (a CA made at start with trustme). "https" gives each app a CA bundle file (certifi's plus the CA), which
     every new HTTP client loads into a new TLS context as ``verify=True`` does against production Gist;
     "https-ctx" gives a ready SSLContext, raw Authlib's best case. Target: ours <= 0.20x raw, and ours <= 2 x
     (ours mocked + one bare pooled httpx2 round trip to the same token endpoint, measured in the same rounds).
  3. load: bursts of concurrent logins by separate browsers (cookie jars), against an app served by uvicorn
     (Starlette) or the package's threaded WSGI server (Flask, Django) beside its sandbox, in a child process on
     loopback; each login is the browser's three requests. Failures (target 0), p50, p99, logins per second.
  4. memory: the resident set size of a child process after N1 and N2 logins in process (Gist mocked). Target:
     ours after N2 within 10% of after N1.
  5. ``import gist_authlib`` against ``import authlib.integrations.httpx_client``, timed inside fresh
     interpreters from cached bytecode, alternating, median of several. Target <= 1.2x.

    python bench/login.py [--quick] [--parts 1,2,3,4,5] [--runs 5] [--logins 200] [--real-logins 50]
                          [--load 200] [--memory 1000,10000] [--imports 15]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import secrets
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import types
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx2

import gist_authlib
from gist_authlib import GistProvider
from gist_authlib.sandbox import SandboxClient, ServerThread, WSGIServerThread, create_app

FRAMEWORKS = ("starlette", "flask", "django")
SETUPS = ("raw", "ours")
LABELS = {"raw": "raw Authlib", "ours": "gist_authlib"}
CLIENT_ID = "bench-app"
CLIENT_SECRET = "bench-secret-" + "s" * 24
SESSION_SECRET = "bench-session-secret-" + "k" * 24
MOCK_ORIGIN = "https://gist.bench.example"
BASE = "http://127.0.0.1:8000"  # the in-process apps' origin, as their transport presents it
ROUND = 25  # logins per setup before the next setup's turn
# A CA file given as verify=<path> (part 2's "https") still works; httpx2 only warns that it is deprecated.
warnings.filterwarnings("ignore", message="`verify=<str>` is deprecated", category=DeprecationWarning)
PACKAGE_ROOT = str(Path(gist_authlib.__file__).resolve().parent.parent)
MIB = 1024 * 1024


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def query(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}


class Clock:
    """The in-process apps' own time so far, in seconds of the wall clock and of this process's CPU: their time
    less the mocked Gist's. Requests run one at a time, so one pair of counters serves every app."""

    wall = 0.0
    cpu = 0.0

    @classmethod
    def now(cls) -> tuple[float, float]:
        return cls.wall, cls.cpu


@contextmanager
def clocked(sign: int) -> Iterator[None]:
    """Add (``sign`` 1) or take away (-1) the time spent in the block to or from the Clock."""
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        yield
    finally:
        Clock.wall += sign * (time.perf_counter() - wall)
        Clock.cpu += sign * (time.process_time() - cpu)


# -- Gist, mocked --------------------------------------------------------------------------------------------


def mocked_gist_api(request: httpx2.Request) -> httpx2.Response:
    """Gist's token endpoint and token info as a function: an access token for any code, and a workspace for
    any bearer token."""
    with clocked(-1):
        if request.url.path == "/oauth/token" and parse_qs(request.content.decode()).get("code"):
            return httpx2.Response(200, json={"access_token": "gat_" + secrets.token_urlsafe(24)})
        if request.url.path == "/token" and request.headers.get("authorization", "").startswith("Bearer gat_"):
            return httpx2.Response(200, json={"workspace_id": "ws_bench", "workspace_name": "Bench"})
        return httpx2.Response(400, json={"error": "invalid_request"})


def mocked_consent(authorization_url: str) -> str:
    """Where Gist would send the browser after Approve: the callback with a fresh code and the state."""
    asked = query(authorization_url)
    return f"{asked['redirect_uri']}?{urlencode({'code': secrets.token_urlsafe(16), 'state': asked['state']})}"


# -- the apps: ours and raw Authlib in each framework -------------------------------------------------------


@dataclass
class App:
    """An app under test: the app object, the path that starts a login, its callback URL, and (Django) its URLs."""

    app: Any
    start: str
    callback: str
    django_patterns: list[Any] | None = None


def raw_kwargs(origin: str, client_kwargs: dict[str, Any]) -> dict[str, Any]:
    """A raw Authlib registration of Gist, as a user without gist_authlib writes it."""
    return {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "authorize_url": f"{origin}/oauth/authorize",
        "access_token_url": f"{origin}/oauth/token",
        "api_base_url": f"{origin}/",
        "client_kwargs": {
            "scope": "read_teammates",
            "token_endpoint_auth_method": "client_secret_post",
            "code_challenge_method": "S256",
            **client_kwargs,
        },
    }


def register_ours(oauth: Any, origin: str, client_kwargs: dict[str, Any]) -> Any:
    return gist_authlib.register(
        oauth,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        provider=GistProvider.at(origin),
        client_kwargs=dict(client_kwargs),
    )


def starlette_app(setup: str, origin: str, client_kwargs: dict[str, Any], base: str = BASE) -> App:
    from authlib.integrations.starlette_client import OAuth, OAuthError
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.middleware.sessions import SessionMiddleware
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse, RedirectResponse, Response
    from starlette.routing import Route

    from gist_authlib.starlette import gist_routes

    middleware = [Middleware(SessionMiddleware, secret_key=SESSION_SECRET)]
    oauth = OAuth()
    if setup == "ours":
        gist = register_ours(oauth, origin, client_kwargs)

        async def on_login(request: Request, token: dict[str, Any]) -> None:
            request.session["workspace_id"] = token["userinfo"]["workspace_id"]

        app = Starlette(routes=gist_routes(gist, on_login=on_login), middleware=middleware)
        return App(app, "/auth/gist", f"{base}/oauth/gist/callback")

    oauth.register("gist", **raw_kwargs(origin, client_kwargs))

    async def login(request: Request) -> Response:
        response: Response = await oauth.gist.authorize_redirect(request, request.url_for("auth"))
        return response

    async def auth(request: Request) -> Response:
        try:
            token = await oauth.gist.authorize_access_token(request)
        except OAuthError as error:
            return PlainTextResponse(f"Login failed: {error.error}", status_code=400)
        info = await oauth.gist.get("token", token=token)
        request.session["workspace_id"] = info.json()["workspace_id"]
        return RedirectResponse("/", status_code=303)

    app = Starlette(routes=[Route("/login", login), Route("/auth", auth, name="auth")], middleware=middleware)
    return App(app, "/login", f"{base}/auth")


def flask_app(setup: str, origin: str, client_kwargs: dict[str, Any], base: str = BASE) -> App:
    from authlib.integrations.flask_client import FlaskOAuth2App, OAuth, OAuthError
    from authlib.integrations.httpx_client import OAuth2Client
    from flask import Flask, redirect, session, url_for

    from gist_authlib.flask import gist_blueprint

    app = Flask(f"bench_{setup}")
    app.secret_key = SESSION_SECRET
    oauth = OAuth(app)
    if setup == "ours":
        gist = register_ours(oauth, origin, client_kwargs)

        def on_login(token: dict[str, Any]) -> None:
            session["workspace_id"] = token["userinfo"]["workspace_id"]

        app.register_blueprint(gist_blueprint(gist, on_login=on_login))
        return App(app, "/auth/gist", f"{base}/oauth/gist/callback")

    class HttpxFlaskApp(FlaskOAuth2App):
        client_cls = OAuth2Client

    oauth.register("gist", client_cls=HttpxFlaskApp, **raw_kwargs(origin, client_kwargs))

    @app.get("/login")
    def login() -> Any:
        return oauth.gist.authorize_redirect(url_for("auth", _external=True))

    @app.get("/auth")
    def auth() -> Any:
        try:
            token = oauth.gist.authorize_access_token()
        except OAuthError as error:
            return f"Login failed: {error.error}", 400
        session["workspace_id"] = oauth.gist.get("token", token=token).json()["workspace_id"]
        return redirect("/", 303)

    return App(app, "/login", f"{base}/auth")


def configure_django() -> None:
    """Django's settings for this process: signed-cookie sessions, no database, one URLconf (use_django_urls)."""
    import django
    from django.conf import settings

    if settings.configured:
        return
    sys.modules["bench_login_urls"] = types.ModuleType("bench_login_urls")
    sys.modules["bench_login_urls"].urlpatterns = []
    settings.configure(
        SECRET_KEY=SESSION_SECRET,
        ROOT_URLCONF="bench_login_urls",
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


def use_django_urls(apps: Iterable[App]) -> None:
    """Serve these Django apps' URL patterns (one URLconf for the process)."""
    from django.urls import clear_url_caches

    sys.modules["bench_login_urls"].urlpatterns = [p for app in apps for p in app.django_patterns or []]
    clear_url_caches()


def django_app(setup: str, origin: str, client_kwargs: dict[str, Any], base: str = BASE) -> App:
    configure_django()
    from authlib.integrations.django_client import DjangoOAuth2App, OAuth, OAuthError
    from authlib.integrations.httpx_client import OAuth2Client
    from django.core.handlers.wsgi import WSGIHandler
    from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
    from django.urls import path, reverse

    from gist_authlib.django import gist_urls

    oauth = OAuth()
    if setup == "ours":
        gist = register_ours(oauth, origin, client_kwargs)

        def on_login(request: HttpRequest, token: dict[str, Any]) -> None:
            request.session["workspace_id"] = token["userinfo"]["workspace_id"]

        return App(WSGIHandler(), "/auth/gist", f"{base}/oauth/gist/callback", gist_urls(gist, on_login=on_login))

    class HttpxDjangoApp(DjangoOAuth2App):
        client_cls = OAuth2Client

    oauth.register("gist", client_cls=HttpxDjangoApp, **raw_kwargs(origin, client_kwargs))

    def login(request: HttpRequest) -> Any:
        return oauth.gist.authorize_redirect(request, request.build_absolute_uri(reverse("raw_auth")))

    def auth(request: HttpRequest) -> HttpResponse:
        try:
            token = oauth.gist.authorize_access_token(request)
        except OAuthError as error:
            return HttpResponseBadRequest(f"Login failed: {error.error}")
        request.session["workspace_id"] = oauth.gist.get("token", token=token).json()["workspace_id"]
        return HttpResponse(status=303, headers={"Location": "/"})

    patterns = [path("raw/login", login), path("raw/auth", auth, name="raw_auth")]
    return App(WSGIHandler(), "/raw/login", f"{base}/raw/auth", patterns)


BUILDERS: dict[str, Callable[..., App]] = {"starlette": starlette_app, "flask": flask_app, "django": django_app}


# -- driving an app in process ------------------------------------------------------------------------------

Consent = Callable[[str], str]  # the authorization URL -> the callback URL Gist sends the browser to
Sample = tuple[float, float, float]  # one login: the whole round, the app's own wall time and CPU time, in seconds


class LoginFailed(RuntimeError):
    pass


def expect(status: int, wanted: tuple[int, ...], step: str, body: str = "") -> None:
    if status not in wanted:
        raise LoginFailed(f"{step} answered {status}: {body[:300]}")


def timed_asgi(app: Any) -> Any:
    """``app``, its calls counted on the Clock."""

    async def timed(scope: Any, receive: Any, send: Any) -> None:
        with clocked(1):
            await app(scope, receive, send)

    return timed


def timed_wsgi(app: Any) -> Any:
    """``app``, its calls (its body read and closed included: Django finishes a request on close) timed."""

    def timed(environ: Any, start_response: Any) -> list[bytes]:
        with clocked(1):
            result = app(environ, start_response)
            try:
                return [b"".join(result)]
            finally:
                if hasattr(result, "close"):
                    result.close()

    return timed


class Driver:
    """Runs timed logins through one app in process, through httpx2's ASGI or WSGI transport (not Django's test
    Client: each of its requests registers signal receivers that are never released, which part 4 would count
    against the app). ``logins(n)`` gives n samples; a new visitor (no cookies) each time."""

    def __init__(self, framework: str, app: App, consent: Consent, loop: asyncio.AbstractEventLoop) -> None:
        self.app, self.consent, self.loop = app, consent, loop
        self.client: httpx2.AsyncClient | httpx2.Client
        if framework == "starlette":
            self.client = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=timed_asgi(app.app)), base_url=BASE)
        else:
            self.client = httpx2.Client(transport=httpx2.WSGITransport(app=timed_wsgi(app.app)), base_url=BASE)

    def logins(self, n: int) -> list[Sample]:
        return self.loop.run_until_complete(self._logins(n))

    async def _get(self, url: str) -> httpx2.Response:
        if isinstance(self.client, httpx2.AsyncClient):
            return await self.client.get(url)
        return self.client.get(url)

    async def _logins(self, n: int) -> list[Sample]:
        samples = []
        for _ in range(n):
            self.client.cookies.clear()
            (wall, cpu), started = Clock.now(), time.perf_counter()
            first = await self._get(self.app.start)
            whole = time.perf_counter() - started
            expect(first.status_code, (302,), "the start", first.text)
            callback = self.consent(first.headers["location"])
            started = time.perf_counter()
            done = await self._get(callback)
            whole += time.perf_counter() - started
            expect(done.status_code, (303,), "the callback", done.text)
            samples.append((whole, Clock.wall - wall, Clock.cpu - cpu))
        return samples

    def close(self) -> None:
        if isinstance(self.client, httpx2.AsyncClient):
            self.loop.run_until_complete(self.client.aclose())
        else:
            self.client.close()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class Figure:
    """One setup's medians over the runs of its per-run p50 and p99, in seconds: of the whole round (``p50``,
    ``p99``), of the app's own wall time (``app50``, ``app99``) and of its CPU time (``cpu50``, ``cpu99``)."""

    p50: float
    p99: float
    app50: float
    app99: float
    cpu50: float
    cpu99: float


def interleaved(setups: dict[str, Callable[[int], list[Sample]]], n: int, runs: int) -> dict[str, Figure]:
    """Each setup's percentiles per run (setups taking turns in rounds), then their medians over the runs."""
    for logins in setups.values():  # warm every setup (imports, pools, first-request work) before timing
        logins(min(10, n))
    rounds = max(1, n // ROUND)
    per_run: dict[str, list[list[float]]] = {name: [] for name in setups}
    for _ in range(runs):
        samples: dict[str, list[Sample]] = {name: [] for name in setups}
        for _ in range(rounds):
            for name, logins in setups.items():
                samples[name] += logins(max(1, n // rounds))
        for name, taken in samples.items():
            columns = [list(column) for column in zip(*taken, strict=True)]  # whole, app wall, app CPU
            per_run[name].append([percentile(column, q) for column in columns for q in (0.5, 0.99)])
    return {
        name: Figure(*(statistics.median(column) for column in zip(*rows, strict=True)))
        for name, rows in per_run.items()
    }


# -- part 1: in process, Gist mocked ------------------------------------------------------------------------


def part1(args: argparse.Namespace, loop: asyncio.AbstractEventLoop, out: Callable[[str], None]) -> dict[str, float]:
    out("")
    out(f"1. in process, Gist mocked, equal work: ms per login (start + callback), {args.logins} logins a line")
    out(
        f"{'framework':<10} {'setup':<14} {'app p50':>8} {'app p99':>8} {'ours/raw':>9} {'CPU p50':>8} {'ours/raw':>9} "
        f"{'round p50':>10} {'round p99':>10} {'ours/raw':>9}  target: ours/raw <= 1.05x"
    )
    mock = {"transport": httpx2.MockTransport(mocked_gist_api)}
    ours_p50: dict[str, float] = {}
    for framework in FRAMEWORKS:
        apps = {setup: BUILDERS[framework](setup, MOCK_ORIGIN, mock) for setup in SETUPS}
        if framework == "django":
            use_django_urls(apps.values())
        drivers = {setup: Driver(framework, apps[setup], mocked_consent, loop) for setup in SETUPS}
        figures = interleaved({s: d.logins for s, d in drivers.items()}, args.logins, args.runs)
        for driver in drivers.values():
            driver.close()
        raw, ours_p50[framework] = figures["raw"], figures["ours"].p50
        for setup in SETUPS:
            f = figures[setup]
            app_ratio, cpu_ratio = f.app50 / raw.app50, f.cpu50 / raw.cpu50
            tail = f"  app {verdict(app_ratio <= 1.05)}, CPU {verdict(cpu_ratio <= 1.05)}" if setup == "ours" else ""
            out(
                f"{framework:<10} {LABELS[setup]:<14} {f.app50 * 1000:8.3f} {f.app99 * 1000:8.3f} {app_ratio:8.2f}x "
                f"{f.cpu50 * 1000:8.3f} {cpu_ratio:8.2f}x "
                f"{f.p50 * 1000:10.3f} {f.p99 * 1000:10.3f} {f.p50 / raw.p50:8.2f}x{tail}"
            )
    return ours_p50


# -- part 2: the sandbox on loopback, HTTP and TLS ----------------------------------------------------------


@dataclass
class Tls:
    """A CA and a certificate for 127.0.0.1, on disk for uvicorn; a client context trusting the CA, and a CA
    bundle file (certifi's, with the CA added) for clients that build their own context from it."""

    certfile: str
    keyfile: str
    context: ssl.SSLContext
    bundle: str


def make_tls() -> Tls:
    import certifi
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    workdir = Path(tempfile.mkdtemp(prefix="gist-bench-tls-"))
    cert.private_key_and_cert_chain_pem.write_to_path(str(workdir / "cert.pem"))
    cert.private_key_pem.write_to_path(str(workdir / "key.pem"))
    context = ssl.create_default_context()
    ca.configure_trust(context)
    bundle = workdir / "bundle.pem"
    bundle.write_bytes(Path(certifi.where()).read_bytes() + b"\n" + ca.cert_pem.bytes())
    return Tls(str(workdir / "cert.pem"), str(workdir / "key.pem"), context, str(bundle))


def bare_round_trips(hop: httpx2.Client, bare: httpx2.Client, origin: str, redirect_uri: str) -> Callable[..., Any]:
    """n bare pooled POSTs to the token endpoint, each exchanging a code got (untimed) just before."""

    def round_trips(n: int) -> list[Sample]:
        samples = []
        for _ in range(n):
            asked = {"response_type": "code", "client_id": CLIENT_ID, "redirect_uri": redirect_uri}
            approved = hop.get(f"{origin}/oauth/authorize", params={**asked, "scope": "read_teammates"})
            form = {
                "grant_type": "authorization_code",
                "code": query(approved.headers["location"])["code"],
                "redirect_uri": redirect_uri,
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
            }
            started = time.perf_counter()
            answer = bare.post(f"{origin}/oauth/token", data=form)
            elapsed = time.perf_counter() - started
            expect(answer.status_code, (200,), "the bare token request", answer.text)
            samples.append((elapsed, elapsed, elapsed))
        return samples

    return round_trips


def measure_real(
    args: argparse.Namespace, loop: asyncio.AbstractEventLoop, tls: Tls | None, app_verify: ssl.SSLContext | str | None
) -> dict[str, Figure]:
    """Every framework's ours and raw, and the bare round trip, against the sandbox over HTTP (or TLS);
    ``app_verify`` is what both apps are given as ``client_kwargs["verify"]`` (None: nothing)."""
    server = ServerThread(**({"ssl_certfile": tls.certfile, "ssl_keyfile": tls.keyfile} if tls else {}))
    sandbox = create_app(auto_approve=True)
    server.start(sandbox)
    verify: ssl.SSLContext | bool = tls.context if tls is not None else True
    hop = httpx2.Client(verify=verify, trust_env=False)  # the browser's untimed visit to Gist
    bare = httpx2.Client(verify=verify, trust_env=False)

    def consent(authorization_url: str) -> str:
        answer = hop.get(authorization_url)
        expect(answer.status_code, (302,), "the sandbox's authorize", answer.text)
        return str(answer.headers["location"])

    try:
        client_kwargs: dict[str, Any] = {"verify": app_verify} if app_verify is not None else {}
        apps = {(fw, setup): BUILDERS[fw](setup, server.url, client_kwargs) for fw in FRAMEWORKS for setup in SETUPS}
        use_django_urls(apps.values())
        callbacks = tuple(app.callback for app in apps.values())
        sandbox.add_client(SandboxClient(CLIENT_ID, CLIENT_SECRET, callbacks))
        drivers = {key: Driver(key[0], app, consent, loop) for key, app in apps.items()}
        setups: dict[str, Callable[[int], list[Sample]]] = {f"{fw}/{s}": d.logins for (fw, s), d in drivers.items()}
        setups["bare"] = bare_round_trips(hop, bare, server.url, callbacks[0])
        figures = interleaved(setups, args.real_logins, args.runs)
        for driver in drivers.values():
            driver.close()
    finally:
        hop.close()
        bare.close()
        server.stop()
    return figures


def part2(
    args: argparse.Namespace, loop: asyncio.AbstractEventLoop, mocked: dict[str, float], out: Callable[[str], None]
) -> None:
    out("")
    out(f"2. a real token endpoint (the sandbox on loopback): ms per login, {args.real_logins} logins a line")
    out(
        f"{'transport':<10} {'framework':<10} {'setup':<14} {'p50 ms':>8} {'p99 ms':>8} {'ours/raw':>9}  "
        "target <= 0.20x; ours <= 2 x (mocked + round trip)"
    )
    tls = make_tls()
    transports: dict[str, tuple[Tls | None, ssl.SSLContext | str | None]] = {
        "http": (None, None),
        "https": (tls, tls.bundle),
        "https-ctx": (tls, tls.context),
    }
    for transport, (server_tls, app_verify) in transports.items():
        figures = measure_real(args, loop, server_tls, app_verify)
        trip = figures["bare"]
        for framework in FRAMEWORKS:
            raw, ours = figures[f"{framework}/raw"], figures[f"{framework}/ours"]
            ratio, bound = ours.p50 / raw.p50, 2 * (mocked[framework] + trip.p50)
            head = f"{transport:<10} {framework:<10}"
            out(f"{head} {LABELS['raw']:<14} {raw.p50 * 1000:8.3f} {raw.p99 * 1000:8.3f} {1:8.2f}x")
            out(
                f"{head} {LABELS['ours']:<14} {ours.p50 * 1000:8.3f} {ours.p99 * 1000:8.3f} {ratio:8.2f}x  "
                f"{verdict(ratio <= 0.20)}; 2 x ({mocked[framework] * 1000:.3f} + {trip.p50 * 1000:.3f}) = "
                f"{bound * 1000:.3f} ms: {verdict(ours.p50 <= bound)}"
            )
        out(f"{transport:<10} {'-':<10} {'bare round trip':<14} {trip.p50 * 1000:8.3f} {trip.p99 * 1000:8.3f}")


# -- part 3: load through real servers ----------------------------------------------------------------------


def child_env() -> dict[str, str]:
    """This process's environment, with the gist_authlib imported here first on the children's path."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [PACKAGE_ROOT, os.environ.get("PYTHONPATH")]))}


@contextmanager
def served_in_child() -> Iterator[dict[tuple[str, str], tuple[str, str]]]:
    """Every (framework, setup) app beside a sandbox of its own, served by one child process; yields
    {(framework, setup): (app URL, start path)}. Only one is under load at a time; the others sit idle. The
    child's log goes to a file: under load, raw Authlib's failures log a traceback each."""
    with tempfile.TemporaryFile(mode="w+") as log:
        command = [sys.executable, __file__, "--serve"]
        child = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, env=child_env(), text=True
        )
        assert child.stdin is not None and child.stdout is not None
        try:
            line = child.stdout.readline()
            if not line:
                log.seek(0)
                raise RuntimeError(f"The servers of part 3 did not start: {log.read()[-2000:]}")
            served = json.loads(line)
            yield {(fw, setup): tuple(served[f"{fw}/{setup}"]) for fw in FRAMEWORKS for setup in SETUPS}
        finally:
            child.stdin.close()  # the child serves until its stdin closes
            try:
                child.wait(30)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait(30)
            child.stdout.close()


def serve() -> None:
    """The child of part 3: serve every app beside its sandbox, print their URLs, stop when stdin closes."""
    servers: list[Any] = []
    served: dict[str, tuple[str, str]] = {}
    django_apps = []
    for framework in FRAMEWORKS:
        for setup in SETUPS:
            sandbox = create_app(auto_approve=True)
            sandbox_server = ServerThread()
            app_server: Any = ServerThread() if framework == "starlette" else WSGIServerThread()
            app = BUILDERS[framework](setup, sandbox_server.url, {}, base=app_server.url)
            if framework == "django":
                django_apps.append(app)
            sandbox.add_client(SandboxClient(CLIENT_ID, CLIENT_SECRET, (app.callback,)))
            servers += [sandbox_server.start(sandbox), app_server.start(app.app)]
            served[f"{framework}/{setup}"] = (app_server.url, app.start)
    use_django_urls(django_apps)
    print(json.dumps(served), flush=True)
    sys.stdin.read()
    for server in servers:
        server.stop()


async def burst(app_url: str, start: str, n: int) -> tuple[list[float], int, float]:
    """n logins at once, each by its own browser; returns (latencies of the good ones, failures, seconds)."""
    limits = httpx2.Limits(max_connections=4 * n, max_keepalive_connections=4 * n)
    transport = httpx2.AsyncHTTPTransport(limits=limits)

    async def one() -> float | None:
        # A browser of its own (cookie jar), over the shared pool; the pool is closed once, below.
        browser = httpx2.AsyncClient(transport=transport, timeout=60, trust_env=False)
        started = time.perf_counter()
        try:
            first = await browser.get(app_url + start)
            expect(first.status_code, (302,), "the start", first.text)
            gist = await browser.get(first.headers["location"])
            expect(gist.status_code, (302,), "the sandbox's authorize", gist.text)
            done = await browser.get(gist.headers["location"])
            expect(done.status_code, (303,), "the callback", done.text)
        except (httpx2.HTTPError, LoginFailed):
            return None
        return time.perf_counter() - started

    started = time.perf_counter()
    results = await asyncio.gather(*(one() for _ in range(n)))
    elapsed = time.perf_counter() - started
    await transport.aclose()
    good = [r for r in results if r is not None]
    return good, n - len(good), elapsed


def part3(args: argparse.Namespace, out: Callable[[str], None]) -> None:
    out("")
    out(f"3. load: {args.load} concurrent logins a burst (start, Gist, callback), median of {args.runs} bursts")
    out(
        f"{'framework':<10} {'server':<8} {'setup':<14} {'failures':>8} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'logins/s':>9} {'ours/raw':>9}  target: 0 failures"
    )
    with served_in_child() as served:
        for target in served.values():  # warm every server (first requests, imports, pools)
            asyncio.run(burst(*target, args.warm))
        failures = dict.fromkeys(served, 0)
        per_run: dict[tuple[str, str], list[tuple[float, float, float]]] = {key: [] for key in served}
        for _ in range(args.runs):
            for key, target in served.items():  # one burst at a time: the machine serves one setup alone
                good, failed, elapsed = asyncio.run(burst(*target, args.load))
                failures[key] += failed
                if good:
                    per_run[key].append((percentile(good, 0.5), percentile(good, 0.99), len(good) / elapsed))
    nan = float("nan")
    for framework in FRAMEWORKS:
        server = "uvicorn" if framework == "starlette" else "wsgiref"
        medians = {
            s: [statistics.median(column) for column in zip(*per_run[framework, s], strict=True)] or [nan, nan, 0.0]
            for s in SETUPS
        }
        for setup in SETUPS:
            p50, p99, rate = medians[setup]
            raw_rate = medians["raw"][2]
            fails = failures[framework, setup]
            tail = f"  {verdict(fails == 0)}" if setup == "ours" else ""
            out(
                f"{framework:<10} {server:<8} {LABELS[setup]:<14} {fails:>8} {p50 * 1000:8.1f} {p99 * 1000:8.1f} "
                f"{rate:9.1f} {rate / raw_rate if raw_rate else nan:8.2f}x{tail}"
            )


# -- part 4: memory -----------------------------------------------------------------------------------------


def resident_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("No VmRSS in /proc/self/status: the memory part needs Linux.")


def memory_child(setups: list[tuple[str, str]], checkpoints: list[int]) -> None:
    """The child of part 4: for each (framework, setup) in turn, logins in process (Gist mocked), RSS printed
    at each checkpoint. A full run gives each pair a child of its own; a quick run, one child for all."""
    for framework, setup in setups:
        loop = asyncio.new_event_loop()
        app = BUILDERS[framework](setup, MOCK_ORIGIN, {"transport": httpx2.MockTransport(mocked_gist_api)})
        if framework == "django":
            use_django_urls([app])
        driver = Driver(framework, app, mocked_consent, loop)
        done = 0
        for target in checkpoints:
            while done < target:
                done += len(driver.logins(min(ROUND, target - done)))
            gc.collect()
            print(json.dumps({"framework": framework, "setup": setup, "rss": resident_bytes()}), flush=True)
        driver.close()
        loop.close()


def start_memory_children(args: argparse.Namespace) -> list[subprocess.Popen[str]]:
    """Part 4's children, all started at once (they measure memory, not time): one per (framework, setup), so
    that no setup's memory is another's; in a quick run, whose figures mean nothing, one for all."""
    pairs = [f"{framework}/{setup}" for framework in FRAMEWORKS for setup in SETUPS]
    checkpoints = ",".join(map(str, args.memory))
    return [
        subprocess.Popen(
            [sys.executable, __file__, "--memory-child", group, checkpoints],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=child_env(),
        )
        for group in ([",".join(pairs)] if args.quick else pairs)
    ]


def part4(args: argparse.Namespace, children: list[subprocess.Popen[str]], out: Callable[[str], None]) -> None:
    first, last = args.memory
    out("")
    out(f"4. memory: resident set size of a process after {first} and {last} logins (Gist mocked)")
    out(f"{'framework':<10} {'setup':<14} {f'MiB @{first}':>11} {f'MiB @{last}':>11} {'ratio':>7}  target <= 1.10x")
    sizes: dict[tuple[str, str], list[int]] = {}
    for child in children:
        stdout, stderr = child.communicate(timeout=3600)
        if child.returncode != 0:
            raise RuntimeError(f"A memory child failed: {stderr[-2000:]}")
        for seen in (json.loads(line) for line in stdout.splitlines() if line.startswith("{")):
            sizes.setdefault((seen["framework"], seen["setup"]), []).append(seen["rss"])
    for framework in FRAMEWORKS:
        for setup in SETUPS:
            at_first, at_last = sizes[framework, setup]
            ratio = at_last / at_first
            tail = f"  {verdict(ratio <= 1.10)}" if setup == "ours" else ""
            out(f"{framework:<10} {LABELS[setup]:<14} {at_first / MIB:11.2f} {at_last / MIB:11.2f} {ratio:6.3f}x{tail}")


# -- part 5: import time ------------------------------------------------------------------------------------

IMPORT_PROBE = "import time; s = time.perf_counter(); import {module}; print(time.perf_counter() - s)"


def part5(args: argparse.Namespace, out: Callable[[str], None]) -> None:
    modules = {"raw": "authlib.integrations.httpx_client", "ours": "gist_authlib"}
    # Both sides import from cached bytecode, as from an installed wheel (pip compiles it), which a checkout
    # lacks: the children keep their bytecode in a folder of their own, written by one untimed import of each.
    with tempfile.TemporaryDirectory(prefix="gist-bench-pycache-") as cache:
        env = {k: v for k, v in child_env().items() if k != "PYTHONDONTWRITEBYTECODE"} | {"PYTHONPYCACHEPREFIX": cache}
        for module in modules.values():
            subprocess.run([sys.executable, "-c", f"import {module}"], env=env, timeout=120, check=True)
        times: dict[str, list[float]] = {setup: [] for setup in SETUPS}
        for _ in range(args.imports):
            for setup in SETUPS:  # alternating, each in a fresh interpreter
                probe = IMPORT_PROBE.format(module=modules[setup])
                result = subprocess.run(
                    [sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120, check=True
                )
                times[setup].append(float(result.stdout.strip()))
    out("")
    out(f"5. import time in a fresh interpreter, from cached bytecode, median of {args.imports}")
    medians = {setup: statistics.median(values) for setup, values in times.items()}
    ratio = medians["ours"] / medians["raw"]
    out(f"{'import':<40} {'ms':>8} {'ratio':>8}  target <= 1.2x")
    out(f"{'import ' + modules['raw']:<40} {medians['raw'] * 1000:8.1f} {1:7.2f}x")
    out(f"{'import ' + modules['ours']:<40} {medians['ours'] * 1000:8.1f} {ratio:7.2f}x  {verdict(ratio <= 1.2)}")


# -- main ---------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smoke run: tiny sizes, one run (a few seconds)")
    parser.add_argument("--parts", default="1,2,3,4,5", help="which parts to run (default 1,2,3,4,5)")
    parser.add_argument("--runs", type=int, default=5, help="runs; figures are medians over them (default 5)")
    parser.add_argument("--logins", type=int, default=200, help="logins per setup and run in part 1 (default 200)")
    parser.add_argument("--real-logins", type=int, default=50, help="the same in part 2 (default 50)")
    parser.add_argument("--load", type=int, default=200, help="concurrent logins a burst in part 3 (default 200)")
    parser.add_argument("--memory", default="1000,10000", help="part 4's two checkpoints (default 1000,10000)")
    parser.add_argument("--imports", type=int, default=15, help="fresh interpreters per import (default 15)")
    parser.add_argument("--warm", type=int, default=20, help="untimed logins per server before part 3 (default 20)")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--memory-child", nargs=2, metavar=("FRAMEWORK/SETUP,...", "N1,N2"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve()
        return
    if args.memory_child:
        pairs, checkpoints = args.memory_child
        setups = [(pair.split("/")[0], pair.split("/")[1]) for pair in pairs.split(",")]
        memory_child(setups, [int(n) for n in checkpoints.split(",")])
        return
    if args.quick:
        args.runs, args.logins, args.real_logins, args.load, args.imports, args.warm = 1, 4, 1, 4, 1, 1
        args.memory = "5,10"
    args.memory = [int(n) for n in str(args.memory).split(",")]
    if len(args.memory) != 2 or not 0 < args.memory[0] < args.memory[1]:
        parser.error("--memory takes two checkpoints, N1,N2 with 0 < N1 < N2")
    parts = {int(p) for p in args.parts.split(",")}

    import authlib

    out = print
    out(
        f"gist_authlib {gist_authlib.__version__} ({PACKAGE_ROOT}), Authlib {authlib.__version__}, "
        f"Python {sys.version.split()[0]}: medians of {args.runs} runs"
    )
    # A quick run starts part 4's children first, to start up beside the other parts (its figures mean nothing);
    # a full run starts them when their turn comes, so that they slow no timed part down.
    early = start_memory_children(args) if args.quick and 4 in parts else None
    loop = asyncio.new_event_loop()
    mocked: dict[str, float] = {}
    if parts & {1, 2}:
        mocked = part1(args, loop, out)
    if 2 in parts:
        part2(args, loop, mocked, out)
    loop.close()
    if 3 in parts:
        part3(args, out)
    if 4 in parts:
        part4(args, early or start_memory_children(args), out)
    if 5 in parts:
        part5(args, out)


if __name__ == "__main__":
    main()

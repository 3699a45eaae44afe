"""Hostile answers from Gist and forced edges of the login, against real apps in every framework: odd token and
token-information answers (nesting, non-ASCII tokens, bad encodings, compression bombs, expiries that are no
numbers) get the error page, never a 500; who logged in is the library's own record; the ready-made routes send
the registration's authorize parameters; logins kept in the session keep within their budget; a hand-written
login behind a TLS proxy finds its ``__Host-`` cookie. Each test's docstring names the attack it holds off.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable, Iterator
from typing import Any

import httpx2
import pytest
from authlib.integrations.base_client import OAuthError
from support.stacks import Stack
from support.web import query_of

import gist_authlib
from gist_authlib import GistProvider
from gist_authlib.sandbox import GistSandbox, SandboxClient, ServerThread, create_app


class HostileGist(httpx2.BaseTransport, httpx2.AsyncBaseTransport):
    """The app's own transport to Gist: each request goes on to the sandbox on loopback, except those of a path
    given a canned answer (the token endpoint ``/oauth/token``, the token information ``/token``), answered once
    each, as a hostile or broken Gist would."""

    def __init__(self) -> None:
        self.sync, self.async_ = httpx2.HTTPTransport(), httpx2.AsyncHTTPTransport()
        self.canned: dict[str, list[Callable[[], httpx2.Response]]] = {}
        self.answered: list[str] = []

    def answer(self, path: str, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        """Answer the next request for ``path`` with ``status``, ``headers`` and the raw ``body``."""
        headers = {"content-type": "application/json", **(headers or {})}
        # Streamed, as a server's answer arrives (content= would be read, and inflated, at once).
        stream = httpx2.ByteStream(body)
        self.canned.setdefault(path, []).append(lambda: httpx2.Response(status, headers=headers, stream=stream))

    def _canned(self, request: httpx2.Request) -> httpx2.Response | None:
        queue = self.canned.get(request.url.path)
        if not queue:
            return None
        self.answered.append(request.url.path)
        return queue.pop(0)()

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        return self._canned(request) or self.sync.handle_request(request)

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        return self._canned(request) or await self.async_.handle_async_request(request)


@pytest.fixture
def hostile(make_stack: Callable[..., Stack], framework: str) -> Iterator[tuple[Stack, HostileGist]]:
    """A stack in ``framework`` on loopback whose app reaches Gist through :class:`HostileGist`."""
    gist = HostileGist()
    stack = make_stack(framework, register_kwargs={"client_kwargs": {"transport": gist}})
    yield stack, gist


def _login_against(stack: Stack) -> httpx2.Response:
    with stack.browser() as browser:
        return browser.get(stack.authorize(browser, stack.start_login(browser)))


# --- the token exchange: odd answers must be a typed error page, never a 500 --------------------------------

DEEP = b"[" * 5000 + b"]" * 5000  # 10 KB: well within the 64 KiB cap, and deeper than Python's JSON parser goes


def test_a_token_endpoint_answering_deeply_nested_json_gets_the_error_page_not_a_500(
    hostile: tuple[Stack, HostileGist],
) -> None:
    """Severity: low (availability, an unhandled exception). Attack: the token endpoint (or whoever answers for it:
    a proxy, a captive portal) answers 200 with 10 KB of nested brackets, within the 64 KiB cap. ``json.loads``
    raises ``RecursionError``, which is not a ``ValueError``: ``check_token_answer`` lets it through and the app
    answers 500 with a traceback in its log. Expected: the 502 error page (``invalid_token_response``), as for any
    other answer that is not a token."""
    stack, gist = hostile
    gist.answer("/oauth/token", 200, DEEP)
    answer = _login_against(stack)
    assert gist.answered == ["/oauth/token"]
    assert answer.status_code == 502, (answer.status_code, answer.text[:200])


def test_a_token_information_answer_of_deeply_nested_json_is_no_500(hostile: tuple[Stack, HostileGist]) -> None:
    """Severity: low (availability). Attack: ``GET /token`` (the workspace lookup after the exchange) answers 200 with
    nested brackets within its 16 KiB cap. ``_workspace`` catches ``ValueError`` and ``ShapeError`` only, so the
    ``RecursionError`` reaches the framework: 500. Expected: ``invalid_token_info``, the 502 error page."""
    stack, gist = hostile
    gist.answer("/token", 200, DEEP)
    answer = _login_against(stack)
    assert gist.answered == ["/token"]
    assert answer.status_code == 502, (answer.status_code, answer.text[:200])


def test_a_token_that_is_not_ascii_gets_the_error_page_not_a_500(hostile: tuple[Stack, HostileGist]) -> None:
    """Severity: low (availability). Attack: the token endpoint answers ``{"access_token": "tök€n"}``. The token
    passes ``check_token_response`` (a string, no whitespace), then the workspace lookup builds ``Authorization:
    Bearer tök€n``, which httpx refuses with ``UnicodeEncodeError`` outside the lookup's ``except``: 500. Expected:
    the token is refused as implausible (RFC 6750's b64token is ASCII), the 502 error page, nothing stored."""
    stack, gist = hostile
    gist.answer("/oauth/token", 200, b'{"access_token": "t\\u00f6k\\u20acn", "token_type": "bearer"}')
    answer = _login_against(stack)
    assert answer.status_code == 502, (answer.status_code, answer.text[:200])
    assert stack.tokens == []


def test_a_token_answer_that_fails_to_decompress_gets_the_error_page_not_a_500(
    hostile: tuple[Stack, HostileGist],
) -> None:
    """Severity: low (availability). Attack: the token endpoint answers ``Content-Encoding: gzip`` with a body that
    is not gzip. Reading it raises ``httpx2.DecodingError``, a ``RequestError`` but not a ``TransportError``, which
    ``exchange_steps`` does not catch: 500. Expected: the 502 error page (Gist unreachable or not answering a
    token), as for every other broken answer."""
    stack, gist = hostile
    gist.answer("/oauth/token", 200, b"this is not gzip at all", {"content-encoding": "gzip"})
    answer = _login_against(stack)
    assert gist.answered == ["/oauth/token"]
    assert answer.status_code == 502, (answer.status_code, answer.text[:200])


def test_a_compressed_token_answer_is_capped_before_it_is_inflated(hostile: tuple[Stack, HostileGist]) -> None:
    """Severity: low (memory, from a hostile or intercepted token endpoint). Attack: the token endpoint answers 64 KB
    of gzip (``Content-Encoding: gzip``, a declared length under the 64 KiB cap) that inflates to 64 MiB. httpx
    inflates each network chunk whole before ``read_bounded`` counts it, so one login allocates about 135 MB (a
    normal login about 0.5 MB) before the answer is refused as too large; a few such logins at once exhaust a
    small instance. Expected: the cap bounds what is inflated too (inflate at most the cap plus one byte, e.g.
    by reading raw chunks through a ``zlib.decompressobj`` with ``max_length``, or by refusing a compressed
    answer: the exchange need not ask for one), so the login allocates a few MB at most and gets the 502 page."""
    import tracemalloc

    stack, gist = hostile
    bomb = gzip.compress(b" " * (64 * 1024 * 1024))
    assert len(bomb) < 64 * 1024  # within the cap as sent
    tracemalloc.start()
    try:
        gist.answer("/oauth/token", 200, bomb, {"content-encoding": "gzip"})
        answer = _login_against(stack)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert answer.status_code == 502, answer.text[:200]
    assert peak < 8 * 1024 * 1024, f"one login allocated {peak / 1e6:.0f} MB to refuse a 64 KB answer"


ODD_EXPIRIES = [
    b'{"access_token": "odd-1", "token_type": "bearer", "expires_in": "soon"}',
    b'{"access_token": "odd-2", "token_type": "bearer", "expires_in": 1e400}',
    b'{"access_token": "odd-3", "token_type": "bearer", "expires_at": "tomorrow"}',
]


@pytest.mark.parametrize("body", ODD_EXPIRIES, ids=["expires_in-text", "expires_in-infinite", "expires_at-text"])
def test_a_token_whose_expiry_is_not_a_number_never_reaches_the_app(
    hostile: tuple[Stack, HostileGist], body: bytes
) -> None:
    """Severity: low (availability; the bad token is kept in the store). Attack: the token endpoint answers a token
    whose ``expires_in`` is text or ``1e400`` (which Python's JSON reads as infinity), or whose ``expires_at`` is
    text. ``check_token_response`` looks at ``access_token`` and ``token_type`` only, so the login accepts it,
    stores it and hands it to ``on_login``; the first API call with it (``gist.get("teammates", token=token)``,
    what these apps' ``on_login`` does, as the README shows) makes Authlib's ``OAuth2Token`` run ``int()`` on it:
    ``ValueError`` or ``OverflowError``, a 500, and again on every later call that reads the stored token.
    Expected: RFC 6749 section 5.1 makes ``expires_in`` a number of seconds: a token answer with an expiry that is
    not a finite number is refused as ``invalid_token_response`` (the 502 page, nothing stored), or the expiry is
    dropped so the token works; never a 500."""
    stack, gist = hostile
    gist.answer("/oauth/token", 200, body)
    answer = _login_against(stack)
    assert gist.answered == ["/oauth/token"]
    assert answer.status_code in (200, 502), (answer.status_code, answer.text[:200])


# --- who logged in ------------------------------------------------------------------------------------------


def _userinfo(stack: Stack, token: dict[str, Any]) -> dict[str, Any]:
    gist = stack.apps["gist"]
    if stack.framework in ("starlette", "fastapi"):
        import asyncio

        return dict(asyncio.run(gist.userinfo(token=token)))
    return dict(gist.userinfo(token=token))


def test_userinfo_believes_only_the_sub_it_checked_not_the_claims_written_beside_it(
    make_stack: Callable[..., Stack], framework: str
) -> None:
    """Severity: low (identity spoofing in apps that key on a claim other than ``sub``). Attack: a client of the app
    (a mobile app or a script sending its token to the backend) sends its own genuine token, whose ``userinfo``
    keeps the true ``sub`` but names another workspace in ``workspace_id``, ``workspace_name`` and ``name``.
    ``trusted_userinfo`` checks ``sub`` alone against what this process issued (or the store holds) and then
    returns the whole dict it was given, so ``userinfo(token=...)`` answers the forged ``workspace_id`` and name,
    the very claims its docstring lists as who logged in. Expected: the claims answered are the ones the library
    stored for that token (or Gist's answer), whatever else the token dict carries."""
    stack = make_stack(framework, redirect_after_login=True)
    assert stack.login().status_code == 303
    token = stack.tokens[0]
    genuine = dict(token["userinfo"])
    forged_claims = {"workspace_id": "victim0001", "workspace_name": "Victim Inc", "name": "Victim Inc"}
    forged = {**token, "userinfo": {**genuine, **forged_claims}}
    answered = _userinfo(stack, forged)
    assert answered["sub"] == genuine["sub"]
    assert {key: answered.get(key) for key in forged_claims} == {key: genuine.get(key) for key in forged_claims}


# --- the ready-made routes and Authlib's own methods ask Gist for the same login --------------------------------


def test_the_ready_made_login_route_sends_the_registrations_authorize_params(
    make_stack: Callable[..., Stack], framework: str
) -> None:
    """Severity: low (a regression of this wave; behaviour differs between route styles). Attack: none; a
    configuration is silently ignored. ``register(oauth, authorize_params={"prompt": "consent"})`` is Authlib's own
    way to add parameters to every authorization request, and ``authorize_redirect`` (hand-written routes) sends
    them. Before this wave the ready-made login route called ``authorize_redirect`` and sent them too; now
    ``login_route`` calls ``start_login`` with ``{"next": ...}`` only, so the library's routes drop them. Expected:
    the ready-made login route and ``authorize_redirect`` send the same authorization request."""
    stack = make_stack(framework, wire="memory", register_kwargs={"authorize_params": {"prompt": "consent"}})
    with stack.browser() as browser:
        authorize_url = stack.start_login(browser)
    assert query_of(authorize_url).get("prompt") == "consent", authorize_url


# --- pending logins kept in the session (save_authorize_data): forced starts -----------------------------------

APP = "http://127.0.0.1"
SESSION_CALLBACK = f"{APP}/auth"
PROXIED_CALLBACK = "https://app.test/auth"
BROWSER_COOKIE_LIMIT = 4096  # RFC 6265bis: a cookie whose name and value pass 4,096 bytes is ignored whole


@pytest.fixture(scope="module")
def sandbox() -> Iterator[tuple[GistSandbox, str]]:
    server = ServerThread()
    callbacks = (SESSION_CALLBACK, PROXIED_CALLBACK)
    app = create_app(clients=[SandboxClient("the-id", "the-secret", callbacks)], auto_approve=True)
    server.start(app)
    yield app, server.url
    server.stop()


def _two_step_app(url: str) -> Any:
    """Authlib's two-step login as an app writes it: ``create_authorization_url`` with the page to return to, then
    ``save_authorize_data`` (the pending login kept in Starlette's signed-cookie session)."""
    from authlib.integrations.starlette_client import OAuth
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.middleware.sessions import SessionMiddleware
    from starlette.requests import Request
    from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
    from starlette.routing import Route

    oauth = OAuth()
    gist = gist_authlib.register(oauth, client_id="the-id", client_secret="the-secret", provider=GistProvider.at(url))

    async def login(request: Request) -> Response:
        data = await gist.create_authorization_url(SESSION_CALLBACK, next=request.query_params.get("next"))
        await gist.save_authorize_data(request, redirect_uri=SESSION_CALLBACK, **data)
        return RedirectResponse(data["url"], 302)

    async def auth(request: Request) -> Response:
        try:
            token = await gist.authorize_access_token(request)
        except OAuthError as error:
            return PlainTextResponse(str(getattr(error, "error_code", error.error)), 400)
        return JSONResponse({"sub": token["userinfo"]["sub"], "next": request.state.gist_next})

    return Starlette(
        routes=[Route("/login", login), Route("/auth", auth)],
        middleware=[Middleware(SessionMiddleware, secret_key="test")],
    )


class CookieLimitedBrowser:
    """A browser's cookie jar as far as size goes: a ``Set-Cookie`` whose name and value pass 4,096 bytes is
    ignored, and the cookie it would have replaced is kept (what Chromium and Firefox do)."""

    def __init__(self, client: Any) -> None:
        self.client, self.refused = client, 0

    def get(self, path: str) -> Any:
        before = type(self.client.cookies)(self.client.cookies)
        response = self.client.get(path, follow_redirects=False)
        for header in response.headers.get_list("set-cookie"):
            if len(header.partition(";")[0]) > BROWSER_COOKIE_LIMIT:
                self.refused += 1
                self.client.cookies = before
        return response


def test_forced_two_step_logins_keep_the_session_cookie_within_what_browsers_keep(
    sandbox: tuple[GistSandbox, str],
) -> None:
    """Severity: low (a victim's session and login broken for up to 20 minutes). Attack: an app uses Authlib's
    two-step login (``create_authorization_url(next=...)``, ``save_authorize_data``), which keeps pending logins in
    the app's session rather than in the budgeted login cookie. A page the attacker controls makes the victim's
    browser start logins with 500-character ``next`` paths (top-level navigations in a popup it keeps). Each one
    adds a pending login of about 650 characters to the session: ``save_session`` applies no budget (the login
    cookie's 3,072 characters) and no eviction order, so after a few starts Starlette's signed session cookie passes
    4,096 bytes and browsers drop every ``Set-Cookie`` of it. From then on nothing the app writes to that session
    sticks. An attacker who fills it to just under the limit with nine starts (calibrated on their own browser: the
    sizes do not depend on the victim) makes the victim's own next login fail as ``login_cookie_missing``: its
    pending login never reached the browser. Expected: the session-kept record keeps
    within the same budget and order as the login cookie (``next`` paths trimmed first), so the session cookie
    stays under 4,096 bytes and the victim's login finishes, with its own ``next``."""
    from starlette.testclient import TestClient

    _, url = sandbox
    with TestClient(_two_step_app(url), base_url=APP) as client:
        browser = CookieLimitedBrowser(client)
        # The attacker fills the session to just under what a browser keeps, with at most nine pending logins (a
        # tenth start would push the oldest out): long next paths first, then shorter ones into the room left. The
        # sizes are the same in every browser with an empty session, so the attacker calibrates on their own.
        kept = 0
        for length in [499] * 9 + [400, 300, 200, 150, 100, 70, 50, 35, 25, 15, 10, 5, 2, 1]:
            if kept == 9:
                break
            refused = browser.refused
            assert browser.get("/login?next=/" + "n" * (length - 1)).status_code == 302
            kept += browser.refused == refused
        authorize = browser.get("/login?next=/my/page").headers["location"]
        callback = httpx2.get(authorize, follow_redirects=False, trust_env=False).headers["location"]
        finished = browser.get(callback.removeprefix(APP))
    assert finished.status_code == 200, finished.text[:300]
    assert browser.refused == 0, f"{browser.refused} session cookies were too large for a browser to keep"
    assert finished.status_code == 200 and finished.json()["next"] == "/my/page"


# --- hand-written routes behind a TLS-terminating proxy ---------------------------------------------------------


class TLSTerminatingProxy(httpx2.BaseTransport):
    """What a TLS-terminating reverse proxy does to a request: the browser speaks https, the app receives http,
    every header (the ``Cookie`` header included) passed on as it came."""

    def __init__(self, app: httpx2.BaseTransport) -> None:
        self.app = app

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        request.url = request.url.copy_with(scheme="http")
        return self.app.handle_request(request)


def test_a_hand_written_login_behind_a_tls_proxy_finds_its_own_login_cookie(
    sandbox: tuple[GistSandbox, str], memory: Any
) -> None:
    """Severity: low (every login fails; no security loss). Attack: none; a common deployment. An app behind a
    TLS-terminating proxy writes Authlib's two routes and, since the app sees ``http://``, passes its public
    ``https://`` redirect URI to ``authorize_redirect`` (configuring none for the registration). The login cookie
    is then set as ``__Host-gist_login_gist`` (Secure), and the browser sends it back; but
    ``authorize_access_token`` decides which name to read from the callback request's own URL (``http://``), reads
    only the plain ``gist_login_gist``, and refuses every login as ``login_cookie_missing``. Expected: the callback
    reads the ``__Host-`` cookie whenever it is present (only the app's own https origin can set that name, so
    preferring it is safe), and the login finishes."""
    from authlib.integrations.starlette_client import OAuth
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.middleware.sessions import SessionMiddleware
    from starlette.requests import Request
    from starlette.responses import JSONResponse, PlainTextResponse, Response
    from starlette.routing import Route
    from support.in_memory import SyncASGITransport
    from support.web import browser_client

    _, url = sandbox
    oauth = OAuth()
    gist_authlib.register(oauth, client_id="the-id", client_secret="the-secret", provider=GistProvider.at(url))

    async def login(request: Request) -> Response:
        response: Response = await oauth.gist.authorize_redirect(request, PROXIED_CALLBACK)
        return response

    async def auth(request: Request) -> Response:
        try:
            token = await oauth.gist.authorize_access_token(request)
        except OAuthError as error:
            return PlainTextResponse(str(getattr(error, "error_code", error.error)), 400)
        return JSONResponse({"sub": token["userinfo"]["sub"]})

    app = Starlette(
        routes=[Route("/login", login), Route("/auth", auth)],
        middleware=[Middleware(SessionMiddleware, secret_key="test", https_only=True)],
    )
    proxy = TLSTerminatingProxy(SyncASGITransport(app, memory.loop))
    with browser_client(transport=proxy, base_url="https://app.test", follow_redirects=False) as browser:
        start = browser.get("/login")
        assert start.status_code == 302 and "__Host-gist_login_gist=" in start.headers["set-cookie"]
        callback = httpx2.get(start.headers["location"], follow_redirects=False, trust_env=False)
        finished = browser.get(callback.headers["location"])
    assert finished.status_code == 200, finished.text

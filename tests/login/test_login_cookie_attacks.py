"""Attacks on the signed login cookie, the bounce and the callback's refusal paths: a tossed cookie, a flood of
completed logins, forged log lines, a burnt state, a downgraded bounce.

The https tests run a Starlette app on ``https://app.test`` and the sandbox in process, through httpx2's transport
seam (no socket, no certificate): the browser's cookie jar then keeps ``__Host-`` and ``Secure`` cookies as a
browser does on an https site.
"""

from __future__ import annotations

import logging
import secrets
import string
from dataclasses import dataclass, field
from typing import Any

import httpx2
import pytest
from support.in_memory import Memory, Router, SyncASGITransport
from support.stacks import Stack
from support.web import browser_client, query_of

import gist_authlib
from gist_authlib import GistAuthError, GistProvider
from gist_authlib.sandbox import SandboxClient, create_app
from gist_authlib.tokens import MemoryTokenStore

APP = "https://app.test"


@dataclass
class HttpsStack:
    """A Starlette app served as ``https://app.test`` (and, as a TLS proxy that does not pass the scheme on
    shows it, as ``http://app.test``), and the sandbox, all in process."""

    sandbox: Any
    transport: Router
    errors: list[GistAuthError] = field(default_factory=list)

    def browser(self) -> httpx2.Client:
        return browser_client(follow_redirects=False, timeout=10, transport=self.transport)

    def token_requests(self) -> int:
        return sum(1 for r in self.sandbox.token_requests if r.grant_type == "authorization_code")


def https_stack(memory: Memory, *, redirect_path: str = "/oauth/gist/callback") -> HttpsStack:
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.middleware.sessions import SessionMiddleware
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    from gist_authlib.starlette import default_on_error, gist_routes, stored_token

    sandbox_origin = memory.origin()
    client_id, client_secret = "app-" + secrets.token_hex(4), "secret-" + secrets.token_urlsafe(16)
    redirect_uri = APP + redirect_path
    sandbox = create_app(clients=[SandboxClient(client_id, client_secret, (redirect_uri,))], auto_approve=True)
    from authlib.integrations.starlette_client import OAuth

    gist = gist_authlib.register(
        OAuth(),
        "gist",
        client_id=client_id,
        client_secret=client_secret,
        provider=GistProvider.at(sandbox_origin),
        redirect_uri=redirect_uri,
        token_store=MemoryTokenStore(),
        client_kwargs={"transport": Router({sandbox_origin: httpx2.ASGITransport(sandbox)})},
    )
    stack = HttpsStack(sandbox, Router({}))

    def on_error(request: Request, error: GistAuthError) -> Response:
        stack.errors.append(error)
        return default_on_error(request, error)

    async def me(request: Request) -> Response:
        record = await stored_token(request, gist)
        if record is None:
            return JSONResponse({"error": "not logged in"}, status_code=401)
        return JSONResponse({"subject": record.subject})

    app = Starlette(
        routes=[
            Route("/me", me),
            *gist_routes(gist, on_login=lambda request, token: JSONResponse({"ok": True}), on_error=on_error),
        ],
        middleware=[Middleware(SessionMiddleware, secret_key="test-session-secret", https_only=True)],
    )
    to_app = SyncASGITransport(app, memory.loop)
    stack.transport.routes.update(
        {sandbox_origin: SyncASGITransport(sandbox, memory.loop), APP: to_app, "http://app.test": to_app}
    )
    return stack


# --- 1. login CSRF: a cookie without the __Host- prefix is trusted on an https site ---------------------------------


def test_a_tossed_login_cookie_without_the_host_prefix_cannot_finish_an_attackers_login(memory: Memory) -> None:
    """On https the login cookie is ``__Host-gist_login_gist``, which a sibling subdomain or a plain-http response
    cannot set. The callback also reads ``gist_login_gist`` when the ``__Host-`` one is absent, and the signature
    does not cover the name: an attacker starts a login, copies the value of their own ``__Host-`` cookie into a
    ``gist_login_gist`` cookie planted in the victim's browser (``Domain=app.test`` from ``evil.app.test``, or
    over http), and sends the victim to their callback URL: the victim's session is logged in to the attacker's
    Gist workspace (login CSRF)."""
    stack = https_stack(memory)
    with stack.browser() as attacker, stack.browser() as victim:
        start = attacker.get(f"{APP}/auth/gist")
        assert start.status_code == 302
        own = attacker.cookies.get("__Host-gist_login_gist")
        assert own  # the https name, as documented
        callback = attacker.get(start.headers["location"]).headers["location"]  # approved, not opened
        # Planted in the victim's browser under the name without the prefix, as a sibling subdomain can.
        victim.cookies.set("gist_login_gist", own, domain="app.test", path="/")
        finished = victim.get(callback)
        logged_in = victim.get(f"{APP}/me").status_code
    assert (finished.status_code, logged_in, stack.token_requests()) == (400, 401, 0), finished.text


# --- 2. cookie budget: completed logins are kept with their next paths, outside the budget --------------------------


def _random_next() -> str:
    """A ``next`` path of 512 characters (the longest kept) that does not compress."""
    alphabet = string.ascii_letters + string.digits + "-_"
    return "/" + "".join(secrets.choice(alphabet) for _ in range(511))


def _login_cookie_headers(response: httpx2.Response) -> list[str]:
    return [h for h in response.headers.get_list("set-cookie") if h.startswith(("gist_login_", "__Host-gist_login_"))]


@pytest.mark.parametrize("framework", ["starlette", "flask"])
def test_completed_logins_cannot_push_the_login_cookie_past_what_browsers_keep(make_stack: Any, framework: str) -> None:
    """SECURITY.md: "a registration's pending logins stay within 1,536 bytes of JSON (oldest dropped), so no forced
    login pushes the login cookie past the 4,096 bytes browsers keep". The budget only drops *pending* logins; the
    completed ones (kept so that a repeated callback goes to its next page, up to 8, each with its next path of up
    to 512 characters) are outside it. Eight logins with long next paths within the state lifetime (a deep link
    with a long query, or logins an attacker's page makes the browser start when Gist approves known apps at
    once) give a login cookie a browser drops: every later login of that browser then fails as login_dropped
    until they expire."""
    stack: Stack = make_stack(framework, redirect_after_login=True)
    largest = 0
    with stack.browser() as browser:
        for _ in range(8):
            callback = stack.authorize(browser, stack.start_login(browser, next=_random_next()))
            done = browser.get(callback)
            assert done.status_code == 303
            largest = max([largest, *map(len, _login_cookie_headers(done))])
        start = browser.get(f"{stack.app_url}/auth/gist", params={"next": _random_next()})
        assert start.status_code == 302
        largest = max([largest, *map(len, _login_cookie_headers(start))])
    assert largest < 4096, largest


# --- 3. log forging: the callback's error parameter reaches the failure log line as it came --------------------------


@pytest.mark.parametrize("framework", ["starlette", "flask", "django"])
def test_a_callbacks_error_parameter_cannot_forge_log_lines(
    make_stack: Any, framework: str, caplog: pytest.LogCaptureFixture
) -> None:
    """log_failure writes ``error.error``, which for an AuthorizationError is the callback's ``error`` parameter
    (only shortened). Anyone can start a login in their own browser and send its callback back with
    ``error=...%0A<a fake line>``: the failure log line then carries a line break and text of their choosing
    (CWE-117), e.g. a fake "login completed" or a fake alert for another registration."""
    stack: Stack = make_stack(framework)
    forged = "invalid_scope\nWARNING gist_authlib.login: Gist login 'gist' completed for workspace 1"
    with caplog.at_level(logging.INFO, logger="gist_authlib"), stack.browser() as browser:
        state = query_of(stack.start_login(browser))["state"]
        refused = browser.get(stack.callback_url(), params={"state": state, "error": forged})
    assert refused.status_code == 400
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("gist_authlib")]
    assert any("failed" in line for line in lines), lines
    assert not any("\n" in line or "\r" in line for line in lines), lines


# --- 4. denial of service: knowing a pending login's state is enough to burn it -------------------------------------


@pytest.mark.parametrize("framework", ["starlette", "django"])
def test_knowing_only_a_victims_state_cannot_burn_their_login(make_stack: Any, framework: str) -> None:
    """A callback brought by another browser (state_other_browser, login_cookie_missing) consumes its state *and*
    its code server-side. The state is in the authorization URL (the victim's history, a proxy's or an extension's
    log, the consent page's address bar on a shared screen), before any code exists: anyone who sees it sends
    ``?state=<it>&code=anything`` from their own browser, and the victim's genuine callback, with Gist's real
    code, is then refused (callback_repeated, not completed) with no token request. Before issue 18 a state
    alone was worth nothing to an attacker."""
    stack: Stack = make_stack(framework)
    with stack.browser() as victim, stack.browser() as attacker:
        authorize_url = stack.start_login(victim)
        state = query_of(authorize_url)["state"]
        burnt = attacker.get(stack.callback_url(), params={"state": state, "code": "made-up"})
        assert burnt.status_code == 400
        finished = victim.get(stack.authorize(victim, authorize_url))
    assert finished.status_code == 200, [e.error_code for e in stack.errors]
    assert len(stack.tokens) == 1


# --- 5. the bounce: rebuilt from the request, not from the redirect URI ----------------------------------------------


def test_the_bounce_never_downgrades_an_https_callback_to_http(memory: Memory) -> None:
    """Behind a TLS proxy that does not pass the scheme on (no proxy-headers middleware, the trusted-proxy list not
    set), the app sees ``http://app.test/...`` although Gist sent the browser to the configured
    ``https://app.test/...`` redirect URI. The bounce page rebuilds its target from the request, so it sends the
    browser, with the authorization code in the query, to plain http: the code crosses the network in clear text,
    and the ``__Host-`` login cookie is not sent back there (the login then fails as login_cookie_missing). The
    canonical move already takes the scheme and host of the configured redirect URI; the bounce does not."""
    stack = https_stack(memory)
    with stack.browser() as browser:
        authorize_url = browser.get(f"{APP}/auth/gist").headers["location"]
        callback = browser.get(authorize_url).headers["location"]
        assert callback.startswith(APP)
        behind_proxy = "http://app.test" + callback[len(APP) :]  # what reaches the app from the proxy
        page = browser.get(behind_proxy, headers={"Sec-Fetch-Site": "cross-site"})
    assert page.status_code == 200 and 'http-equiv="refresh"' in page.text, page.text
    target = page.text.split("url=", 1)[1].split('"', 1)[0]
    assert target.startswith(APP + "/"), target


# --- 6. the callback path check: a false refusal of a redirect URI Starlette serves --------------------------------


def test_a_redirect_uri_with_a_trailing_slash_that_starlette_serves_is_not_refused(memory: Memory) -> None:
    """_check_callback_path refuses a configured redirect URI ending in ``/`` for a callback mounted without one.
    Starlette's router answers ``/oauth/gist/callback/`` with a redirect to ``/oauth/gist/callback`` that keeps
    the query, so such a login worked before the check and fails at its start now (a 400 page naming the
    setting), for an app that changed nothing. (Flask and Django would 404 there: the refusal is right for them.)"""
    stack = https_stack(memory, redirect_path="/oauth/gist/callback/")
    with stack.browser() as browser:
        start = browser.get(f"{APP}/auth/gist")
        assert start.status_code == 302, [e.message for e in stack.errors]
        callback = browser.get(start.headers["location"]).headers["location"]
        moved = browser.get(callback)
        assert moved.status_code in (307, 308), moved.text
        finished = browser.get(moved.headers["location"])
    assert finished.status_code == 200, finished.text
    assert stack.token_requests() == 1

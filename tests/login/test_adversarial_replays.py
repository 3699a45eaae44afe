"""The adversarial suite, round two: replayed and raced callbacks, forged installs, a forced cookie budget and
session fixation, against every route style (the library's routes and hand-written Authlib routes).

Each test asserts its own zeros (token requests sent for a replay or a forged install); the figures go into
``ADVERSARIAL`` and are printed at the end of the run.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx2
import pytest
from support.adversarial import ADVERSARIAL
from support.stacks import FRAMEWORKS, Stack
from support.web import browser_client, query_of

import gist_authlib
from gist_authlib import GistProvider
from gist_authlib._login import InstallLimit
from gist_authlib.sandbox import SandboxClient, ServerThread, WSGIServerThread, create_app
from gist_authlib.tokens import MemoryTokenStore, SQLiteTokenStore, TokenCipher


def _code_requests(stack: Stack) -> int:
    return sum(1 for r in stack.sandbox.token_requests if r.grant_type == "authorization_code")


# --- replays: the old cookie, a race, no cookie ----------------------------------------------------------


def test_a_callback_replayed_with_the_cookie_from_before_sends_no_token_request(stack: Stack) -> None:
    with stack.browser() as browser:
        callback = stack.authorize(browser, stack.start_login(browser))
        before = httpx2.Cookies(browser.cookies)  # a copy of the session cookie while the login was pending
        assert browser.get(callback).status_code in (200, 303)
        browser.cookies = before
        replay = browser.get(callback)
    assert replay.status_code == 400, replay.text
    assert _code_requests(stack) == 1
    ADVERSARIAL["replays with an old cookie"] += 1
    ADVERSARIAL["token requests on replays"] += _code_requests(stack) - 1


def test_two_racing_callbacks_send_one_token_request(stack: Stack) -> None:
    with stack.browser() as browser:
        callback = stack.authorize(browser, stack.start_login(browser))
        cookies = httpx2.Cookies(browser.cookies)
    start = threading.Barrier(4)
    statuses: list[int] = []

    def deliver() -> None:
        with browser_client(cookies=cookies, timeout=10) as racer:
            start.wait()
            statuses.append(racer.get(callback).status_code)

    racers = [threading.Thread(target=deliver) for _ in range(4)]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join()
    assert _code_requests(stack) == 1
    assert statuses.count(400) == 3 and len(statuses) == 4, statuses
    assert {status for status in statuses if status != 400} <= {200, 303}, statuses
    ADVERSARIAL["raced callbacks"] += 3
    ADVERSARIAL["token requests on replays"] += _code_requests(stack) - 1


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_a_leaked_callback_opened_without_the_cookie_sends_no_token_request(make_stack: Any, framework: str) -> None:
    store = MemoryTokenStore()
    stack: Stack = make_stack(framework, register_kwargs={"token_store": store}, accept_installs=True)
    with stack.browser() as browser:
        callback = stack.authorize(browser, stack.start_login(browser))
        assert browser.get(callback).status_code == 200
    with stack.browser() as stranger:  # any browser, no session cookie: what a leaked access-log line gives
        assert stranger.get(callback).status_code == 400
        # ...nor with the used code dressed up as an install of the workspace.
        as_install = {"code": query_of(callback)["code"], "state": str(stack.sandbox.workspace.id)}
        assert stranger.get(stack.callback_url(), params=as_install).status_code == 400
    assert _code_requests(stack) == 1
    ADVERSARIAL["replays without a cookie"] += 2
    ADVERSARIAL["token requests on replays"] += _code_requests(stack) - 1


def test_two_app_instances_sharing_a_store_refuse_each_others_used_callbacks(tmp_path: Path) -> None:
    """Two app instances (each with its own connection to one SQLite token store) behind one sandbox: a callback
    used at one is refused at the other, with no token request, even with the session cookie from before."""
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.middleware.sessions import SessionMiddleware
    from starlette.responses import PlainTextResponse

    from gist_authlib.starlette import gist_routes

    key = TokenCipher.generate_key()
    servers = [ServerThread(), ServerThread()]
    sandbox_server = ServerThread()
    sandbox = create_app(
        clients=[SandboxClient("id", "secret", tuple(f"{s.url}/oauth/gist/callback" for s in servers))],
        auto_approve=True,
    )
    sandbox_server.start(sandbox)
    stores = [SQLiteTokenStore(tmp_path / "shared.sqlite3", key=key) for _ in servers]
    for server, store in zip(servers, stores, strict=True):
        from authlib.integrations.starlette_client import OAuth

        gist = gist_authlib.register(
            OAuth(),
            client_id="id",
            client_secret="secret",
            provider=GistProvider.at(sandbox_server.url),
            token_store=store,
        )
        routes = gist_routes(gist, on_login=lambda request, token: PlainTextResponse("in"))
        server.start(Starlette(routes=routes, middleware=[Middleware(SessionMiddleware, secret_key="one-secret")]))
    try:
        with browser_client(timeout=10) as browser:
            authorize = browser.get(f"{servers[0].url}/auth/gist").headers["location"]
            callback = browser.get(authorize).headers["location"]
            before = httpx2.Cookies(browser.cookies)  # cookies are per host, not per port: both instances see it
            assert browser.get(callback).text == "in"
            browser.cookies = before
            at_the_other = browser.get(f"{servers[1].url}/oauth/gist/callback", params=query_of(callback))
        assert at_the_other.status_code == 400, at_the_other.text
        assert sum(1 for r in sandbox.token_requests if r.grant_type == "authorization_code") == 1
    finally:
        for server in (*servers, sandbox_server):
            server.stop()
        for store in stores:
            store.close()
    ADVERSARIAL["replays across two app instances"] += 1


# --- forged installs ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_forged_install_states_of_the_wrong_shape_cost_no_token_request(make_stack: Any, framework: str) -> None:
    stack: Stack = make_stack(framework, accept_installs=True)
    shapes = ["forged-state", "FORGED", "a" * 40, "abc", "x" * 200, "%3Cscript%3E", "nrrjryb4;drop", "1 2", "é1234"]
    with stack.browser() as browser:
        for state in shapes:
            response = browser.get(f"{stack.callback_url()}?code=stolen-code&state={state}")
            assert response.status_code == 400, (state, response.status_code)
    assert _code_requests(stack) == 0
    ADVERSARIAL["forged install states"] += len(shapes)
    ADVERSARIAL["token requests on forged install states"] += _code_requests(stack)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_install_attempts_are_rate_limited_before_any_token_request(make_stack: Any, framework: str) -> None:
    limit = InstallLimit(per_client=3, total=100, window=60)
    stack: Stack = make_stack(framework, register_kwargs={"install_limit": limit}, accept_installs=True)
    with stack.browser() as browser:
        statuses = [browser.get(f"{stack.callback_url()}?code=c{i}&state=nrrjryb4").status_code for i in range(8)]
    assert statuses == [400] * 3 + [429] * 5, statuses  # Gist refuses the forged codes: "invalid or expired"
    assert _code_requests(stack) == 3
    ADVERSARIAL["install attempts past the limit"] += 5


def test_the_install_limit_counts_per_network_and_in_total() -> None:
    now = [1000.0]
    limit = InstallLimit(per_client=2, total=3, window=60, clock=lambda: now[0])
    assert [limit.allow("10.0.0.1") for _ in range(3)] == [True, True, False]
    assert [limit.allow("10.0.0.2") for _ in range(2)] == [False, False]  # the same /24: the same bucket
    assert [limit.allow("10.0.1.2") for _ in range(2)] == [True, False]  # the total of 3 is reached
    assert limit.allow("10.0.2.2") is True  # past the total, a network's first attempt still passes
    assert limit.allow("10.0.2.2") is False
    now[0] += 61
    assert limit.allow("10.0.1.2") is True  # the window moved on
    assert limit.counter.networks == 1  # networks with nothing left in the window are forgotten


# --- the cookie budget --------------------------------------------------------------------------------------


def test_no_forced_login_can_push_the_session_cookie_past_what_browsers_keep(stack: Stack) -> None:
    largest = 0
    with stack.browser() as browser:
        for attempt in range(20):
            long_next = "/" + ("x" * (2000 if attempt % 2 else 511))
            response = browser.get(f"{stack.app_url}/auth/gist", params={"next": long_next})
            assert response.status_code == 302
            for header in response.headers.get_list("set-cookie"):
                largest = max(largest, len(header))
        # The newest login still works, and the over-long next fell back to "/".
        callback = stack.authorize(browser, stack.start_login(browser, next="/" + "y" * 2000))
        done = browser.get(callback)
    assert largest < 4096, largest
    assert done.status_code == 200 and done.json()["next"] == "/"
    ADVERSARIAL["largest forced set-cookie bytes"] = max(ADVERSARIAL["largest forced set-cookie bytes"], largest)


# --- session fixation and logout -------------------------------------------------------------------------------


@pytest.fixture
def django_server_sessions() -> Iterator[None]:
    """Django with a server-side session engine (a session id in the cookie, the data on the server)."""
    from django.test.utils import override_settings

    with override_settings(SESSION_ENGINE="django.contrib.sessions.backends.cache"):
        yield


@pytest.mark.usefixtures("django_server_sessions")
@pytest.mark.parametrize("route", ["django", "django+authlib"])
def test_a_planted_django_session_id_is_worth_nothing_after_the_login(make_stack: Any, route: str) -> None:
    store = MemoryTokenStore()
    stack: Stack = make_stack(route, register_kwargs={"token_store": store})
    from django.contrib.sessions.backends.cache import SessionStore

    before = SessionStore()  # a session the attacker got from the site, then planted in the victim's browser
    before["visited"] = True
    before.save()
    planted = before.session_key
    assert planted
    with stack.browser() as victim:
        victim.cookies.set("sessionid", planted, domain=urlsplit(stack.app_url).hostname or "")
        authorize = stack.start_login(victim)
        assert victim.get(stack.authorize(victim, authorize)).status_code == 200
        assert victim.cookies["sessionid"] != planted
        assert victim.get(f"{stack.app_url}/me").status_code == 200
    with browser_client(cookies={"sessionid": planted}) as attacker:
        assert attacker.get(f"{stack.app_url}/me").status_code == 401


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_a_login_left_pending_survives_a_logout_in_another_tab(make_stack: Any, framework: str) -> None:
    stack: Stack = make_stack(framework, register_kwargs={"token_store": MemoryTokenStore()})
    with stack.browser() as browser:
        assert stack.login(browser).status_code == 200
        pending = stack.authorize(browser, stack.start_login(browser))  # a second login, left pending
        assert browser.get(f"{stack.app_url}/logout").json() == {"subject": "gist-user"}
        assert browser.get(f"{stack.app_url}/me").status_code == 401  # logged out...
        # ...and the login the user started before, then approved, logs them in again: it lives in its own
        # cookie, which the logout (a flush of the session) does not touch.
        assert browser.get(pending).status_code == 200
        assert browser.get(f"{stack.app_url}/me").status_code == 200
        assert browser.get(pending).status_code in (200, 303)  # once more: no second token request
    assert _code_requests(stack) == 2


def test_a_flask_session_interface_that_can_regenerate_is_asked_to_at_login() -> None:
    """Flask's own cookie sessions have no server-side id; interfaces that do (Flask-Session) expose
    ``regenerate(session)``, and the login calls it once the login is stored."""
    from authlib.integrations.flask_client import OAuth
    from flask import Flask
    from flask.sessions import SecureCookieSessionInterface

    from gist_authlib.flask import gist_blueprint

    regenerated: list[str] = []

    class RegeneratingInterface(SecureCookieSessionInterface):
        def regenerate(self, session: Any) -> None:
            regenerated.append(session.get("_gist_authlib:gist:subject", ""))

    wsgi_server, sandbox_server = WSGIServerThread(), ServerThread()
    sandbox_server.start(
        create_app(
            clients=[SandboxClient("id", "secret", (f"{wsgi_server.url}/oauth/gist/callback",))], auto_approve=True
        )
    )
    flask_app = Flask(__name__)
    flask_app.secret_key = "regenerate-test"
    flask_app.session_interface = RegeneratingInterface()
    oauth = OAuth(flask_app)
    gist = gist_authlib.register(
        oauth,
        client_id="id",
        client_secret="secret",
        provider=GistProvider.at(sandbox_server.url),
        token_store=MemoryTokenStore(),
    )
    flask_app.register_blueprint(gist_blueprint(gist, on_login=lambda token: "in", subject=lambda token: "user-7"))
    wsgi_server.start(flask_app)
    try:
        with browser_client(follow_redirects=True, timeout=10) as browser:
            assert browser.get(f"{wsgi_server.url}/auth/gist").text == "in"
    finally:
        wsgi_server.stop()
        sandbox_server.stop()
    assert regenerated == ["user-7"]  # once, after the subject was stored

"""Gist misbehaving, through a fault layer on loopback (tests/support/gist_faults.py) in front of the sandbox.

For the API client (sync and async): each fault gives its typed error within a bound, no connection is left behind
(a one-connection pool serves the next call, and closing the client leaves the server nothing open), and the next
call works. For the login (Starlette, Flask, Django apps on the library's routes): a fault of the token endpoint,
or of ``GET /token`` behind an install, gives the user the login's 502 page within a bound, stores nothing, and the
next login works.
"""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any

import httpx2
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from support.gist_faults import Answer, Delay, GistFaults, Hang, Huge, Reset, Status, Trickle
from support.stacks import Stack
from support.web import browser_client

from gist_authlib import AsyncGistClient, GistClient, GistProvider
from gist_authlib.client import RetryPolicy
from gist_authlib.errors import (
    GistAPIError,
    GistConnectionError,
    RateLimitedError,
    TokenExchangeError,
    UnexpectedAnswerError,
)
from gist_authlib.sandbox import GistSandbox, SandboxClient, ServerThread, create_app
from gist_authlib.tokens import MemoryTokenStore

HUGE = 100 * 1024 * 1024
#: The API client's deadline in these tests (short: the faults that hang wait it out), and the slack its faults may
#: take on top (a generous bound); a test of a retry that waits out Retry-After: 1 gives its client longer.
DEADLINE = 0.6
RETRY_DEADLINE = 1.5
SLACK = 2.0

#: (fault, the error class, its error_code)
API_FAULTS: dict[str, tuple[Any, type[GistAPIError], str]] = {
    "delay": (Delay(30), GistConnectionError, "deadline_exceeded"),
    "503 with Retry-After": (Status(503, retry_after="1"), RateLimitedError, "rate_limited"),
    "500": (Status(500), GistAPIError, "gist_api_error"),
    "not JSON": (Answer(b"<html>Gist is down</html>"), UnexpectedAnswerError, "unexpected_answer"),
    "wrong JSON shape": (Answer({"teammate": [{"id": "1"}]}), UnexpectedAnswerError, "unexpected_answer"),
    "huge body": (Huge(HUGE), UnexpectedAnswerError, "answer_too_large"),
    "huge body, size not declared": (Huge(HUGE, declared=False), UnexpectedAnswerError, "answer_too_large"),
    "hang after the headers": (Hang(30), GistConnectionError, "deadline_exceeded"),
    "trickle": (Trickle(interval=0.05, seconds=30), GistConnectionError, "deadline_exceeded"),
    "reset": (Reset(), GistConnectionError, "gist_unreachable"),
}


@pytest.fixture(scope="module")
def portal() -> Iterator[BlockingPortal]:
    with start_blocking_portal() as running:
        yield running


@pytest.fixture
def gist() -> Iterator[tuple[GistSandbox, GistFaults, str]]:
    """The sandbox behind the fault layer, and a token for it."""
    sandbox = create_app(clients=[SandboxClient("cid", "csecret", ("http://127.0.0.1:9/cb",))], token_ttl=None)
    token = sandbox.issue_token("cid", ("read_teammates",))["access_token"]
    with ServerThread(sandbox) as server, GistFaults(upstream=server.url) as faults:
        yield sandbox, faults, token


class Client:
    """A GistClient, or an AsyncGistClient driven through the portal, with a one-connection pool."""

    def __init__(self, side: str, portal: BlockingPortal, token: str, url: str, deadline: float = DEADLINE) -> None:
        settings: dict[str, Any] = {
            "base_url": url,
            "retry": RetryPolicy(deadline=deadline, max_attempts=3, backoff_base=0.05),
            # One connection: a call that left its connection checked out makes the next one wait out the pool
            "limits": httpx2.Limits(max_connections=1, max_keepalive_connections=1),
            "timeout": httpx2.Timeout(10.0, pool=2.0),
        }
        self.side, self.portal = side, portal
        self.client: Any = (
            GistClient(token, **settings)
            if side == "sync"
            else portal.call(lambda: _made(AsyncGistClient(token, **settings)))
        )

    def run(self, call: Callable[[Any], Any]) -> Any:
        if self.side == "sync":
            return call(self.client)
        return self.portal.call(_awaited, call(self.client))

    def close(self) -> None:
        if self.side == "sync":
            self.client.close()
        else:
            self.portal.call(self.client.aclose)


async def _made(client: Any) -> Any:
    return client


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


def wait_for(condition: Callable[[], bool], seconds: float = 3.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


@pytest.mark.parametrize("side", ["sync", "async"])
@pytest.mark.parametrize("name", list(API_FAULTS))
def test_each_fault_gives_its_typed_error_in_time_leaks_nothing_and_the_next_call_works(
    side: str, name: str, gist: tuple[GistSandbox, GistFaults, str], portal: BlockingPortal
) -> None:
    sandbox, faults, token = gist
    fault, error_class, error_code = API_FAULTS[name]
    names = [t["name"] for t in sandbox.workspace.teammates]
    waits = isinstance(fault, Status) and bool(fault.retry_after)  # Retry-After: 1 needs a deadline past a second
    deadline = RETRY_DEADLINE if waits else DEADLINE
    client = Client(side, portal, token, faults.url, deadline=deadline)
    try:
        assert [t.name for t in client.run(lambda c: c.teammates.list())] == names  # a warm pooled connection
        faults.inject("/teammates", fault)
        tracemalloc.start()
        started = time.monotonic()
        with pytest.raises(error_class) as raised:
            client.run(lambda c: c.teammates.list())
        took = time.monotonic() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        error = raised.value
        assert type(error) is error_class and error.error_code == error_code
        assert error.method == "GET" and error.path == "teammates"
        assert took < deadline + SLACK, f"{name}: {took:.2f} s"
        faulty = faults.served("/teammates")[1:]
        if isinstance(fault, Huge):
            # The client stopped reading at its cap: the server got rid of a few MiB (the sockets' buffers), and
            # the call's memory never came near the body's size.
            assert wait_for(lambda: faulty[0].done) and faulty[0].sent < HUGE // 4
            assert peak < 24 * 1024 * 1024, f"{peak} bytes at the peak"
        if isinstance(fault, Status) and fault.retry_after:
            # Retry-After honoured (a pause of 1 s) as long as the deadline allows: two attempts in 1.5 s.
            assert len(faulty) == 2 and took >= 1.0 and error.retry_after == 1
        if isinstance(fault, (Answer, Huge)) or fault == Status(500):
            assert len(faulty) == 1  # nothing to retry
        assert str(error) and "Gist is down" not in str(error)

        faults.clear()
        assert [t.name for t in client.run(lambda c: c.teammates.list())] == names
    finally:
        client.close()
    # Nothing left open on the server's side once the client is closed.
    assert wait_for(lambda: faults.open_connections() == 0)


@pytest.fixture(params=["sync", "async"])
def client(
    request: pytest.FixtureRequest, gist: tuple[GistSandbox, GistFaults, str], portal: BlockingPortal
) -> Iterator[Client]:
    """A client of each side for the faulty Gist."""
    made = Client(str(request.param), portal, gist[2], gist[1].url)
    yield made
    made.close()


def test_a_post_that_got_no_answer_is_not_sent_again(gist: tuple[GistSandbox, GistFaults, str], client: Client) -> None:
    faults = gist[1]
    faults.inject("/conversations", Reset())
    with pytest.raises(GistConnectionError):
        client.run(lambda c: c.post("conversations", {"body": "Hello"}))
    assert len(faults.served("/conversations")) == 1


@pytest.mark.parametrize("side", ["sync", "async"])
def test_a_fault_that_clears_within_the_deadline_is_retried_through(
    gist: tuple[GistSandbox, GistFaults, str], portal: BlockingPortal, side: str
) -> None:
    sandbox, faults, token = gist
    client = Client(side, portal, token, faults.url, deadline=RETRY_DEADLINE)
    faults.inject("/teammates", Status(503, retry_after="1"), times=1)
    started = time.monotonic()
    try:
        assert len(client.run(lambda c: c.teammates.list())) == len(sandbox.workspace.teammates)
    finally:
        client.close()
    assert 1.0 <= time.monotonic() - started < RETRY_DEADLINE + SLACK
    assert [entry.fault for entry in faults.served("/teammates")] == ["Status", None]


# --- the login ---------------------------------------------------------------------------------------------------

#: The apps' whole-exchange deadline in these tests (register(timeout=...)): the faults that hang wait it out.
LOGIN_TIMEOUT = 0.3
#: How long a failed login may keep its user waiting (a generous bound on LOGIN_TIMEOUT).
LOGIN_BOUND = 5.0
LOGIN_FRAMEWORKS = ["starlette", "flask", "django"]
#: (fault of the token endpoint, the error_code the login reports, or None where only its branch is fixed)
TOKEN_ENDPOINT_FAULTS: dict[str, tuple[Any, str | None]] = {
    "delay": (Delay(30), "token_endpoint_unreachable"),
    "503 with Retry-After": (Status(503, retry_after="1"), "token_endpoint_error"),
    "not JSON": (Answer(b"<html>Gist is down</html>"), "invalid_token_response"),
    "wrong JSON shape": (Answer([{"access_token": "tok"}]), "invalid_token_response"),
    "huge body": (Huge(HUGE), None),
    "huge body, size not declared": (Huge(HUGE, declared=False), None),
    "hang after the headers": (Hang(30), "token_endpoint_unreachable"),
    "trickle": (Trickle(interval=0.05, seconds=12), None),
    "reset": (Reset(), "token_endpoint_unreachable"),
}
#: Faults of GET /token, the workspace lookup an install cannot do without.
LOOKUP_FAULTS: dict[str, Any] = {
    "delay": Delay(30),
    "503 with Retry-After": Status(503, retry_after="1"),
    "500": Status(500),
    "not JSON": Answer(b"<html>Gist is down</html>"),
    "wrong JSON shape": Answer([]),
    "a field of the wrong type": Answer({"workspace_id": {"id": 1}}),
    "huge body": Huge(HUGE),
    "hang after the headers": Hang(30),
    "trickle": Trickle(interval=0.05, seconds=12),
    "reset": Reset(),
}


def _spread(faults: list[str], everywhere: tuple[str, ...]) -> list[Any]:
    """(fault, framework) cases: the faults in ``everywhere`` in every framework, each other fault in one of them in
    turn. What a fault gets is decided once, in the login core, behind both drivers (sync and async): every framework
    still meets several faults of each kind, at a third of the cost of meeting them all."""
    cases = []
    for n, name in enumerate(faults):
        frameworks = LOGIN_FRAMEWORKS if name in everywhere else [LOGIN_FRAMEWORKS[n % len(LOGIN_FRAMEWORKS)]]
        cases += [pytest.param(name, framework, id=f"{name}-{framework}") for framework in frameworks]
    return cases


TOKEN_ENDPOINT_CASES = _spread(list(TOKEN_ENDPOINT_FAULTS), everywhere=("trickle", "huge body"))
LOOKUP_CASES = _spread(list(LOOKUP_FAULTS), everywhere=("wrong JSON shape",))


@pytest.fixture
def faulty_stack(make_stack: Callable[..., Stack], request: pytest.FixtureRequest) -> Iterator[Callable[..., Any]]:
    """An app of the framework, registered with Gist's token endpoint and API behind the fault layer."""
    made: list[GistFaults] = []

    def build(framework: str, *, installs: bool = False) -> tuple[Stack, GistFaults, MemoryTokenStore]:
        faults = GistFaults().start()
        made.append(faults)
        store = MemoryTokenStore()
        settings = {"provider": GistProvider.at(faults.url), "token_store": store, "timeout": LOGIN_TIMEOUT}
        stack = make_stack(framework, register_kwargs=settings, accept_installs=installs)
        faults.upstream = stack.sandbox_url  # the browser's visits to Gist go through it too, unharmed
        return stack, faults, store

    yield build
    for faults in made:
        faults.stop()


def timed(get: Callable[[], httpx2.Response], huge: bool) -> tuple[httpx2.Response, float, int]:
    """The response, how long it took, and the peak of memory traced meanwhile (for huge bodies only)."""
    if huge:
        tracemalloc.start()
    started = time.monotonic()
    try:
        response = get()
        return response, time.monotonic() - started, tracemalloc.get_traced_memory()[1] if huge else 0
    finally:
        if huge:
            tracemalloc.stop()


def assert_got_the_error_page(response: httpx2.Response, took: float, stack: Stack, code: str | None) -> None:
    assert response.status_code == 502 and response.headers["content-type"].startswith("text/html")
    assert took < LOGIN_BOUND, f"the error page came after {took:.1f} s"
    error = stack.errors[-1]
    assert isinstance(error, TokenExchangeError), repr(error)
    assert code is None or error.error_code == code, error.error_code
    assert "Gist is down" not in response.text


def assert_the_huge_body_was_not_read(faults: GistFaults, path: str, peak: int) -> None:
    sent = [entry for entry in faults.served(path) if entry.fault == "Huge"]
    assert sent and wait_for(lambda: all(entry.done for entry in sent))
    assert max(entry.sent for entry in sent) < HUGE // 4, "the answer was read whole"
    assert peak < 24 * 1024 * 1024, f"{peak} bytes at the peak"


@pytest.mark.parametrize(("name", "framework"), TOKEN_ENDPOINT_CASES)
def test_a_faulty_token_endpoint_gives_the_error_page_in_time_stores_nothing_and_the_next_login_works(
    faulty_stack: Callable[..., Any], framework: str, name: str
) -> None:
    stack, faults, store = faulty_stack(framework)
    fault, code = TOKEN_ENDPOINT_FAULTS[name]
    faults.inject("/oauth/token", fault)
    with browser_client(follow_redirects=False, timeout=60) as browser:
        callback = stack.authorize(browser, stack.start_login(browser))
        response, took, peak = timed(lambda: browser.get(callback), isinstance(fault, Huge))
    assert_got_the_error_page(response, took, stack, code)
    assert len(faults.served("/oauth/token")) == 1  # one token request per code, never repeated
    assert stack.logins == [] and store.get("gist-user") is None
    if isinstance(fault, Huge):
        assert_the_huge_body_was_not_read(faults, "/oauth/token", peak)

    faults.clear()
    assert stack.login().status_code == 200
    assert len(stack.tokens) == 1 and store.get("gist-user") is not None


@pytest.mark.parametrize(("name", "framework"), LOOKUP_CASES)
def test_a_faulty_token_information_fails_an_install_in_time_stores_nothing_and_the_next_install_works(
    faulty_stack: Callable[..., Any], name: str, framework: str
) -> None:
    stack, faults, store = faulty_stack(framework, installs=True)
    fault = LOOKUP_FAULTS[name]
    workspace = f"workspace:{stack.sandbox.workspace.id}"
    faults.inject("/token", fault)
    with browser_client(follow_redirects=False, timeout=60) as browser:
        callback = browser.get(stack.sandbox.install_url(faults.url, stack.client_id)).headers["location"]
        response, took, peak = timed(lambda: browser.get(callback), isinstance(fault, Huge))
    # Gist not answering is "it will not say which workspace"; answering something else is a wrong answer.
    wrong = name in ("not JSON", "wrong JSON shape", "a field of the wrong type")
    assert_got_the_error_page(response, took, stack, "invalid_token_info" if wrong else "workspace_unknown")
    assert stack.installs == [] and store.get(workspace) is None
    assert stack.sandbox.installs_acknowledged == []
    if isinstance(fault, Huge):
        assert_the_huge_body_was_not_read(faults, "/token", peak)

    faults.clear()
    with browser_client(follow_redirects=False, timeout=10) as browser:
        callback = browser.get(stack.sandbox.install_url(faults.url, stack.client_id)).headers["location"]
        assert browser.get(callback).status_code == 303
    assert store.get(workspace) is not None and len(stack.installs) == 1


@pytest.mark.parametrize("framework", ["starlette", "flask"])
def test_a_login_whose_token_information_hangs_completes_in_time_without_a_workspace(
    faulty_stack: Callable[..., Any], framework: str
) -> None:
    """A login (not an install) does without the workspace when Gist will not name it (docs/IDENTITY.md): the
    token is stored under the app's subject, in time."""
    stack, faults, store = faulty_stack(framework)
    faults.inject("/token", Hang(30))
    started = time.monotonic()
    assert stack.login().status_code == 200
    assert time.monotonic() - started < LOGIN_BOUND
    record = store.get("gist-user")
    assert record is not None and record.workspace_id is None and "userinfo" not in stack.tokens[0]

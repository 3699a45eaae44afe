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

from gist_authlib import AsyncGistClient, GistClient
from gist_authlib.client import RetryPolicy
from gist_authlib.errors import (
    GistAPIError,
    GistConnectionError,
    RateLimitedError,
    UnexpectedAnswerError,
)
from gist_authlib.sandbox import GistSandbox, SandboxClient, ServerThread, create_app

HUGE = 100 * 1024 * 1024
#: The API client's deadline in these tests, and the slack its faults may take on top (a generous bound).
DEADLINE = 1.5
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

    def __init__(self, side: str, portal: BlockingPortal, token: str, url: str) -> None:
        settings: dict[str, Any] = {
            "base_url": url,
            "retry": RetryPolicy(deadline=DEADLINE, max_attempts=3, backoff_base=0.05),
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
    client = Client(side, portal, token, faults.url)
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
        assert took < DEADLINE + SLACK, f"{name}: {took:.2f} s"
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


@pytest.mark.parametrize("side", ["sync", "async"])
def test_a_post_that_got_no_answer_is_not_sent_again(
    side: str, gist: tuple[GistSandbox, GistFaults, str], portal: BlockingPortal
) -> None:
    _, faults, token = gist
    client = Client(side, portal, token, faults.url)
    faults.inject("/conversations", Reset())
    try:
        with pytest.raises(GistConnectionError):
            client.run(lambda c: c.post("conversations", {"body": "Hello"}))
    finally:
        client.close()
    assert len(faults.served("/conversations")) == 1


@pytest.mark.parametrize("side", ["sync", "async"])
def test_a_fault_that_clears_within_the_deadline_is_retried_through(
    side: str, gist: tuple[GistSandbox, GistFaults, str], portal: BlockingPortal
) -> None:
    sandbox, faults, token = gist
    client = Client(side, portal, token, faults.url)
    faults.inject("/teammates", Status(503, retry_after="1"), times=1)
    try:
        started = time.monotonic()
        assert len(client.run(lambda c: c.teammates.list())) == len(sandbox.workspace.teammates)
        assert 1.0 <= time.monotonic() - started < DEADLINE + SLACK
    finally:
        client.close()
    assert [entry.fault for entry in faults.served("/teammates")] == ["Status", None]

"""Everything the sandbox keeps is bounded: codes expire, and tokens, logs and workspace data have limits.

The sandbox is driven in process (httpx2's ASGITransport) with a fake clock and small limits; every
collection the sandbox, its inbox and its workspace hold is counted after N rounds of traffic and again
after 2N. A collection that grows with the traffic, one added later included, makes the counts differ.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

import httpx2
import pytest
from support.sandbox_http import REDIRECT, Clock, s256
from support.web import query_of

from gist_authlib.sandbox import CanvasApp, GistSandbox, RateLimit, SandboxClient, SandboxLimits, create_app

SMALL = SandboxLimits(codes=4, tokens=4, records=4, canvas_calls=4, inbox_visits=4, events=4, contacts=8, tags=4)


def held(sandbox: GistSandbox) -> dict[str, int]:
    """The number of entries of every collection the sandbox, its inbox and its workspace hold."""
    counts: dict[str, int] = {}
    for prefix, owner in (("", sandbox), ("inbox.", sandbox.inbox), ("workspace.", sandbox.workspace)):
        for name, value in vars(owner).items():
            if isinstance(value, list | dict | set | deque):
                counts[prefix + name] = len(value)
    return counts


def sandbox_with(clock: Clock, limits: SandboxLimits, **kwargs: Any) -> GistSandbox:
    return create_app(
        clients=[SandboxClient("cid", "csecret", (REDIRECT,))],
        auto_approve=True,
        clock=clock,
        limits=limits,
        # Not registered with the sandbox: each inbox visit records a call without any network.
        canvas_apps=[CanvasApp.at("not-registered", "http://127.0.0.1:9/canvas")],
        token_ttl=3600,  # tokens with refresh tokens, so that refreshes leave their traces too
        **kwargs,
    )


async def one_round(http: httpx2.AsyncClient, n: int) -> None:
    """One of everything that leaves something behind: a login, a refresh, a replay, API writes, an install."""
    authorized = await http.get(
        "/oauth/authorize",
        params={
            "response_type": "code",
            "client_id": "cid",
            "redirect_uri": REDIRECT,
            "scope": "read_teammates write_contact write_tags",
            "state": f"s{n}",
            "code_challenge": s256("v" * 43),
            "code_challenge_method": "S256",
        },
    )
    code = query_of(authorized.headers["location"])["code"]
    form = {"client_id": "cid", "client_secret": "csecret", "redirect_uri": REDIRECT}
    exchanged = await http.post(
        "/oauth/token", data={**form, "grant_type": "authorization_code", "code": code, "code_verifier": "v" * 43}
    )
    assert exchanged.status_code == 200, exchanged.text
    refreshed = await http.post(
        "/oauth/token",
        data={**form, "grant_type": "refresh_token", "refresh_token": exchanged.json()["refresh_token"]},
    )
    assert refreshed.status_code == 200, refreshed.text
    replayed = await http.post(
        "/oauth/token", data={**form, "grant_type": "authorization_code", "code": code, "code_verifier": "v" * 43}
    )
    assert replayed.json()["error"] == "invalid_grant"
    headers = {"authorization": f"Bearer {refreshed.json()['access_token']}"}
    assert (await http.get("/teammates", headers=headers)).status_code == 200
    assert (await http.post("/events", json={"event_name": f"e{n}"}, headers=headers)).status_code == 201
    assert (await http.post("/contacts", json={"email": f"c{n}@x.example"}, headers=headers)).status_code in (201, 422)
    assert (await http.post("/tags", json={"name": f"t{n}"}, headers=headers)).status_code in (200, 422)
    install = await http.get("/install", params={"client_id": "cid", "scope": "read_teammates"})
    installed = await http.post(
        "/oauth/token",
        data={**form, "grant_type": "authorization_code", "code": query_of(install.headers["location"])["code"]},
    )
    assert installed.status_code == 200, installed.text
    await http.get("/install_success", params={"client_id": "cid", "workspace_id": "100001"})
    assert (await http.get("/inbox/conversations/9001")).status_code == 200


def drive(sandbox: GistSandbox, clock: Clock, rounds: int, start: int = 0, step: float = 1.0) -> None:
    async def run() -> None:
        transport = httpx2.ASGITransport(app=sandbox)
        async with httpx2.AsyncClient(transport=transport, base_url="http://sandbox.test") as http:
            for n in range(start, start + rounds):
                clock.now += step
                await one_round(http, n)

    asyncio.run(run())


def test_no_collection_grows_with_the_traffic() -> None:
    clock = Clock()
    sandbox = sandbox_with(clock, SMALL, rate_limit=RateLimit(100, per=60))
    drive(sandbox, clock, 12)
    after_n = held(sandbox)
    drive(sandbox, clock, 12, start=12)
    after_2n = held(sandbox)
    assert after_2n == after_n
    # Each bound is the one its limit names.
    assert after_n["_codes"] == SMALL.codes and after_n["_tokens"] == SMALL.tokens
    assert after_n["token_requests"] == after_n["installs_acknowledged"] == SMALL.records
    assert after_n["inbox.calls"] == SMALL.canvas_calls and after_n["inbox._visits"] == SMALL.inbox_visits
    assert after_n["workspace.contacts"] == SMALL.contacts and after_n["workspace.tags"] == SMALL.tags
    assert after_n["_refresh_tokens"] <= SMALL.tokens and after_n["_windows"] <= SMALL.tokens
    # The newest events are kept, and their ids keep counting.
    assert [event["id"] for event in sandbox.workspace.events] == [21, 22, 23, 24]
    assert sandbox.tokens_issued == 24 * 3  # a login, its refresh and an install each round


def test_codes_are_dropped_when_they_expire_under_any_cap() -> None:
    clock = Clock()
    sandbox = sandbox_with(clock, SandboxLimits(), code_ttl=5)
    drive(sandbox, clock, 30, step=1.0)
    # Two codes a round (a login and an install), each kept for 5 seconds of a clock that moves 1 a round.
    assert held(sandbox)["_codes"] <= 2 * 6
    clock.now += 6
    drive(sandbox, clock, 1, start=30)
    assert held(sandbox)["_codes"] == 2


def test_a_forgotten_token_answers_401_like_a_revoked_one() -> None:
    clock = Clock()
    sandbox = sandbox_with(clock, SandboxLimits(tokens=2))
    first = sandbox.issue_token("cid")["access_token"]
    second = sandbox.issue_token("cid")["access_token"]
    third = sandbox.issue_token("cid")["access_token"]

    async def status(token: str) -> int:
        transport = httpx2.ASGITransport(app=sandbox)
        async with httpx2.AsyncClient(transport=transport, base_url="http://sandbox.test") as http:
            return (await http.get("/teammates", headers={"authorization": f"Bearer {token}"})).status_code

    assert [asyncio.run(status(token)) for token in (first, second, third)] == [401, 200, 200]
    assert sandbox.tokens_issued == 3


@pytest.mark.parametrize("value", [0, -1])
def test_limits_must_be_at_least_one(value: int) -> None:
    with pytest.raises(ValueError, match=r"SandboxLimits\.tokens"):
        SandboxLimits(tokens=value)


def test_log_entries_keep_at_most_200_characters_of_what_a_request_named() -> None:
    clock = Clock()
    sandbox = sandbox_with(clock, SandboxLimits())

    async def run() -> None:
        transport = httpx2.ASGITransport(app=sandbox)
        async with httpx2.AsyncClient(transport=transport, base_url="http://sandbox.test") as http:
            huge = "x" * 10_000
            await http.post("/oauth/token", data={"client_id": huge, "grant_type": huge, "client_secret": "s"})
            await http.get("/install_success", params={"client_id": huge, "workspace_id": huge})

    asyncio.run(run())
    [record] = sandbox.token_requests
    assert (record.client_id, record.grant_type, record.status) == ("x" * 200, "x" * 200, 400)
    assert sandbox.installs_acknowledged == [{"client_id": "x" * 200, "workspace_id": "x" * 200}]

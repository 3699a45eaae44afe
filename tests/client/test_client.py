"""GistClient and AsyncGistClient against the sandbox on loopback: resources, errors, retries, refresh."""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx2
import pytest
from authlib.integrations.starlette_client import OAuth

import gist_authlib
from gist_authlib import AsyncGistClient, GistAPIError, GistClient, GistProvider
from gist_authlib.api import Contact, Teammate
from gist_authlib.client import RefreshSettings, RetryPolicy
from gist_authlib.errors import (
    GistConnectionError,
    InsufficientScopeError,
    InvalidTokenResponseError,
    NotFoundError,
    RateLimitedError,
    TokenRevokedError,
)
from gist_authlib.sandbox import GistSandbox, RateLimit, SandboxClient, ServerThread, create_app

ALL_SCOPES = tuple(gist_authlib.OFFICIAL_SCOPES)


class CountingTransport(httpx2.BaseTransport):
    """The real HTTP transport, counting what goes through it (the client's transport= seam)."""

    def __init__(self) -> None:
        self.inner = httpx2.HTTPTransport()
        self.requests: list[httpx2.Request] = []

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


@dataclass
class Gist:
    sandbox: GistSandbox
    url: str
    token: str
    slept: list[float]

    def client(self, token: str | dict[str, Any] | None = None, **kwargs: Any) -> GistClient:
        kwargs.setdefault("sleep", self.slept.append)
        return GistClient(token or self.token, base_url=self.url, **kwargs)


@pytest.fixture
def gist() -> Iterator[Gist]:
    sandbox = create_app(clients=[SandboxClient("cid", "csecret", ("http://127.0.0.1:9/cb",))], token_ttl=None)
    with ServerThread(sandbox) as server:
        yield Gist(sandbox, server.url, sandbox.issue_token("cid", ALL_SCOPES)["access_token"], [])


# --- resources -------------------------------------------------------------------------------------


def test_teammates_and_teams(gist: Gist) -> None:
    with gist.client() as client:
        teammates = client.teammates.list()
        assert [t.name for t in teammates] == [t["name"] for t in gist.sandbox.workspace.teammates]
        assert isinstance(teammates[0], Teammate) and isinstance(teammates[0].team_ids, list)
        assert client.teammates.get(teammates[1].id or 0) == teammates[1]
        teams = client.teams.list()
        assert [t.name for t in teams] == ["Support", "Sales"]
        assert client.teams.get(302).name == "Sales"


def test_unknown_fields_are_kept_not_dropped(gist: Gist) -> None:
    gist.sandbox.workspace.teammates[0]["timezone"] = "Europe/Dublin"
    with gist.client() as client:
        ada = client.teammates.list()[0]
    assert ada["timezone"] == "Europe/Dublin"
    assert ada.get("timezone") == "Europe/Dublin" and ada.raw["name"] == ada.name


def test_contacts_pages_and_iter_all_follow_every_page(gist: Gist) -> None:
    with gist.client() as client:
        created = client.contacts.upsert_many(
            [{"email": f"bulk{i}@example.com", "name": f"Bulk {i}"} for i in range(130)]
        )
        assert len(created) == 130
        first = client.contacts.list(per_page=60)
        assert len(first.items) == 60 and first.next is not None
        everyone = list(client.contacts.iter_all(per_page=60))
    assert len(everyone) == 135
    assert len({c.id for c in everyone}) == 135
    assert all(isinstance(c, Contact) for c in everyone)


def test_iter_all_without_next_links_walks_page_numbers(gist: Gist) -> None:
    # A server that gives no "pages" links: the walk goes on while pages are full.
    class NoLinks(httpx2.BaseTransport):
        def __init__(self) -> None:
            self.inner = httpx2.HTTPTransport()

        def handle_request(self, request: httpx2.Request) -> httpx2.Response:
            response = self.inner.handle_request(request)
            response.read()
            body = response.json()
            body.pop("pages", None)
            return httpx2.Response(response.status_code, json=body)

    with gist.client(transport=NoLinks()) as client:
        assert len(list(client.contacts.iter_all(per_page=2))) == 5


def test_find_upsert_and_delete_contacts(gist: Gist) -> None:
    with gist.client() as client:
        assert client.contacts.find(email="nobody@example.com") is None
        new = client.contacts.upsert(email="new@example.com", name="New Person")
        assert new.id is not None and new.created_at == new.updated_at
        again = client.contacts.upsert(email="new@example.com", name="Renamed")
        assert again.id == new.id and again.name == "Renamed"
        assert client.contacts.find(email="new@example.com") == again
        assert client.contacts.find(user_id="u-1001").name == "Beatrix"  # type: ignore[union-attr]
        assert client.contacts.get(new.id).email == "new@example.com"
        client.contacts.delete(new.id)
        with pytest.raises(NotFoundError):
            client.contacts.get(new.id)
        with pytest.raises(ValueError, match="exactly one"):
            client.contacts.find()


def test_tags(gist: Gist) -> None:
    with gist.client() as client:
        assert [t.name for t in client.tags.list()] == ["vip"]
        churn = client.tags.upsert("churn-risk")
        client.tags.apply("churn-risk", [{"email": "carlos@customer.example"}, {"user_id": "u-1003"}])
        tagged = [c.name for c in client.contacts.iter_all() if "churn-risk" in (c.tags or [])]
        assert tagged == ["Carlos", "Dmitri"]
        client.tags.remove("churn-risk", [{"email": "carlos@customer.example"}])
        assert "churn-risk" not in (client.contacts.find(email="carlos@customer.example").tags or [])  # type: ignore[union-attr]
        renamed = client.tags.upsert("at-risk", tag_id=churn.id)
        assert renamed.id == churn.id and renamed.name == "at-risk"
        client.tags.delete(churn.id or 0)
        assert [t.name for t in client.tags.list()] == ["vip"]


def test_token_info_and_the_raw_escape_hatch(gist: Gist) -> None:
    with gist.client() as client:
        info = client.token_info()
        assert (info.workspace_id, info.workspace_name) == (
            gist.sandbox.workspace.id,
            gist.sandbox.workspace.name,
        )
        assert client.get("teams")["teams"][0]["name"] == "Support"
        assert (
            client.request("GET", "contacts", params={"email": "emeka@customer.example"})["contact"]["name"] == "Emeka"
        )


def test_one_pooled_connection_is_reused(gist: Gist) -> None:
    transport = CountingTransport()
    with gist.client(transport=transport) as client:
        for _ in range(20):
            client.teammates.list()
        pool = transport.inner._pool  # read-only look at httpx2's pool: one connection served all 20
        assert len(pool.connections) == 1
    assert len(transport.requests) == 20


def test_from_api_key_and_from_authlib(gist: Gist) -> None:
    with GistClient.from_api_key(gist.token, base_url=gist.url) as client:
        assert len(client.teammates.list()) == 3
    app = gist_authlib.register(OAuth(), client_id="cid", client_secret="csecret", provider=GistProvider.at(gist.url))
    with GistClient.from_authlib(app, {"access_token": gist.token}) as client:
        assert client.base_url == gist.url + "/"
        assert len(client.teams.list()) == 2


# --- errors -----------------------------------------------------------------------------------------


def test_revoked_token_raises_and_calls_the_hook_once(gist: Gist) -> None:
    forgotten: list[dict[str, Any]] = []
    gist.sandbox.uninstall("cid")
    with gist.client(on_token_revoked=forgotten.append) as client, pytest.raises(TokenRevokedError) as info:
        client.teammates.list()
    assert info.value.status == 401
    assert forgotten == [{"access_token": gist.token}]
    assert gist.token not in str(info.value) and gist.token not in repr(info.value)


def test_missing_scope_names_the_scope(gist: Gist) -> None:
    narrow = gist.sandbox.issue_token("cid", ["read_teammates"])["access_token"]
    with gist.client(narrow) as client, pytest.raises(InsufficientScopeError) as info:
        client.tags.list()
    assert info.value.scope == "read_tags"
    assert "read_tags" in str(info.value)


def test_not_found(gist: Gist) -> None:
    with gist.client() as client, pytest.raises(NotFoundError) as info:
        client.teammates.get(424242)
    assert info.value.status == 404 and "teammates/424242" in str(info.value)


@pytest.mark.parametrize("token", [{"access_token": 5}, {"token_type": "bearer"}, {"access_token": ""}, ["x"]])
def test_unusable_tokens_are_refused_before_any_request(token: Any) -> None:
    with pytest.raises((InvalidTokenResponseError, TypeError)):
        GistClient(token, base_url="http://127.0.0.1:9/")


def test_the_token_never_leaves_the_api_origin(gist: Gist) -> None:
    transport = CountingTransport()
    with gist.client(transport=transport) as client, pytest.raises(ValueError, match="not the API's origin"):
        client.request("GET", "https://evil.example/contacts?page=2")
    assert transport.requests == []


# --- retries ----------------------------------------------------------------------------------------


def test_429_is_retried_after_the_pause_gist_asks_for(gist: Gist) -> None:
    gist.sandbox.fail_next_api_request(429, retry_after="2", count=2)
    with gist.client() as client:
        assert len(client.teammates.list()) == 3
    assert gist.slept == [2.0, 2.0]
    assert gist.sandbox.api_requests == 3


def test_retry_after_as_an_http_date(gist: Gist) -> None:
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    gist.sandbox.fail_next_api_request(503, retry_after=when)
    with gist.client() as client:
        client.teams.list()
    assert len(gist.slept) == 1 and 27 <= gist.slept[0] <= 31


def test_503_without_retry_after_backs_off_with_jitter_under_the_cap(gist: Gist) -> None:
    gist.sandbox.fail_next_api_request(503, count=3)
    policy = RetryPolicy(max_attempts=4, backoff_base=0.5, backoff_cap=1.0)
    with gist.client(retry=policy) as client:
        client.teams.list()
    assert len(gist.slept) == 3
    assert all(0 <= d <= bound for d, bound in zip(gist.slept, [0.5, 1.0, 1.0], strict=True))


def test_rate_limit_that_outlasts_the_retries_is_a_typed_error(gist: Gist) -> None:
    gist.sandbox.fail_next_api_request(429, retry_after="1", count=10)
    with gist.client(retry=RetryPolicy(max_attempts=3)) as client, pytest.raises(RateLimitedError) as info:
        client.teammates.list()
    assert info.value.retry_after == 1.0
    assert gist.sandbox.api_requests == 3


def test_no_retry_starts_past_the_deadline(gist: Gist) -> None:
    gist.sandbox.fail_next_api_request(429, retry_after="5", count=1)
    with gist.client(retry=RetryPolicy(deadline=2.0)) as client, pytest.raises(RateLimitedError):
        client.teammates.list()
    assert gist.slept == [] and gist.sandbox.api_requests == 1


def test_a_real_rate_limit_is_survived(gist: Gist) -> None:
    gist.sandbox.rate_limit = RateLimit(requests=3, per=1.0)
    with GistClient(gist.token, base_url=gist.url) as client:  # real sleeping, about one second
        started = time.monotonic()
        for _ in range(5):
            client.teams.list()
    assert 0.5 < time.monotonic() - started < 5
    assert gist.sandbox.api_requests > 5  # some answers were 429s, retried


def test_non_idempotent_post_is_never_repeated(gist: Gist) -> None:
    gist.sandbox.fail_next_api_request(503, retry_after="1")
    with gist.client() as client, pytest.raises(GistAPIError) as info:
        client.post("events", {"event_name": "signed_up", "email": "a@example.com"})
    assert info.value.status == 503
    assert gist.sandbox.api_requests == 1 and gist.slept == []
    gist.sandbox.fail_next_api_request(429, retry_after="1")
    with gist.client() as client, pytest.raises(RateLimitedError):
        client.post("events", {"event_name": "signed_up"})
    assert gist.sandbox.api_requests == 2 and gist.slept == []


def test_keyed_upserts_are_retried(gist: Gist) -> None:
    gist.sandbox.fail_next_api_request(503)
    with gist.client() as client:
        assert client.contacts.upsert(email="retry@example.com").email == "retry@example.com"
    assert gist.sandbox.api_requests == 2 and len(gist.slept) == 1


def test_connection_errors_are_retried_for_gets_only() -> None:
    closed = ServerThread()
    url = closed.url
    closed.stop()
    slept: list[float] = []
    transport = CountingTransport()
    with GistClient("tok", base_url=url, transport=transport, sleep=slept.append) as client:
        with pytest.raises(GistConnectionError):
            client.teams.list()
        assert len(transport.requests) == 4 and len(slept) == 3
        with pytest.raises(GistConnectionError):
            client.post("events", {"event_name": "x"})
        assert len(transport.requests) == 5  # the POST went out once


# --- async and refresh ------------------------------------------------------------------------------


def test_async_client_resources_and_errors(gist: Gist) -> None:
    async def scenario() -> tuple[list[str], int, str | None]:
        async with AsyncGistClient(gist.token, base_url=gist.url) as client:
            names = [t.name or "" for t in await client.teammates.list()]
            contacts = [c async for c in client.contacts.iter_all(per_page=2)]
            try:
                await AsyncGistClient(
                    gist.sandbox.issue_token("cid", ["read_teammates"])["access_token"], base_url=gist.url
                ).tags.list()
            except InsufficientScopeError as error:
                return names, len(contacts), error.scope
        return names, len(contacts), None

    names, count, scope = asyncio.run(scenario())
    assert names == [t["name"] for t in gist.sandbox.workspace.teammates]
    assert count == 5 and scope == "read_tags"


@pytest.fixture
def expiring() -> Iterator[tuple[GistSandbox, str]]:
    sandbox = create_app(clients=[SandboxClient("cid", "csecret", ("http://127.0.0.1:9/cb",))], token_ttl=3600)
    with ServerThread(sandbox) as server:
        yield sandbox, server.url


def test_100_concurrent_async_calls_with_an_expired_token_make_one_refresh(
    expiring: tuple[GistSandbox, str],
) -> None:
    sandbox, url = expiring
    token = sandbox.issue_token("cid", ALL_SCOPES, expires_in=3600)
    token["expires_at"] = int(time.time()) - 10  # expired as far as the client knows
    updates: list[dict[str, Any]] = []

    async def scenario() -> list[int]:
        refresh = RefreshSettings(f"{url}/oauth/token", "cid", "csecret")
        async with AsyncGistClient(token, base_url=url, refresh=refresh, on_token_update=updates.append) as client:
            results = await asyncio.gather(*(client.teams.list() for _ in range(100)))
            return [len(r) for r in results]

    assert asyncio.run(scenario()) == [2] * 100
    assert sandbox.refresh_requests == 1
    assert len(updates) == 1
    assert updates[0]["access_token"] != token["access_token"]
    assert updates[0]["refresh_token"] and updates[0]["expires_at"] > time.time()


def test_concurrent_threads_with_an_expired_token_make_one_refresh(expiring: tuple[GistSandbox, str]) -> None:
    sandbox, url = expiring
    token = sandbox.issue_token("cid", ALL_SCOPES, expires_in=3600)
    token["expires_at"] = int(time.time()) - 10
    updates: list[dict[str, Any]] = []
    refresh = RefreshSettings(f"{url}/oauth/token", "cid", "csecret")
    with GistClient(token, base_url=url, refresh=refresh, on_token_update=updates.append) as client:
        with ThreadPoolExecutor(max_workers=20) as pool:
            results = list(pool.map(lambda _: len(client.teams.list()), range(100)))
        assert client.token["access_token"] == updates[0]["access_token"]
    assert results == [2] * 100
    assert sandbox.refresh_requests == 1 and len(updates) == 1


def test_a_refused_refresh_is_a_typed_error_and_keeps_the_old_token(
    expiring: tuple[GistSandbox, str],
) -> None:
    sandbox, url = expiring
    token = sandbox.issue_token("cid", ALL_SCOPES, expires_in=3600)
    token["expires_at"] = int(time.time()) - 10
    refresh = RefreshSettings(f"{url}/oauth/token", "cid", "wrong-secret")
    with (
        GistClient(token, base_url=url, refresh=refresh) as client,
        pytest.raises(gist_authlib.errors.TokenEndpointError),
    ):
        client.teams.list()
    assert client.token["access_token"] == token["access_token"]


def test_client_against_the_independent_server() -> None:
    from support.independent_server import CONTACTS, TEAMMATES, Client, IndependentServer

    with IndependentServer(Client("cid", "secret", ["http://127.0.0.1:9/cb"])) as server:
        server.tokens.add("independent-token")
        server.throttle_next = 1
        slept: list[float] = []
        with GistClient("independent-token", base_url=server.url, sleep=slept.append) as client:
            assert [t.name for t in client.teammates.list()] == [t["name"] for t in TEAMMATES]  # after a 429
            assert [c.email for c in client.contacts.iter_all(per_page=10)] == [c["email"] for c in CONTACTS]
    assert slept == [1.0]
    assert server.api_requests == 1 + 1 + 3  # the 429, the retry, and three pages of contacts


# --- one pool for many tokens -----------------------------------------------------------------------------


def test_clients_for_many_tokens_share_one_pool(gist: Gist) -> None:
    transport = CountingTransport()
    ada = gist.sandbox.issue_token("cid", ["read_teams"])["access_token"]
    bob = gist.sandbox.issue_token("cid", ["read_teammates"])["access_token"]
    with GistClient(None, base_url=gist.url, transport=transport) as pool:
        with pytest.raises(ValueError, match="no token"):
            pool.teams.list()
        as_ada, as_bob = pool.with_token(ada), pool.with_token(bob)
        assert len(as_ada.teams.list()) == 2
        assert len(as_bob.teammates.list()) == 3
        with pytest.raises(InsufficientScopeError):
            as_ada.teammates.list()  # each keeps its own token and scopes
        as_ada.close()  # a sibling leaves the pool open
        assert len(as_bob.teammates.list()) == 3
        assert len(transport.inner._pool.connections) == 1  # read-only look: one connection served both users
    sent = [r.headers["authorization"] for r in transport.requests]
    assert sent == [f"Bearer {ada}", f"Bearer {bob}", f"Bearer {ada}", f"Bearer {bob}"]


def test_for_subject_reads_the_store_and_a_401_forgets_the_token(gist: Gist) -> None:
    from gist_authlib.tokens import MemoryTokenStore

    store = MemoryTokenStore()
    token = gist.sandbox.issue_token("cid", ["read_teams"])
    store.save("user-1", token)
    with GistClient(None, base_url=gist.url) as pool:
        as_user = pool.for_subject(store, "user-1")
        assert len(as_user.teams.list()) == 2
        gist.sandbox.revoke(token["access_token"])
        with pytest.raises(TokenRevokedError):
            as_user.teams.list()
    assert store.get("user-1") is None


def test_async_clients_for_many_tokens_share_one_pool(gist: Gist) -> None:
    first = gist.sandbox.issue_token("cid", ["read_teams"])["access_token"]
    second = gist.sandbox.issue_token("cid", ["read_teams"])["access_token"]

    async def scenario() -> list[int]:
        async with AsyncGistClient(None, base_url=gist.url) as pool:
            clients = [pool.with_token(first), pool.with_token(second)]
            results = await asyncio.gather(*(c.teams.list() for c in clients for _ in range(10)))
            return [len(r) for r in results]

    assert asyncio.run(scenario()) == [2] * 20

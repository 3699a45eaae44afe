"""Every public method of GistClient and of AsyncGistClient, each scenario written once and run on both sides.

The scenarios talk to the sandbox on loopback (one uvicorn server for the module, a fresh sandbox behind it
for each test). The async client is driven from the test through anyio's blocking portal: each coroutine
it returns is awaited in the portal's event loop and each async iterator is drained there, so what runs is
AsyncGistClient's own code, against a real server.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx2
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal

import gist_authlib
from gist_authlib import AsyncGistClient, GistAPIError, GistClient
from gist_authlib.api import Contact, Tag, Team, Teammate
from gist_authlib.api._resources import (
    AsyncContacts,
    AsyncTags,
    AsyncTeammates,
    AsyncTeams,
    Contacts,
    Tags,
    Teammates,
    Teams,
)
from gist_authlib.client import RefreshSettings
from gist_authlib.errors import (
    GistConnectionError,
    InsufficientScopeError,
    NotFoundError,
    RateLimitedError,
    TokenEndpointError,
    TokenRevokedError,
)
from gist_authlib.sandbox import GistSandbox, SandboxClient, ServerThread, create_app
from gist_authlib.tokens import MemoryTokenStore

ALL_SCOPES = tuple(gist_authlib.OFFICIAL_SCOPES)
SIDES = ["sync", "async"]


class Switch:
    """An ASGI app that forwards to whichever sandbox the current test set: one server for the module."""

    def __init__(self) -> None:
        self.app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[ServerThread, Switch]]:
    switch = Switch()
    with ServerThread(switch) as thread:
        yield thread, switch


@pytest.fixture(scope="module")
def portal() -> Iterator[BlockingPortal]:
    with start_blocking_portal() as running:
        yield running


class Blocking:
    """An AsyncGistClient (or one of its resources) seen from blocking code through the portal."""

    def __init__(self, target: Any, portal: BlockingPortal) -> None:
        self._target = target
        self._portal = portal

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._target, name)
        if not callable(value):
            return self._view(value)

        def call(*args: Any, **kwargs: Any) -> Any:
            return self._view(value(*args, **kwargs))

        return call

    def _view(self, value: Any) -> Any:
        if inspect.isawaitable(value):
            return self._view(self._portal.call(_awaited, value))
        if isinstance(value, AsyncIterator):
            return self._drain(value)
        if isinstance(value, (AsyncGistClient, AsyncTeammates, AsyncTeams, AsyncContacts, AsyncTags)):
            return Blocking(value, self._portal)
        return value

    def _drain(self, items: AsyncIterator[Any]) -> Iterator[Any]:
        while True:
            try:
                yield self._portal.call(items.__anext__)
            except StopAsyncIteration:
                return

    def close(self) -> None:
        self._portal.call(self._target.aclose)

    def __enter__(self) -> Blocking:
        assert self._portal.call(self._target.__aenter__) is self._target
        return self

    def __exit__(self, *exc: object) -> None:
        self._portal.call(self._target.__aexit__, *exc)


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


class Recording(httpx2.BaseTransport, httpx2.AsyncBaseTransport):
    """The real HTTP transport for either client, recording each request; ``edit`` may rewrite answers."""

    def __init__(self, edit: Callable[[httpx2.Response], httpx2.Response] | None = None) -> None:
        self.requests: list[httpx2.Request] = []
        self.edit = edit
        self.inner = httpx2.HTTPTransport()
        self.inner_async = httpx2.AsyncHTTPTransport()

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        response = self.inner.handle_request(request)
        if self.edit is None:
            return response
        response.read()
        return self.edit(response)

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        response = await self.inner_async.handle_async_request(request)
        if self.edit is None:
            return response
        await response.aread()
        return self.edit(response)

    def pool_size(self) -> int:
        """Open connections in whichever pool served (a read-only look at httpx2's pool)."""
        return len(self.inner._pool.connections) + len(self.inner_async._pool.connections)


@dataclass
class Side:
    """One side (sync or async) for a test: a fresh sandbox, and clients of that side for it."""

    name: str
    portal: BlockingPortal
    sandbox: GistSandbox
    url: str
    token: str
    slept: list[float] = field(default_factory=list)

    def client(self, token: Any = "", **kwargs: Any) -> Any:
        """A GistClient, or an AsyncGistClient seen through the portal (``sleep`` records the pauses)."""
        token = self.token if token == "" else token
        kwargs.setdefault("base_url", self.url)
        if self.name == "sync":
            kwargs.setdefault("sleep", self.slept.append)
            return GistClient(token, **kwargs)

        async def sleep(seconds: float) -> None:
            self.slept.append(seconds)

        kwargs.setdefault("sleep", sleep)
        # Made in the event loop that will use it.
        return Blocking(self.portal.call(lambda: AsyncGistClient(token, **kwargs)), self.portal)

    def from_store(self, store: Any, subject: str, **kwargs: Any) -> Any:
        cls = GistClient if self.name == "sync" else AsyncGistClient
        client = self.portal.call(lambda: cls.from_store(store, subject, base_url=self.url, **kwargs))
        return client if self.name == "sync" else Blocking(client, self.portal)

    def hook(self, seen: list[Any]) -> Callable[[Any], Any]:
        """A hook that records its argument: a plain function, or on the async side a coroutine function."""
        if self.name == "sync":
            return seen.append

        async def record(value: Any) -> None:
            await asyncio.sleep(0)
            seen.append(value)

        return record


def make_side(name: str, portal: BlockingPortal, server: tuple[ServerThread, Switch], **settings: Any) -> Side:
    thread, switch = server
    settings.setdefault("token_ttl", None)
    switch.app = create_app(clients=[SandboxClient("cid", "csecret", ("http://127.0.0.1:9/cb",))], **settings)
    token = switch.app.issue_token("cid", ALL_SCOPES)["access_token"]
    return Side(name, portal, switch.app, thread.url, token)


@pytest.fixture(params=SIDES)
def side(request: pytest.FixtureRequest, portal: BlockingPortal, server: tuple[ServerThread, Switch]) -> Side:
    return make_side(request.param, portal, server)


@pytest.fixture(params=SIDES)
def expiring(request: pytest.FixtureRequest, portal: BlockingPortal, server: tuple[ServerThread, Switch]) -> Side:
    return make_side(request.param, portal, server, token_ttl=3600)


# --- resources ----------------------------------------------------------------------------------------------


def test_teammates_and_teams(side: Side) -> None:
    with side.client() as client:
        teammates = client.teammates.list()
        assert [t.name for t in teammates] == [t["name"] for t in side.sandbox.workspace.teammates]
        assert all(isinstance(t, Teammate) for t in teammates)
        assert client.teammates.get(teammates[1].id) == teammates[1]
        teams = client.teams.list()
        assert [t.name for t in teams] == ["Support", "Sales"] and isinstance(teams[0], Team)
        assert client.teams.get(302).name == "Sales"


def test_contact_pages_and_iter_all(side: Side) -> None:
    with side.client() as client:
        created = client.contacts.upsert_many([{"email": f"bulk{i}@example.com"} for i in range(70)])
        assert len(created) == 70 and all(isinstance(c, Contact) and c.id for c in created)
        first = client.contacts.list(per_page=60)
        assert len(first.items) == 60 and first.next is not None
        second = client.contacts.list(page=2, per_page=60)
        assert len(second.items) == 15 and second.next is None
        everyone = list(client.contacts.iter_all(per_page=60))
    assert len({c.id for c in everyone}) == 75
    assert {c.email for c in created} <= {c.email for c in everyone}


def test_iter_all_without_next_links_walks_page_numbers(side: Side) -> None:
    def drop_links(response: httpx2.Response) -> httpx2.Response:
        body = response.json()
        body.pop("pages", None)
        return httpx2.Response(response.status_code, json=body)

    transport = Recording(edit=drop_links)
    with side.client(transport=transport) as client:
        assert len(list(client.contacts.iter_all(per_page=2))) == 5
    assert [r.url.params["page"] for r in transport.requests] == ["1", "2", "3"]


def test_find_upsert_get_and_delete_contacts(side: Side) -> None:
    with side.client() as client:
        assert client.contacts.find(email="nobody@example.com") is None
        new = client.contacts.upsert(email="new@example.com", name="New Person")
        again = client.contacts.upsert(email="new@example.com", name="Renamed")
        assert new.id is not None and again.id == new.id and again.name == "Renamed"
        assert client.contacts.find(email="new@example.com") == again
        assert client.contacts.find(user_id="u-1001").name == "Beatrix"
        assert client.contacts.get(new.id).email == "new@example.com"
        assert client.contacts.delete(new.id) is None
        with pytest.raises(NotFoundError):
            client.contacts.get(new.id)
        assert client.contacts.find(email="new@example.com") is None
        with pytest.raises(ValueError, match="exactly one"):
            client.contacts.find()
        with pytest.raises(ValueError, match="needs an email"):
            client.contacts.upsert(name="No Key")
    assert all(c["email"] != "new@example.com" for c in side.sandbox.workspace.contacts)


def test_tags(side: Side) -> None:
    with side.client() as client:
        assert [t.name for t in client.tags.list()] == ["vip"]
        churn = client.tags.upsert("churn-risk")
        assert isinstance(churn, Tag) and churn.name == "churn-risk"
        client.tags.apply("churn-risk", [{"email": "carlos@customer.example"}, {"user_id": "u-1003"}])
        tagged = [c.name for c in client.contacts.iter_all() if "churn-risk" in (c.tags or [])]
        assert tagged == ["Carlos", "Dmitri"]
        client.tags.remove("churn-risk", [{"email": "carlos@customer.example"}])
        assert "churn-risk" not in (client.contacts.find(email="carlos@customer.example").tags or [])
        assert "churn-risk" in (client.contacts.find(user_id="u-1003").tags or [])
        renamed = client.tags.upsert("at-risk", tag_id=churn.id)
        assert renamed.id == churn.id and renamed.name == "at-risk"
        assert client.tags.delete(churn.id) is None
        assert [t.name for t in client.tags.list()] == ["vip"]


# --- the raw API --------------------------------------------------------------------------------------------


def test_token_info_request_get_post_and_delete(side: Side) -> None:
    with side.client() as client:
        info = client.token_info()
        assert (info.workspace_id, info.workspace_name) == (side.sandbox.workspace.id, side.sandbox.workspace.name)
        assert client.get("teams")["teams"][0]["name"] == "Support"
        assert client.get("contacts", email="emeka@customer.example")["contact"]["name"] == "Emeka"
        found = client.request("GET", "contacts", params={"user_id": "u-1001"}, scope="read_contact")
        assert found["contact"]["name"] == "Beatrix"
        event = client.post("events", {"event_name": "signed_up", "email": "a@example.com"})["event"]
        assert event["event_name"] == "signed_up" and side.sandbox.workspace.events[-1]["id"] == event["id"]
        contact_id = found["contact"]["id"]
        client.delete(f"contacts/{contact_id}")
    assert all(c["id"] != contact_id for c in side.sandbox.workspace.contacts)


def test_put_and_patch_send_their_method_and_body(side: Side) -> None:
    def echo(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(
            200, json={"method": request.method, "path": request.url.path, "body": request.content.decode()}
        )

    with side.client(transport=httpx2.MockTransport(echo)) as client:
        assert client.put("conversations/7", {"state": "open"}) == {
            "method": "PUT",
            "path": "/conversations/7",
            "body": '{"state":"open"}',
        }
        assert client.patch("conversations/7", {"state": "closed"})["body"] == '{"state":"closed"}'
        assert client.patch("conversations/7", {"state": "closed"})["method"] == "PATCH"


def test_an_error_answer_to_put_or_patch_is_typed(side: Side) -> None:
    with side.client() as client:
        for send, method in ((client.put, "PUT"), (client.patch, "PATCH")):
            with pytest.raises(GistAPIError) as info:
                send("teams", {"name": "x"})  # the sandbox has no PUT or PATCH here
            assert info.value.status == 405 and method in str(info.value)


# --- errors -------------------------------------------------------------------------------------------------


def test_revoked_token_raises_and_calls_the_hook_once(side: Side) -> None:
    forgotten: list[dict[str, Any]] = []
    side.sandbox.uninstall("cid")
    with side.client(on_token_revoked=forgotten.append) as client, pytest.raises(TokenRevokedError) as info:
        client.teammates.list()
    assert info.value.status == 401 and forgotten == [{"access_token": side.token}]
    assert side.token not in str(info.value) and side.token not in repr(info.value)


def test_missing_scope_and_not_found(side: Side) -> None:
    narrow = side.sandbox.issue_token("cid", ["read_teammates"])["access_token"]
    with side.client(narrow) as client:
        with pytest.raises(InsufficientScopeError) as scope:
            client.tags.list()
        assert scope.value.scope == "read_tags"
        with pytest.raises(NotFoundError) as missing:
            client.teammates.get(424242)
    assert "teammates/424242" in str(missing.value)


def test_the_token_never_leaves_the_api_origin(side: Side) -> None:
    transport = Recording()
    with side.client(transport=transport) as client, pytest.raises(ValueError, match="not the API's origin"):
        client.request("GET", "https://evil.example/contacts?page=2")
    assert transport.requests == []


# --- retries ------------------------------------------------------------------------------------------------


def test_429_is_retried_after_the_pause_gist_asks_for(side: Side) -> None:
    side.sandbox.fail_next_api_request(429, retry_after="2", count=2)
    with side.client() as client:
        assert len(client.teammates.list()) == 3
    assert side.slept == [2.0, 2.0] and side.sandbox.api_requests == 3


def test_a_rate_limit_that_outlasts_the_retries_is_a_typed_error(side: Side) -> None:
    side.sandbox.fail_next_api_request(429, retry_after="1", count=10)
    with side.client(retry=gist_authlib.client.RetryPolicy(max_attempts=3)) as client, pytest.raises(RateLimitedError):
        client.teams.list()
    assert side.sandbox.api_requests == 3 and side.slept == [1.0, 1.0]


def test_posts_are_not_repeated_but_keyed_upserts_are(side: Side) -> None:
    side.sandbox.fail_next_api_request(503, retry_after="1")
    with side.client() as client:
        with pytest.raises(GistAPIError) as info:
            client.post("events", {"event_name": "signed_up"})
        assert info.value.status == 503 and side.sandbox.api_requests == 1 and side.slept == []
        side.sandbox.fail_next_api_request(503)
        assert client.contacts.upsert(email="retry@example.com").email == "retry@example.com"
    assert side.sandbox.api_requests == 3 and len(side.slept) == 1


def test_connection_errors_are_retried_for_gets_only(side: Side) -> None:
    closed = ServerThread()
    url = closed.url
    closed.stop()
    transport = Recording()
    with side.client("tok", base_url=url, transport=transport) as client:
        with pytest.raises(GistConnectionError):
            client.teams.list()
        assert len(transport.requests) == 4 and len(side.slept) == 3
        with pytest.raises(GistConnectionError):
            client.post("events", {"event_name": "x"})
    assert len(transport.requests) == 5


# --- refresh ------------------------------------------------------------------------------------------------


def test_an_expired_token_is_refreshed_once_and_the_hook_gets_the_new_one(expiring: Side) -> None:
    sandbox = expiring.sandbox
    token = sandbox.issue_token("cid", ALL_SCOPES, expires_in=3600)
    token["expires_at"] = int(time.time()) - 10  # expired as far as the client knows
    updates: list[dict[str, Any]] = []
    refresh = RefreshSettings(f"{expiring.url}/oauth/token", "cid", "csecret")
    with expiring.client(token, refresh=refresh, on_token_update=expiring.hook(updates)) as client:
        for _ in range(3):
            assert len(client.teams.list()) == 2
        assert client.token["access_token"] == updates[0]["access_token"] != token["access_token"]
    assert sandbox.refresh_requests == 1 and len(updates) == 1
    assert updates[0]["expires_at"] > time.time() and updates[0]["refresh_token"]


def test_a_refused_refresh_is_a_typed_error_and_keeps_the_old_token(expiring: Side) -> None:
    token = expiring.sandbox.issue_token("cid", ALL_SCOPES, expires_in=3600)
    token["expires_at"] = int(time.time()) - 10
    refresh = RefreshSettings(f"{expiring.url}/oauth/token", "cid", "wrong-secret")
    with expiring.client(token, refresh=refresh) as client:
        with pytest.raises(TokenEndpointError):
            client.teams.list()
        assert client.token["access_token"] == token["access_token"]


def test_a_stored_token_is_refreshed_through_the_store(expiring: Side) -> None:
    store = MemoryTokenStore()
    token = expiring.sandbox.issue_token("cid", ALL_SCOPES, expires_in=3600)
    token["expires_at"] = int(time.time()) - 10
    store.save("user-1", token)
    refresh = RefreshSettings(f"{expiring.url}/oauth/token", "cid", "csecret")
    with expiring.from_store(store, "user-1", refresh=refresh) as client:
        assert len(client.teams.list()) == 2
        stored = store.get("user-1")
        assert stored is not None and stored.token["access_token"] == client.token["access_token"]
    assert stored.token["access_token"] != token["access_token"] and stored.version == 2
    assert expiring.sandbox.refresh_requests == 1


# --- one pool for many tokens, and closing ------------------------------------------------------------------


def test_clients_for_many_tokens_share_one_pool_and_a_401_forgets_a_stored_token(side: Side) -> None:
    transport = Recording()
    ada = side.sandbox.issue_token("cid", ["read_teams"])
    bob = side.sandbox.issue_token("cid", ["read_teammates"])["access_token"]
    store = MemoryTokenStore()
    store.save("ada", ada)
    with side.client(None, transport=transport) as pool:
        with pytest.raises(ValueError, match="no token"):
            pool.teams.list()
        as_ada, as_bob = pool.for_subject(store, "ada"), pool.with_token(bob)
        assert len(as_ada.teams.list()) == 2 and len(as_bob.teammates.list()) == 3
        with pytest.raises(InsufficientScopeError):
            as_ada.teammates.list()
        as_bob.close()  # a sibling leaves the pool open
        side.sandbox.revoke(ada["access_token"])
        with pytest.raises(TokenRevokedError):
            as_ada.teams.list()
        assert transport.pool_size() == 1
    assert store.get("ada") is None
    ada_header, bob_header = f"Bearer {ada['access_token']}", f"Bearer {bob}"
    sent = [r.headers["authorization"] for r in transport.requests]
    assert sent == [ada_header, bob_header, ada_header, ada_header]


def test_leaving_the_context_closes_the_pool(side: Side) -> None:
    client = side.client()
    with client:
        assert len(client.teams.list()) == 2
    with pytest.raises(RuntimeError, match="closed"):
        client.teams.list()
    other = side.client()
    other.close()
    with pytest.raises(RuntimeError, match="closed"):
        other.teams.list()


# --- the methods look like methods ----------------------------------------------------------------------------

PAIRS = [(GistClient, AsyncGistClient), (Teammates, AsyncTeammates), (Teams, AsyncTeams)]
PAIRS += [(Contacts, AsyncContacts), (Tags, AsyncTags)]


def _public_names(cls: type) -> set[str]:
    return {name for name in dir(cls) if not name.startswith("_")}


@pytest.mark.parametrize(("sync_cls", "async_cls"), PAIRS)
def test_both_sides_have_the_same_methods(sync_cls: type, async_cls: type) -> None:
    difference = _public_names(sync_cls) ^ _public_names(async_cls)
    assert difference == ({"close", "aclose"} if sync_cls is GistClient else set())


def test_methods_have_their_signature_and_docs_and_async_ones_are_coroutine_functions(portal: BlockingPortal) -> None:
    sync = GistClient("tok", base_url="http://127.0.0.1:9/")
    async_client = portal.call(lambda: AsyncGistClient("tok", base_url="http://127.0.0.1:9/"))
    for client in (sync, async_client):
        find = client.contacts.find
        assert str(inspect.signature(find)) == "(*, email: 'str | None' = None, user_id: 'str | None' = None)"
        assert find.__name__ == "find" and "email or user_id" in (find.__doc__ or "")
        assert str(inspect.signature(client.get)) == "(path: 'str', **params: 'QueryValue')"
        assert "Raises:" in (client.request.__doc__ or "")
    assert inspect.iscoroutinefunction(async_client.contacts.find)
    assert inspect.iscoroutinefunction(async_client.token_info)
    assert not inspect.iscoroutinefunction(sync.contacts.find)
    assert isinstance(async_client.contacts.iter_all(), AsyncIterator)
    assert isinstance(sync.contacts.iter_all(), Iterator)
    sync.close()
    portal.call(async_client.aclose)

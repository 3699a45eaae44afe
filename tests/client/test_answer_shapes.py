"""Every answer from Gist is checked by shape: anything unexpected is one typed error that names the call, never
what Gist sent. Both clients, every resource, through httpx2's transport seam (MockTransport)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx2
import pytest

from gist_authlib import AsyncGistClient, GistClient
from gist_authlib.api import Contact, Tag, Team, Teammate, TokenInfo
from gist_authlib.errors import GistAPIError, UnexpectedAnswerError

#: A marker in every wrong answer: no message or repr may repeat it.
SECRET = "ada@example.com-SECRET-4242"

#: (what is called, the path it asks for, the wrapping key, one good object under it)
CALLS: list[tuple[str, Callable[[Any], Any], str, str, dict[str, Any]]] = [
    ("teammates.list", lambda c: c.teammates.list(), "teammates", "teammates", {"id": 1, "name": "Ada"}),
    ("teammates.get", lambda c: c.teammates.get(1), "teammates/1", "teammate", {"id": 1, "name": "Ada"}),
    ("teams.list", lambda c: c.teams.list(), "teams", "teams", {"id": 2, "name": "Support"}),
    ("teams.get", lambda c: c.teams.get(2), "teams/2", "team", {"id": 2, "name": "Support"}),
    ("contacts.list", lambda c: c.contacts.list(), "contacts", "contacts", {"id": 3, "email": "a@b.c"}),
    ("contacts.get", lambda c: c.contacts.get(3), "contacts/3", "contact", {"id": 3, "email": "a@b.c"}),
    ("contacts.find", lambda c: c.contacts.find(email="a@b.c"), "contacts", "contact", {"id": 3}),
    ("contacts.upsert", lambda c: c.contacts.upsert(email="a@b.c"), "contacts", "contact", {"id": 3}),
    (
        "contacts.upsert_many",
        lambda c: c.contacts.upsert_many([{"email": "a@b.c"}]),
        "contacts/batch",
        "contacts",
        {"id": 3},
    ),
    ("tags.list", lambda c: c.tags.list(), "tags", "tags", {"id": 4, "name": "vip"}),
    ("tags.upsert", lambda c: c.tags.upsert("vip"), "tags", "tag", {"id": 4, "name": "vip"}),
    ("tags.apply", lambda c: c.tags.apply("vip", [{"id": 3}]), "tags", "tag", {"id": 4, "name": "vip"}),
]
LISTS = {"teammates", "teams", "contacts", "tags"}


def wrong_answers(key: str, good: dict[str, Any]) -> dict[str, Any]:
    """Answers of the wrong shape for a call whose answer wraps ``good`` under ``key`` (as JSON text)."""
    many = key in LISTS
    wrong_field = {**good, "id": SECRET} if "id" in good else {**good, "name": [SECRET]}
    answers: dict[str, Any] = {
        "not JSON": f"<html>{SECRET}</html>",
        "a JSON array": [SECRET],
        "a JSON string": SECRET,
        "an empty object": {},
        "the key of another resource": {"other": [good] if many else good, "note": SECRET},
        "the key's value of the wrong type": {key: SECRET if many else [SECRET]},
    }
    if many:
        answers["an item that is not an object"] = {key: [good, SECRET]}
        answers["an item with a field of the wrong type"] = {key: [good, wrong_field]}
    else:
        answers["a field of the wrong type"] = {key: wrong_field}
    return {
        name: value if isinstance(value, str) and name == "not JSON" else json.dumps(value)
        for name, value in answers.items()
    }


def answering(body: str, status: int = 200) -> httpx2.MockTransport:
    return httpx2.MockTransport(
        lambda request: httpx2.Response(status, text=body, headers={"content-type": "application/json"})
    )


def call_on(side: str, transport: httpx2.MockTransport, call: Callable[[Any], Any], **settings: Any) -> Any:
    """Run ``call`` on a client of ``side`` (sync, or async in a fresh event loop) over ``transport``."""
    if side == "sync":
        with GistClient("tok", base_url="https://api.example/", transport=transport, **settings) as client:
            return call(client)

    async def run() -> Any:
        async with AsyncGistClient("tok", base_url="https://api.example/", transport=transport, **settings) as client:
            return await call(client)

    return asyncio.run(run())


CASES = [
    pytest.param(name, call, path, wrong, body, id=f"{name}: {wrong}")
    for name, call, path, key, good in CALLS
    for wrong, body in wrong_answers(key, good).items()
]


@pytest.mark.parametrize("side", ["sync", "async"])
@pytest.mark.parametrize(("name", "call", "path", "wrong", "body"), CASES)
def test_every_wrong_shape_is_one_typed_error_that_names_the_call_and_not_the_answer(
    side: str, name: str, call: Callable[[Any], Any], path: str, wrong: str, body: str
) -> None:
    with pytest.raises(UnexpectedAnswerError) as raised:
        call_on(side, answering(body), call)
    error = raised.value
    assert isinstance(error, GistAPIError) and error.error_code == "unexpected_answer" and error.status == 200
    assert f" {path} " in str(error) and error.path == path and error.method in ("GET", "POST")
    assert SECRET not in str(error) and SECRET not in repr(error) and error.body is None
    assert error.status_code == 502  # what a page reporting it carries


@pytest.mark.parametrize("side", ["sync", "async"])
@pytest.mark.parametrize(("name", "call", "path", "key", "good"), [pytest.param(*c, id=c[0]) for c in CALLS])
def test_the_right_shape_still_gives_typed_objects(
    side: str, name: str, call: Callable[[Any], Any], path: str, key: str, good: dict[str, Any]
) -> None:
    answer = {key: [good, {**good, "extra": {"kept": True}}] if key in LISTS else good}
    result = call_on(side, answering(json.dumps(answer)), call)
    objects = result.items if hasattr(result, "items") and not isinstance(result, list) else result
    objects = objects if isinstance(objects, list) else [objects]
    assert all(isinstance(o, (Teammate, Team, Contact, Tag)) for o in objects)
    assert [o.id for o in objects] == [good.get("id")] * len(objects)


def test_the_issue_case_teammates_answering_an_empty_object() -> None:
    """Issue 27: ``GET /teammates`` answering ``{}`` raised a bare ValueError."""
    with pytest.raises(UnexpectedAnswerError, match=r"GET teammates with HTTP 200, but the answer has no 'teammates'"):
        call_on("sync", answering("{}"), lambda c: c.teammates.list())


def test_null_stands_for_an_empty_list_and_pages_are_checked_too() -> None:
    assert call_on("sync", answering('{"teammates": null}'), lambda c: c.teammates.list()) == []
    page = call_on("sync", answering('{"contacts": [], "pages": {"next": null}}'), lambda c: c.contacts.list())
    assert page.items == [] and page.next is None
    for pages in ('"pages": "p2"', '"pages": {"next": 2}', '"pages": []'):
        with pytest.raises(UnexpectedAnswerError, match="its 'pages"):
            call_on("sync", answering(f'{{"contacts": [], {pages}}}'), lambda c: c.contacts.list())


def test_a_wrong_item_is_named_by_its_place_and_field() -> None:
    body = json.dumps({"teammates": [{"id": 1}, {"id": 2, "email": 7}]})
    with pytest.raises(UnexpectedAnswerError) as raised:
        call_on("sync", answering(body), lambda c: c.teammates.list())
    assert raised.value.problem == "item 1 of its 'teammates' has a JSON number as 'email', not a string"


@pytest.mark.parametrize("side", ["sync", "async"])
def test_token_info_is_checked_and_accepts_gists_alphanumeric_workspace_ids(side: str) -> None:
    info = call_on(side, answering('{"workspace_id": "nrrjryb4", "workspace_name": "Acme"}'), lambda c: c.token_info())
    assert info == TokenInfo(raw={}, workspace_id="nrrjryb4", workspace_name="Acme")
    assert call_on(side, answering('{"workspace_id": 100001}'), lambda c: c.token_info()).workspace_id == 100001
    for body in ("[]", '"x"', "null", '{"workspace_id": [1]}', '{"workspace_id": 1, "workspace_name": 2}', "<p>"):
        with pytest.raises(UnexpectedAnswerError, match="GET token with HTTP 200"):
            call_on(side, answering(body), lambda c: c.token_info())


def test_token_info_from_json_is_the_check_for_a_value_already_read() -> None:
    """What the login core calls on the JSON of ``GET /token`` it read itself."""
    assert TokenInfo.from_json({"workspace_id": "w1"}).workspace_id == "w1"
    for value in ([], None, "w1", 3, {"workspace_id": True}, {"workspace_id": {"id": SECRET}}):
        with pytest.raises(UnexpectedAnswerError) as raised:
            TokenInfo.from_json(value)
        assert raised.value.error_code == "unexpected_answer" and "GET token" in str(raised.value)
        assert SECRET not in str(raised.value)


def test_raw_calls_accept_any_json_but_not_garbage() -> None:
    assert call_on("sync", answering("[1, 2]"), lambda c: c.get("segments")) == [1, 2]
    with pytest.raises(UnexpectedAnswerError, match="GET segments with HTTP 200, but its body is not JSON"):
        call_on("sync", answering(f"<{SECRET}>"), lambda c: c.get("segments"))


def test_an_error_status_keeps_its_own_error_whatever_its_body() -> None:
    with pytest.raises(GistAPIError) as raised:
        call_on("sync", answering("[]", status=422), lambda c: c.teammates.list())
    assert type(raised.value) is GistAPIError and raised.value.status == 422


@pytest.mark.parametrize("side", ["sync", "async"])
def test_max_answer_bytes_caps_every_answer_and_the_cap_is_a_setting(side: str) -> None:
    body = json.dumps({"teammates": [{"id": i, "name": "x" * 100} for i in range(20)]})  # about 2.6 KB
    assert len(call_on(side, answering(body), lambda c: c.teammates.list())) == 20  # far under the default
    with pytest.raises(UnexpectedAnswerError) as raised:
        call_on(side, answering(body), lambda c: c.teammates.list(), max_answer_bytes=1000)
    error = raised.value
    assert error.error_code == "answer_too_large" and error.limit == 1000 and error.status == 200
    assert "GET teammates" in str(error) and "max_answer_bytes (1000)" in str(error)
    with pytest.raises(UnexpectedAnswerError, match="max_answer_bytes"):  # an error status is capped as well
        call_on(side, answering(body, status=500), lambda c: c.teammates.list(), max_answer_bytes=1000)

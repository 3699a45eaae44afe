"""Gist's REST resources over a client: teammates, teams, contacts, tags.

Each endpoint is written once, as a method that describes its :class:`Call` (method, path, body, how to
read the answer, whether it may be repeated, the scope it needs). ``Teammates`` and ``AsyncTeammates``
(and so on) are the same class on the synchronous and the asynchronous side; see :mod:`._endpoint`.
"""

from __future__ import annotations

import builtins  # the resources' methods named "list" shadow the builtin inside their classes
from collections.abc import Callable, Iterable, Mapping
from typing import Final, Generic, TypeVar
from urllib.parse import quote

from .._types import JSON
from ._endpoint import (
    AsyncRunner,
    AsyncSide,
    Call,
    Pages,
    QueryValue,
    SyncRunner,
    SyncSide,
    endpoint,
    paged_endpoint,
)
from ._models import Contact, GistObject, Page, ShapeError, Tag, Team, Teammate, found_as

__all__ = ["AsyncResources", "Call", "SyncResources", "walk_pages"]

T = TypeVar("T")
M = TypeVar("M", bound=GistObject)
K = TypeVar("K", dict[str, JSON], list[JSON])
R = TypeVar("R", SyncRunner, AsyncRunner)

#: Gist's integrations page with 60 per page.
DEFAULT_PER_PAGE = 60
_MAX_PAGES = 100_000


_MISSING: Final = object()


def _member(body: JSON, key: str, kind: type[K], kind_name: str) -> K:
    """The value under ``key`` of Gist's wrapping object (``{"teammates": [...]}``), of type ``kind``.

    Raises:
        ShapeError: ``body`` is not an object, has no ``key``, or its value is of another type (null stands
            for an empty array).
    """
    if type(body) is not dict:
        raise ShapeError(f"is {found_as(body)}, not an object")
    value = body.get(key, _MISSING)
    if type(value) is not kind:
        if value is None and kind is list:
            return kind()
        if value is _MISSING:
            raise ShapeError(f"has no {key!r}")
        raise ShapeError(f"is {found_as(value)}, not {kind_name}", f"its {key!r}")
    return value


def _one(model: type[M], key: str) -> Callable[[JSON], M]:
    def read(body: JSON) -> M:
        value = _member(body, key, dict, "an object")
        try:
            return model.from_shape(value)
        except ShapeError as wrong:
            raise wrong.at(f"its {key!r}") from None

    return read


def _many(model: type[M], key: str) -> Callable[[JSON], list[M]]:
    def read(body: JSON) -> list[M]:
        objects = []
        for index, item in enumerate(_member(body, key, list, "an array")):
            try:
                objects.append(model.from_shape(item))
            except ShapeError as wrong:
                raise wrong.at(f"item {index} of its {key!r}") from None
        return objects

    return read


def _page(model: type[M], key: str) -> Callable[[JSON], Page[M]]:
    items = _many(model, key)

    def read(body: JSON) -> Page[M]:
        found = items(body)  # checks that the body is an object
        pages = body.get("pages") if type(body) is dict else None
        if pages is not None and type(pages) is not dict:
            raise ShapeError(f"is {found_as(pages)}, not an object", "its 'pages'")
        link = pages.get("next") if pages else None
        if link is not None and type(link) is not str:
            raise ShapeError(f"is {found_as(link)}, not a string", "its 'pages.next'")
        return Page(items=found, next=link or None)

    return read


def _id(value: int | str) -> str:
    return quote(str(value), safe="")


def _keyed(contact: Mapping[str, object]) -> bool:
    return bool(contact.get("email") or contact.get("user_id"))


class _Resource(Generic[R]):
    def __init__(self, client: R) -> None:
        self._client: R = client


class _Teammates(_Resource[R]):
    @endpoint
    def list(self) -> Call[builtins.list[Teammate]]:
        """Every teammate."""
        return Call("GET", "teammates", _many(Teammate, "teammates"), scope="read_teammates")

    @endpoint
    def get(self, teammate_id: int | str) -> Call[Teammate]:
        """One teammate by id."""
        return Call("GET", f"teammates/{_id(teammate_id)}", _one(Teammate, "teammate"), scope="read_teammates")


class _Teams(_Resource[R]):
    @endpoint
    def list(self) -> Call[builtins.list[Team]]:
        """Every team."""
        return Call("GET", "teams", _many(Team, "teams"), scope="read_teams")

    @endpoint
    def get(self, team_id: int | str) -> Call[Team]:
        """One team by id."""
        return Call("GET", f"teams/{_id(team_id)}", _one(Team, "team"), scope="read_teams")


class _Contacts(_Resource[R]):
    @endpoint
    def list(self, /, *, page: int = 1, per_page: int = DEFAULT_PER_PAGE, **filters: QueryValue) -> Call[Page[Contact]]:
        """One page of contacts; ``filters`` such as ``order`` and ``order_by`` go in the query."""
        return _contacts_page(page, per_page, filters)

    @paged_endpoint
    def iter_all(self, /, *, per_page: int = DEFAULT_PER_PAGE, **filters: QueryValue) -> Pages[Contact]:
        """Every contact, page after page (following Gist's ``pages.next`` links when it gives them).

        A ``next`` link already followed ends the walk, so a server that links in a circle cannot loop it;
        without links, the walk goes on by page number while pages are full.
        """
        yield from walk_pages(
            lambda number: _contacts_page(number, per_page, filters),
            lambda link: Call("GET", link, _page(Contact, "contacts"), scope="read_contact"),
            per_page=per_page,
        )

    @endpoint
    def get(self, contact_id: int | str) -> Call[Contact]:
        """One contact by id."""
        return Call("GET", f"contacts/{_id(contact_id)}", _one(Contact, "contact"), scope="read_contact")

    @endpoint
    def find(self, *, email: str | None = None, user_id: str | None = None) -> Call[Contact | None]:
        """The contact with this email or user_id, or ``None``."""
        if (email is None) == (user_id is None):
            raise ValueError("Pass exactly one of email= or user_id=.")
        params = {"email": email} if email is not None else {"user_id": user_id}
        read = _one(Contact, "contact")
        return Call("GET", "contacts", read, params=params, scope="read_contact", none_if_missing=True)

    @endpoint
    def upsert(self, /, **fields: object) -> Call[Contact]:
        """Create or update a contact, keyed by ``email`` or ``user_id`` (or by ``id`` to update)."""
        if not (_keyed(fields) or fields.get("id")):
            raise ValueError("A contact upsert needs an email, a user_id or an id.")
        read = _one(Contact, "contact")
        return Call("POST", "contacts", read, json=dict(fields), idempotent=_keyed(fields), scope="write_contact")

    @endpoint
    def upsert_many(self, contacts: Iterable[Mapping[str, object]]) -> Call[builtins.list[Contact]]:
        """Create or update a batch of contacts (scope ``write_bulk_contacts``)."""
        batch = [dict(c) for c in contacts]
        if not batch:
            raise ValueError("upsert_many() needs at least one contact.")
        return Call(
            "POST",
            "contacts/batch",
            _many(Contact, "contacts"),
            json={"contacts": batch},
            idempotent=all(_keyed(c) for c in batch),
            scope="write_bulk_contacts",
        )

    @endpoint
    def delete(self, contact_id: int | str) -> Call[None]:
        """Delete a contact by id."""
        return Call("DELETE", f"contacts/{_id(contact_id)}", lambda _: None, scope="write_contact")


class _Tags(_Resource[R]):
    @endpoint
    def list(self) -> Call[builtins.list[Tag]]:
        """Every tag."""
        return Call("GET", "tags", _many(Tag, "tags"), scope="read_tags")

    @endpoint
    def upsert(self, name: str, *, tag_id: int | str | None = None) -> Call[Tag]:
        """Create a tag by name, or rename the tag ``tag_id``."""
        body: dict[str, object] = {"name": name}
        if tag_id is not None:
            body["id"] = tag_id
        return Call("POST", "tags", _one(Tag, "tag"), json=body, idempotent=True, scope="write_tags")

    @endpoint
    def apply(self, name: str, contacts: Iterable[Mapping[str, object]]) -> Call[Tag]:
        """Tag contacts (each given by ``id``, ``email`` or ``user_id``) with ``name``; creates the tag."""
        return _tagging(name, contacts, untag=False)

    @endpoint
    def remove(self, name: str, contacts: Iterable[Mapping[str, object]]) -> Call[Tag]:
        """Remove the tag ``name`` from contacts."""
        return _tagging(name, contacts, untag=True)

    @endpoint
    def delete(self, tag_id: int | str) -> Call[None]:
        """Delete a tag by id."""
        return Call("DELETE", f"tags/{_id(tag_id)}", lambda _: None, scope="write_tags")


def walk_pages(
    numbered: Callable[[int], Call[Page[T]]], linked: Callable[[str], Call[Page[T]]], *, per_page: int
) -> Pages[T]:
    """Gist's pagination, written once: the calls of every page of a list, for a :func:`paged_endpoint`.

    ``numbered(n)`` is the call for page ``n`` (from 1) and ``linked(url)`` the call for a ``pages.next`` link.
    Gist's links are followed when it gives them, and a link already followed ends the walk, so a server
    that links in a circle cannot loop it; without links, the walk goes on by page number while pages are
    full (``per_page`` items).
    """
    call = numbered(1)
    seen: set[str] = set()
    for page_number in range(1, _MAX_PAGES):
        page = yield call
        if page.next:
            if page.next in seen:
                return
            seen.add(page.next)
            call = linked(page.next)
        elif len(page.items) < per_page or not page.items:
            return
        else:
            call = numbered(page_number + 1)


def _contacts_page(page: int, per_page: int, filters: Mapping[str, QueryValue]) -> Call[Page[Contact]]:
    params: dict[str, QueryValue] = {
        "page": page,
        "per_page": per_page,
        **{k: v for k, v in filters.items() if v is not None},
    }
    return Call("GET", "contacts", _page(Contact, "contacts"), params=params, scope="read_contact")


def _tagging(name: str, contacts: Iterable[Mapping[str, object]], *, untag: bool) -> Call[Tag]:
    targets = []
    for contact in contacts:
        target = {k: contact[k] for k in ("id", "email", "user_id") if contact.get(k) is not None}
        if not target:
            raise ValueError("Each contact to tag needs an id, an email or a user_id.")
        if untag:
            target["untag"] = True
        targets.append(target)
    body = {"name": name, "contacts": targets}
    return Call("POST", "tags", _one(Tag, "tag"), json=body, idempotent=True, scope="write_tags")


class Teammates(_Teammates[SyncRunner], SyncSide):
    """``client.teammates``: the workspace's teammates (scope ``read_teammates``)."""


class Teams(_Teams[SyncRunner], SyncSide):
    """``client.teams``: the workspace's teams (scope ``read_teams``)."""


class Contacts(_Contacts[SyncRunner], SyncSide):
    """``client.contacts``: contacts (scopes ``read_contact``/``write_contact``, bulk ones for batches)."""


class Tags(_Tags[SyncRunner], SyncSide):
    """``client.tags``: tags and tagging (scopes ``read_tags``/``write_tags``)."""


class AsyncTeammates(_Teammates[AsyncRunner], AsyncSide):
    """``client.teammates`` of the async client: the same methods, awaited."""


class AsyncTeams(_Teams[AsyncRunner], AsyncSide):
    """``client.teams`` of the async client: the same methods, awaited."""


class AsyncContacts(_Contacts[AsyncRunner], AsyncSide):
    """``client.contacts`` of the async client: the same methods, awaited (``iter_all`` with ``async for``)."""


class AsyncTags(_Tags[AsyncRunner], AsyncSide):
    """``client.tags`` of the async client: the same methods, awaited."""


class SyncResources:
    """The resources of :class:`~gist_authlib.GistClient`."""

    teammates: Teammates
    teams: Teams
    contacts: Contacts
    tags: Tags

    def __init__(self, client: SyncRunner) -> None:
        self.teammates = Teammates(client)
        self.teams = Teams(client)
        self.contacts = Contacts(client)
        self.tags = Tags(client)


class AsyncResources:
    """The resources of :class:`~gist_authlib.AsyncGistClient`."""

    teammates: AsyncTeammates
    teams: AsyncTeams
    contacts: AsyncContacts
    tags: AsyncTags

    def __init__(self, client: AsyncRunner) -> None:
        self.teammates = AsyncTeammates(client)
        self.teams = AsyncTeams(client)
        self.contacts = AsyncContacts(client)
        self.tags = AsyncTags(client)

"""Gist's REST resources over a client: teammates, teams, contacts, tags.

Each endpoint is described once, as a :class:`Call` (method, path, body, how to read the answer, whether
it may be repeated, the scope it needs); the sync and async resource classes only run those calls.
"""

from __future__ import annotations

import builtins  # the resources' methods named "list" shadow the builtin inside their classes
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar
from urllib.parse import quote

from .models import Contact, Page, Tag, Team, Teammate

__all__ = ["AsyncResources", "Call", "SyncResources"]

T = TypeVar("T")
#: Gist's integrations page with 60 per page.
DEFAULT_PER_PAGE = 60
_MAX_PAGES = 100_000


@dataclass(frozen=True)
class Call(Generic[T]):
    """One API call, described: what to send and how to read the answer."""

    method: str
    path: str
    parse: Callable[[Any], T]
    params: Mapping[str, Any] | None = None
    json: Any = None
    idempotent: bool | None = None
    scope: str | None = None


class _SyncSender(Protocol):
    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = ...,
        json: Any = ...,
        idempotent: bool | None = ...,
        scope: str | None = ...,
    ) -> Any: ...


class _AsyncSender(Protocol):
    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = ...,
        json: Any = ...,
        idempotent: bool | None = ...,
        scope: str | None = ...,
    ) -> Any: ...


# --- the calls ---------------------------------------------------------------------------------------


def _unwrap(key: str) -> Callable[[Any], Any]:
    def read(body: Any) -> Any:
        if not isinstance(body, Mapping) or key not in body:
            raise ValueError(f"Gist's answer has no {key!r} object.")
        return body[key]

    return read


def _one(model: Any, key: str) -> Callable[[Any], Any]:
    read = _unwrap(key)
    return lambda body: model.from_api(read(body))


def _many(model: Any, key: str) -> Callable[[Any], Any]:
    read = _unwrap(key)
    return lambda body: [model.from_api(item) for item in read(body) or []]


def _page(model: Any, key: str) -> Callable[[Any], Page]:
    items = _many(model, key)

    def read(body: Any) -> Page:
        pages = body.get("pages") if isinstance(body, Mapping) else None
        link = pages.get("next") if isinstance(pages, Mapping) else None
        return Page(items=items(body), next=link if isinstance(link, str) and link else None)

    return read


def _id(value: int | str) -> str:
    return quote(str(value), safe="")


def _keyed(contact: Mapping[str, Any]) -> bool:
    return bool(contact.get("email") or contact.get("user_id"))


class _Calls:
    """Every endpoint the resources know, as :class:`Call` values."""

    @staticmethod
    def teammates() -> Call[list[Teammate]]:
        return Call("GET", "teammates", _many(Teammate, "teammates"), scope="read_teammates")

    @staticmethod
    def teammate(teammate_id: int | str) -> Call[Teammate]:
        return Call("GET", f"teammates/{_id(teammate_id)}", _one(Teammate, "teammate"), scope="read_teammates")

    @staticmethod
    def teams() -> Call[list[Team]]:
        return Call("GET", "teams", _many(Team, "teams"), scope="read_teams")

    @staticmethod
    def team(team_id: int | str) -> Call[Team]:
        return Call("GET", f"teams/{_id(team_id)}", _one(Team, "team"), scope="read_teams")

    @staticmethod
    def contacts(page: int, per_page: int, extra: Mapping[str, Any]) -> Call[Page]:
        params = {"page": page, "per_page": per_page, **{k: v for k, v in extra.items() if v is not None}}
        return Call("GET", "contacts", _page(Contact, "contacts"), params=params, scope="read_contact")

    @staticmethod
    def contacts_link(url: str) -> Call[Page]:
        return Call("GET", url, _page(Contact, "contacts"), scope="read_contact")

    @staticmethod
    def contact(contact_id: int | str) -> Call[Contact]:
        return Call("GET", f"contacts/{_id(contact_id)}", _one(Contact, "contact"), scope="read_contact")

    @staticmethod
    def find_contact(email: str | None, user_id: str | None) -> Call[Contact]:
        if (email is None) == (user_id is None):
            raise ValueError("Pass exactly one of email= or user_id=.")
        params = {"email": email} if email is not None else {"user_id": user_id}
        return Call("GET", "contacts", _one(Contact, "contact"), params=params, scope="read_contact")

    @staticmethod
    def upsert_contact(fields: Mapping[str, Any]) -> Call[Contact]:
        if not (_keyed(fields) or fields.get("id")):
            raise ValueError("A contact upsert needs an email, a user_id or an id.")
        return Call(
            "POST",
            "contacts",
            _one(Contact, "contact"),
            json=dict(fields),
            idempotent=_keyed(fields),
            scope="write_contact",
        )

    @staticmethod
    def delete_contact(contact_id: int | str) -> Call[None]:
        return Call("DELETE", f"contacts/{_id(contact_id)}", lambda _: None, scope="write_contact")

    @staticmethod
    def upsert_contacts(contacts: Iterable[Mapping[str, Any]]) -> Call[list[Contact]]:
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

    @staticmethod
    def tags() -> Call[list[Tag]]:
        return Call("GET", "tags", _many(Tag, "tags"), scope="read_tags")

    @staticmethod
    def upsert_tag(name: str, tag_id: int | str | None) -> Call[Tag]:
        body: dict[str, Any] = {"name": name}
        if tag_id is not None:
            body["id"] = tag_id
        return Call("POST", "tags", _one(Tag, "tag"), json=body, idempotent=True, scope="write_tags")

    @staticmethod
    def tag_contacts(name: str, contacts: Iterable[Mapping[str, Any]], untag: bool) -> Call[Tag]:
        targets = []
        for contact in contacts:
            target = {k: contact[k] for k in ("id", "email", "user_id") if contact.get(k) is not None}
            if not target:
                raise ValueError("Each contact to tag needs an id, an email or a user_id.")
            if untag:
                target["untag"] = True
            targets.append(target)
        return Call(
            "POST",
            "tags",
            _one(Tag, "tag"),
            json={"name": name, "contacts": targets},
            idempotent=True,
            scope="write_tags",
        )

    @staticmethod
    def delete_tag(tag_id: int | str) -> Call[None]:
        return Call("DELETE", f"tags/{_id(tag_id)}", lambda _: None, scope="write_tags")


# --- sync ----------------------------------------------------------------------------------------------


class _Sync:
    def __init__(self, client: _SyncSender) -> None:
        self._client = client

    def _run(self, call: Call[T]) -> T:
        body = self._client.request(
            call.method,
            call.path,
            params=call.params,
            json=call.json,
            idempotent=call.idempotent,
            scope=call.scope,
        )
        return call.parse(body)


class Teammates(_Sync):
    """``client.teammates``: the workspace's teammates (scope ``read_teammates``)."""

    def list(self) -> list[Teammate]:
        """Every teammate."""
        return self._run(_Calls.teammates())

    def get(self, teammate_id: int | str) -> Teammate:
        """One teammate by id."""
        return self._run(_Calls.teammate(teammate_id))


class Teams(_Sync):
    """``client.teams``: the workspace's teams (scope ``read_teams``)."""

    def list(self) -> list[Team]:
        """Every team."""
        return self._run(_Calls.teams())

    def get(self, team_id: int | str) -> Team:
        """One team by id."""
        return self._run(_Calls.team(team_id))


class Contacts(_Sync):
    """``client.contacts``: contacts (scopes ``read_contact``/``write_contact``, bulk ones for batches)."""

    def list(self, *, page: int = 1, per_page: int = DEFAULT_PER_PAGE, **filters: Any) -> Page:
        """One page of contacts; ``filters`` such as ``order`` and ``order_by`` go in the query."""
        return self._run(_Calls.contacts(page, per_page, filters))

    def iter_all(self, *, per_page: int = DEFAULT_PER_PAGE, **filters: Any) -> Iterator[Contact]:
        """Every contact, page after page (following Gist's ``pages.next`` links when it gives them)."""
        call = _Calls.contacts(1, per_page, filters)
        seen: set[str] = set()
        for page_number in range(1, _MAX_PAGES):
            page = self._run(call)
            yield from page.items
            following = _following(page, page_number, per_page, filters, seen)
            if following is None:
                return
            call = following

    def get(self, contact_id: int | str) -> Contact:
        """One contact by id."""
        return self._run(_Calls.contact(contact_id))

    def find(self, *, email: str | None = None, user_id: str | None = None) -> Contact | None:
        """The contact with this email or user_id, or ``None``."""
        from ..errors import NotFoundError

        try:
            return self._run(_Calls.find_contact(email, user_id))
        except NotFoundError:
            return None

    def upsert(self, **fields: Any) -> Contact:
        """Create or update a contact, keyed by ``email`` or ``user_id`` (or by ``id`` to update)."""
        return self._run(_Calls.upsert_contact(fields))

    def upsert_many(self, contacts: Iterable[Mapping[str, Any]]) -> builtins.list[Contact]:
        """Create or update a batch of contacts (scope ``write_bulk_contacts``)."""
        return self._run(_Calls.upsert_contacts(contacts))

    def delete(self, contact_id: int | str) -> None:
        """Delete a contact by id."""
        self._run(_Calls.delete_contact(contact_id))


class Tags(_Sync):
    """``client.tags``: tags and tagging (scopes ``read_tags``/``write_tags``)."""

    def list(self) -> list[Tag]:
        """Every tag."""
        return self._run(_Calls.tags())

    def upsert(self, name: str, *, tag_id: int | str | None = None) -> Tag:
        """Create a tag by name, or rename the tag ``tag_id``."""
        return self._run(_Calls.upsert_tag(name, tag_id))

    def apply(self, name: str, contacts: Iterable[Mapping[str, Any]]) -> Tag:
        """Tag contacts (each given by ``id``, ``email`` or ``user_id``) with ``name``; creates the tag."""
        return self._run(_Calls.tag_contacts(name, contacts, untag=False))

    def remove(self, name: str, contacts: Iterable[Mapping[str, Any]]) -> Tag:
        """Remove the tag ``name`` from contacts."""
        return self._run(_Calls.tag_contacts(name, contacts, untag=True))

    def delete(self, tag_id: int | str) -> None:
        """Delete a tag by id."""
        self._run(_Calls.delete_tag(tag_id))


class SyncResources:
    """The resources of :class:`~gist_authlib.GistClient`."""

    teammates: Teammates
    teams: Teams
    contacts: Contacts
    tags: Tags

    def __init__(self, client: _SyncSender) -> None:
        self.teammates = Teammates(client)
        self.teams = Teams(client)
        self.contacts = Contacts(client)
        self.tags = Tags(client)


# --- async ---------------------------------------------------------------------------------------------


class _Async:
    def __init__(self, client: _AsyncSender) -> None:
        self._client = client

    async def _run(self, call: Call[T]) -> T:
        body = await self._client.request(
            call.method,
            call.path,
            params=call.params,
            json=call.json,
            idempotent=call.idempotent,
            scope=call.scope,
        )
        return call.parse(body)


class AsyncTeammates(_Async):
    """``client.teammates`` of the async client."""

    async def list(self) -> list[Teammate]:
        """Every teammate."""
        return await self._run(_Calls.teammates())

    async def get(self, teammate_id: int | str) -> Teammate:
        """One teammate by id."""
        return await self._run(_Calls.teammate(teammate_id))


class AsyncTeams(_Async):
    """``client.teams`` of the async client."""

    async def list(self) -> list[Team]:
        """Every team."""
        return await self._run(_Calls.teams())

    async def get(self, team_id: int | str) -> Team:
        """One team by id."""
        return await self._run(_Calls.team(team_id))


class AsyncContacts(_Async):
    """``client.contacts`` of the async client."""

    async def list(self, *, page: int = 1, per_page: int = DEFAULT_PER_PAGE, **filters: Any) -> Page:
        """One page of contacts."""
        return await self._run(_Calls.contacts(page, per_page, filters))

    async def iter_all(self, *, per_page: int = DEFAULT_PER_PAGE, **filters: Any) -> AsyncIterator[Contact]:
        """Every contact, page after page."""
        call = _Calls.contacts(1, per_page, filters)
        seen: set[str] = set()
        for page_number in range(1, _MAX_PAGES):
            page = await self._run(call)
            for item in page.items:
                yield item
            following = _following(page, page_number, per_page, filters, seen)
            if following is None:
                return
            call = following

    async def get(self, contact_id: int | str) -> Contact:
        """One contact by id."""
        return await self._run(_Calls.contact(contact_id))

    async def find(self, *, email: str | None = None, user_id: str | None = None) -> Contact | None:
        """The contact with this email or user_id, or ``None``."""
        from ..errors import NotFoundError

        try:
            return await self._run(_Calls.find_contact(email, user_id))
        except NotFoundError:
            return None

    async def upsert(self, **fields: Any) -> Contact:
        """Create or update a contact, keyed by ``email`` or ``user_id``."""
        return await self._run(_Calls.upsert_contact(fields))

    async def upsert_many(self, contacts: Iterable[Mapping[str, Any]]) -> builtins.list[Contact]:
        """Create or update a batch of contacts."""
        return await self._run(_Calls.upsert_contacts(contacts))

    async def delete(self, contact_id: int | str) -> None:
        """Delete a contact by id."""
        await self._run(_Calls.delete_contact(contact_id))


class AsyncTags(_Async):
    """``client.tags`` of the async client."""

    async def list(self) -> list[Tag]:
        """Every tag."""
        return await self._run(_Calls.tags())

    async def upsert(self, name: str, *, tag_id: int | str | None = None) -> Tag:
        """Create a tag by name, or rename the tag ``tag_id``."""
        return await self._run(_Calls.upsert_tag(name, tag_id))

    async def apply(self, name: str, contacts: Iterable[Mapping[str, Any]]) -> Tag:
        """Tag contacts with ``name``."""
        return await self._run(_Calls.tag_contacts(name, contacts, untag=False))

    async def remove(self, name: str, contacts: Iterable[Mapping[str, Any]]) -> Tag:
        """Remove the tag ``name`` from contacts."""
        return await self._run(_Calls.tag_contacts(name, contacts, untag=True))

    async def delete(self, tag_id: int | str) -> None:
        """Delete a tag by id."""
        await self._run(_Calls.delete_tag(tag_id))


class AsyncResources:
    """The resources of :class:`~gist_authlib.AsyncGistClient`."""

    teammates: AsyncTeammates
    teams: AsyncTeams
    contacts: AsyncContacts
    tags: AsyncTags

    def __init__(self, client: _AsyncSender) -> None:
        self.teammates = AsyncTeammates(client)
        self.teams = AsyncTeams(client)
        self.contacts = AsyncContacts(client)
        self.tags = AsyncTags(client)


def _following(
    page: Page, page_number: int, per_page: int, filters: Mapping[str, Any], seen: set[str]
) -> Call[Page] | None:
    """The call for the next page: Gist's ``next`` link, else the next page number while pages are full.

    A ``next`` link already followed ends the walk, so a server that links in a circle cannot loop it.
    """
    if page.next:
        if page.next in seen:
            return None
        seen.add(page.next)
        return _Calls.contacts_link(page.next)
    if len(page.items) < per_page or not page.items:
        return None
    return _Calls.contacts(page_number + 1, per_page, filters)

"""Typed views of Gist's API objects, with Gist's field names; unknown fields are kept in ``raw``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any, Generic, Self, TypeVar

__all__ = ["Contact", "GistObject", "Page", "Tag", "Team", "Teammate", "TokenInfo"]

T = TypeVar("T")


@dataclass(frozen=True)
class GistObject:
    """Base of the typed API objects.

    The declared attributes are the fields gist_authlib knows; ``raw`` holds the whole object as Gist sent
    it, so a field Gist adds later is not lost: ``obj["new_field"]`` or ``obj.raw["new_field"]``.
    """

    raw: Mapping[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> Self:
        """Build the object from Gist's JSON object."""
        if not isinstance(data, Mapping):
            raise TypeError(f"Expected a JSON object for {cls.__name__}, got {type(data).__name__}.")
        # This runs for every object of every list the API returns: fill the instance's __dict__ in one
        # step rather than through the frozen dataclass __init__ (one object.__setattr__ per field).
        obj = object.__new__(cls)
        values = obj.__dict__
        for name in _field_names(cls):
            values[name] = data.get(name)
        values["raw"] = MappingProxyType(dict(data))
        return obj

    def __getitem__(self, key: str) -> Any:
        return self.raw[key]

    def get(self, key: str, default: Any = None) -> Any:
        """A field by Gist's name, known or not."""
        return self.raw.get(key, default)


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _field_names(cls: type) -> tuple[str, ...]:
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in fields(cls) if f.name != "raw")
    return names


@dataclass(frozen=True)
class Teammate(GistObject):
    """A teammate (an agent of the workspace)."""

    id: int | None = None
    name: str | None = None
    email: str | None = None
    avatar: str | None = None
    agent_status: str | None = None
    last_active_on: int | None = None
    away_mode_enabled: bool | None = None
    team_ids: list[int] | None = None
    has_inbox_seat: bool | None = None


@dataclass(frozen=True)
class Team(GistObject):
    """A team of teammates."""

    id: int | None = None
    name: str | None = None


@dataclass(frozen=True)
class Contact(GistObject):
    """A contact (a user or lead). Timestamps are Unix seconds."""

    id: int | None = None
    email: str | None = None
    user_id: str | None = None
    name: str | None = None
    phone: str | None = None
    created_at: int | None = None
    updated_at: int | None = None
    tags: list[Any] | None = None
    custom_properties: dict[str, Any] | None = None


@dataclass(frozen=True)
class Tag(GistObject):
    """A tag that can be applied to contacts."""

    id: int | None = None
    name: str | None = None


@dataclass(frozen=True)
class TokenInfo(GistObject):
    """What ``GET /token`` says about a token: the workspace it belongs to."""

    workspace_id: int | None = None
    workspace_name: str | None = None


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list, and the link to the next page when Gist gives one."""

    items: list[T]
    next: str | None

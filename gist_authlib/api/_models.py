"""Typed views of Gist's API objects, with Gist's field names; unknown fields are kept in ``raw``."""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Generic, Self, TypeVar

from .._types import JSON
from ..errors import UnexpectedAnswerError

__all__ = [
    "Contact",
    "GistObject",
    "Page",
    "ShapeError",
    "Tag",
    "Team",
    "Teammate",
    "TokenInfo",
    "found_as",
    "json_type",
]

T = TypeVar("T")


class ShapeError(Exception):
    """A JSON value Gist sent does not have the shape a model needs; the caller names the call.

    Attributes:
        sentence: what is wrong, by JSON type only, never what was sent (``"its 'teammates' is a JSON object,
            not an array"``).
    """

    def __init__(self, predicate: str, subject: str = "the answer") -> None:
        self.predicate = predicate
        self.sentence = f"{subject} {predicate}"
        super().__init__(self.sentence)

    def at(self, subject: str) -> ShapeError:
        """The same problem, said of ``subject`` (``"item 2 of its 'teammates'"``)."""
        return ShapeError(self.predicate, subject)


def json_type(value: object) -> str:
    """The JSON name of a parsed value's type (``object``, ``array``, ``string``, ``number``, ``boolean``,
    ``null``), for messages that must not quote what Gist sent."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    names: dict[type, str] = {dict: "object", list: "array", str: "string", type(None): "null"}
    return next((name for kind, name in names.items() if isinstance(value, kind)), type(value).__name__)


@dataclass(frozen=True)
class GistObject:
    """Base of the typed API objects.

    The declared attributes are the fields gist_authlib knows; ``raw`` holds the whole object as Gist sent
    it, so a field Gist adds later is not lost: ``obj["new_field"]`` or ``obj.raw["new_field"]``.
    """

    raw: Mapping[str, JSON] = field(repr=False, compare=False)

    @classmethod
    def from_api(cls, data: Mapping[str, JSON]) -> Self:
        """Build the object from a JSON object, as it is (the fields' types are not checked)."""
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

    @classmethod
    def from_json(cls, value: object, *, method: str = "", path: str = "", status: int = 200) -> Self:
        """Build the object from a JSON value Gist answered ``method path`` with, checking its shape: an
        object, each known field of its declared type or null (unknown fields are kept, unchecked).

        Raises:
            UnexpectedAnswerError: ``unexpected_answer``, naming the call and what is wrong by JSON type only.
        """
        try:
            return cls.from_shape(value)
        except ShapeError as wrong:
            raise UnexpectedAnswerError(status, wrong.sentence, method=method, path=path) from None

    @classmethod
    def from_shape(cls, value: object) -> Self:
        """:meth:`from_json` for a caller that names the call itself.

        Raises:
            ShapeError: ``value`` is not an object, or a known field has the wrong type.
        """
        # The API's hot path (every item of every list): exact type tests, which is what json.loads builds.
        if type(value) is not dict and not isinstance(value, Mapping):
            raise ShapeError(f"is {found_as(value)}, not an object")
        obj = object.__new__(cls)
        values = obj.__dict__
        for name, allowed in _checks(cls):
            found = value.get(name)
            if found is not None and allowed and type(found) not in allowed:
                raise ShapeError(f"has {found_as(found)} as {name!r}, not {_json_names(allowed)}")
            values[name] = found
        values["raw"] = MappingProxyType(dict(value))
        return obj

    def __getitem__(self, key: str) -> JSON:
        return self.raw[key]

    def get(self, key: str, default: JSON = None) -> JSON:
        """A field by Gist's name, known or not."""
        return self.raw.get(key, default)


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}
_CHECKS: dict[type, tuple[tuple[str, frozenset[type]], ...]] = {}
#: The Python types json.loads makes for each declared type a model's field may have.
_JSON_TYPES: dict[object, frozenset[type]] = {
    int: frozenset({int}),
    float: frozenset({int, float}),
    str: frozenset({str}),
    bool: frozenset({bool}),
    list: frozenset({list}),
    dict: frozenset({dict}),
}


def _field_names(cls: type) -> tuple[str, ...]:
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in fields(cls) if f.name != "raw")
    return names


def _checks(cls: type) -> tuple[tuple[str, frozenset[type]], ...]:
    """(field, the JSON types it accepts besides null) for each known field; an empty set accepts anything
    (an unchecked annotation, or a type JSON does not make, such as a nested model)."""
    checks = _CHECKS.get(cls)
    if checks is None:
        hints = typing.get_type_hints(cls)
        checks = _CHECKS[cls] = tuple((name, _accepted(hints[name])) for name in _field_names(cls))
    return checks


def _accepted(hint: object) -> frozenset[type]:
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        parts = [_accepted(arm) for arm in typing.get_args(hint) if arm is not type(None)]
        return frozenset().union(*parts) if all(parts) else frozenset()
    return _JSON_TYPES.get(typing.get_origin(hint) or hint, frozenset())


def _json_names(allowed: frozenset[type]) -> str:
    return " or ".join(_a(name) for name in sorted({json_type(kind()) for kind in allowed}))


def found_as(value: object) -> str:
    """What a message says of a value Gist sent: ``"a JSON array"``, ``"null"``; never the value itself."""
    name = json_type(value)
    return name if name == "null" else f"a JSON {name}"


def _a(json_name: str) -> str:
    """``"an object"``, ``"a string"``, ``"null"``: a JSON type's name as a message says it."""
    if json_name == "null":
        return json_name
    return f"an {json_name}" if json_name[0] in "aeiou" else f"a {json_name}"


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
    tags: list[JSON] | None = None
    custom_properties: dict[str, JSON] | None = None


@dataclass(frozen=True)
class Tag(GistObject):
    """A tag that can be applied to contacts."""

    id: int | None = None
    name: str | None = None


@dataclass(frozen=True)
class TokenInfo(GistObject):
    """What ``GET /token`` says about a token: the workspace it belongs to."""

    workspace_id: int | str | None = None
    workspace_name: str | None = None

    @classmethod
    def from_json(cls, value: object, *, method: str = "GET", path: str = "token", status: int = 200) -> Self:
        """Read Gist's answer to ``GET /token`` (a JSON value already parsed), checking its shape.

        Raises:
            UnexpectedAnswerError: ``unexpected_answer``: not an object, or a field of the wrong type.
        """
        return super().from_json(value, method=method, path=path, status=status)


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list, and the link to the next page when Gist gives one."""

    items: list[T]
    next: str | None

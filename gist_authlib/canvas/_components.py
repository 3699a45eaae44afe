"""Typed canvas components and the :class:`Canvas` that carries them, checked before anything is sent.

The JSON shapes follow what Gist's docs and demo app show (``text``, ``divider``, ``button``, ``list`` and
its ``item``), and Intercom's Canvas Kit, which Gist's canvas mirrors, for the rest (``spacer``, ``input``).
:class:`Raw` sends any other component as given.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import ClassVar, Final, Literal

from .._types import JSON
from ._errors import InvalidCanvasError

__all__ = [
    "MAX_CANVAS_BYTES",
    "Action",
    "Button",
    "Canvas",
    "Component",
    "Divider",
    "Input",
    "List",
    "ListItem",
    "Raw",
    "Spacer",
    "SubmitAction",
    "Text",
    "UrlAction",
]

#: The most a canvas's content, and separately its stored_data, may weigh as JSON. Intercom documents
#: 64 KB for the same two parts; the decimal reading is taken so that a canvas accepted here fits either way.
MAX_CANVAS_BYTES: Final = 64_000

#: Component types whose use Gist reports by id; a :class:`Raw` one of these must carry an ``id``.
INTERACTIVE_TYPES: Final = frozenset(
    {"button", "input", "item", "textarea", "checkbox", "dropdown", "single-select", "date-picker", "option"}
)

TextStyle = Literal["header", "paragraph", "muted", "error"]
Align = Literal["left", "center", "right"]
ButtonStyle = Literal["primary", "secondary", "link"]
SpacerSize = Literal["xs", "s", "m", "l", "xl"]
SaveState = Literal["unsaved", "saved", "failed"]


def _json_dumps(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


def _check_id(component_type: str, value: object, hint: str, *, required: bool) -> None:
    if value is None and not required:
        return
    if not isinstance(value, str) or not value.strip():
        raise InvalidCanvasError.missing_id(component_type, hint)


def _check_text(component_type: str, name: str, value: object, *, required: bool = True) -> None:
    if value is None and not required:
        return
    if not isinstance(value, str):
        raise InvalidCanvasError(
            f"A {component_type!r} component's {name} must be a string, not {type(value).__name__}."
        )


def _compact(data: dict[str, JSON]) -> dict[str, JSON]:
    """Leave out the fields that were not set, as Gist's own canvases do."""
    return {key: value for key, value in data.items() if value is not None}


# --- actions --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SubmitAction:
    """Using the component sends a submit request to the app (the only action Gist's docs show)."""

    def to_dict(self) -> dict[str, JSON]:
        """The action as Gist's JSON."""
        return {"type": "submit"}


@dataclass(frozen=True, slots=True)
class UrlAction:
    """Using the component opens ``url`` in a new tab (Intercom's Canvas Kit; unverified on Gist)."""

    url: str

    def __post_init__(self) -> None:
        if not isinstance(self.url, str) or not self.url.startswith(("https://", "http://")):
            raise InvalidCanvasError(f"A url action needs an absolute http(s) URL, not {self.url!r}.")

    def to_dict(self) -> dict[str, JSON]:
        """The action as Gist's JSON."""
        return {"type": "url", "url": self.url}


Action = SubmitAction | UrlAction
_SUBMIT: Final = SubmitAction()


def _check_action(component_type: str, action: object, *, optional: bool) -> None:
    if action is None and optional:
        return
    if not isinstance(action, SubmitAction | UrlAction):
        raise InvalidCanvasError(
            f"A {component_type!r} component's action must be SubmitAction() or UrlAction(url), "
            f"not {type(action).__name__}."
        )


# --- components -----------------------------------------------------------------------------------


class Component(ABC):
    """A canvas component: something :class:`Canvas` can lay out and turn into Gist's JSON."""

    __slots__ = ()

    #: Gist's name for the component (``"text"``, ``"button"``, ...).
    type: ClassVar[str]

    @abstractmethod
    def to_dict(self) -> dict[str, JSON]:
        """The component as Gist's JSON object."""

    def component_ids(self) -> Iterator[str]:
        """The ids this component (and any component inside it) carries, in order."""
        component_id = getattr(self, "id", None)
        if component_id is not None:
            yield component_id


@dataclass(frozen=True, slots=True)
class Text(Component):
    """A block of text; Gist renders ``**bold**`` in it.

    Attributes:
        text: the text.
        style: ``"paragraph"`` (default), ``"header"``, ``"muted"`` or ``"error"``.
        align: ``"left"``, ``"center"`` or ``"right"``; Gist's default when unset.
        id: an optional id.
    """

    type: ClassVar[str] = "text"
    text: str
    style: TextStyle = "paragraph"
    align: Align | None = None
    id: str | None = None

    def __post_init__(self) -> None:
        _check_text("text", "text", self.text)
        _check_id("text", self.id, "", required=False)

    def to_dict(self) -> dict[str, JSON]:
        """The component as Gist's JSON object."""
        return _compact({"type": "text", "id": self.id, "text": self.text, "style": self.style, "align": self.align})


@dataclass(frozen=True, slots=True)
class Divider(Component):
    """A horizontal rule between components."""

    type: ClassVar[str] = "divider"
    id: str | None = None

    def __post_init__(self) -> None:
        _check_id("divider", self.id, "", required=False)

    def to_dict(self) -> dict[str, JSON]:
        """The component as Gist's JSON object."""
        return _compact({"type": "divider", "id": self.id})


@dataclass(frozen=True, slots=True)
class Spacer(Component):
    """Empty vertical space (Intercom's Canvas Kit; likely on Gist).

    Attributes:
        size: ``"xs"``, ``"s"``, ``"m"`` (default), ``"l"`` or ``"xl"``.
    """

    type: ClassVar[str] = "spacer"
    size: SpacerSize = "m"
    id: str | None = None

    def __post_init__(self) -> None:
        _check_id("spacer", self.id, "", required=False)

    def to_dict(self) -> dict[str, JSON]:
        """The component as Gist's JSON object."""
        return _compact({"type": "spacer", "id": self.id, "size": self.size})


@dataclass(frozen=True, slots=True)
class Button(Component):
    """A button; clicking it sends a submit request whose ``component_id`` is :attr:`id`.

    Attributes:
        id: the id Gist sends back (required, unique in the canvas).
        label: the button's text.
        style: ``"primary"`` (default), ``"secondary"`` or ``"link"``.
        action: :class:`SubmitAction` (default) or :class:`UrlAction`.
        disabled: shown greyed out and not clickable.
    """

    type: ClassVar[str] = "button"
    id: str
    label: str
    style: ButtonStyle = "primary"
    action: Action = _SUBMIT
    disabled: bool = False

    def __post_init__(self) -> None:
        _check_id("button", self.id, f"label {self.label!r}", required=True)
        _check_text("button", "label", self.label)
        _check_action("button", self.action, optional=False)

    def to_dict(self) -> dict[str, JSON]:
        """The component as Gist's JSON object."""
        return {
            "type": "button",
            "id": self.id,
            "label": self.label,
            "style": self.style,
            "action": self.action.to_dict(),
            "disabled": self.disabled,
        }


@dataclass(frozen=True, slots=True)
class ListItem:
    """One row of a :class:`List`, with the fields Gist's own demo app sends.

    Attributes:
        id: the id Gist sends back when the row is clicked (required, unique in the canvas).
        title: the row's main text.
        subtitle: a second line (Intercom's Canvas Kit; unverified on Gist).
        image: an image URL shown beside the title.
        image_width: the image's width in pixels.
        image_height: the image's height in pixels.
        rounded_image: round the image's corners.
        disabled: not clickable.
        action: what a click does; :class:`SubmitAction` by default, ``None`` for a row that is only text.
    """

    id: str
    title: str
    subtitle: str | None = None
    image: str | None = None
    image_width: int | None = None
    image_height: int | None = None
    rounded_image: bool = False
    disabled: bool = False
    action: Action | None = _SUBMIT

    def __post_init__(self) -> None:
        _check_id("item", self.id, f"title {self.title!r}", required=True)
        _check_text("item", "title", self.title)
        _check_text("item", "subtitle", self.subtitle, required=False)
        _check_text("item", "image", self.image, required=False)
        _check_action("item", self.action, optional=True)

    def to_dict(self) -> dict[str, JSON]:
        """The item as Gist's JSON object."""
        return _compact(
            {
                "type": "item",
                "id": self.id,
                "title": self.title,
                "subtitle": self.subtitle,
                "image": self.image,
                "image_width": self.image_width,
                "image_height": self.image_height,
                "rounded_image": self.rounded_image,
                "disabled": self.disabled,
                "action": self.action.to_dict() if self.action is not None else None,
            }
        )


@dataclass(frozen=True, slots=True)
class List(Component):
    """A list of clickable rows (:class:`ListItem`); a click sends the row's id as ``component_id``.

    Attributes:
        items: the rows.
        disabled: every row shown greyed out and not clickable.
    """

    type: ClassVar[str] = "list"
    items: tuple[ListItem, ...]
    disabled: bool = False

    def __init__(self, items: Iterable[ListItem], disabled: bool = False) -> None:
        rows = tuple(items)
        for row in rows:
            if not isinstance(row, ListItem):
                raise InvalidCanvasError(f"A list holds ListItem rows, not {type(row).__name__}.")
        object.__setattr__(self, "items", rows)
        object.__setattr__(self, "disabled", disabled)

    def to_dict(self) -> dict[str, JSON]:
        """The component as Gist's JSON object."""
        return {"type": "list", "disabled": self.disabled, "items": [item.to_dict() for item in self.items]}

    def component_ids(self) -> Iterator[str]:
        """The ids of the list's rows."""
        for item in self.items:
            yield item.id


@dataclass(frozen=True, slots=True)
class Input(Component):
    """A one-line text field; its value reaches the app in the submit request's ``input_values[id]``.

    Shape from Intercom's Canvas Kit (likely on Gist, unverified).

    Attributes:
        id: the key of its value in ``input_values`` (required, unique in the canvas).
        label: text above the field.
        placeholder: grey text shown while the field is empty.
        value: the field's initial value.
        save_state: ``"unsaved"``, ``"saved"`` or ``"failed"``.
        disabled: read-only.
        action: with an action, the field has its own submit button (Intercom's behaviour).
    """

    type: ClassVar[str] = "input"
    id: str
    label: str | None = None
    placeholder: str | None = None
    value: str | None = None
    save_state: SaveState | None = None
    disabled: bool = False
    action: Action | None = None

    def __post_init__(self) -> None:
        _check_id("input", self.id, f"label {self.label!r}" if self.label else "", required=True)
        for name in ("label", "placeholder", "value"):
            _check_text("input", name, getattr(self, name), required=False)
        _check_action("input", self.action, optional=True)

    def to_dict(self) -> dict[str, JSON]:
        """The component as Gist's JSON object."""
        return _compact(
            {
                "type": "input",
                "id": self.id,
                "label": self.label,
                "placeholder": self.placeholder,
                "value": self.value,
                "save_state": self.save_state,
                "disabled": self.disabled,
                "action": self.action.to_dict() if self.action is not None else None,
            }
        )


@dataclass(frozen=True, slots=True)
class Raw(Component):
    """A component of another type, as Gist's JSON object: for a component type this module does not type yet.

    It is still checked: an interactive type (``button``, ``input``, ``item``, ...) needs an ``id``, and
    rows in an ``items`` array count towards the canvas's unique ids.
    """

    type: ClassVar[str] = "raw"
    data: Mapping[str, JSON] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.data, Mapping) or not isinstance(self.data.get("type"), str):
            raise InvalidCanvasError('A Raw component needs a JSON object with a "type" string.')
        object.__setattr__(self, "data", dict(self.data))
        for part in self._parts():
            kind = str(part.get("type", ""))
            _check_id(kind, part.get("id"), "", required=kind in INTERACTIVE_TYPES)

    def _parts(self) -> Iterator[Mapping[str, JSON]]:
        yield self.data
        rows = self.data.get("items")
        if isinstance(rows, list):
            yield from (row for row in rows if isinstance(row, Mapping))

    def to_dict(self) -> dict[str, JSON]:
        """The component as given."""
        return dict(self.data)

    def component_ids(self) -> Iterator[str]:
        """The ids of the component and of the rows in its ``items``."""
        for part in self._parts():
            component_id = part.get("id")
            if isinstance(component_id, str):
                yield component_id


# --- the canvas -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Canvas:
    """What an app answers to every initialize and submit request: components, and data to get back.

    ``Canvas([Text("Hello"), Button("go", "Go")], stored_data={"step": 1}).to_dict()`` is
    ``{"canvas": {"content": {"components": [...]}, "stored_data": {"step": 1}}}``. Gist sends
    ``stored_data`` back in the next submit request of the same canvas.

    Raises:
        InvalidCanvasError: at construction, when a component is not a :class:`Component` or two
            share an id (``canvas_component_id_duplicate``); from :meth:`to_json` and :meth:`to_dict`,
            when the content or the stored data is over :data:`MAX_CANVAS_BYTES` (``canvas_too_large``)
            or the stored data is not JSON.
    """

    components: tuple[Component, ...]
    stored_data: Mapping[str, object] | None = None

    def __init__(self, components: Iterable[Component], stored_data: Mapping[str, object] | None = None) -> None:
        parts = tuple(components)
        seen: set[str] = set()
        for component in parts:
            if not isinstance(component, Component):
                raise InvalidCanvasError(
                    f"A canvas holds components (Text, Button, List, ...), not {type(component).__name__}."
                )
            for component_id in component.component_ids():
                if component_id in seen:
                    raise InvalidCanvasError.duplicate_id(component_id)
                seen.add(component_id)
        if stored_data is not None and not isinstance(stored_data, Mapping):
            raise InvalidCanvasError(f"stored_data must be a JSON object (a dict), not {type(stored_data).__name__}.")
        object.__setattr__(self, "components", parts)
        object.__setattr__(self, "stored_data", dict(stored_data) if stored_data is not None else None)

    def _parts(self) -> tuple[bytes, bytes | None]:
        content = _json_dumps({"components": [component.to_dict() for component in self.components]})
        if len(content) > MAX_CANVAS_BYTES:
            raise InvalidCanvasError.too_large("content", len(content), MAX_CANVAS_BYTES)
        if self.stored_data is None:
            return content, None
        try:
            stored = _json_dumps(self.stored_data)
        except (TypeError, ValueError) as exc:
            raise InvalidCanvasError(f"stored_data cannot be sent as JSON: {exc}.") from None
        if len(stored) > MAX_CANVAS_BYTES:
            raise InvalidCanvasError.too_large("stored_data", len(stored), MAX_CANVAS_BYTES)
        return content, stored

    def to_json(self) -> bytes:
        """The response body Gist expects, as UTF-8 JSON, after checking both sizes."""
        content, stored = self._parts()
        inner = b'{"content":' + content + (b',"stored_data":' + stored if stored is not None else b"") + b"}"
        return b'{"canvas":' + inner + b"}"

    def to_dict(self) -> dict[str, JSON]:
        """The response body Gist expects, as a dict, after the same checks as :meth:`to_json`."""
        result: dict[str, JSON] = json.loads(self.to_json())
        return result

"""Typed views of the requests Gist sends to a canvas app's initialize and submit URLs.

Like the API objects (:mod:`gist_authlib.api`), each keeps the whole body in ``raw``, so a field
Gist adds later is not lost: ``request["new_field"]`` or ``request.raw["new_field"]``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar, Literal, Self

from .._types import JSON
from ..api._models import Contact, GistObject, Teammate
from ._errors import CanvasRequestError

__all__ = ["CanvasContext", "CanvasKind", "CanvasRequest", "Conversation", "InitializeRequest", "SubmitRequest"]

#: Which of the app's two URLs a request went to.
CanvasKind = Literal["initialize", "submit"]


@dataclass(frozen=True)
class Conversation(GistObject):
    """The conversation open in the inbox when the app loaded (only its ``id`` is documented)."""

    id: int | str | None = None


@dataclass(frozen=True)
class CanvasContext(GistObject):
    """Where the canvas is shown.

    Attributes:
        locale: the viewer's locale, e.g. ``"en"``.
        location: ``"inbox"`` (a teammate's inbox sidebar) or ``"messenger"`` (a visitor's messenger home).
        referrer: the page the messenger is on.
        messenger_launcher_color: the messenger's launcher colour.
        messenger_background_color: the messenger's background colour.
    """

    locale: str | None = None
    location: str | None = None
    referrer: str | None = None
    messenger_launcher_color: str | None = None
    messenger_background_color: str | None = None


def _object(data: Mapping[str, JSON], name: str) -> Mapping[str, JSON] | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise CanvasRequestError.malformed(f"The request's {name!r} is not a JSON object.")
    return value


def _identifier(data: Mapping[str, JSON], name: str) -> str | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise CanvasRequestError.malformed(f"The request's {name!r} is neither a string nor a number.")
    return str(value)


@dataclass(frozen=True)
class InitializeRequest(GistObject):
    """What Gist sends to the initialize URL when the app loads (a conversation opens, a messenger home shows).

    Attributes:
        workspace_id: the workspace, as a string (the install's ``state``; key stored tokens with it).
        admin: the teammate looking at the inbox (absent in the messenger).
        conversation: the conversation open in the inbox.
        contact: the contact the conversation is with, or the messenger's visitor.
        context: where the canvas is shown (:class:`CanvasContext`); empty when Gist sent none.
    """

    kind: ClassVar[CanvasKind] = "initialize"

    workspace_id: str | None = None
    admin: Teammate | None = None
    conversation: Conversation | None = None
    contact: Contact | None = None
    context: CanvasContext = field(default_factory=lambda: CanvasContext.from_api({}))

    @classmethod
    def from_api(cls, data: Mapping[str, JSON]) -> Self:
        """Build the request from Gist's JSON body.

        Raises:
            CanvasRequestError: ``canvas_request_malformed``: the body is not a JSON object, or a known field
                has the wrong type.
        """
        if not isinstance(data, Mapping):
            raise CanvasRequestError.malformed(f"The request body is a JSON {type(data).__name__}, not an object.")
        obj = super().from_api(data)
        values = obj.__dict__
        values["workspace_id"] = _identifier(data, "workspace_id")
        admin, conversation, contact = (_object(data, k) for k in ("admin", "conversation", "contact"))
        values["admin"] = Teammate.from_api(admin) if admin is not None else None
        values["conversation"] = Conversation.from_api(conversation) if conversation is not None else None
        values["contact"] = Contact.from_api(contact) if contact is not None else None
        values["context"] = CanvasContext.from_api(_object(data, "context") or {})
        obj._read_more(data)
        return obj

    def _read_more(self, data: Mapping[str, JSON]) -> None:
        """Fill the fields a subclass adds (none here)."""

    @property
    def location(self) -> str | None:
        """``"inbox"`` or ``"messenger"``: where the canvas is shown (``context.location``)."""
        return self.context.location

    @property
    def conversation_id(self) -> str | None:
        """The open conversation's id as a string (``conversation.id``; Gist's demo app reads a flat
        ``conversation_id``, which is used when there is no ``conversation`` object)."""
        if self.conversation is not None and self.conversation.id is not None:
            return str(self.conversation.id)
        value = self.raw.get("conversation_id")
        return str(value) if isinstance(value, str | int) and not isinstance(value, bool) else None


@dataclass(frozen=True)
class SubmitRequest(InitializeRequest):
    """What Gist sends to the submit URL when a button, list row or input of the canvas is used.

    Attributes:
        component_id: the id of the component used, as a string (always present: a submit request without one
            is refused with 400 before any handler runs).
        input_values: the canvas's input values by input id (a new dict, yours to change).
        current_canvas: the canvas shown when the component was used, as Gist sent it.
        stored_data: the ``stored_data`` of the app's previous answer (a new dict; empty when there was none).
    """

    kind: ClassVar[CanvasKind] = "submit"

    component_id: str | None = None
    input_values: dict[str, JSON] = field(default_factory=dict)
    current_canvas: Mapping[str, JSON] | None = None
    stored_data: dict[str, JSON] = field(default_factory=dict)

    def _read_more(self, data: Mapping[str, JSON]) -> None:
        values = self.__dict__
        values["component_id"] = _identifier(data, "component_id")
        if not str(values["component_id"] or "").strip():
            # An initialize body posted to the submit URL (or any body without the component used) is not a submit.
            raise CanvasRequestError.malformed("The submit request names no component_id, so it was refused.")
        values["input_values"] = dict(_object(data, "input_values") or {})
        values["current_canvas"] = _object(data, "current_canvas")
        values["stored_data"] = dict(_object(data, "stored_data") or {})


#: Either request; a handler of both kinds can take this.
CanvasRequest = InitializeRequest | SubmitRequest

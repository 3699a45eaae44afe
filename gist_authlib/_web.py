"""The framework-neutral request and reply the login is written over; each adapter translates to and from them."""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass, field
from typing import Protocol

from ._pending import CookieToSet

__all__ = ["CookieToSet", "Headers", "Reply", "Request"]


class Headers(Protocol):
    """A request's headers as every framework keeps them: looked up by name, whatever its case."""

    def get(self, key: str, /) -> str | None:
        """The header's value, or ``None``."""
        ...


@dataclass(slots=True)
class Request:
    """What the login reads of a framework's request.

    Attributes:
        method: ``GET`` or ``POST``.
        url: the request's absolute URL, as the app sees it.
        params: the callback's parameters (the query, or the form of a ``form_post`` callback), in order.
        headers: the request's headers (a case-insensitive mapping; the framework's own object).
        session: the app's session, or ``None`` when the app has none.
        session_empty: whether the browser brought no session.
        client: the peer's address (the socket's), or ``None`` on a Unix socket.
        debug: whether the app runs in debug mode (error pages then explain themselves).
        native: the framework's own request, for the adapter's steps after a login.
    """

    method: str
    url: str
    params: list[tuple[str, str]]
    headers: Headers
    session: MutableMapping[str, object] | None
    session_empty: bool = False
    client: str | None = None
    debug: bool = False
    native: object = None

    @property
    def cookie_header(self) -> str | None:
        """The raw ``Cookie`` header (cookies are read by their exact names from it)."""
        return self.headers.get("cookie")


@dataclass(slots=True)
class Reply:
    """What the login answers, for the adapter to turn into its framework's response.

    Attributes:
        status: the HTTP status.
        location: where a redirect goes.
        body: an HTML page.
        headers: extra headers.
        cookies: cookies to set.
        native: a response the app's own callback returned (``on_login``, ``on_error``): sent as it is, with the
            headers and cookies above added.
    """

    status: int = 200
    location: str | None = None
    body: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    cookies: list[CookieToSet] = field(default_factory=list)
    native: object = None

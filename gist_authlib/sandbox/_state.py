"""What a sandbox holds and its inbox reads: its workspace, the apps registered with it, and its limits.

Apart from the sandbox (``_app``) so that the inbox (``_inbox``) can name these without importing the sandbox,
which itself builds the inbox: no two modules import each other.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import urlsplit

from .._types import JSON

__all__ = [
    "DEFAULT_CONTACTS",
    "DEFAULT_TEAMMATES",
    "SandboxClient",
    "SandboxLimits",
    "SandboxState",
    "Workspace",
]


@dataclass(frozen=True)
class SandboxLimits:
    """How much the sandbox keeps, so that a long run (a load test, a demo left open) uses bounded memory.

    Logs keep their newest entries; stores of live things drop their oldest (or expired) ones first; the
    workspace's own data refuses new entries past its limit, as a plan limit would.

    Attributes:
        codes: authorization codes held at once. Every code is also dropped once it expires (``code_ttl``):
            a used code is kept until then so that a replay is recognised and revokes what it issued. Past
            this many, the oldest go (and can no longer be exchanged).
        tokens: access tokens held (with their refresh tokens and rate-limit windows). Past this many, the
            oldest are forgotten and answer 401, as revoked tokens do.
        records: entries kept in each log meant for tests to read (``token_requests``,
            ``installs_acknowledged``); the oldest go first. A test that counts a log's entries must stay
            under this many.
        canvas_calls: entries kept in ``inbox.calls`` (each holds a request and a canvas, so fewer).
        inbox_visits: conversations open in the inbox (one per tab and conversation); past this many the
            least recently used is closed, and a click in it asks to open the conversation again.
        events: events kept in the workspace (the newest; ids keep counting up).
        contacts: contacts the workspace may hold; creating one more answers 422.
        tags: tags the workspace may hold; creating one more answers 422.

    The limits count entries, not bytes; the values a request names are cut to 200 characters in the logs.
    """

    codes: int = 1_000
    tokens: int = 1_000
    records: int = 10_000
    canvas_calls: int = 1_000
    inbox_visits: int = 200
    events: int = 10_000
    contacts: int = 10_000
    tags: int = 1_000

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"SandboxLimits.{name} must be a whole number of at least 1, not {value!r}.")


@dataclass(frozen=True)
class SandboxClient:
    """An app registered with the sandbox, as in Gist's Developer Hub.

    Attributes:
        client_id: the app's client id.
        client_secret: the app's client secret.
        redirect_uris: the redirect URIs registered for the app; a login must use one of them exactly, but for
            the port of a loopback one (``http://127.0.0.1/...``, ``http://localhost:8000/...``), which may be any
            (RFC 8252 section 7.3; ``create_app(any_loopback_port=False)`` asks for the exact port too).
        name: the app's name, shown on the consent page.
        retired_secret_digests: SHA-256 hex digests of secrets the app had before (``gist-authlib sandbox
            --new-secret`` keeps them), so that a token request still sending one is told the secret was replaced.
            Only digests: the sandbox never accepts nor shows a retired secret.
    """

    client_id: str
    client_secret: str
    redirect_uris: tuple[str, ...]
    name: str = "Sandbox App"
    retired_secret_digests: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for uri in self.redirect_uris:
            try:
                scheme = urlsplit(uri).scheme
            except ValueError:  # an unclosed IPv6 bracket, say
                scheme = ""
            # RFC 6749 section 3.1.2: an absolute URI, without a fragment.
            if not scheme or "#" in uri:
                raise ValueError(f"{uri!r} is not a redirect URI: give an absolute URI without a fragment.")

    def __repr__(self) -> str:
        return f"SandboxClient(client_id={self.client_id!r}, redirect_uris={self.redirect_uris!r}, name={self.name!r})"


def json_object(value: JSON) -> dict[str, JSON]:
    """``value``'s fields when it is a JSON object (the sandbox's own records always are), else none."""
    return value if isinstance(value, dict) else {}


def json_array(value: JSON) -> list[JSON]:
    """``value``'s items when it is a JSON array, else none."""
    return value if isinstance(value, list) else []


DEFAULT_TEAMMATES: tuple[dict[str, JSON], ...] = (
    {
        "id": 1001,
        "name": "Ada Lovelace",
        "email": "ada@sandbox.example",
        "avatar": "https://sandbox.example/avatars/ada.png",
        "agent_status": "available",
        "last_active_on": 1764400000,
        "away_mode_enabled": False,
        "team_ids": [301],
        "has_inbox_seat": True,
    },
    {
        "id": 1002,
        "name": "Grace Hopper",
        "email": "grace@sandbox.example",
        "avatar": "https://sandbox.example/avatars/grace.png",
        "agent_status": "away",
        "last_active_on": 1764300000,
        "away_mode_enabled": True,
        "team_ids": [301, 302],
        "has_inbox_seat": True,
    },
    {
        "id": 1003,
        "name": "Alan Turing",
        "email": "alan@sandbox.example",
        "avatar": "https://sandbox.example/avatars/alan.png",
        "agent_status": "available",
        "last_active_on": 1764200000,
        "away_mode_enabled": False,
        "team_ids": [302],
        "has_inbox_seat": False,
    },
)


DEFAULT_TEAMS: tuple[dict[str, JSON], ...] = ({"id": 301, "name": "Support"}, {"id": 302, "name": "Sales"})

DEFAULT_CONTACTS: tuple[dict[str, JSON], ...] = tuple(
    {
        "id": 5001 + i,
        "email": f"{name.lower()}@customer.example",
        "user_id": f"u-{1001 + i}",
        "name": name,
        "phone": None,
        "created_at": 1764000000 + i,
        "updated_at": 1764000000 + i,
        "tags": ["vip"] if i % 2 == 0 else [],
        "custom_properties": {"plan": "pro" if i % 3 == 0 else "free"},
    }
    for i, name in enumerate(["Beatrix", "Carlos", "Dmitri", "Emeka", "Farida"])
)


@dataclass
class Workspace:
    """The one Gist workspace the sandbox serves (objects use Gist's field names).

    Attributes:
        id: the workspace id (Gist sends it as ``state`` on installs started from Gist).
        name: the workspace's name.
        teammates: teammate objects.
        teams: team objects.
        contacts: contact objects (``id``, ``email``, ``user_id``, ``tags``, ...).
        tags: tag objects (``id``, ``name``).
        events: events tracked through ``POST /events``.
    """

    id: int = 100001
    name: str = "Sandbox Workspace"
    teammates: list[dict[str, JSON]] = field(default_factory=lambda: [dict(t) for t in DEFAULT_TEAMMATES])
    teams: list[dict[str, JSON]] = field(default_factory=lambda: [dict(t) for t in DEFAULT_TEAMS])
    contacts: list[dict[str, JSON]] = field(default_factory=lambda: [copy.deepcopy(c) for c in DEFAULT_CONTACTS])
    tags: list[dict[str, JSON]] = field(default_factory=lambda: [{"id": 701, "name": "vip"}])
    events: list[dict[str, JSON]] = field(default_factory=list)


class SandboxState(Protocol):
    """What the inbox reads from its sandbox; a :class:`~gist_authlib.sandbox.GistSandbox` is one."""

    @property
    def workspace(self) -> Workspace: ...

    @property
    def clients(self) -> Mapping[str, SandboxClient]: ...

    @property
    def limits(self) -> SandboxLimits: ...

"""The sandbox's slice of Gist's REST API: teammates, teams, contacts, tags, token info.

A mixin over :class:`~gist_authlib.sandbox.GistSandbox`'s state; responses use Gist's wrapping
(``{"contacts": [...]}``, ``{"contact": {...}}``) and ``pages`` links, timestamps in Unix seconds.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .._types import JSON
from ._rules import REALM
from ._state import SandboxLimits, Workspace, json_array, json_object

__all__ = ["ApiFault", "RateLimit", "RestAPI", "SandboxToken"]

#: Which scopes allow each kind of access (any one of them suffices).
READ_CONTACTS = ("read_contact", "read_bulk_contacts")
WRITE_CONTACTS = ("write_contact", "write_bulk_contacts")


@dataclass
class SandboxToken:
    """An access token the sandbox issued (kept server-side only).

    Attributes:
        client_id: the app it was issued to.
        scopes: the scopes it grants.
        revoked: revoked (uninstalled, refreshed, or its code replayed).
        expires_at: when it expires (Unix seconds), or ``None`` for a token that does not (Gist's).
        refresh_token: the refresh token that renews it, if any (so that both are forgotten together).
    """

    client_id: str
    scopes: tuple[str, ...]
    revoked: bool = False
    expires_at: float | None = None
    refresh_token: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class RateLimit:
    """At most ``requests`` API calls per token in each window of ``per`` seconds; then 429 + Retry-After."""

    requests: int
    per: float = 1.0


@dataclass(frozen=True)
class ApiFault:
    """A canned answer for the next API request (not the OAuth endpoints)."""

    status: int = 503
    retry_after: str | None = None
    body: dict[str, JSON] = field(default_factory=lambda: {"errors": [{"code": "unavailable"}]})


class RestAPI:
    """Route handlers of the REST slice; mixed into GistSandbox, which owns the state used here."""

    # Provided by GistSandbox.
    workspace: Workspace
    limits: SandboxLimits
    _next_event_id: int
    clock: Callable[[], float]
    rate_limit: RateLimit | None
    api_faults: deque[ApiFault]
    api_requests: int
    _tokens: dict[str, SandboxToken]
    _lock: threading.Lock
    _windows: dict[str, tuple[float, int]]

    def api_routes(self) -> list[Route]:
        return [
            Route("/token", self._token_info, methods=["GET"]),
            Route("/token/info", self._token_info, methods=["GET"]),
            Route("/teammates", self._teammates, methods=["GET"]),
            Route("/teammates/{item_id}", self._teammate, methods=["GET"]),
            Route("/teams", self._teams, methods=["GET"]),
            Route("/teams/{item_id}", self._team, methods=["GET"]),
            Route("/contacts", self._contacts, methods=["GET"]),
            Route("/contacts", self._upsert_contact, methods=["POST"]),
            Route("/contacts/batch", self._upsert_contacts, methods=["POST"]),
            Route("/contacts/{item_id}", self._contact, methods=["GET"]),
            Route("/contacts/{item_id}", self._delete_contact, methods=["DELETE"]),
            Route("/tags", self._tags, methods=["GET"]),
            Route("/tags", self._upsert_tag, methods=["POST"]),
            Route("/tags/{item_id}", self._delete_tag, methods=["DELETE"]),
            Route("/events", self._events, methods=["GET"]),
            Route("/events", self._track_event, methods=["POST"]),
        ]

    # -- access checks -------------------------------------------------------------------------------

    def _access(self, request: Request, *any_of: str) -> Response | None:
        """None when the request may go on; else the error answer (fault, 401, 403 or 429)."""
        with self._lock:
            self.api_requests += 1
            fault = self.api_faults.popleft() if self.api_faults else None
        if fault is not None:
            headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else None
            return JSONResponse(fault.body, status_code=fault.status, headers=headers)
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        value = value.strip()
        now = self.clock()
        sent = scheme.lower() == "bearer" and bool(value)
        with self._lock:
            token = self._tokens.get(value) if sent else None
            if token is None or token.revoked or (token.expires_at is not None and token.expires_at < now):
                # RFC 6750 section 3: a challenge on every 401, with an error code only when a token was sent.
                challenge = f'Bearer realm="{REALM}"'
                if sent:
                    challenge += (
                        ', error="invalid_token", error_description="The access token is unknown, revoked or expired"'
                    )
                headers = {"WWW-Authenticate": challenge}
                return api_error(401, "unauthorized", "A valid access token is required.", headers=headers)
            if any_of and not any(scope in token.scopes for scope in any_of):
                challenge = f'Bearer realm="{REALM}", error="insufficient_scope", scope="{any_of[0]}"'
                message = f"This token lacks the {any_of[0]} scope."
                headers = {"WWW-Authenticate": challenge}
                return api_error(403, "insufficient_scope", message, scope=any_of[0], headers=headers)
            return self._throttle(value, now)

    def _throttle(self, token: str, now: float) -> Response | None:
        if self.rate_limit is None:
            return None
        start, count = self._windows.get(token, (now, 0))
        if now - start >= self.rate_limit.per:
            start, count = now, 0
        if count >= self.rate_limit.requests:
            wait = max(1, math.ceil(self.rate_limit.per - (now - start)))
            return api_error(429, "rate_limited", "Too many requests.", headers={"Retry-After": str(wait)})
        self._windows[token] = (start, count + 1)
        return None

    # -- token info, teammates, teams ----------------------------------------------------------------

    async def _token_info(self, request: Request) -> Response:
        denied = self._access(request)
        if denied is not None:
            return denied
        return JSONResponse({"workspace_id": self.workspace.id, "workspace_name": self.workspace.name})

    async def _teammates(self, request: Request) -> Response:
        return self._access(request, "read_teammates") or JSONResponse({"teammates": self.workspace.teammates})

    async def _teammate(self, request: Request) -> Response:
        return self._access(request, "read_teammates") or _one("teammate", self.workspace.teammates, request)

    async def _teams(self, request: Request) -> Response:
        return self._access(request, "read_teams") or JSONResponse({"teams": self.workspace.teams})

    async def _team(self, request: Request) -> Response:
        return self._access(request, "read_teams") or _one("team", self.workspace.teams, request)

    # -- contacts ----------------------------------------------------------------------------------

    async def _contacts(self, request: Request) -> Response:
        denied = self._access(request, *READ_CONTACTS)
        if denied is not None:
            return denied
        query = request.query_params
        for key in ("email", "user_id"):
            if key in query:
                with self._lock:
                    found = self._find_contact({key: query[key]})
                if found is None:
                    return api_error(404, "not_found", "No contact matches.")
                return JSONResponse({"contact": found})
        try:
            page = max(1, int(query.get("page", "1")))
            per_page = min(100, max(1, int(query.get("per_page", "50"))))
        except ValueError:
            return api_error(400, "bad_request", "page and per_page must be numbers.")
        with self._lock:
            contacts = list(self.workspace.contacts)
        last = max(1, math.ceil(len(contacts) / per_page))
        items = contacts[(page - 1) * per_page : page * per_page]

        base = str(request.base_url).rstrip("/")

        def link(number: int) -> str:
            return f"{base}/contacts?{urlencode({'page': number, 'per_page': per_page})}"

        pages = {"first": link(1), "last": link(last), "next": link(page + 1) if page < last else None}
        return JSONResponse({"contacts": items, "pages": pages})

    async def _contact(self, request: Request) -> Response:
        return self._access(request, *READ_CONTACTS) or _one("contact", self.workspace.contacts, request)

    async def _upsert_contact(self, request: Request) -> Response:
        denied = self._access(request, *WRITE_CONTACTS)
        if denied is not None:
            return denied
        body = await _json(request)
        if not isinstance(body, dict):
            return api_error(400, "bad_request", "Send a JSON object.")
        with self._lock:
            result = self._upsert(body)
        if isinstance(result, Response):
            return result
        contact, created = result
        return JSONResponse({"contact": contact}, status_code=201 if created else 200)

    async def _upsert_contacts(self, request: Request) -> Response:
        denied = self._access(request, "write_bulk_contacts")
        if denied is not None:
            return denied
        body = await _json(request)
        batch = body.get("contacts") if isinstance(body, dict) else None
        if not isinstance(batch, list) or not all(isinstance(c, dict) for c in batch):
            return api_error(400, "bad_request", 'Send {"contacts": [...]}.')
        results = []
        with self._lock:
            for item in batch:
                result = self._upsert(json_object(item))
                if isinstance(result, Response):
                    return result
                results.append(result[0])
        return JSONResponse({"contacts": results})

    async def _delete_contact(self, request: Request) -> Response:
        denied = self._access(request, *WRITE_CONTACTS)
        if denied is not None:
            return denied
        with self._lock:
            contact = _by_id(self.workspace.contacts, request.path_params["item_id"])
            if contact is None:
                return api_error(404, "not_found", "No contact with this id.")
            self.workspace.contacts.remove(contact)
        return JSONResponse({})

    def _find_contact(self, keys: dict[str, JSON]) -> dict[str, JSON] | None:
        for key in ("id", "email", "user_id"):
            value = keys.get(key)
            if value is None:
                continue
            for contact in self.workspace.contacts:
                if str(contact.get(key)) == str(value):
                    return contact
        return None

    def _upsert(self, fields: dict[str, JSON]) -> tuple[dict[str, JSON], bool] | Response:
        if not any(fields.get(k) for k in ("id", "email", "user_id")):
            return api_error(400, "bad_request", "A contact needs an id, an email or a user_id.")
        now = int(self.clock())
        contact = self._find_contact(fields)
        if contact is None:
            if fields.get("id"):
                return api_error(404, "not_found", "No contact with this id.")
            if len(self.workspace.contacts) >= self.limits.contacts:
                return api_error(
                    422, "limit_reached", f"The sandbox's workspace holds at most {self.limits.contacts} contacts."
                )
            new_id = max((int(str(c["id"])) for c in self.workspace.contacts), default=5000) + 1
            # Every known field is present (null when unset), as in Gist's answers.
            blank: dict[str, JSON] = {
                "email": None,
                "user_id": None,
                "name": None,
                "phone": None,
                "tags": [],
                "custom_properties": {},
            }
            contact = {**blank, **fields, "id": new_id, "created_at": now, "updated_at": now}
            self.workspace.contacts.append(contact)
            return contact, True
        contact.update({k: v for k, v in fields.items() if k not in ("id", "created_at")})
        contact["updated_at"] = now
        return contact, False

    # -- tags ----------------------------------------------------------------------------------------

    async def _tags(self, request: Request) -> Response:
        return self._access(request, "read_tags") or JSONResponse({"tags": self.workspace.tags})

    async def _upsert_tag(self, request: Request) -> Response:
        denied = self._access(request, "write_tags")
        if denied is not None:
            return denied
        body = json_object(await _json(request))
        name = body.get("name")
        if not isinstance(name, str) or not name.strip():
            return api_error(400, "bad_request", "A tag needs a name.")
        with self._lock:
            tag = _by_id(self.workspace.tags, body["id"]) if body.get("id") is not None else None
            if body.get("id") is not None and tag is None:
                return api_error(404, "not_found", "No tag with this id.")
            if tag is not None:
                old, tag["name"] = tag["name"], name
                for contact in self.workspace.contacts:
                    contact["tags"] = [name if t == old else t for t in json_array(contact.get("tags"))]
            else:
                tag = next((t for t in self.workspace.tags if t["name"] == name), None)
                if tag is None:
                    if len(self.workspace.tags) >= self.limits.tags:
                        return api_error(
                            422, "limit_reached", f"The sandbox's workspace holds at most {self.limits.tags} tags."
                        )
                    tag = {
                        "id": max((int(str(t["id"])) for t in self.workspace.tags), default=700) + 1,
                        "name": name,
                    }
                    self.workspace.tags.append(tag)
            targets = body.get("contacts") or []
            for target in targets if isinstance(targets, list) else [None]:  # not an array: no contact named
                tagged = self._find_contact(target) if isinstance(target, dict) else None
                if tagged is None or not isinstance(target, dict):
                    return api_error(404, "not_found", "A contact to tag does not exist.")
                names = [t for t in json_array(tagged.get("tags")) if t != name]
                tagged["tags"] = names if target.get("untag") else [*names, name]
            return JSONResponse({"tag": tag})

    async def _delete_tag(self, request: Request) -> Response:
        denied = self._access(request, "write_tags")
        if denied is not None:
            return denied
        with self._lock:
            tag = _by_id(self.workspace.tags, request.path_params["item_id"])
            if tag is None:
                return api_error(404, "not_found", "No tag with this id.")
            self.workspace.tags.remove(tag)
            for contact in self.workspace.contacts:
                contact["tags"] = [t for t in json_array(contact.get("tags")) if t != tag["name"]]
        return JSONResponse({})

    # -- events: the one non-idempotent write of the slice (each POST records a new event) -----------

    async def _events(self, request: Request) -> Response:
        return self._access(request, "read_events") or JSONResponse({"events": self.workspace.events})

    async def _track_event(self, request: Request) -> Response:
        denied = self._access(request)
        if denied is not None:
            return denied
        body = await _json(request)
        if not isinstance(body, dict) or not isinstance(body.get("event_name"), str):
            return api_error(400, "bad_request", "An event needs an event_name.")
        with self._lock:
            event = {"id": self._next_event_id, **body, "occurred_at": int(self.clock())}
            self._next_event_id += 1
            self.workspace.events.append(event)
            excess = len(self.workspace.events) - self.limits.events
            if excess > 0:  # the newest are kept, as a log
                del self.workspace.events[:excess]
        return JSONResponse({"event": event}, status_code=201)


def api_error(
    status: int, code: str, message: str, *, scope: str | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    """Gist-like JSON error (Gist's own shape is undocumented)."""
    error: dict[str, str] = {"code": code, "message": message}
    if scope:
        error["scope"] = scope
    return JSONResponse({"errors": [error]}, status_code=status, headers=headers)


def _by_id(items: list[dict[str, JSON]], item_id: object) -> dict[str, JSON] | None:
    return next((item for item in items if str(item.get("id")) == str(item_id)), None)


def _one(key: str, items: list[dict[str, JSON]], request: Request) -> Response:
    item = _by_id(items, request.path_params["item_id"])
    if item is None:
        return api_error(404, "not_found", f"No {key} with this id.")
    return JSONResponse({key: item})


async def _json(request: Request) -> JSON:
    try:
        body: JSON = await request.json()
    except ValueError:
        return None
    return body

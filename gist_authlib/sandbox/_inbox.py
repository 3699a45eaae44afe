"""The sandbox's inbox: a conversation beside the installed apps' canvases, as Gist's inbox shows them.

The inbox plays Gist for canvas apps. Opening a conversation POSTs a signed initialize request to each
installed app; a click on a button or a list row POSTs a signed submit request with the component's id,
the input values, the canvas shown and the ``stored_data`` the app last returned. Pages are rendered on the
server from the apps' JSON, with forms and no script, under a strict Content-Security-Policy.

Like the rest of the sandbox it shares nothing with the client side of gist_authlib: it signs and renders
with its own code, so a bug in :mod:`gist_authlib.canvas` cannot hide behind an inbox that agrees with it.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import re
import secrets
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from html import escape
from typing import TYPE_CHECKING, Final
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from .._pages import STYLE, page
from .._types import JSON
from ._state import SandboxState, json_array, json_object

if TYPE_CHECKING:
    import ssl

    import httpx2

__all__ = ["CanvasApp", "CanvasCall", "Inbox"]

#: What the inbox signs with (one third-party source; the client side reads its own copy from GistProvider).
SIGNATURE_HEADER: Final = "X-Gist-Signature"
SIGNATURE_SCHEME: Final = "sha256"

#: Every inbox page: no script at all, styles and forms from this origin only, never framed.
INBOX_CSP: Final = (
    "default-src 'none'; style-src 'self'; img-src 'self' data: https:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
_PAGE_HEADERS: Final = {
    "Content-Security-Policy": INBOX_CSP,
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
    # Not no-referrer: Chromium then sends "Origin: null" with the form posts, and the origin check refuses them.
    "Referrer-Policy": "same-origin",
}

#: What each sample conversation's contact wrote (the contacts are the workspace's first ones).
_OPENING_MESSAGES: Final = (
    "Hi! My order has not arrived yet. Can you check where it is?",
    "Could I switch my plan to the yearly one?",
    "The invoice I received shows my old address.",
)


@dataclass(frozen=True)
class CanvasApp:
    """A canvas app installed in the sandbox's workspace, as its settings in Gist's Developer Hub say.

    Requests to it are signed with the client secret of the registered app (:class:`SandboxClient`)
    whose id is ``client_id``.

    Attributes:
        client_id: the registered app's client id.
        initialize_url: where the inbox POSTs the initialize request.
        submit_url: where it POSTs each submit request.
        name: the heading above the app's canvas; the registered app's name by default.
    """

    client_id: str
    initialize_url: str
    submit_url: str
    name: str | None = None

    def __post_init__(self) -> None:
        for attr in ("initialize_url", "submit_url"):
            parts = urlsplit(getattr(self, attr))
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValueError(f"CanvasApp.{attr} must be an absolute http(s) URL, not {getattr(self, attr)!r}.")

    @classmethod
    def at(cls, client_id: str, base_url: str, name: str | None = None) -> CanvasApp:
        """The app whose URLs are ``<base_url>/initialize`` and ``<base_url>/submit``.

        ``CanvasApp.at("my-app", "http://127.0.0.1:8000/gist/canvas")`` matches gist_authlib's default routes.
        """
        base = base_url.rstrip("/")
        return cls(client_id, f"{base}/initialize", f"{base}/submit", name)


@dataclass(frozen=True)
class CanvasCall:
    """One request the inbox sent to a canvas app (for tests; no secret or signature is kept).

    Attributes:
        client_id: the app called.
        kind: ``"initialize"`` or ``"submit"``.
        url: the URL called.
        request: the JSON body sent.
        status: the HTTP status answered, or ``None`` when no answer came.
        canvas: the canvas object of a valid answer (``{"content": ..., "stored_data": ...}``), else ``None``.
        error: why the answer was not shown, or ``None``.
    """

    client_id: str
    kind: str
    url: str
    request: dict[str, JSON]
    status: int | None
    canvas: dict[str, JSON] | None
    error: str | None


@dataclass
class _View:
    """One app's canvas as the inbox currently shows it."""

    canvas: dict[str, JSON] | None = None
    error: str | None = None


@dataclass
class _Visit:
    """A conversation as one browser tab has it open: each app's current canvas and stored data."""

    conversation_id: int
    location: str
    views: dict[str, _View] = field(default_factory=dict)


class Inbox:
    """The inbox pages and the canvas calls behind them; ``GistSandbox.inbox`` is one.

    Args:
        sandbox: the sandbox whose workspace, contacts, teammates and registered apps are shown.
        apps: the installed canvas apps.
        signature_header: the header the inbox signs in.
        signature_scheme: the signature's scheme (``sha256`` gives ``sha256=<hex>``; ``""`` a bare hex digest).

    Attributes:
        apps: the installed apps, in the order their canvases are shown (add with :meth:`install`).
        calls: the requests sent to apps, in order (the newest ``sandbox.limits.canvas_calls``).
        transport: the httpx2 transport the calls go through (``None``: the network; a test may set
            ``httpx2.ASGITransport(app)``).
        timeout: seconds to wait for an app.
    """

    def __init__(
        self,
        sandbox: SandboxState,
        apps: Iterable[CanvasApp] = (),
        *,
        signature_header: str = SIGNATURE_HEADER,
        signature_scheme: str = SIGNATURE_SCHEME,
    ) -> None:
        self.sandbox = sandbox
        self.apps: list[CanvasApp] = list(apps)
        self.calls: list[CanvasCall] = []
        self.transport: httpx2.AsyncBaseTransport | None = None
        self.timeout = 10.0
        self.signature_header = signature_header
        self.signature_scheme = signature_scheme
        self._visits: OrderedDict[str, _Visit] = OrderedDict()
        self._tls: ssl.SSLContext | None = None

    def install(self, app: CanvasApp) -> CanvasApp:
        """Install (or replace) a canvas app."""
        self.apps = [a for a in self.apps if a.client_id != app.client_id] + [app]
        return app

    def routes(self) -> list[Route]:
        """The inbox's routes, to mount in the sandbox."""
        return [
            Route("/inbox", self._home, methods=["GET"]),
            Route("/inbox/inbox.css", self._stylesheet, methods=["GET"]),
            Route("/inbox/conversations/{conversation_id:int}", self._conversation, methods=["GET"]),
            Route("/inbox/submit", self._submit, methods=["POST"]),
        ]

    # -- what the inbox shows ------------------------------------------------------------------------

    def conversations(self) -> list[dict[str, JSON]]:
        """The sample conversations: one with each of the workspace's first contacts, as Gist's objects."""
        found: list[dict[str, JSON]] = []
        for index, contact in enumerate(self.sandbox.workspace.contacts[: len(_OPENING_MESSAGES)]):
            created_at = contact.get("created_at")  # the sandbox's own, a whole number of seconds
            created = (created_at if isinstance(created_at, int) and created_at else 1764000000) + 3600
            found.append(
                {
                    "id": 9001 + index,
                    "state": "open",
                    "created_at": created,
                    "updated_at": created,
                    "contacts": [{"id": contact.get("id")}],
                    "contact": contact,
                    "message": _OPENING_MESSAGES[index],
                }
            )
        return found

    def _admin(self) -> dict[str, JSON] | None:
        teammates = self.sandbox.workspace.teammates
        seated = [t for t in teammates if t.get("has_inbox_seat")]
        return dict((seated or teammates)[0]) if teammates else None

    def _payload(self, conversation: dict[str, JSON], location: str) -> dict[str, JSON]:
        """The initialize body Gist's canvas request page documents."""
        context: dict[str, JSON] = {"locale": "en", "location": location}
        if location == "messenger":
            context.update(
                referrer="https://customer.example/pricing",
                messenger_launcher_color="#3a5bff",
                messenger_background_color="#ffffff",
            )
        return {
            "workspace_id": self.sandbox.workspace.id,
            "admin": self._admin() if location == "inbox" else None,
            "conversation": {k: v for k, v in conversation.items() if k not in ("contact", "message")},
            "contact": dict(json_object(conversation["contact"])),
            "context": context,
        }

    # -- calling the apps ----------------------------------------------------------------------------

    def sign(self, body: bytes, secret: str) -> str:
        """The signature header's value for ``body`` under ``secret``."""
        digest = hmac.new(secret.encode("utf-8"), body, self.signature_scheme or "sha256").hexdigest()
        return f"{self.signature_scheme}={digest}" if self.signature_scheme else digest

    async def _call(self, app: CanvasApp, kind: str, payload: dict[str, JSON]) -> _View:
        import httpx2

        url = app.initialize_url if kind == "initialize" else app.submit_url
        registered = self.sandbox.clients.get(app.client_id)
        if registered is None:
            return self._record(app, kind, url, payload, None, None, "The app is not registered with the sandbox.")
        body = json.dumps(payload).encode("utf-8")
        headers = {"Content-Type": "application/json", self.signature_header: self.sign(body, registered.client_secret)}
        if self._tls is None:
            # Made once: building a TLS context costs about 50 ms, which each client would pay again.
            self._tls = httpx2.create_ssl_context()
        try:
            async with httpx2.AsyncClient(
                transport=self.transport, timeout=self.timeout, trust_env=False, verify=self._tls
            ) as client:
                response = await client.post(url, content=body, headers=headers)
        except httpx2.HTTPError as exc:
            return self._record(
                app, kind, url, payload, None, None, f"The app could not be reached ({type(exc).__name__})."
            )
        if response.status_code != 200:
            return self._record(
                app, kind, url, payload, response.status_code, None, f"The app answered HTTP {response.status_code}."
            )
        canvas, problem = _canvas_of(response.content)
        return self._record(app, kind, url, payload, 200, canvas, problem)

    def _record(
        self,
        app: CanvasApp,
        kind: str,
        url: str,
        payload: dict[str, JSON],
        status: int | None,
        canvas: dict[str, JSON] | None,
        error: str | None,
    ) -> _View:
        self.calls.append(CanvasCall(app.client_id, kind, url, payload, status, canvas, error))
        excess = len(self.calls) - self.sandbox.limits.canvas_calls
        if excess > 0:  # the newest are kept
            del self.calls[:excess]
        return _View(canvas=canvas, error=error)

    # -- pages ---------------------------------------------------------------------------------------

    async def _home(self, request: Request) -> Response:
        conversations = self.conversations()
        if not conversations:
            return _page("Inbox", "<p>The workspace has no contacts, so there is no conversation to show.</p>")
        return RedirectResponse(f"/inbox/conversations/{conversations[0]['id']}", status_code=303)

    async def _stylesheet(self, request: Request) -> Response:
        return Response(_STYLESHEET, media_type="text/css", headers={"Cache-Control": "no-cache"})

    async def _conversation(self, request: Request) -> Response:
        conversation_id = int(request.path_params["conversation_id"])
        conversation = next((c for c in self.conversations() if c["id"] == conversation_id), None)
        if conversation is None:
            return _page("No such conversation", "<p>This conversation does not exist.</p>", 404)
        visit_id = request.query_params.get("visit", "")
        visit = self._visits.get(visit_id)
        if visit is None or visit.conversation_id != conversation_id:
            # A conversation opened afresh: Gist calls every app's initialize URL.
            location = "messenger" if request.query_params.get("location") == "messenger" else "inbox"
            visit_id, visit = secrets.token_urlsafe(12), _Visit(conversation_id, location)
            payload = self._payload(conversation, location)
            views = await asyncio.gather(*(self._call(app, "initialize", payload) for app in self.apps))
            visit.views = {app.client_id: view for app, view in zip(self.apps, views, strict=True)}
            self._visits[visit_id] = visit
            while len(self._visits) > self.sandbox.limits.inbox_visits:
                self._visits.popitem(last=False)
        return self._render(conversation, visit_id, visit)

    async def _submit(self, request: Request) -> Response:
        origin = request.headers.get("origin")
        if origin and origin != f"{request.url.scheme}://{request.url.netloc}":
            return _page("Cross-site request refused", "<p>The inbox form was posted from another site.</p>", 403)
        form = await request.form()
        visit_id = str(form.get("visit", ""))
        visit = self._visits.get(visit_id)
        if visit is None:
            again = '<p>Open the conversation again from <a href="/inbox">the inbox</a>.</p>'
            return _page("This view has expired", again, 400)
        app = next((a for a in self.apps if a.client_id == form.get("app")), None)
        view = visit.views.get(app.client_id) if app is not None else None
        if app is None or view is None or view.canvas is None:
            return _page("No such app", "<p>This app is not shown in this conversation.</p>", 400)
        component_id = str(form.get("component_id", ""))
        components = list(_walk(view.canvas))
        if not any(c.get("id") == component_id and not c.get("disabled") for c in components):
            return _page("No such component", "<p>The app's canvas has no usable component with this id.</p>", 400)
        conversation = next((c for c in self.conversations() if c["id"] == visit.conversation_id), None)
        if conversation is None:
            return _page("No such conversation", "<p>This conversation is gone.</p>", 404)
        payload = self._payload(conversation, visit.location)
        payload.update(
            component_id=component_id,
            input_values={
                str(c["id"]): str(form.get(f"input.{c['id']}", ""))
                for c in components
                if c.get("type") == "input" and isinstance(c.get("id"), str)
            },
            current_canvas=view.canvas,
            stored_data=view.canvas.get("stored_data") or {},
        )
        visit.views[app.client_id] = await self._call(app, "submit", payload)
        self._visits.move_to_end(visit_id)
        return RedirectResponse(f"/inbox/conversations/{visit.conversation_id}?visit={visit_id}", status_code=303)

    def _render(self, conversation: dict[str, JSON], visit_id: str, visit: _Visit) -> Response:
        current = ' aria-current="page"'
        links = "".join(
            f'<li><a href="/inbox/conversations/{c["id"]}"{current if c["id"] == conversation["id"] else ""}>'
            f"{escape(str(json_object(c['contact']).get('name') or 'Visitor'))}</a></li>"
            for c in self.conversations()
        )
        contact = json_object(conversation["contact"])
        admin = self._admin() or {}
        thread = (
            f'<section class="conversation" aria-label="Conversation">\n'
            f"<h2>{escape(str(contact.get('name') or 'Visitor'))} "
            f"<small>{escape(str(contact.get('email') or ''))}</small></h2>\n"
            f'<p class="message from-contact">{escape(str(conversation["message"]))}</p>\n'
            f'<p class="message from-admin">{escape(str(admin.get("name") or "A teammate"))} will look into it.</p>\n'
            "</section>"
        )
        panels = "".join(self._panel(app, visit_id, visit.views.get(app.client_id)) for app in self.apps) or (
            '<p class="muted">No canvas app is installed. Start the sandbox with <code>--canvas-url</code>, '
            "or pass <code>canvas_apps=[CanvasApp.at(client_id, url)]</code> to <code>create_app</code>.</p>"
        )
        body = (
            f'<div class="inbox">\n<nav aria-label="Conversations"><ul>{links}</ul></nav>\n{thread}\n'
            f'<aside class="apps" aria-label="Apps">{panels}</aside>\n</div>'
        )
        return _page(f"Inbox: {self.sandbox.workspace.name}", body)

    def _panel(self, app: CanvasApp, visit_id: str, view: _View | None) -> str:
        registered = self.sandbox.clients.get(app.client_id)
        name = app.name or (registered.name if registered is not None else app.client_id)
        if view is None or view.canvas is None:
            problem = view.error if view is not None and view.error else "The app has not answered."
            inner = f'<p class="c-text c-error" role="alert">{escape(problem)}</p>'
        else:
            notice = f'<p class="c-text c-error" role="alert">{escape(view.error)}</p>' if view.error else ""
            inner = (
                '<form method="post" action="/inbox/submit">\n'
                # Enter in a text field must not click the first row: a disabled default button stops it.
                '<button type="submit" disabled hidden aria-hidden="true"></button>\n'
                f'<input type="hidden" name="visit" value="{escape(visit_id)}">\n'
                f'<input type="hidden" name="app" value="{escape(app.client_id)}">\n'
                f"{notice}{_render_components(view.canvas)}\n</form>"
            )
        return f'<section class="app" aria-label="{escape(name)}">\n<h3>{escape(name)}</h3>\n{inner}\n</section>\n'


# --- reading and rendering a canvas ------------------------------------------------------------------


def _canvas_of(raw: bytes) -> tuple[dict[str, JSON] | None, str | None]:
    """The canvas object of an app's answer, or why it is not one."""
    try:
        data = json.loads(raw)
    except ValueError:
        return None, "The app's answer is not JSON."
    canvas = data.get("canvas") if isinstance(data, dict) else None
    content = canvas.get("content") if isinstance(canvas, dict) else None
    if not isinstance(content, dict) or not isinstance(content.get("components"), list):
        return None, 'The app\'s answer is not {"canvas": {"content": {"components": [...]}}}.'
    stored = canvas.get("stored_data") if isinstance(canvas, dict) else None
    if stored is not None and not isinstance(stored, dict):
        return None, "The app's stored_data is not a JSON object."
    assert isinstance(canvas, dict)
    return canvas, None


def _components(canvas: Mapping[str, JSON]) -> list[JSON]:
    """The components of a canvas :func:`_canvas_of` accepted."""
    return json_array(json_object(canvas.get("content")).get("components"))


def _walk(canvas: Mapping[str, JSON]) -> Iterable[dict[str, JSON]]:
    """Every component of a canvas, list rows included."""
    for component in _components(canvas):
        if isinstance(component, dict):
            yield component
            for item in json_array(component.get("items")):
                if isinstance(item, dict):
                    yield item


def _text(value: object) -> str:
    """Escaped text with Gist's ``**bold**``."""
    return re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", escape(str(value))).replace("\n", "<br>")


def _url(value: object, *, images: bool = False) -> str | None:
    if not isinstance(value, str):
        return None
    if value.startswith(("https://", "http://")) or (images and value.startswith("data:image/")):
        return value
    return None


def _submits(action: object) -> bool:
    return isinstance(action, dict) and action.get("type") == "submit"


def _render_components(canvas: Mapping[str, JSON]) -> str:
    return "\n".join(_render_component(c) for c in _components(canvas) if isinstance(c, dict))


def _render_component(component: dict[str, JSON]) -> str:
    kind = component.get("type")
    disabled = " disabled" if component.get("disabled") else ""
    if kind == "text":
        style = escape(str(component.get("style") or "paragraph"))
        align = escape(str(component.get("align") or "left"))
        tag = "h4" if style == "header" else "p"
        return f'<{tag} class="c-text c-{style} c-align-{align}">{_text(component.get("text", ""))}</{tag}>'
    if kind == "divider":
        return '<hr class="c-divider">'
    if kind == "spacer":
        return f'<div class="c-spacer c-spacer-{escape(str(component.get("size") or "m"))}"></div>'
    if kind == "button":
        label = _text(component.get("label", ""))
        style = escape(str(component.get("style") or "primary"))
        action = component.get("action")
        link = _url(action.get("url")) if isinstance(action, dict) and action.get("type") == "url" else None
        if link is not None:
            return (
                f'<a class="c-button c-{style}" href="{escape(link)}" target="_blank" '
                f'rel="noopener noreferrer">{label}</a>'
            )
        return (
            f'<button type="submit" class="c-button c-{style}" name="component_id" '
            f'value="{escape(str(component.get("id", "")))}"{disabled}>{label}</button>'
        )
    if kind == "list":
        rows = "".join(
            _render_item(item, bool(component.get("disabled"))) for item in json_array(component.get("items"))
        )
        return f'<ul class="c-list">{rows}</ul>'
    if kind == "input":
        input_id = escape(str(component.get("id", "")))
        caption = component.get("label")
        field_html = (
            f'<input type="text" name="input.{input_id}" value="{escape(str(component.get("value") or ""))}" '
            f'placeholder="{escape(str(component.get("placeholder") or ""))}" '
            f'aria-label="{escape(str(caption or component.get("id", "")))}"{disabled}>'
        )
        send = (
            f'<button type="submit" class="c-button c-secondary" name="component_id" value="{input_id}"{disabled}>'
            "Send</button>"
            if _submits(component.get("action"))
            else ""
        )
        heading = f'<span class="c-label">{_text(caption)}</span>' if caption else ""
        return f'<label class="c-input">{heading}{field_html}{send}</label>'
    return f'<p class="c-unknown">A {escape(str(kind))} component, which the sandbox does not draw.</p>'


def _render_item(item: object, list_disabled: bool) -> str:
    if not isinstance(item, dict):
        return ""
    image = _url(item.get("image"), images=True)
    picture = ""
    if image is not None:
        width, height = item.get("image_width") or 24, item.get("image_height") or 24
        rounded = " rounded" if item.get("rounded_image") else ""
        picture = (
            f'<img class="c-item-image{rounded}" src="{escape(image)}" alt="" '
            f'width="{escape(str(width))}" height="{escape(str(height))}">'
        )
    words = f'<span class="c-item-title">{_text(item.get("title", ""))}</span>'
    if item.get("subtitle"):
        words += f'<span class="c-item-subtitle">{_text(item["subtitle"])}</span>'
    words = f'<span class="c-item-words">{words}</span>'
    if _submits(item.get("action")):
        disabled = " disabled" if list_disabled or item.get("disabled") else ""
        value = escape(str(item.get("id", "")))
        return (
            f'<li><button type="submit" class="c-item" name="component_id" value="{value}"{disabled}>'
            f"{picture}{words}</button></li>"
        )
    return f'<li><div class="c-item">{picture}{words}</div></li>'


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    html = page(title, body, head='<link rel="stylesheet" href="/inbox/inbox.css">')
    return HTMLResponse(html, status_code=status, headers=dict(_PAGE_HEADERS))


# The pages' shared look, then the inbox's own: three columns on a wide screen, one on a phone.
_STYLESHEET: Final = STYLE + (
    "main{max-width:75rem}"
    ".inbox{display:grid;grid-template-columns:12rem minmax(0,1fr) 20rem;gap:1rem;align-items:start}"
    "@media (max-width:60rem){.inbox{grid-template-columns:minmax(0,1fr)}}"
    "nav ul{list-style:none;padding:0}"
    "nav a{display:block;padding:.4rem;border-radius:4px;color:inherit;text-decoration:none}"
    "nav a[aria-current]{background:var(--tint);font-weight:600}"
    ".message{padding:.6rem .8rem;border-radius:8px;max-width:30rem}"
    ".from-contact{background:var(--bg)}.from-admin{background:var(--tint);margin-left:auto}"
    ".app{border:1px solid var(--line);border-radius:8px;padding:.6rem .8rem;margin-bottom:1rem}"
    ".app h3{margin:0 0 .5rem;font-size:.85rem;text-transform:uppercase;color:var(--muted)}"
    ".c-header{font-size:1.05rem;margin:.3rem 0}.c-muted,.c-unknown{color:var(--muted)}.c-unknown{font-style:italic}"
    ".c-error{color:var(--error)}.c-align-center{text-align:center}.c-align-right{text-align:right}"
    ".c-spacer-xs{height:4px}.c-spacer-s{height:8px}.c-spacer-m{height:16px}"
    ".c-spacer-l{height:24px}.c-spacer-xl{height:32px}"
    ".c-button{display:block;width:100%;margin:.3rem 0;padding:.5rem;border-radius:6px;font:inherit;"
    "border:1px solid var(--accent);background:var(--accent);color:var(--on-accent);cursor:pointer;text-align:center}"
    ".c-secondary{background:none;color:var(--accent)}"
    ".c-link{background:none;border:none;color:var(--accent);text-decoration:underline}"
    ".c-button:disabled,.c-item:disabled{opacity:.5;cursor:default}"
    ".c-list{list-style:none;padding:0;margin:.3rem 0}"
    ".c-item{display:flex;gap:.5rem;align-items:center;width:100%;padding:.45rem .3rem;font:inherit;"
    "background:none;border:none;border-bottom:1px solid var(--line);text-align:left;color:inherit}"
    "button.c-item{cursor:pointer}button.c-item:hover{background:var(--tint)}"
    ".c-item-words{display:flex;flex-direction:column}.c-item-subtitle{color:var(--muted);font-size:.85rem}"
    ".c-item-image.rounded{border-radius:50%}"
    ".c-input{display:block;margin:.3rem 0}.c-label{display:block;font-size:.85rem}"
    ".c-input input{width:100%;padding:.4rem;font:inherit}"
    ":root{--tint:color-mix(in srgb,var(--accent) 16%,var(--card))}"
)

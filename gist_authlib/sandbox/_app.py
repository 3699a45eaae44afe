"""The sandbox itself: an ASGI app that behaves like Gist's OAuth server and a slice of its REST API.

It shares the provider's scope catalogue with the client side and nothing else, so a client bug cannot
hide in a sandbox that agrees with it.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
import shlex
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from typing import TYPE_CHECKING, NotRequired, TypedDict, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from .._pages import PAGE_HEADERS, page, page_csp
from ..provider import OFFICIAL_SCOPES
from ._api import ApiFault, RateLimit, RestAPI, SandboxToken
from ._inbox import CanvasApp, Inbox
from ._rules import CHALLENGE_PATTERN, REALM, description, params_once, redirect_uri_matches, secret_digest
from ._state import SandboxClient, SandboxLimits, Workspace

if TYPE_CHECKING:
    from starlette.types import Receive, Scope, Send

__all__ = ["GistSandbox", "TokenFault", "TokenRequestRecord", "create_app"]

CSRF_COOKIE = "gist_sandbox_csrf"
_GRANT_TYPES = {name: name for name in ("authorization_code", "refresh_token", "client_credentials", "password")}
_MAX_LOGGED = 200  # characters of a request's value kept in a log entry
_NOT_A_FORM = (
    "Send the token request as an application/x-www-form-urlencoded body (RFC 6749 section 4.1.3), "
    "or a JSON object of strings."
)


T = TypeVar("T")


class TokenAnswer(TypedDict):
    """The token endpoint's answer: the access token alone, as Gist's; the rest only when tokens expire."""

    access_token: str
    token_type: NotRequired[str]
    expires_in: NotRequired[int]
    refresh_token: NotRequired[str]


@dataclass(frozen=True)
class TokenFault:
    """A canned answer for the next token request, to rehearse Gist misbehaving.

    Attributes:
        status: the HTTP status to answer with.
        body: the raw body.
        content_type: the body's content type.
        delay: seconds to wait before answering (to rehearse a slow Gist); with ``status=None`` the
            request is then handled normally.
    """

    status: int | None = 500
    body: bytes = b'{"error": "server_error"}'
    content_type: str = "application/json"
    delay: float = 0.0


@dataclass(frozen=True, slots=True)
class TokenRequestRecord:
    """One request that reached ``POST /oauth/token`` (no secret, code or token is kept).

    Attributes:
        client_id: the client id the request named, if any.
        grant_type: the grant type it asked for.
        status: the HTTP status it was answered with.
        error: the OAuth error code it was answered with, if any.
    """

    client_id: str | None
    grant_type: str | None
    status: int
    error: str | None


@dataclass
class _Code:
    client_id: str
    redirect_uri: str
    scopes: tuple[str, ...]
    expires_at: float
    challenge: str | None
    used: bool = False
    tokens: list[str] = field(default_factory=list)


class GistSandbox(RestAPI):
    """A local Gist: consent pages, token endpoint and a slice of the REST API, as one ASGI app.

    Use :func:`create_app` to make one. The instance is itself the ASGI app and also lets tests look
    inside: :attr:`token_requests` lists what reached the token endpoint (the newest
    ``limits.records``), :attr:`installs_acknowledged` the acknowledged installs (as many). Everything the
    sandbox keeps is bounded by its :class:`SandboxLimits`.
    """

    def __init__(
        self,
        *,
        clients: Iterable[SandboxClient] = (),
        workspace: Workspace | None = None,
        scopes: Mapping[str, str] | None = None,
        auto_approve: bool = False,
        code_ttl: float = 600.0,
        clock: Callable[[], float] = time.time,
        secret_key: str | None = None,
        rate_limit: RateLimit | None = None,
        token_ttl: float | None = None,
        send_iss: bool = True,
        canvas_apps: Iterable[CanvasApp] = (),
        limits: SandboxLimits | None = None,
        any_loopback_port: bool = True,
    ) -> None:
        self.limits = limits or SandboxLimits()
        self.clients: dict[str, SandboxClient] = {c.client_id: c for c in clients}
        self.workspace = workspace or Workspace()
        self.scopes: dict[str, str] = dict(scopes if scopes is not None else OFFICIAL_SCOPES)
        self.auto_approve = auto_approve
        self.code_ttl = code_ttl
        self.clock = clock
        self.token_requests: list[TokenRequestRecord] = []
        self.token_faults: deque[TokenFault] = deque()
        self.installs_acknowledged: list[dict[str, str]] = []
        self.rate_limit = rate_limit
        self.token_ttl = token_ttl
        self.send_iss = send_iss
        self.any_loopback_port = any_loopback_port
        self.api_faults: deque[ApiFault] = deque()
        self.api_requests = 0
        self._windows: dict[str, tuple[float, int]] = {}
        # Insertion-ordered: the oldest come first, and with one TTL for all, so do the first to expire.
        self._codes: dict[str, _Code] = {}
        self._tokens: dict[str, SandboxToken] = {}
        self._refresh_tokens: dict[str, str] = {}  # refresh token -> the access token it renews
        self._minted = 0
        self._next_event_id = len(self.workspace.events) + 1
        self._lock = threading.Lock()
        key = secret_key or secrets.token_urlsafe(32)
        self._signer = URLSafeTimedSerializer(key, salt="gist-sandbox-consent")
        # A separate salt: a signed login request cannot be posted as an install decision, nor the reverse.
        self._install_signer = URLSafeTimedSerializer(key, salt="gist-sandbox-install-consent")
        self.inbox = Inbox(self, canvas_apps)
        self.app = Starlette(
            routes=[
                Route("/", self._index, methods=["GET"]),
                Route("/oauth/authorize", self._authorize, methods=["GET"]),
                Route("/oauth/authorize", self._decide, methods=["POST"]),
                Route("/oauth/token", self._token, methods=["POST"]),
                Route("/install", self._install, methods=["GET"]),
                Route("/install", self._decide_install, methods=["POST"]),
                Route("/install_success", self._install_success, methods=["GET"]),
                *self.api_routes(),
                *self.inbox.routes(),
            ],
            exception_handlers={ClientDisconnect: _client_gone},
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)

    def __repr__(self) -> str:
        return f"<GistSandbox clients={list(self.clients)} workspace={self.workspace.name!r}>"

    # -- helpers for tests and demos ----------------------------------------------------------------

    def add_client(self, client: SandboxClient) -> SandboxClient:
        """Register (or replace) an app."""
        self.clients[client.client_id] = client
        return client

    def issue_token(
        self, client_id: str, scopes: Iterable[str] = ("read_teammates",), *, expires_in: float | None = None
    ) -> TokenAnswer:
        """Mint a token directly, as if a login had completed (for API tests); returns the token dict.

        With ``expires_in`` (or the sandbox's ``token_ttl``) the token expires and carries a refresh token.
        """
        with self._lock:
            return self._mint(client_id, tuple(scopes), expires_in if expires_in is not None else self.token_ttl)

    def revoke(self, token: str) -> None:
        """Revoke one access token."""
        with self._lock:
            if token in self._tokens:
                self._tokens[token].revoked = True

    def uninstall(self, client_id: str) -> int:
        """Revoke every token of an app, as when a workspace uninstalls it; returns how many."""
        with self._lock:
            live = [t for t in self._tokens.values() if t.client_id == client_id and not t.revoked]
            for token in live:
                token.revoked = True
        return len(live)

    def fail_next_api_request(self, status: int = 503, *, retry_after: str | None = None, count: int = 1) -> None:
        """Answer the next ``count`` REST API requests with ``status`` (and a ``Retry-After`` header)."""
        for _ in range(count):
            self.api_faults.append(ApiFault(status=status, retry_after=retry_after))

    @property
    def refresh_requests(self) -> int:
        """How many refresh-token requests reached the token endpoint."""
        with self._lock:
            return sum(1 for r in self.token_requests if r.grant_type == "refresh_token")

    def _mint(self, client_id: str, scopes: tuple[str, ...], ttl: float | None) -> TokenAnswer:
        token = "gsb_" + secrets.token_urlsafe(32)
        expires_at = self.clock() + ttl if ttl is not None else None
        record = SandboxToken(client_id, scopes, expires_at=expires_at)
        answer: TokenAnswer = {"access_token": token}
        if ttl is not None:
            refresh = "gsr_" + secrets.token_urlsafe(32)
            record.refresh_token = refresh
            self._refresh_tokens[refresh] = token
            answer.update({"token_type": "bearer", "expires_in": int(ttl), "refresh_token": refresh})
        self._tokens[token] = record
        self._minted += 1
        while len(self._tokens) > self.limits.tokens:
            self._forget(next(iter(self._tokens)))
        return answer

    def _forget(self, token: str) -> None:
        """Drop an access token and everything kept for it (its refresh token, its rate-limit window)."""
        record = self._tokens.pop(token, None)
        if record is not None and record.refresh_token is not None:
            self._refresh_tokens.pop(record.refresh_token, None)
        self._windows.pop(token, None)

    def fail_next_token_request(
        self,
        status: int | None = 500,
        body: bytes | str | Mapping[str, object] = b'{"error": "server_error"}',
        *,
        content_type: str = "application/json",
        delay: float = 0.0,
    ) -> None:
        """Answer the next token request with ``status`` and ``body`` (after ``delay`` seconds).

        ``status=None`` with a ``delay`` only slows the next request down.
        """
        if isinstance(body, Mapping):
            body = json.dumps(dict(body))
        raw = body.encode() if isinstance(body, str) else body
        self.token_faults.append(TokenFault(status=status, body=raw, content_type=content_type, delay=delay))

    @property
    def tokens_issued(self) -> int:
        """How many access tokens the sandbox has issued since it started (forgotten ones included)."""
        with self._lock:
            return self._minted

    # -- pages --------------------------------------------------------------------------------------

    async def _index(self, request: Request) -> Response:
        rows = "".join(
            f"<li><code>{escape(c.client_id)}</code> ({escape(c.name)}): {escape(', '.join(c.redirect_uris))}</li>"
            for c in self.clients.values()
        )
        return _page(
            "Gist sandbox",
            f"<p>A local stand-in for Gist's OAuth server and REST API. Workspace: "
            f"{escape(self.workspace.name)} ({self.workspace.id}).</p>"
            f"<h2>Registered apps</h2><ul>{rows}</ul>"
            '<p><a href="/inbox">The inbox</a> shows installed canvas apps beside a conversation.</p>',
        )

    async def _install_success(self, request: Request) -> Response:
        record = {k: request.query_params.get(k, "")[:_MAX_LOGGED] for k in ("client_id", "workspace_id")}
        with self._lock:
            self.installs_acknowledged.append(record)
            keep_newest(self.installs_acknowledged, self.limits.records)
        return _page("App installed", "<p>The installation was acknowledged. You can close this tab.</p>")

    # -- authorization endpoint ---------------------------------------------------------------------

    def _check_authorize(
        self, params: Mapping[str, str], issuer: str, repeated: Sequence[str] = ()
    ) -> tuple[SandboxClient, tuple[str, ...]] | Response:
        """The app and the scopes of a valid authorization request, else the answer refusing it.

        Until the client and its redirect URI are known good, a refusal is a page and never a redirect (RFC 6749
        section 4.1.2.1); once they are, it is a redirect to the app carrying ``error``, ``error_description``
        and the ``state``, as the RFC asks.
        """
        twice = [name for name in ("client_id", "redirect_uri") if name in repeated]
        if twice:
            return _error_page(
                "Malformed request",
                f"{' and '.join(twice)} was sent more than once, so there is no telling where to send the answer.",
            )
        client = self.clients.get(params.get("client_id", ""))
        if client is None:
            return self._unknown_client_page(params.get("client_id", ""))
        received = params.get("redirect_uri", "")
        loopback = self.any_loopback_port
        if not any(redirect_uri_matches(uri, received, any_loopback_port=loopback) for uri in client.redirect_uris):
            return _redirect_mismatch_page(received, client.redirect_uris, self.any_loopback_port)
        refusal = self._authorize_refusal(params, repeated)
        if refusal is not None:
            error, text = refusal
            state = params.get("state") if "state" not in repeated else None
            answer = {"error": error, "error_description": description(text), "state": state}
            return _redirect(received, {**answer, "iss": issuer if self.send_iss else None})
        return client, _scopes(params)

    def _authorize_refusal(self, params: Mapping[str, str], repeated: Sequence[str]) -> tuple[str, str] | None:
        """The error code and description refusing a request from a known app to a registered URI, if any."""
        if repeated:
            return "invalid_request", f"Sent more than once: {', '.join(repeated)} (RFC 6749 section 3.1)."
        response_type = params.get("response_type")
        if response_type is None:
            return "invalid_request", "response_type is missing; send response_type=code."
        if response_type != "code":
            return "unsupported_response_type", "Only response_type=code is supported."
        scopes = _scopes(params)
        if not scopes:
            return "invalid_scope", "The request names no scope."
        unknown = [s for s in scopes if s not in self.scopes]
        if unknown:
            return "invalid_scope", (
                f"Not in the sandbox's catalogue: {' '.join(unknown)}. If Gist has added them, start the sandbox "
                "with --scope NAME for each (or pass scopes= to create_app)."
            )
        challenge, method = params.get("code_challenge"), params.get("code_challenge_method")
        if challenge is None:
            if method is not None:
                return "invalid_request", "code_challenge_method was sent without a code_challenge."
        elif method != "S256":
            # RFC 7636 section 4.3: a challenge without a method is a plain one.
            return "invalid_request", "Only code_challenge_method=S256 is supported (no method means plain)."
        elif not CHALLENGE_PATTERN.fullmatch(challenge):
            return "invalid_request", "code_challenge must be 43 to 128 characters of A-Z a-z 0-9 - . _ ~."
        return None

    def _unknown_client_page(self, client_id: str) -> HTMLResponse:
        """Name the client id received, those registered, and the setting or flag that makes them agree."""
        registered = ", ".join(f"<code>{escape(c)}</code>" for c in self.clients) or "none"
        body = (
            f'<p>No app with the client_id <code id="received">{escape(client_id) or "(none)"}</code> is '
            f"registered in this sandbox. Registered: {registered}.</p>\n"
            "<p>Set your app's client id (the <code>GIST_CLIENT_ID</code> setting, <code>&lt;NAME&gt;_CLIENT_ID</code> "
            "for a registration with another name, or <code>client_id</code> in Django's "
            "<code>AUTHLIB_OAUTH_CLIENTS</code>) to the one the sandbox printed, or start the sandbox with "
            f"<code>--client-id {escape(shlex.quote(client_id or 'YOUR_CLIENT_ID'))}</code>.</p>"
        )
        return _page("Unknown app", body, 400)

    async def _authorize(self, request: Request) -> Response:
        params, repeated = params_once(request.query_params.multi_items())
        checked = self._check_authorize(params, _origin(request), repeated)
        if isinstance(checked, Response):
            return checked
        client, scopes = checked
        if self.auto_approve:
            return self._approve(params, scopes, _origin(request))
        intro = (
            f"<p><strong>{escape(client.name)}</strong> would like to access the Gist workspace "
            f"<strong>{escape(self.workspace.name)}</strong>.</p>"
        )
        return self._consent_page(
            request,
            title="Authorize " + client.name,
            intro=intro,
            scopes=scopes,
            blob=self._signer.dumps(params),
            action="/oauth/authorize",
            redirect_uri=params["redirect_uri"],
        )

    def _consent_page(
        self,
        request: Request,
        *,
        title: str,
        intro: str,
        scopes: Iterable[str],
        blob: str,
        action: str,
        redirect_uri: str,
    ) -> Response:
        """An Approve/Deny page whose form posts ``blob`` (the signed request) back to ``action``."""
        csrf = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(24)
        items = "".join(_scope_item(s, self.scopes.get(s, "")) for s in scopes)
        body = (
            f"{intro}\n<p>It asks to:</p>\n<ul>{items}</ul>\n"
            f'<form method="post" action="{escape(action)}">\n'
            f'<input type="hidden" name="request" value="{escape(blob)}">\n'
            f'<input type="hidden" name="csrf_token" value="{escape(csrf)}">\n'
            '<button class="button" type="submit" name="decision" value="approve">Approve</button>\n'
            '<button class="button secondary" type="submit" name="decision" value="deny">Deny</button>\n</form>'
        )
        response = _page(title, body)
        # One cookie per form, scoped to the path its form posts to.
        response.set_cookie(CSRF_COOKIE, csrf, httponly=True, samesite="strict", path=action)
        response.headers["X-Frame-Options"] = "DENY"
        # Browsers apply form-action to the redirect that answers the form's POST as well, and that
        # redirect goes to the app. Allowing only the origin of the redirect URI this request was checked
        # against (exactly registered) keeps the form from posting anywhere else, as GitHub's authorize
        # page does; 'self' alone would block Approve and Deny in every real browser.
        sources = " ".join(filter(None, ["'self'", _csp_source(redirect_uri)]))
        response.headers["Content-Security-Policy"] = page_csp(form_action=sources)
        return response

    async def _consent_form(
        self, request: Request, signer: URLSafeTimedSerializer
    ) -> tuple[dict[str, str], str] | Response:
        """The signed request and the decision of a posted consent form, or the page refusing it."""
        origin = request.headers.get("origin")
        if origin and origin != f"{request.url.scheme}://{request.url.netloc}":
            return _error_page("Cross-site request refused", "The consent form was posted from another site.", 403)
        form = await request.form()
        csrf_cookie = request.cookies.get(CSRF_COOKIE, "")
        csrf_form = str(form.get("csrf_token", ""))
        if not csrf_cookie or not hmac.compare_digest(
            csrf_cookie.encode("utf-8", "replace"), csrf_form.encode("utf-8", "replace")
        ):
            return _error_page("Cross-site request refused", "The consent form's token does not match.", 403)
        try:
            signed = signer.loads(str(form.get("request", "")), max_age=int(self.code_ttl))
        except BadSignature:
            return _error_page("Consent expired", "The consent form is no longer valid. Start again.")
        return signed, str(form.get("decision", ""))

    async def _decide(self, request: Request) -> Response:
        decided = await self._consent_form(request, self._signer)
        if isinstance(decided, Response):
            return decided
        params, decision = decided
        issuer = _origin(request)
        checked = self._check_authorize(params, issuer)
        if isinstance(checked, Response):
            return checked
        _, scopes = checked
        if decision == "approve":
            return self._approve(params, scopes, issuer)
        answer = {"error": "access_denied", "state": params.get("state"), "iss": issuer if self.send_iss else None}
        return _redirect(params["redirect_uri"], answer)

    def _check_install(self, client_id: str, scope: str) -> tuple[SandboxClient, tuple[str, ...]] | Response:
        client = self.clients.get(client_id)
        if client is None:
            return self._unknown_client_page(client_id)
        if not client.redirect_uris:
            return _error_page("No redirect URI", "The app has no redirect URI registered to install through.")
        scopes = tuple(dict.fromkeys(scope.split()))
        if not scopes or any(s not in self.scopes for s in scopes):
            return _error_page("Unknown scope", "The install names an unknown scope.")
        return client, scopes

    def _approve_install(self, client: SandboxClient, scopes: tuple[str, ...], issuer: str) -> Response:
        params = {
            "client_id": client.client_id,
            "redirect_uri": client.redirect_uris[0],  # as Gist does, the app's first registered redirect URI
            "state": str(self.workspace.id),  # Gist sends the installing workspace's id as the state
        }
        return self._approve(params, scopes, issuer)

    async def _install(self, request: Request) -> Response:
        """Start a Gist-initiated install, as a workspace admin clicking Install inside Gist would.

        The admin sees a consent page naming the app, the workspace and the scopes (skipped with
        ``auto_approve``); Approve sends the browser to the app's first redirect URI with a code and the
        workspace id as the state.
        """
        checked = self._check_install(
            request.query_params.get("client_id", ""), request.query_params.get("scope", "read_teammates")
        )
        if isinstance(checked, Response):
            return checked
        client, scopes = checked
        if self.auto_approve:
            return self._approve_install(client, scopes, _origin(request))
        intro = (
            f"<p>Install <strong>{escape(client.name)}</strong> in the Gist workspace "
            f"<strong>{escape(self.workspace.name)}</strong>? The app will get access to this workspace.</p>"
        )
        return self._consent_page(
            request,
            title="Install " + client.name,
            intro=intro,
            scopes=scopes,
            blob=self._install_signer.dumps({"client_id": client.client_id, "scope": " ".join(scopes)}),
            action="/install",
            redirect_uri=client.redirect_uris[0],
        )

    async def _decide_install(self, request: Request) -> Response:
        decided = await self._consent_form(request, self._install_signer)
        if isinstance(decided, Response):
            return decided
        signed, decision = decided
        if not isinstance(signed, dict):
            return _error_page("Consent expired", "The consent form is no longer valid. Start again.")
        checked = self._check_install(str(signed.get("client_id", "")), str(signed.get("scope", "")))
        if isinstance(checked, Response):
            return checked
        client, scopes = checked
        if decision == "approve":
            return self._approve_install(client, scopes, _origin(request))
        # Gist sends the app nothing when an install is declined: the admin stays in Gist.
        return _page(
            "Installation cancelled",
            f"<p>{escape(client.name)} was not installed, and nothing was sent to it. You can close this tab.</p>",
        )

    def install_url(self, base_url: str, client_id: str, scopes: Iterable[str] = ("read_teammates",)) -> str:
        """The URL that starts a Gist-initiated install of ``client_id`` on this sandbox (served at ``base_url``)."""
        query = urlencode({"client_id": client_id, "scope": " ".join(scopes)})
        return f"{base_url.rstrip('/')}/install?{query}"

    def _approve(self, params: Mapping[str, str], scopes: tuple[str, ...], issuer: str) -> Response:
        code = secrets.token_urlsafe(24)
        now = self.clock()
        with self._lock:
            self._drop_codes(now)
            self._codes[code] = _Code(
                client_id=params["client_id"],
                redirect_uri=params["redirect_uri"],
                scopes=scopes,
                expires_at=now + self.code_ttl,
                challenge=params.get("code_challenge"),
            )
            while len(self._codes) > self.limits.codes:
                del self._codes[next(iter(self._codes))]
        answer = {"code": code, "state": params.get("state"), "iss": issuer if self.send_iss else None}
        return _redirect(params["redirect_uri"], answer)

    def _drop_codes(self, now: float) -> None:
        """Drop the codes that expired (the oldest first; a clock set back may leave some a little longer)."""
        while self._codes:
            first = next(iter(self._codes))
            if self._codes[first].expires_at >= now:
                break
            del self._codes[first]

    # -- token endpoint -----------------------------------------------------------------------------

    async def _token(self, request: Request) -> Response:
        if self.token_faults:
            fault = self.token_faults.popleft()
            if fault.delay:
                await asyncio.sleep(fault.delay)
            if fault.status is not None:
                self._record(None, None, fault.status, "fault")
                return Response(fault.body, status_code=fault.status, media_type=fault.content_type)
        parsed = await _token_params(request)
        if parsed is None:
            return self._token_error(None, None, 400, "invalid_request", _NOT_A_FORM)
        params, repeated = parsed
        client_id, grant_type = params.get("client_id"), params.get("grant_type")
        if repeated:
            text = f"Sent more than once: {', '.join(repeated)} (RFC 6749 section 3.2)."
            return self._token_error(client_id, grant_type, 400, "invalid_request", text)
        scheme, _, _ = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "basic":
            # Gist takes client credentials in the body only. A client that tried HTTP authentication is told
            # which scheme failed (RFC 6749 section 5.2), as HTTP asks of every 401 (RFC 9110 section 15.5.2).
            return self._token_error(
                client_id,
                grant_type,
                401,
                "invalid_client",
                "Gist takes client credentials in the body (client_secret_post), not in HTTP Basic.",
                challenge=f'Basic realm="{REALM}", charset="UTF-8"',
            )
        client = self.clients.get(client_id or "")
        secret = params.get("client_secret")
        refused = self._client_refusal(client, secret)
        if refused is not None or client is None:
            # No HTTP authentication was tried: a 400, as a 401 would have to name a scheme (RFC 9110).
            return self._token_error(client_id, grant_type, 400, "invalid_client", refused)
        if grant_type is None:
            return self._token_error(client_id, None, 400, "invalid_request", "grant_type is missing.")
        if grant_type == "refresh_token" and self.token_ttl is not None:
            return self._refresh(client, params)
        if grant_type != "authorization_code":
            text = "The sandbox, like Gist, grants authorization_code only."
            return self._token_error(client_id, grant_type, 400, "unsupported_grant_type", text)
        missing = [name for name in ("code", "redirect_uri") if name not in params]
        if missing:
            text = f"Missing: {' and '.join(missing)} (RFC 6749 section 4.1.3)."
            return self._token_error(client_id, grant_type, 400, "invalid_request", text)
        with self._lock:
            code = self._codes.get(params["code"])
            problem = self._check_code(code, client.client_id, params)
            if problem is not None or code is None:
                if code is not None and code.used:
                    # A replayed code revokes what it issued (RFC 6749 section 4.1.2).
                    for issued in code.tokens:
                        token = self._tokens.get(issued)
                        if token is not None:
                            token.revoked = True
                error, text = problem or ("invalid_grant", "Unknown authorization code.")
                return self._token_error(client_id, grant_type, 400, error, text, locked=True)
            code.used = True
            answer = self._mint(client.client_id, code.scopes, self.token_ttl)
            code.tokens.append(answer["access_token"])
            self._log(TokenRequestRecord(client_id, grant_type, 200, None))
        # Gist's answer is the access token alone; with token_ttl the sandbox rehearses expiring tokens.
        return JSONResponse(answer, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})

    def _client_refusal(self, client: SandboxClient | None, secret: str | None) -> str | None:
        """Why the body's client credentials do not authenticate a client (``None`` when they do)."""
        if client is None:
            return (
                "Unknown client_id: set the client id setting (GIST_CLIENT_ID) to the one the sandbox printed, "
                "or start the sandbox with --client-id."
            )
        if secret is None:
            return "client_secret is missing from the body (Gist takes client_secret_post)."
        if hmac.compare_digest(secret.encode("utf-8", "replace"), client.client_secret.encode()):
            return None
        if secret_digest(secret) in client.retired_secret_digests:
            return (
                "This client secret was replaced: the sandbox was restarted with a new one (--new-secret). "
                "Copy the client secret it printed last into your settings."
            )
        return (
            "Bad client secret. The sandbox prints its client secret when it starts; if it was restarted with "
            "a new one, copy that into your settings."
        )

    def _refresh(self, client: SandboxClient, params: Mapping[str, str]) -> Response:
        if "refresh_token" not in params:
            text = "refresh_token is missing."
            return self._token_error(client.client_id, "refresh_token", 400, "invalid_request", text)
        with self._lock:
            old = self._refresh_tokens.pop(params["refresh_token"], None)
            previous = self._tokens.get(old or "")
            if previous is None or previous.client_id != client.client_id or previous.revoked:
                text = "Unknown, used or revoked refresh token."
                return self._token_error(client.client_id, "refresh_token", 400, "invalid_grant", text, locked=True)
            previous.revoked = True
            self._forget(old or "")  # revoked by its refresh: nothing will look it up again
            answer = self._mint(client.client_id, previous.scopes, self.token_ttl)
            self._log(TokenRequestRecord(client.client_id, "refresh_token", 200, None))
        return JSONResponse(answer, headers={"Cache-Control": "no-store"})

    def _check_code(self, code: _Code | None, client_id: str, params: Mapping[str, str]) -> tuple[str, str] | None:
        """The error code and description refusing to exchange ``code`` (``None`` when it may be exchanged)."""
        if code is None:
            return "invalid_grant", "Unknown authorization code."
        if code.used:
            return "invalid_grant", "This code was used before; the tokens it issued are now revoked."
        if code.expires_at < self.clock():
            return "invalid_grant", f"This code has expired (codes last {int(self.code_ttl)} seconds)."
        if code.client_id != client_id:
            return "invalid_grant", "This code was issued to another client."
        if params["redirect_uri"] != code.redirect_uri:
            return "invalid_grant", "redirect_uri is not the one of the authorization request."
        verifier = params.get("code_verifier")
        if code.challenge is None:
            if verifier is not None:
                # RFC 9700 section 2.1.1: a verifier for a code issued without a challenge is refused, or an
                # attacker could inject a stolen code that was never bound to PKCE.
                return "invalid_grant", "code_verifier was sent, but the authorization request had no code_challenge."
            return None
        if verifier is None:
            return "invalid_grant", "code_verifier is missing: the authorization request had a code_challenge."
        if not CHALLENGE_PATTERN.fullmatch(verifier):
            return "invalid_request", "code_verifier must be 43 to 128 characters of A-Z a-z 0-9 - . _ ~."
        digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        if not hmac.compare_digest(digest.encode(), code.challenge.encode("utf-8", "replace")):
            return "invalid_grant", "code_verifier does not match the code_challenge."
        return None

    def _record(self, client_id: str | None, grant_type: str | None, status: int, error: str | None) -> None:
        with self._lock:
            self._log(TokenRequestRecord(client_id, grant_type, status, error))

    def _log(self, record: TokenRequestRecord) -> None:
        """Append to ``token_requests`` (the lock held), keeping the newest ``limits.records``."""
        # The strings of a known client and grant type are shared by every record rather than each
        # holding the copy parsed from its request (about half of a record's size).
        # Anything else a request named is cut short: a log entry costs a few hundred bytes at most.
        client = self.clients.get(record.client_id or "")
        client_id = client.client_id if client is not None else _cut(record.client_id)
        grant_type = _GRANT_TYPES.get(record.grant_type or "") or _cut(record.grant_type)
        if client_id is not record.client_id or grant_type is not record.grant_type:
            record = TokenRequestRecord(client_id, grant_type, record.status, record.error)
        self.token_requests.append(record)
        keep_newest(self.token_requests, self.limits.records)

    def _token_error(
        self,
        client_id: str | None,
        grant_type: str | None,
        status: int,
        error: str,
        text: str | None,
        *,
        locked: bool = False,
        challenge: str | None = None,
    ) -> Response:
        record = TokenRequestRecord(client_id, grant_type, status, error)
        if locked:
            self._log(record)
        else:
            with self._lock:
                self._log(record)
        body: dict[str, str] = {"error": error}
        if text:
            body["error_description"] = description(text)
        headers = {"Cache-Control": "no-store", "Pragma": "no-cache"}
        if challenge is not None:
            headers["WWW-Authenticate"] = challenge
        return JSONResponse(body, status_code=status, headers=headers)


def create_app(
    *,
    clients: Iterable[SandboxClient] = (),
    workspace: Workspace | None = None,
    scopes: Mapping[str, str] | None = None,
    auto_approve: bool = False,
    code_ttl: float = 600.0,
    clock: Callable[[], float] = time.time,
    secret_key: str | None = None,
    rate_limit: RateLimit | None = None,
    token_ttl: float | None = None,
    send_iss: bool = True,
    canvas_apps: Iterable[CanvasApp] = (),
    limits: SandboxLimits | None = None,
    any_loopback_port: bool = True,
) -> GistSandbox:
    """Make a local Gist as an ASGI app.

    Args:
        clients: the registered apps (client id, secret, redirect URIs).
        workspace: the workspace and its teammates; a seeded one by default.
        scopes: the scope catalogue; Gist's official scopes by default (pass
            ``provider.scopes`` to accept scopes a provider was extended with).
        auto_approve: skip the consent page and approve every valid request (for headless use).
        code_ttl: seconds an authorization code stays valid.
        clock: the time source, for tests of expiry.
        secret_key: signs consent forms; random by default.
        rate_limit: a :class:`RateLimit` per token for the REST API (429 with ``Retry-After`` past it).
        token_ttl: unlike Gist today, issue tokens that expire after this many seconds, with a refresh
            token (to rehearse the day Gist's tokens expire).
        send_iss: add ``iss`` (RFC 9207) to the redirects back to the app; Gist has not been seen sending
            it, but clients must accept it and check it.
        canvas_apps: the canvas apps installed in the workspace; ``/inbox`` shows their canvases.
        limits: how many codes, tokens and log entries the sandbox keeps (a :class:`SandboxLimits`; its
            defaults keep a long run within a few megabytes). Codes are also dropped when they expire.
        any_loopback_port: a registered redirect URI on ``localhost`` or a loopback IP literal matches the same
            URI on any port (RFC 8252 section 7.3), so that an app on ``flask run``'s port 5000 logs in with the
            default ``http://127.0.0.1:8000/...`` registration. ``False`` asks for the exact port, as for every
            other host.

    Returns:
        A :class:`GistSandbox`: serve it with any ASGI server, and read ``token_requests`` in tests.
    """
    return GistSandbox(
        clients=clients,
        workspace=workspace,
        scopes=scopes,
        auto_approve=auto_approve,
        code_ttl=code_ttl,
        clock=clock,
        secret_key=secret_key,
        rate_limit=rate_limit,
        token_ttl=token_ttl,
        send_iss=send_iss,
        canvas_apps=canvas_apps,
        limits=limits,
        any_loopback_port=any_loopback_port,
    )


async def _client_gone(request: Request, exc: Exception) -> Response:
    """A client that hung up before its body arrived (a timed-out token request, say) is not the
    sandbox's error: nobody is left to read an answer, so none is logged either."""
    return Response(status_code=400)


def _cut(value: str | None) -> str | None:
    return value[:_MAX_LOGGED] if value is not None and len(value) > _MAX_LOGGED else value


def keep_newest(log: list[T], limit: int) -> None:
    """Drop the oldest entries of ``log`` beyond ``limit`` (the caller holds the lock guarding it)."""
    excess = len(log) - max(0, limit)
    if excess > 0:
        del log[:excess]


def _scopes(params: Mapping[str, str]) -> tuple[str, ...]:
    """The scopes a request names, once each (RFC 6749 section 3.3: separated by spaces)."""
    return tuple(dict.fromkeys(scope for scope in params.get("scope", "").split(" ") if scope))


class _Pairs(list[tuple[str, object]]):
    """A JSON object's members in order, repeated names included (``json.loads``'s ``object_pairs_hook``)."""


async def _token_params(request: Request) -> tuple[dict[str, str], list[str]] | None:
    """The token request's parameters and the names sent twice; ``None`` for a body that is neither a form nor
    a JSON object of strings (RFC 6749 asks for a form; Gist also reads JSON, which clients have been seen sending)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    raw = await request.body()
    if content_type == "application/json":
        try:
            data = json.loads(raw, object_pairs_hook=_Pairs)
        except (ValueError, RecursionError):  # RecursionError: arrays nested thousands deep
            return None
        if not isinstance(data, _Pairs):
            return None
        items: list[tuple[str, str]] = []
        for key, value in data:
            if isinstance(value, list):  # an array, or an object (a _Pairs)
                return None
            if value is not None:  # a null counts as omitted, as an empty form value does
                items.append((key, value if isinstance(value, str) else json.dumps(value)))
        return params_once(items)
    if content_type != "application/x-www-form-urlencoded":
        return None
    try:
        return params_once(parse_qsl(raw.decode("utf-8"), keep_blank_values=True))
    except UnicodeDecodeError:
        return None


def _origin(request: Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}"


def _redirect(redirect_uri: str, params: Mapping[str, str | None]) -> Response:
    query = urlencode({k: v for k, v in params.items() if v is not None})
    separator = "&" if urlsplit(redirect_uri).query else "?"
    return RedirectResponse(f"{redirect_uri}{separator}{query}", status_code=302)


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(page(title, body), status_code=status, headers={**PAGE_HEADERS, "Cache-Control": "no-store"})


def _error_page(title: str, message: str, status: int = 400) -> HTMLResponse:
    return _page(title, f"<p>{escape(message)}</p>", status)


def _redirect_mismatch_page(received: str, registered: Iterable[str], any_loopback_port: bool) -> HTMLResponse:
    """Name the URI received, those registered, and the flag that registers it."""
    items = "".join(f"<li><code>{escape(uri)}</code></li>" for uri in registered) or "<li>(none)</li>"
    ports = (
        "port too, except on <code>localhost</code> or a loopback IP such as <code>127.0.0.1</code>, whose port may "
        "be any"
        if any_loopback_port
        else "port too"
    )
    if received:
        fix = (
            f'<p>To register it, start the sandbox with <code id="fix">--redirect-uri '
            f"{escape(shlex.quote(received))}</code> (repeatable, one for each redirect URI; in Python, add it to "
            "the app's <code>SandboxClient(redirect_uris=...)</code>).</p>"
        )
    else:
        fix = "<p>Send the redirect_uri of your app's callback: a login needs one.</p>"
    body = (
        "<p>The redirect_uri of this request is not one registered for this app in the sandbox (scheme, host, path "
        f"and query must be equal, and the {ports}; <code>localhost</code> and <code>127.0.0.1</code> are different "
        "hosts).</p>\n"
        f'<p>Received: <code id="received">{escape(received) or "(none)"}</code></p>\n'
        f'<p>Registered:</p>\n<ul id="registered">{items}</ul>\n{fix}'
    )
    return _page("Redirect URI not registered", body, 400)


def _scope_item(scope: str, description: str) -> str:
    text = f": {escape(description)}" if description else ""
    return f"<li><strong>{escape(scope)}</strong>{text}</li>"


def _csp_source(redirect_uri: str) -> str | None:
    """A CSP source expression for ``redirect_uri``'s origin (a scheme source for a custom scheme), if any."""
    parts = urlsplit(redirect_uri)
    try:
        port = parts.port
    except ValueError:
        return None
    if parts.scheme in ("http", "https") and parts.hostname:
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        return f"{parts.scheme}://{host}{f':{port}' if port is not None else ''}"
    # A native app's private-use scheme (RFC 8252 section 7.1): the scheme is all CSP can name.
    if parts.scheme and all(ch.isalnum() or ch in "+-." for ch in parts.scheme):
        return f"{parts.scheme}:"
    return None

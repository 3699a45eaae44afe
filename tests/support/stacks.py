"""A sandbox and an app in one framework using gist_authlib: what the contract and adversarial suites log in
through, on loopback sockets or in memory."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx2

import gist_authlib
from gist_authlib import GistAuthError, GistProvider
from gist_authlib.sandbox import GistSandbox, SandboxClient, create_app
from support.apps import REGISTRATIONS, django_app, flask_app, starlette_app
from support.authlib_apps import django_authlib_app, flask_authlib_app, starlette_authlib_app
from support.in_memory import Memory, Router, SyncASGITransport, ThreadedTransport
from support.servers import ServerPool
from support.web import browser_client

FRAMEWORKS = ["starlette", "fastapi", "flask", "django"]
#: Every route style the contract and adversarial suites run against: the library's routes in each framework,
#: and hand-written routes calling Authlib's own methods (``authorize_redirect``, ``authorize_access_token``)
#: the way Authlib's documentation shows ("+authlib").
ROUTES = [*FRAMEWORKS, "starlette+authlib", "flask+authlib", "django+authlib"]


@dataclass
class Stack:
    """A sandbox and an app in one framework using gist_authlib, both served on loopback."""

    framework: str
    sandbox: GistSandbox
    sandbox_url: str
    app_url: str
    client_id: str
    client_secret: str
    logins: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    errors: list[GistAuthError] = field(default_factory=list)
    apps: dict[str, Any] = field(default_factory=dict)
    installs: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    #: on_login returns None, so the callback answers with a 303 to the checked next path.
    redirect_after_login: bool = False
    #: the routes accept Gist-initiated installs.
    accept_installs: bool = False
    #: "socket": served on loopback; "memory": reached through httpx2's transport seam (``browser_transport``).
    wire: str = "socket"
    browser_transport: Any = None

    @property
    def tokens(self) -> list[dict[str, Any]]:
        """The tokens handed to ``on_login`` of the main registration."""
        return [token for name, token in self.logins if name == "gist"]

    def browser(self) -> httpx2.Client:
        """A fresh browser: its own cookie jar, redirects followed by hand (over the in-memory transports when
        the stack has no sockets)."""
        if self.browser_transport is not None:
            return browser_client(follow_redirects=False, timeout=10, transport=self.browser_transport)
        return browser_client(follow_redirects=False, timeout=10)

    def start_login(self, browser: httpx2.Client, name: str = "gist", **params: str) -> str:
        """Start a login and return the authorization URL the app redirected to."""
        response = browser.get(f"{self.app_url}/auth/{name}", params=params or None)
        assert response.status_code == 302, response.text
        return response.headers["location"]

    def authorize(self, browser: httpx2.Client, authorize_url: str) -> str:
        """Visit the (auto-approving) sandbox and return the callback URL it redirected to."""
        response = browser.get(authorize_url)
        assert response.status_code == 302, response.text
        return response.headers["location"]

    def callback_url(self, name: str = "gist") -> str:
        return f"{self.app_url}/oauth/{name}/callback"

    def login(self, browser: httpx2.Client | None = None, name: str = "gist") -> httpx2.Response:
        """A whole login; returns the callback's response."""
        own = browser is None
        browser = browser or self.browser()
        try:
            return browser.get(self.authorize(browser, self.start_login(browser, name)))
        finally:
            if own:
                browser.close()


def _oauth_registry(framework: str) -> Any:
    if framework in ("starlette", "fastapi", "starlette+authlib"):
        from authlib.integrations.starlette_client import OAuth

        return OAuth()
    if framework.startswith("flask"):
        from authlib.integrations.flask_client import OAuth as FlaskOAuth

        return FlaskOAuth()  # the init_app factory pattern: no app yet
    from authlib.integrations.django_client import OAuth as DjangoOAuth

    return DjangoOAuth()


def build_stack(
    servers: list[Any],
    pool: ServerPool,
    framework: str = "starlette",
    *,
    auto_approve: bool = True,
    sessions: bool = True,
    register_kwargs: dict[str, Any] | None = None,
    sandbox_kwargs: dict[str, Any] | None = None,
    redirect_after_login: bool = False,
    accept_installs: bool = False,
    wire: str = "socket",
    memory: Callable[[], Memory] | None = None,
) -> Stack:
    """A sandbox and an app in ``framework``, both served on loopback (their servers are appended to
    ``servers``), or with ``wire="memory"`` both reached through httpx2's transport seam, with no socket: the
    browser's requests and the app's own (token exchange, API) go to the same apps in process."""
    asgi = framework.startswith(("starlette", "fastapi"))
    if wire == "memory":
        assert memory is not None
        shared = memory()
        sandbox_server: Any = _InMemory(shared.origin())
        app_server: Any = _InMemory(shared.origin())
    else:
        sandbox_server = pool.take("asgi")
        app_server = pool.take("asgi" if asgi else "wsgi")
        servers.extend([sandbox_server, app_server])
    secret_of = {name: f"secret-{name}-" + secrets.token_urlsafe(16) for name in REGISTRATIONS}
    id_of = {name: f"{name}-" + secrets.token_hex(4) for name in REGISTRATIONS}
    sandbox = create_app(
        clients=[
            SandboxClient(id_of[name], secret_of[name], (f"{app_server.url}/oauth/{name}/callback",))
            for name in REGISTRATIONS
        ],
        auto_approve=auto_approve,
        **(sandbox_kwargs or {}),
    )
    stack = Stack(framework, sandbox, sandbox_server.url, app_server.url, id_of["gist"], secret_of["gist"])
    stack.redirect_after_login = redirect_after_login
    stack.accept_installs = accept_installs
    stack.wire = wire
    oauth = _oauth_registry(framework)
    for name in REGISTRATIONS:
        kwargs: dict[str, Any] = {
            "client_id": id_of[name],
            "client_secret": secret_of[name],
            "provider": GistProvider.at(sandbox_server.url),
        }
        if wire == "memory":  # the app's own requests reach the sandbox in process too
            to_sandbox = httpx2.ASGITransport(sandbox) if asgi else SyncASGITransport(sandbox, shared.loop)
            kwargs["client_kwargs"] = {"transport": Router({sandbox_server.url: to_sandbox})}
        if name == "gist":
            kwargs.update(register_kwargs or {})
        stack.apps[name] = gist_authlib.register(oauth, name, **kwargs)
    if framework == "starlette+authlib":
        app = starlette_authlib_app(stack, oauth, sessions)
    elif framework == "flask+authlib":
        app = flask_authlib_app(stack, oauth, sessions)
        oauth.init_app(app)
    elif framework == "django+authlib":
        app = django_authlib_app(stack, oauth, sessions)
    elif framework in ("starlette", "fastapi"):
        app = starlette_app(stack, stack.apps, sessions, framework == "fastapi")
    elif framework == "flask":
        app = flask_app(stack, stack.apps, sessions)
        oauth.init_app(app)
    else:
        app = django_app(stack, stack.apps, sessions)
    if wire == "memory":
        to_app = (
            SyncASGITransport(app, shared.loop)
            if asgi
            else ThreadedTransport(httpx2.WSGITransport(app), shared.threads)
        )
        stack.browser_transport = Router(
            {sandbox_server.url: SyncASGITransport(sandbox, shared.loop), app_server.url: to_app}
        )
        return stack
    sandbox_server.start(sandbox)
    app_server.start(app)
    return stack


@dataclass
class _InMemory:
    """Where an in-memory stack's app or sandbox is reached: an origin that nothing listens on."""

    url: str

"""The demo: the sandbox and an example app on localhost, wired together, and a headless login check."""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import secrets
import sys
import tempfile
import time
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from types import ModuleType
from urllib.parse import urljoin

__all__ = [
    "run_demo",
]

#: Each framework's example: its module (the repository's examples/ folder, shipped in the wheel as the package
#: gist_authlib.examples), and whether it is an ASGI or a WSGI app.
EXAMPLES: dict[str, tuple[str, str]] = {
    "starlette": ("gist_authlib.examples.starlette_app", "asgi"),
    "fastapi": ("gist_authlib.examples.fastapi_app", "asgi"),
    "flask": ("gist_authlib.examples.flask_app", "wsgi"),
    # A Django project's entry point; Django itself then imports the project as "gist_example".
    "django": ("gist_authlib.examples.django_project.gist_example.wsgi", "wsgi"),
    "canvas": ("gist_authlib.examples.canvas_app", "asgi"),  # the Gist app shown in the sandbox's inbox
}


class DemoError(RuntimeError):
    """The demo could not start, or its headless check failed; the message says why."""


def _module_name(framework: str) -> str:
    if framework not in EXAMPLES:
        raise DemoError(f"No example for {framework!r}; choose one of {', '.join(sorted(EXAMPLES))}.")
    return EXAMPLES[framework][0]


def example_module(framework: str) -> ModuleType:
    """Import the example app of ``framework`` (``starlette``, ``fastapi``, ``flask``, ``django``, ``canvas``).

    The examples are modules of the package (:mod:`gist_authlib.examples`, the repository's ``examples/``), so
    this works the same from a wheel and from a checkout installed with ``pip install -e .``. Call the module's
    ``create_app(environ)`` to build the app.
    """
    return importlib.import_module(_module_name(framework))


def find_example(framework: str) -> Path:
    """The file of the example app of ``framework``, to show a user where its code is (it is not imported)."""
    spec = importlib.util.find_spec(_module_name(framework))
    if spec is None or spec.origin is None:
        raise DemoError(f"The {framework} example is missing from this installation of gist_authlib.")
    # Resolved: an editable install imports the examples through the link gist_authlib/examples, and the file
    # a user opens is the one it points to, in the checkout's examples/.
    return Path(spec.origin).resolve()


def _code_of(framework: str) -> Path:
    """What to show a user as the example's code: its module, or for Django the project's folder."""
    path = find_example(framework)
    return path.parent.parent if framework == "django" else path


def load_example(path: Path) -> ModuleType:
    """Import a Python file as a module, under a name of its own (for files outside the package)."""
    spec = importlib.util.spec_from_file_location(f"gist_authlib_example_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise DemoError(f"Cannot load {path}.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # as the import system does; dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


class _FormParser(HTMLParser):
    """Collects the first form's action and hidden inputs, and the text of list items."""

    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.hidden: dict[str, str] = {}
        self.items: list[str] = []
        self.components: list[str] = []  # the component ids of the canvas's buttons and rows
        self._in_li = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "form" and self.action is None:
            self.action = values.get("action", "")
        elif tag == "input" and values.get("type") == "hidden" and values.get("name"):
            self.hidden[values["name"]] = values.get("value", "")
        elif tag == "li":
            self._in_li = True
            self.items.append("")
        elif tag == "button" and values.get("name") == "component_id":
            self.components.append(values.get("value", ""))

    def handle_endtag(self, tag: str) -> None:
        if tag == "li":
            self._in_li = False

    def handle_data(self, data: str) -> None:
        if self._in_li:
            self.items[-1] += data


def approve_login_headlessly(app_url: str, login_path: str = "/auth/gist", *, timeout: float = 10.0) -> list[str]:
    """Log in through ``app_url`` like a browser that clicks Approve; return the final page's list items.

    Follows redirects, fills the sandbox's consent form and posts it. Raises :class:`DemoError` with the
    reason when any step fails.
    """
    import httpx2

    with httpx2.Client(follow_redirects=True, timeout=timeout, trust_env=False) as browser:
        try:
            consent = browser.get(urljoin(app_url, login_path))
        except httpx2.HTTPError as exc:
            raise DemoError(f"Could not start the login at {app_url}: {type(exc).__name__}.") from None
        if consent.status_code != 200:
            raise DemoError(f"The login did not reach a consent page (HTTP {consent.status_code}).")
        form = _FormParser()
        form.feed(consent.text)
        if form.action is None:
            raise DemoError("The consent page has no form: " + consent.text[:200])
        decision = dict(form.hidden, decision="approve")
        try:
            final = browser.post(urljoin(str(consent.url), form.action), data=decision)
        except httpx2.HTTPError as exc:
            raise DemoError(f"The callback failed: {type(exc).__name__}.") from None
        if final.status_code != 200:
            raise DemoError(f"The callback answered HTTP {final.status_code}: {final.text[:300]}")
        page = _FormParser()
        page.feed(final.text)
        return [item.strip() for item in page.items]


def install_headlessly(install_url: str, *, timeout: float = 10.0) -> None:
    """Start a Gist-initiated install at the sandbox, approve it on its consent page (unless the sandbox
    auto-approves), and follow it through the app to Gist's acknowledgement."""
    import httpx2

    with httpx2.Client(follow_redirects=True, timeout=timeout, trust_env=False) as browser:
        try:
            final = browser.get(install_url)
            form = _FormParser()
            form.feed(final.text)
            if final.status_code == 200 and "/install_success" not in str(final.url) and form.action is not None:
                decision = dict(form.hidden, decision="approve")
                final = browser.post(urljoin(str(final.url), form.action), data=decision)
        except httpx2.HTTPError as exc:
            raise DemoError(f"The install failed: {type(exc).__name__}.") from None
    if final.status_code != 200 or "/install_success" not in str(final.url):
        raise DemoError(f"The install did not reach Gist's acknowledgement (HTTP {final.status_code}).")


def click_canvas_headlessly(inbox_url: str, *, timeout: float = 10.0) -> tuple[list[str], str]:
    """Open the sandbox's inbox and click the app's first button or row; return the ids shown and the page after."""
    import httpx2

    with httpx2.Client(follow_redirects=True, timeout=timeout, trust_env=False) as browser:
        inbox = browser.get(inbox_url)
        page = _FormParser()
        page.feed(inbox.text)
        if inbox.status_code != 200 or page.action is None or not page.components:
            raise DemoError(f"The inbox shows no canvas to click (HTTP {inbox.status_code}).")
        clicked = browser.post(
            urljoin(str(inbox.url), page.action), data={**page.hidden, "component_id": page.components[0]}
        )
    return page.components, clicked.text


def run_demo(
    *,
    framework: str = "starlette",
    host: str = "127.0.0.1",
    port: int = 8000,
    sandbox_port: int = 8765,
    check: bool = False,
    out: Callable[[str], object] = print,
) -> int:
    """Start the sandbox and the example app; with ``check``, log in headlessly and stop.

    Returns the process exit code.
    """
    from .sandbox import CanvasApp, SandboxClient, ServerThread, WSGIServerThread, create_app
    from .tokens import TokenCipher

    example = example_module(framework)
    # Every server is stopped on the way out, also when a later one cannot listen or an example fails to start.
    with contextlib.ExitStack() as servers:
        sandbox_server = ServerThread(host=host, port=sandbox_port)
        servers.callback(sandbox_server.stop)
        app_server: ServerThread | WSGIServerThread
        if EXAMPLES[framework][1] == "wsgi":
            app_server = WSGIServerThread(host=host, port=port)
        else:
            app_server = ServerThread(host=host, port=port, lifespan=True)  # as uvicorn runs the example
        servers.callback(app_server.stop)
        client_id = "gist-demo-app"
        client_secret = secrets.token_urlsafe(24)
        callbacks = (
            f"{app_server.url}/oauth/gist/callback",
            f"http://localhost:{app_server.port}/oauth/gist/callback",
        )
        canvas_server = ServerThread(host=host, lifespan=True)
        servers.callback(canvas_server.stop)
        canvas_app = example_module("canvas").create_app({"GIST_CLIENT_SECRET": client_secret})
        sandbox = create_app(
            clients=[SandboxClient(client_id, client_secret, callbacks, name="Gist example app")],
            canvas_apps=[CanvasApp.at(client_id, f"{canvas_server.url}/gist/canvas", name="Orders (canvas_app.py)")],
        )
        folder = Path(tempfile.mkdtemp(prefix="gist-demo-"))
        env = {
            "GIST_CLIENT_ID": client_id,
            "GIST_CLIENT_SECRET": client_secret,
            "GIST_AUTHORIZE_URL": f"{sandbox_server.url}/oauth/authorize",
            "GIST_ACCESS_TOKEN_URL": f"{sandbox_server.url}/oauth/token",
            "GIST_API_BASE_URL": f"{sandbox_server.url}/",
            "SESSION_SECRET": secrets.token_urlsafe(32),
            "GIST_TOKEN_KEY": TokenCipher.generate_key(),
            "GIST_TOKEN_DB": str(folder / "gist_tokens.sqlite3"),
            "DJANGO_DB": str(folder / "db.sqlite3"),  # the Django example's database (users, sessions, tokens)
        }
        app = example.create_app(env)
        sandbox_server.start(sandbox)
        app_server.start(app)
        canvas_server.start(canvas_app)
        try:
            if check:
                items = approve_login_headlessly(app_server.url)
                expected = [str(t["name"]) for t in sandbox.workspace.teammates]
                missing = [name for name in expected if not any(name in item for item in items)]
                if missing:
                    raise DemoError(f"The page after login does not list {', '.join(missing)}.")
                where = _code_of(framework)
                out(f"Logged in through the {framework} example ({where}); it listed {len(items)} teammates:")
                for item in items:
                    out(f"  - {item}")
                install_headlessly(sandbox.install_url(sandbox_server.url, client_id))
                if not sandbox.installs_acknowledged:
                    raise DemoError("The Gist-initiated install was not acknowledged.")
                out(f"A Gist-initiated install of workspace {sandbox.workspace.id} was stored and acknowledged.")
                shown, after = click_canvas_headlessly(f"{sandbox_server.url}/inbox")
                if "opened in this conversation" not in after:
                    raise DemoError("Clicking the canvas app's first row in the inbox did not show its details.")
                out(
                    f"The inbox showed the Gist app's canvas ({len(shown)} clickable); {shown[0]!r} opened its details."
                )
                return 0
            out(f"Gist sandbox:   {sandbox_server.url}/  (client id {client_id})")
            out(f"Example app:    {framework}, whose code is {_code_of(framework)}")
            out("")
            out(f"Open {app_server.url}/ and click 'Log in with Gist'.")
            install_url = sandbox.install_url(sandbox_server.url, client_id)
            out(f"To install the app as a Gist workspace would, open {install_url}")
            out(f"To see a Gist app's canvas beside a conversation, open {sandbox_server.url}/inbox")
            out("Ctrl-C stops.")
            sys.stdout.flush()
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:  # Ctrl-C ends a demo that serves; it interrupts a check, which did not pass
            return 130 if check else 0

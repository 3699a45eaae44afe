"""The demo's two servers, as ``gist-authlib demo`` wires them, with the hosts a test chooses.

``start_demo_stack("flask", sandbox_host="localhost")`` serves the sandbox on ``http://localhost:<port>`` and
the framework's example app on ``http://127.0.0.1:<port>``: the return from the sandbox is then cross-site,
as it is from real Gist. The examples are imported by the demo's own loader and configured with the
demo's settings. Starlette, FastAPI and Flask run in this process; Django's settings are global to a process
(and this test process has its own), so the Django example runs in a child process started from this file:

    python tests/support/demo_stack.py django     # serves the example on a free loopback port, prints its URL
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gist_authlib import demo
from gist_authlib.sandbox import GistSandbox, SandboxClient, ServerThread, WSGIServerThread, create_app
from gist_authlib.tokens import TokenCipher

ROOT = Path(__file__).resolve().parents[2]
CLIENT_ID = "gist-demo-app"
APP_NAME = "Gist example app"


@dataclass
class DemoStack:
    """The sandbox and one example app, both served on loopback."""

    framework: str
    sandbox: GistSandbox
    sandbox_url: str
    app_url: str
    client_id: str = CLIENT_ID
    _stoppers: list[Any] = field(default_factory=list)

    @property
    def install_url(self) -> str:
        """Where a workspace admin starts a Gist-initiated install of the example."""
        return self.sandbox.install_url(self.sandbox_url, self.client_id)

    def stop(self) -> None:
        for stop in reversed(self._stoppers):
            stop()


def demo_settings(sandbox_url: str, client_secret: str) -> dict[str, str]:
    """The environment ``gist-authlib demo`` gives an example (gist_authlib/demo.py, run_demo)."""
    folder = Path(tempfile.mkdtemp(prefix="gist-demo-"))
    return {
        "GIST_CLIENT_ID": CLIENT_ID,
        "GIST_CLIENT_SECRET": client_secret,
        "GIST_AUTHORIZE_URL": f"{sandbox_url}/oauth/authorize",
        "GIST_ACCESS_TOKEN_URL": f"{sandbox_url}/oauth/token",
        "GIST_API_BASE_URL": f"{sandbox_url}/",
        "SESSION_SECRET": secrets.token_urlsafe(32),
        "GIST_TOKEN_KEY": TokenCipher.generate_key(),
        "GIST_TOKEN_DB": str(folder / "gist_tokens.sqlite3"),
        "DJANGO_DB": str(folder / "db.sqlite3"),
    }


def start_demo_stack(framework: str, *, sandbox_host: str = "localhost", app_host: str = "127.0.0.1") -> DemoStack:
    """Serve the sandbox on ``sandbox_host`` and the ``framework`` example on ``app_host``, both on free ports."""
    sandbox_server = ServerThread(host=sandbox_host)
    client_secret = secrets.token_urlsafe(24)
    env = demo_settings(sandbox_server.url, client_secret)
    sandbox = create_app()
    stack = DemoStack(framework, sandbox, sandbox_server.url, "")
    try:
        sandbox_server.start(sandbox)
        stack._stoppers.append(sandbox_server.stop)
        if framework == "django":
            child = _DjangoChild(env, app_host)
            stack._stoppers.append(child.stop)
            stack.app_url = child.url
        else:
            kind = demo.EXAMPLES[framework][1]
            app_server: Any = WSGIServerThread(host=app_host) if kind == "wsgi" else ServerThread(host=app_host)
            stack._stoppers.append(app_server.stop)
            app_server.start(demo.example_module(framework).create_app(env))
            stack.app_url = app_server.url
    except BaseException:
        stack.stop()
        raise
    port = stack.app_url.rsplit(":", 1)[1]
    # As the demo registers: the app's own host first (Gist-initiated installs use the first), localhost beside it.
    callbacks = (f"{stack.app_url}/oauth/gist/callback", f"http://localhost:{port}/oauth/gist/callback")
    sandbox.add_client(SandboxClient(CLIENT_ID, client_secret, callbacks, name=APP_NAME))
    return stack


class _DjangoChild:
    """This file run as a script: the Django example served in a process of its own."""

    def __init__(self, env: dict[str, str], host: str) -> None:
        child_env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
        # The worktree's package, not whichever one is installed.
        child_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), child_env.get("PYTHONPATH")]))
        # A file, not a pipe: Django logs each 4xx answer there, and a full pipe would stall the server.
        self.stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (closed by stop())
        self.process = subprocess.Popen(
            [sys.executable, __file__, "django", host],
            env={**child_env, **env},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline().strip()
        if not line.startswith("http://"):
            self._halt()
            self.stderr.seek(0)
            errors = self.stderr.read()
            self.stderr.close()
            raise RuntimeError(f"The Django example did not start: {line} {errors}")
        self.url = line

    def stop(self) -> None:
        self._halt()
        self.stderr.close()

    def _halt(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()  # the child serves until its stdin closes
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        if self.process.stdout is not None:
            self.process.stdout.close()


def _serve(framework: str, host: str) -> None:
    module = demo.example_module(framework)
    with WSGIServerThread(module.create_app(dict(os.environ)), host=host) as server:
        print(server.url, flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    _serve(sys.argv[1], sys.argv[2])

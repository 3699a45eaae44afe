"""The examples, pointed by their environment at an OAuth 2 server that is not our sandbox.

The independent server is Authlib's own RFC 6749 server on Flask with Gist's quirks
(tests/support/independent_server.py). Starlette, FastAPI and Flask examples run in this process on loopback;
the Django example runs as its users run it, ``manage.py runserver`` in a subprocess.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from support.independent_server import TEAMMATES, Client, IndependentServer
from support.servers import free_port, start_server_process
from support.web import browser_client, query_of

from gist_authlib.sandbox import SandboxClient, ServerThread, WSGIServerThread, create_app
from gist_authlib.tokens import TokenCipher

ROOT = Path(__file__).resolve().parents[2]
TOKEN_KEY = TokenCipher.generate_key()


def load_example(name: str) -> ModuleType:
    """An example app's module, ``starlette_app`` for examples/starlette_app.py (the package gist_authlib.examples)."""
    return importlib.import_module(f"gist_authlib.examples.{name}")


def env_for(
    server_url: str, prefix: str = "GIST", client_id: str = "indep-id", secret: str = "indep-secret"
) -> dict[str, str]:
    folder = Path(tempfile.mkdtemp(prefix="gist-example-"))
    return {
        f"{prefix}_CLIENT_ID": client_id,
        f"{prefix}_CLIENT_SECRET": secret,
        f"{prefix}_AUTHORIZE_URL": f"{server_url}/oauth/authorize",
        f"{prefix}_ACCESS_TOKEN_URL": f"{server_url}/oauth/token",
        f"{prefix}_API_BASE_URL": f"{server_url}/",
        "SESSION_SECRET": "example-session-secret",
        "GIST_TOKEN_KEY": TOKEN_KEY,
        "GIST_TOKEN_DB": str(folder / "tokens.sqlite3"),
        "DJANGO_DB": str(folder / "db.sqlite3"),
    }


class DjangoRunserver:
    """``manage.py runserver`` of the Django example in a subprocess, started as a user of a checkout does:
    ``cd examples/django_project && python manage.py migrate && python manage.py runserver``."""

    def __init__(self, env: dict[str, str], port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        project = ROOT / "examples" / "django_project"
        migrated = subprocess.run(
            [sys.executable, "manage.py", "migrate"],
            cwd=project,
            env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert migrated.returncode == 0, migrated.stdout + migrated.stderr
        self.process = start_server_process(
            [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
            port=port,
            env={**env, "PYTHONPATH": str(ROOT)},  # this worktree's package, not the installed one
            cwd=project,
        )

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


@pytest.fixture(params=["starlette", "fastapi", "flask", "django"])
def example(request: pytest.FixtureRequest) -> Iterator[tuple[str, IndependentServer, str]]:
    """One example served on loopback, configured for the independent server."""
    name = str(request.param)
    port = free_port() if name == "django" else 0
    server_thread: Any = WSGIServerThread() if name == "flask" else ServerThread()
    app_url = f"http://127.0.0.1:{port}" if name == "django" else server_thread.url
    client = Client("indep-id", "indep-secret", [f"{app_url}/oauth/gist/callback"])
    with IndependentServer(client) as server:
        env = env_for(server.url)
        if name == "django":
            server_thread.stop()
            runner = DjangoRunserver(env, port)
            try:
                yield name, server, app_url
            finally:
                runner.stop()
            return
        module = load_example(f"{name}_app")
        server_thread.start(module.create_app(env))
        try:
            yield name, server, app_url
        finally:
            server_thread.stop()


def test_each_example_logs_in_and_lists_the_independent_servers_teammates(
    example: tuple[str, IndependentServer, str],
) -> None:
    _, server, app_url = example
    with browser_client(follow_redirects=True) as browser:
        assert "Log in with Gist" in browser.get(app_url + "/").text
        page = browser.get(f"{app_url}/auth/gist")
        later = browser.get(f"{app_url}/me/teammates")  # with the token the example stored
    assert page.status_code == 200, page.text
    assert later.status_code == 200, later.text
    for teammate in TEAMMATES:
        assert str(teammate["name"]) in page.text
        assert str(teammate["name"]) in later.text
    assert server.token_requests == 1


def test_each_example_refuses_forged_callbacks(example: tuple[str, IndependentServer, str]) -> None:
    _, server, app_url = example
    with browser_client() as browser:
        browser.get(f"{app_url}/auth/gist")
        no_code = browser.get(f"{app_url}/oauth/gist/callback", params={"state": "forged"})
        assert no_code.status_code == 400 and "<h1>" in no_code.text
        assert server.token_requests == 0
        # The examples accept Gist-initiated installs, which arrive with a state the app never issued, shaped
        # like a workspace id. A state of another shape is refused at once; a forged one of that shape with a
        # code is tried as an install, refused by the server (a 400: the link is invalid), and nothing is stored.
        odd_shape = browser.get(f"{app_url}/oauth/gist/callback", params={"code": "stolen", "state": "Forged-State"})
        assert odd_shape.status_code == 400 and "<h1>" in odd_shape.text
        assert server.token_requests == 0
        with_code = browser.get(f"{app_url}/oauth/gist/callback", params={"code": "stolen", "state": "forged"})
        assert with_code.status_code == 400 and "invalid or has expired" in with_code.text
        assert browser.get(f"{app_url}/me/teammates").status_code in (302, 303, 401)  # still not logged in
    assert server.token_requests == 1


@pytest.mark.parametrize("check_pkce", [True, False], ids=["pkce-checked", "pkce-ignored"])
def test_the_independent_server_is_strict_and_pkce_is_harmless_either_way(check_pkce: bool) -> None:
    app_server = ServerThread()
    client = Client("indep-id", "indep-secret", [f"{app_server.url}/oauth/gist/callback"])
    with IndependentServer(client, check_pkce=check_pkce) as server:
        app_server.start(load_example("starlette_app").create_app(env_for(server.url)))
        try:
            with browser_client() as browser:
                authorize = browser.get(f"{app_server.url}/auth/gist").headers["location"]
                callback = browser.get(authorize).headers["location"]
                basic = browser.post(
                    f"{server.url}/oauth/token",
                    data={
                        "grant_type": "authorization_code",
                        "code": query_of(callback)["code"],
                        "redirect_uri": f"{app_server.url}/oauth/gist/callback",
                    },
                    auth=("indep-id", "indep-secret"),
                )
                assert basic.status_code in (400, 401)  # the yardstick refuses HTTP Basic, as Gist does
                assert browser.get(callback).status_code == 200
                again = browser.get(callback)  # this browser's completed login: on to its page, no token request
                assert again.status_code == 303
        finally:
            app_server.stop()
    assert server.token_requests == 2


def test_fastapi_dependency_gives_views_the_current_users_token() -> None:
    app_server = ServerThread()
    client = Client("indep-id", "indep-secret", [f"{app_server.url}/oauth/gist/callback"])
    with IndependentServer(client) as server:
        app_server.start(load_example("fastapi_app").create_app(env_for(server.url)))
        try:
            with browser_client(follow_redirects=True) as browser:
                assert browser.get(f"{app_server.url}/me/teammates").status_code == 401
                assert browser.get(f"{app_server.url}/auth/gist").status_code == 200
                later = browser.get(f"{app_server.url}/me/teammates")
            with browser_client() as stranger:
                assert stranger.get(f"{app_server.url}/me/teammates").status_code == 401
        finally:
            app_server.stop()
    assert later.status_code == 200
    assert all(str(t["name"]) in later.text for t in TEAMMATES)
    assert "access_token" not in str(browser.cookies)


def test_multi_provider_example_keeps_gist_and_the_other_provider_apart() -> None:
    app_server = ServerThread()
    gist_server = ServerThread()
    sandbox = create_app(
        clients=[SandboxClient("gist-id", "gist-secret", (f"{app_server.url}/oauth/gist/callback",))],
        auto_approve=True,
    )
    other = Client(
        "other-id",
        "other-secret",
        [f"{app_server.url}/oauth/other/callback"],
        auth_methods=("client_secret_basic", "client_secret_post"),  # a generic provider
    )
    with IndependentServer(other) as other_server:
        env = {
            **env_for(gist_server.url, "GIST", "gist-id", "gist-secret"),
            **env_for(other_server.url, "OTHER", "other-id", "other-secret"),
        }
        gist_server.start(sandbox)
        app_server.start(load_example("multi_provider").create_app(env))
        try:
            with browser_client() as browser:
                gist_callback = browser.get(browser.get(f"{app_server.url}/auth/gist").headers["location"]).headers[
                    "location"
                ]
                other_callback = browser.get(browser.get(f"{app_server.url}/auth/other").headers["location"]).headers[
                    "location"
                ]
                crossed = browser.get(f"{app_server.url}/oauth/gist/callback", params=query_of(other_callback))
                assert crossed.status_code == 400
                gist_page = browser.get(gist_callback)
                other_page = browser.get(other_callback)
        finally:
            app_server.stop()
            gist_server.stop()
    assert "Logged in with Gist" in gist_page.text and "Ada Lovelace" in gist_page.text
    assert "Logged in with the other provider" in other_page.text and "Independent Ida" in other_page.text
    assert [r.status for r in sandbox.token_requests] == [200]
    assert other_server.token_requests == 1

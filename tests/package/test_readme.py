"""The README's Starlette snippets run as written on local http: each is executed as a module beside a ``.env``
holding the sandbox's settings, served on loopback, and logged in through."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx2
import pytest
from support.web import browser_client

from gist_authlib.cli import DEFAULT_REDIRECT_URIS
from gist_authlib.sandbox import SandboxClient, ServerThread, create_app

ROOT = Path(__file__).resolve().parents[2]


def snippet(heading: str) -> str:
    """The first Python block after ``heading`` in the README."""
    readme = (ROOT / "README.md").read_text()
    after = readme[readme.index(heading) :]
    match = re.search(r"```python\n(.*?)```", after, re.S)
    assert match is not None, heading
    return match.group(1)


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Any]:
    """Run a snippet beside a ``.env`` with the sandbox's settings; yields a function that serves it."""
    servers: list[ServerThread] = []
    monkeypatch.chdir(tmp_path)  # where the snippet's Config(".env") looks

    def serve(code: str, callback_path: str) -> str:
        assert callback_path in {urlsplit(uri).path for uri in DEFAULT_REDIRECT_URIS}
        app_server, sandbox_server = ServerThread(), ServerThread()
        servers.extend([app_server, sandbox_server])
        sandbox_server.start(
            create_app(
                # The redirect URIs `gist-authlib sandbox` registers by default (loopback: any port): a snippet
                # whose callback is elsewhere does not run against the sandbox as a user starts it.
                clients=[SandboxClient("readme-id", "readme-secret", DEFAULT_REDIRECT_URIS)],
                auto_approve=True,
            )
        )
        (tmp_path / ".env").write_text(
            "GIST_CLIENT_ID=readme-id\nGIST_CLIENT_SECRET=readme-secret\n"
            f"GIST_AUTHORIZE_URL={sandbox_server.url}/oauth/authorize\n"
            f"GIST_ACCESS_TOKEN_URL={sandbox_server.url}/oauth/token\n"
            f"GIST_API_BASE_URL={sandbox_server.url}/\n"
        )
        namespace: dict[str, Any] = {"__name__": "readme_snippet"}
        exec(compile(code, "README.md", "exec"), namespace)
        app_server.start(namespace["app"])
        return app_server.url

    yield serve
    for server in servers:
        server.stop()


def log_in(app_url: str, login_path: str) -> httpx2.Response:
    with browser_client(follow_redirects=True, timeout=10) as browser:
        return browser.get(f"{app_url}{login_path}")


def test_the_starlette_quick_snippet_runs_as_written(served: Any) -> None:
    app_url = served(snippet("## Log in with Gist in Starlette or FastAPI"), "/oauth/gist/callback")
    with browser_client(timeout=10) as browser:
        assert "Log in with Gist" in browser.get(f"{app_url}/").text
        page = browser.get(f"{app_url}/auth/gist", follow_redirects=True)
    assert page.status_code == 200
    assert str(page.url) == f"{app_url}/"
    assert re.search(r"Your team has \d+ people", page.text), page.text


def test_the_already_using_authlib_snippet_runs_as_written(served: Any) -> None:
    app_url = served(snippet("## Already using Authlib?"), "/oauth/gist/callback")
    page = log_in(app_url, "/login/gist")
    assert page.status_code == 200 and str(page.url) == f"{app_url}/"
    with browser_client(timeout=10) as browser:
        forged = browser.get(f"{app_url}/oauth/gist/callback", params={"code": "x", "state": "forged"})
    assert forged.status_code == 400 and "not issued by this site" in forged.text

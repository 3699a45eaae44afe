"""The Starlette example, pointed by its environment at an OAuth 2 server that is not our sandbox."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import httpx2
import pytest
from independent_server import TEAMMATES, Client, IndependentServer

from gist_authlib.sandbox import ServerThread

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def load_example(filename: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{Path(filename).stem}", EXAMPLES / filename)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(params=[True, False], ids=["pkce-checked", "pkce-ignored"])
def independent(request: pytest.FixtureRequest) -> Iterator[tuple[IndependentServer, ServerThread]]:
    app_server = ServerThread()
    client = Client("indep-id", "indep-secret", [f"{app_server.url}/oauth/gist/callback"])
    with IndependentServer(client, check_pkce=request.param) as server:
        env = {
            "GIST_CLIENT_ID": "indep-id",
            "GIST_CLIENT_SECRET": "indep-secret",
            "GIST_AUTHORIZE_URL": f"{server.url}/oauth/authorize",
            "GIST_ACCESS_TOKEN_URL": f"{server.url}/oauth/token",
            "GIST_API_BASE_URL": f"{server.url}/",
            "SESSION_SECRET": "example-session-secret",
        }
        app_server.start(load_example("starlette_app.py").create_app(env))
        yield server, app_server
        app_server.stop()


def test_example_logs_in_and_lists_the_independent_servers_teammates(
    independent: tuple[IndependentServer, ServerThread],
) -> None:
    server, app = independent
    with httpx2.Client(follow_redirects=True, trust_env=False) as browser:
        page = browser.get(f"{app.url}/auth/gist")
    assert page.status_code == 200, page.text
    for teammate in TEAMMATES:
        assert str(teammate["name"]) in page.text
    assert server.token_requests == 1


def test_the_independent_server_is_strict(independent: tuple[IndependentServer, ServerThread]) -> None:
    # A sanity check of the yardstick: HTTP Basic is refused and codes are single-use there too.
    server, app = independent
    with httpx2.Client(follow_redirects=False, trust_env=False) as browser:
        authorize = browser.get(f"{app.url}/auth/gist").headers["location"]
        callback = browser.get(authorize).headers["location"]
        code = httpx2.URL(callback).params["code"]
        basic = browser.post(
            f"{server.url}/oauth/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": f"{app.url}/oauth/gist/callback",
            },
            auth=("indep-id", "indep-secret"),
        )
        assert basic.status_code in (400, 401)
        assert browser.get(callback).status_code == 200
        assert browser.get(callback).status_code == 400  # replayed: refused by us before reaching the server
    assert server.token_requests == 2

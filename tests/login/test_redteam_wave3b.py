"""Red team, wave three (b): weaknesses of the install limit's buckets, the strict sandbox's loopback redirect URIs,
``gist-authlib sandbox --write-env`` and ``gist_sandbox.use()``. Each test failed before its fix."""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from authlib.integrations.starlette_client import OAuth
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.testclient import TestClient

import gist_authlib
from gist_authlib import InstallLimit
from gist_authlib.sandbox._rules import redirect_uri_matches
from gist_authlib.sandbox._settings import write_env_file
from gist_authlib.starlette import gist_routes
from gist_authlib.testing import GistSandboxFixture

# --- the install limit -----------------------------------------------------------------------------------------


def test_one_ipv6_56_cannot_lock_every_genuine_install_out() -> None:
    """Callers were bucketed by /64 for IPv6 (now /48), and past the total a bucket's first attempt still passes,
    "so that a few networks cannot lock every genuine install out". One /56 (what a home line or a small VPS gets)
    is 256 /64s: 10 of them spent the total, 100 more the first attempts past it, and then a genuine install from
    anywhere else was refused for the whole window."""
    limit = InstallLimit(per_client=10, total=100, window=60, clock=lambda: 1000.0)
    for network in range(10):
        for _ in range(10):
            limit.allow(f"2001:db8:0:{network:x}::1")
    for network in range(10, 110):
        limit.allow(f"2001:db8:0:{network:x}::1")
    assert limit.allow("203.0.113.9"), "a genuine first install is refused: one /56 spent the whole limit"


def test_clients_behind_a_proxy_on_a_unix_socket_are_counted_apart() -> None:
    """Behind nginx on a Unix socket (uvicorn --uds, gunicorn --bind unix:) the socket has no peer address: the
    request's client is None, no trusted_proxies entry can name it, so X-Forwarded-For is ignored and every caller
    shares one bucket: ten forged installs a minute from anyone refuse every genuine install."""
    limit = InstallLimit(per_client=2, total=100, window=60, clock=lambda: 1000.0, trusted_proxies="unix:")
    attacker, genuine = "198.51.100.7", "203.0.113.9"
    assert [limit.allow(limit.client_address(None, attacker)) for _ in range(3)] == [True, True, False]
    assert limit.allow(limit.client_address(None, genuine)), "the genuine install shares the attacker's bucket"


# --- the strict sandbox: loopback redirect URIs ------------------------------------------------------------------


@pytest.mark.parametrize(
    "received",
    [
        "http://127.0.0.1:9/c\tb",  # urlsplit drops TAB, CR and LF anywhere (WHATWG), so the path compares equal
        "http://127.0.0.1:9/cb\n",
        "http://127.0.0.1\t:9/cb",
        "http://127.0.0.1:9/cb?",  # an empty query is not no query (RFC 3986 section 6.2.3)
    ],
)
def test_a_loopback_redirect_uri_may_differ_from_the_registered_one_in_its_port_only(received: str) -> None:
    """RFC 8252 section 7.3 lets the port vary, nothing else; the sandbox then redirects to ``received`` as it
    came (``/c%09b``, ``/cb%0A``, ``/cb??code=``), a URI the app never registered."""
    assert not redirect_uri_matches("http://127.0.0.1:8000/cb", received)


# --- gist-authlib sandbox --write-env --------------------------------------------------------------------------

SETTINGS = {"GIST_CLIENT_ID": "gist-sandbox-app", "GIST_CLIENT_SECRET": "s3cret-value"}


def test_write_env_does_not_rewrite_a_file_a_symlink_points_to_outside_its_folder(tmp_path: Path) -> None:
    """A project checked out with ``.env -> ~/.bashrc`` (a symbolic link can come in a git repository): ``--write-env
    .env`` rewrites the link's target, a file outside the project, as a new 0600 file holding the client secret.
    The sandbox's own secret file refuses links; the .env file follows them anywhere."""
    project, home = tmp_path / "project", tmp_path / "home"
    project.mkdir()
    home.mkdir()
    victim = home / ".bashrc"
    victim.write_text("alias ll='ls -l'\n")
    victim.chmod(0o644)
    (project / ".env").symlink_to(victim)
    with contextlib.suppress(OSError, ValueError):  # refused: fine
        write_env_file(project / ".env", SETTINGS)
    assert victim.read_text() == "alias ll='ls -l'\n"
    assert stat.S_IMODE(victim.stat().st_mode) == 0o644


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="only root can make another user's file")
def test_write_env_does_not_take_over_another_users_env_file(tmp_path: Path) -> None:
    """In a shared (group-writable) project folder, a teammate's .env is replaced by one owned by whoever ran the
    sandbox, made 0600: its owner can no longer read their own settings. The kept secret's file refuses files of
    another user; the .env file does not."""
    env = tmp_path / ".env"
    env.write_text("DATABASE_URL=postgresql://db/app\n")
    os.chown(env, 54321, 54321)
    env.chmod(0o640)
    with contextlib.suppress(OSError, ValueError):  # refused: fine
        write_env_file(env, SETTINGS)
    assert env.stat().st_uid == 54321


# --- gist_sandbox.use() ----------------------------------------------------------------------------------------


def test_install_attempts_counted_under_one_use_do_not_refuse_installs_in_the_next(
    gist_sandbox: GistSandboxFixture,
) -> None:
    """use() swaps the endpoints and credentials but keeps the registration's install limit, whose memory counter
    lives as long as the app (built at import): every test's install callbacks from the test client count in the
    bucket "testclient", so the eleventh install within a minute, in whichever test, answers 429."""
    gist = gist_authlib.register(OAuth(), client_id="production-id", client_secret="production-secret")

    async def on_login(request: Request, token: dict[str, Any]) -> PlainTextResponse:
        return PlainTextResponse("logged in")

    async def on_install(request: Request, token: dict[str, Any], workspace: Any) -> PlainTextResponse:
        return PlainTextResponse("installed")

    app = Starlette(
        routes=gist_routes(gist, on_login=on_login, on_install=on_install),
        middleware=[Middleware(SessionMiddleware, secret_key="test-secret")],
    )
    callback = "/oauth/gist/callback?code=forged-{}&state=nrrjryb4"
    with gist_sandbox.use(gist), TestClient(app) as client:  # one test's installs (forged: Gist answers 400)
        first = [client.get(callback.format(i)).status_code for i in range(10)]
    assert 429 not in first, first
    with gist_sandbox.use(gist), TestClient(app) as client:  # the next test's first install
        assert client.get(callback.format("next")).status_code != 429

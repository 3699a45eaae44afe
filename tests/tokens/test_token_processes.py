"""Token stores under real processes: two app instances, a SIGKILL mid-write, one refresh for two processes."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from support.servers import free_port, start_server_process
from support.web import browser_client

from gist_authlib.sandbox import SandboxClient, ServerThread, create_app
from gist_authlib.tokens import SQLiteTokenStore, TokenCipher

ROOT = Path(__file__).resolve().parents[2]
WORKER = str(ROOT / "tests" / "support" / "token_worker.py")
KEY = TokenCipher.generate_key()


def _uvicorn(port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    args = [sys.executable, "-m", "uvicorn", "--factory", "examples.starlette_app:create_app"]
    args += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    process: subprocess.Popen[bytes] = start_server_process(args, port=port, env=env, cwd=ROOT)
    return process


def test_a_login_on_one_app_process_is_usable_on_another(tmp_path: Path) -> None:
    port_a, port_b = free_port(), free_port()
    sandbox = create_app(
        clients=[SandboxClient("cid", "csecret", (f"http://127.0.0.1:{port_a}/oauth/gist/callback",))],
        auto_approve=True,
    )
    with ServerThread(sandbox) as gist:
        env = {
            "GIST_CLIENT_ID": "cid",
            "GIST_CLIENT_SECRET": "csecret",
            "GIST_AUTHORIZE_URL": f"{gist.url}/oauth/authorize",
            "GIST_ACCESS_TOKEN_URL": f"{gist.url}/oauth/token",
            "GIST_API_BASE_URL": f"{gist.url}/",
            "SESSION_SECRET": "shared-session-secret",
            "GIST_TOKEN_KEY": KEY,
            "GIST_TOKEN_DB": str(tmp_path / "shared.sqlite3"),
        }
        apps = [_uvicorn(port_a, env), _uvicorn(port_b, env)]
        try:
            with browser_client(follow_redirects=True) as browser:
                assert browser.get(f"http://127.0.0.1:{port_b}/me/teammates", follow_redirects=False).status_code == 303
                assert browser.get(f"http://127.0.0.1:{port_a}/auth/gist").status_code == 200
                on_b = browser.get(f"http://127.0.0.1:{port_b}/me/teammates")
        finally:
            for app in apps:
                app.terminate()
                app.wait(10)
    assert on_b.status_code == 200, on_b.text
    assert all(t["name"] in on_b.text for t in sandbox.workspace.teammates)
    assert [r.status for r in sandbox.token_requests] == [200]  # one login, one token, used by both


def test_sigkill_in_the_middle_of_writes_leaves_every_committed_token_readable(tmp_path: Path) -> None:
    db = str(tmp_path / "crash.sqlite3")
    worker = subprocess.Popen([sys.executable, WORKER, "write", db, KEY, "100000"], stdout=subprocess.PIPE, text=True)
    assert worker.stdout is not None
    committed = -1
    for line in worker.stdout:  # let a few hundred writes commit, then kill without warning
        committed = int(line)
        if committed >= 300:
            break
    worker.send_signal(signal.SIGKILL)
    worker.wait(10)
    with sqlite3.connect(db) as raw:
        assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    store = SQLiteTokenStore(db, key=KEY)
    rows = store._all_subjects()  # read-only look at which rows exist
    assert len(rows) >= committed + 1
    for i in range(committed + 1):
        record = store.get(f"user-{i}")
        assert record is not None, i
        assert record.token == {"access_token": f"gat-{i}-" + "x" * 40, "refresh_token": f"grt-{i}"}
    for subject in rows:  # whatever else got in is whole too
        assert store.get(subject) is not None
    store.close()


def test_two_processes_with_an_expired_token_make_one_refresh(tmp_path: Path) -> None:
    sandbox = create_app(clients=[SandboxClient("cid", "csecret", ("http://127.0.0.1:9/cb",))], token_ttl=3600)
    db, go = str(tmp_path / "refresh.sqlite3"), tmp_path / "go"
    token: dict[str, Any] = sandbox.issue_token("cid", ["read_teams"], expires_in=3600)
    token["expires_at"] = int(time.time()) - 10
    store = SQLiteTokenStore(db, key=KEY)
    store.save("user", token)
    with ServerThread(sandbox) as gist:
        workers = [
            subprocess.Popen(
                [sys.executable, WORKER, "refresh", db, KEY, gist.url, str(go)], stdout=subprocess.PIPE, text=True
            )
            for _ in range(2)
        ]
        ready = [w.stdout.readline() for w in workers if w.stdout]  # "" from a worker that died first
        go.touch()  # before asserting: a worker that is waiting must not wait forever
        assert ready == ["ready\n"] * 2
        outputs = [w.communicate(timeout=60)[0].strip() for w in workers]
    assert all(w.returncode == 0 for w in workers)
    assert sandbox.refresh_requests == 1
    stored = store.get("user")
    assert stored is not None and stored.version == 2
    assert outputs[0] == outputs[1] == stored.token["access_token"] != token["access_token"]
    store.close()

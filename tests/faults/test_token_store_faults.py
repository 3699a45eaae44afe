"""Token-store faults as a user meets them: a login through the library's Starlette routes, against the sandbox,
while the database is locked, full, read-only, corrupted, stopped, restarted or frozen.

Each test asserts what the browser gets (the 503 page, never a 500), within how long (a generous bound), that
nothing was half-stored (the stored tokens' versions and the used states and codes are as before), and that the
next login works once the fault is gone, with no restart. docs/RELIABILITY.md lists the times measured.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest
from support.postgres import PostgresServer, running_postgres
from support.servers import free_port, spawn_server_process, wait_until_serving
from support.stacks import Stack
from support.web import browser_client

from gist_authlib.sandbox import SandboxClient, ServerThread, create_app
from gist_authlib.tokens import BaseTokenStore, SQLAlchemyTokenStore, SQLiteTokenStore, TokenCipher

KEY = TokenCipher.generate_key()
UNAVAILABLE = "This site could not save or read your connection to Gist."  # the 503 page of a store fault
#: The PostgreSQL timeouts of these tests, from the URL (docs/RELIABILITY.md): a call ends 1 s past the statement
#: timeout; libpq counts a connect timeout of at least 2 s.
PG_TIMEOUTS = "statement_timeout=500&connect_timeout=2"


def timed_login(login: Callable[[], httpx2.Response]) -> tuple[httpx2.Response, float]:
    started = time.monotonic()
    response = login()
    return response, time.monotonic() - started


def assert_unavailable(response: httpx2.Response, took: float, bound: float) -> None:
    assert response.status_code == 503, response.text[:500]
    assert UNAVAILABLE in response.text
    assert took < bound, f"the 503 took {took:.2f} s"
    print(f"503 in {took:.3f} s")  # shown with -s: the times docs/RELIABILITY.md lists


def snapshot(store: BaseTokenStore) -> dict[str, int]:
    """What a login stores: each subject's version (a half-stored login would change one)."""
    return {subject: store.get(subject).version for subject in store.subjects()}  # type: ignore[union-attr]


# --- SQLite, in process ----------------------------------------------------------------------------------------


@pytest.fixture
def sqlite_stack(make_stack: Callable[..., Stack], tmp_path: Path) -> Iterator[tuple[Stack, SQLiteTokenStore]]:
    store = SQLiteTokenStore(tmp_path / "tokens.sqlite3", key=KEY, busy_timeout=0.5)
    stack = make_stack("starlette", register_kwargs={"token_store": store})
    assert stack.login().status_code == 200
    yield stack, store
    store.close()


def consumed(path: str) -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute("SELECT COUNT(*) FROM gist_consumed").fetchone()[0])


def test_a_locked_sqlite_database_gives_the_503_page_within_its_busy_timeout(
    sqlite_stack: tuple[Stack, SQLiteTokenStore],
) -> None:
    stack, store = sqlite_stack
    before, used = snapshot(store), consumed(store.path)
    other = sqlite3.connect(store.path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    try:
        response, took = timed_login(stack.login)
        assert_unavailable(response, took, bound=3.0)
        assert stack.errors[-1].error_code == "token_store_timeout"
        assert snapshot(store) == before  # reads do not wait behind the lock
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert consumed(store.path) == used
    assert stack.login().status_code == 200


def test_a_corrupted_sqlite_database_gives_the_503_page_and_its_restored_file_is_used_at_once(
    sqlite_stack: tuple[Stack, SQLiteTokenStore],
) -> None:
    stack, store = sqlite_stack
    with sqlite3.connect(store.path) as db:  # as a backup is taken: everything committed, in the file itself
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    before, used = snapshot(store), consumed(store.path)
    backup = Path(store.path).read_bytes()
    Path(store.path).write_bytes(os.urandom(len(backup)))
    response, took = timed_login(stack.login)
    assert_unavailable(response, took, bound=3.0)
    assert stack.errors[-1].error_code == "token_store_corrupt"
    Path(store.path).write_bytes(backup)  # the operator restores the backup; the app is not restarted
    assert snapshot(store) == before and consumed(store.path) == used  # the failed login recorded nothing
    assert stack.login().status_code == 200
    assert snapshot(store) != before


# --- SQLite full and read-only: the app in a user namespace (a small file system; file modes that hold) ----------


@contextmanager
def app_in_namespace(tmp_path: Path, database: Path, namespace: list[str], *flags: str) -> Iterator[Any]:
    """The storage app (tests/faults/storage_app.py) in a subprocess, with the sandbox here; yields a function that
    logs a new browser in (or GETs/POSTs a path, when given one)."""
    port = free_port()
    callback = f"http://127.0.0.1:{port}/oauth/gist/callback"
    client = SandboxClient("fault-app", "fault-secret-0123456789", (callback,))
    sandbox = create_app(clients=[client], auto_approve=True)
    with ServerThread(sandbox) as gist:
        script = Path(__file__).with_name("storage_app.py")
        args = [*namespace, sys.executable, str(script), str(port), gist.url, "fault-app", "fault-secret-0123456789"]
        args += [KEY, str(database), *flags]
        root = Path(__file__).resolve().parents[2]
        process = spawn_server_process(args, env={"PYTHONPATH": str(root)}, cwd=tmp_path)
        try:
            wait_until_serving(process, port, args[len(namespace) :])

            def call(path: str | None = None, method: str = "GET") -> httpx2.Response:
                with browser_client(follow_redirects=False, timeout=30) as browser:
                    if path is not None:
                        return browser.request(method, f"http://127.0.0.1:{port}{path}")
                    start = browser.get(f"http://127.0.0.1:{port}/auth/gist")
                    return browser.get(browser.get(start.headers["location"]).headers["location"])

            yield call
        finally:
            process.terminate()
            process.wait(10)


def test_a_full_sqlite_disk_gives_the_503_page_and_freeing_space_is_enough(tmp_path: Path) -> None:
    folder = tmp_path / "small-disk"
    folder.mkdir()
    namespace = ["unshare", "--user", "--map-root-user", "--mount"]  # root there: it mounts a 512 KiB tmpfs
    with app_in_namespace(tmp_path, folder / "tokens.sqlite3", namespace, "--tmpfs") as call:
        assert call().status_code == 200
        before = call("/state").json()
        assert call("/fault/fill", "POST").status_code == 200
        response, took = timed_login(call)
        assert_unavailable(response, took, bound=3.0)
        assert call("/state").json() == before  # nothing half-stored, and reads still work
        assert call("/fault/free", "POST").status_code == 200
        assert call().status_code == 200


def test_a_read_only_sqlite_database_gives_the_503_page_and_writable_again_is_enough(tmp_path: Path) -> None:
    database = tmp_path / "tokens.sqlite3"
    SQLiteTokenStore(database, key=KEY).close()
    database.chmod(0o400)
    # A user namespace without root in it: the file's mode holds, even when the suite runs as root.
    with app_in_namespace(tmp_path, database, ["unshare", "--user"]) as call:
        response, took = timed_login(call)
        assert_unavailable(response, took, bound=3.0)
        assert call("/state").json() == {"versions": {}, "consumed": 0}  # nothing half-stored
        for path in tmp_path.glob("tokens.sqlite3*"):  # the operator makes the database (and its -wal, -shm) writable
            path.chmod(0o600)
        assert call().status_code == 200
        assert call("/state").json()["consumed"] > 0


# --- PostgreSQL: a private server, stopped, restarted and frozen ----------------------------------------------------


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    with running_postgres() as server:
        yield server


@pytest.fixture
def postgres_stack(
    make_stack: Callable[..., Stack], postgres: PostgresServer
) -> Iterator[tuple[Stack, SQLAlchemyTokenStore]]:
    store = SQLAlchemyTokenStore(f"{postgres.url}?{PG_TIMEOUTS}", key=KEY)
    stack = make_stack("starlette", register_kwargs={"token_store": store})
    assert stack.login().status_code == 200
    yield stack, store
    store.close()


def postgres_consumed(store: SQLAlchemyTokenStore) -> int:
    from sqlalchemy import func, select

    with store._engine.connect() as connection:  # a look at the table, as the database's own tools would
        return int(connection.execute(select(func.count()).select_from(store._consumed)).scalar_one())


def test_a_stopped_postgres_gives_the_503_page_at_once_and_the_first_login_after_its_start_works(
    postgres_stack: tuple[Stack, SQLAlchemyTokenStore], postgres: PostgresServer
) -> None:
    stack, store = postgres_stack
    before, used = snapshot(store), postgres_consumed(store)
    postgres.stop()
    try:
        response, took = timed_login(stack.login)
        assert_unavailable(response, took, bound=3.0)
        assert stack.errors[-1].error_code == "token_store_unreachable"
    finally:
        postgres.start()
    assert stack.login().status_code == 200
    assert snapshot(store) != before and postgres_consumed(store) > used


def test_a_restarted_postgres_fails_no_login(
    postgres_stack: tuple[Stack, SQLAlchemyTokenStore], postgres: PostgresServer
) -> None:
    stack, _ = postgres_stack
    postgres.stop()
    postgres.start()  # the pool's connections are all dead now
    assert [stack.login().status_code for _ in range(3)] == [200, 200, 200]


def test_a_frozen_postgres_gives_the_503_page_within_its_timeouts(
    postgres_stack: tuple[Stack, SQLAlchemyTokenStore], postgres: PostgresServer
) -> None:
    stack, store = postgres_stack
    before, used = snapshot(store), postgres_consumed(store)
    with postgres.frozen():
        # A pooled connection: the store's own deadline (statement_timeout + 1 s) ends the call.
        response, took = timed_login(stack.login)
        assert_unavailable(response, took, bound=5.0)
        assert stack.errors[-1].error_code == "token_store_timeout"
        # A new connection: connect_timeout ends it.
        response, took = timed_login(stack.login)
        assert_unavailable(response, took, bound=5.0)
        assert stack.errors[-1].error_code == "token_store_unreachable"
    assert snapshot(store) == before and postgres_consumed(store) == used  # the frozen transactions rolled back
    assert stack.login().status_code == 200

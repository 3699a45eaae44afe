"""Red team, wave three (b): weaknesses of the token store opened from one setting and of the install limit counted
in a shared store. Each test fails until its weakness is fixed."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from gist_authlib import InstallLimit
from gist_authlib.tokens import SQLiteTokenStore, open_token_store

TOKEN = {"access_token": "at-" + "x" * 20, "token_type": "Bearer"}


def test_a_file_uri_token_db_is_private_and_no_symlink_is_followed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``GIST_TOKEN_DB=file:tokens.db`` has no ``://``, so it is taken as a path; ``_create_private`` skips any path
    starting with ``file:``, and the SQLite library opens it as a URI: the database (workspace names in clear) is
    created with the umask's mode, 0644, and a symbolic link planted under its name is followed."""
    monkeypatch.chdir(tmp_path)
    old = os.umask(0o022)
    try:
        store = open_token_store("file:tokens.db", plaintext=True)
        store.save("user-1", TOKEN, workspace_name="Acme Secret Project")
        store.close()
    finally:
        os.umask(old)
    # Where the SQLite library honours URIs (most builds) the file is tokens.db; elsewhere it is "file:tokens.db".
    created = next(p for p in (tmp_path / "tokens.db", tmp_path / "file:tokens.db") if p.exists())
    assert stat.S_IMODE(created.stat().st_mode) & 0o077 == 0, oct(created.stat().st_mode)

    (tmp_path / "link.db").symlink_to(tmp_path / "elsewhere.db")
    with pytest.raises(Exception, match=r"symbolic link"):
        open_token_store("file:link.db", plaintext=True)


@pytest.mark.parametrize("location", ["sqlite://", "sqlite:///:memory:", ":memory:"])
def test_an_in_memory_sqlite_store_does_not_claim_to_be_shared(location: str) -> None:
    """An in-memory SQLite database lives in one process, as the memory store does; it still says ``shared``, so
    ``register`` logs no per-process warning and the install limit believes it is counted for every instance."""
    store = open_token_store(location, plaintext=True)
    try:
        assert isinstance(store, SQLiteTokenStore)
        assert store.shared is False
        assert InstallLimit().for_registration("gist", store).shared is False
    finally:
        store.close()


def test_one_instance_with_a_fast_clock_cannot_wipe_the_shared_install_limit(tmp_path: Path) -> None:
    """Each instance counts with its own clock and deletes the rows older than its own window: an instance whose
    clock runs a window ahead (a VM resumed, no NTP) deletes every other instance's attempts, so one network that
    alternates between the two gets past ``per_client`` as if the limit were per instance."""
    path = tmp_path / "tokens.db"
    stores = [SQLiteTokenStore(path, plaintext=True) for _ in range(2)]
    now = 1_000_000.0
    limits = [
        InstallLimit(per_client=3, total=100, window=60, clock=lambda: now).counting_in(stores[0], "gist"),
        InstallLimit(per_client=3, total=100, window=60, clock=lambda: now + 61).counting_in(stores[1], "gist"),
    ]
    try:
        admitted = sum(limits[i % 2].allow("198.51.100.7") for i in range(12))
    finally:
        for store in stores:
            store.close()
    assert admitted <= 3, admitted

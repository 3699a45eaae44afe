"""Red team, wave three (b): weaknesses of the token store opened from one setting and of the install limit counted
in a shared store. Each test failed before its fix."""

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

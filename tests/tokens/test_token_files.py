"""The token database's files (and its -wal and -shm) and the command line's configuration directory are private:
created 0600 or 0700, tightened when found loose, refused behind a symbolic link or when another user owns them."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from gist_authlib._cli_login import _private_directory
from gist_authlib.errors import TokenStoreError
from gist_authlib.tokens import SQLiteTokenStore, TokenCipher

KEY = TokenCipher.generate_key()


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_a_loose_token_database_and_its_wal_are_tightened(tmp_path: Path) -> None:
    db = tmp_path / "tokens.sqlite3"
    with SQLiteTokenStore(db, key=KEY) as store:
        store.save("user-1", {"access_token": "a"}, workspace_id="1", workspace_name="Acme")
        os.chmod(db, 0o644)  # as 0.1 left it
        wal = Path(f"{db}-wal")
        if wal.exists():
            os.chmod(wal, 0o644)
    assert mode(db) == 0o644
    with SQLiteTokenStore(db, key=KEY) as store:
        assert store.get("user-1") is not None
        assert mode(db) == 0o600
        for extra in (Path(f"{db}-wal"), Path(f"{db}-shm")):
            if extra.exists():
                assert mode(extra) & 0o077 == 0


def test_a_token_database_behind_a_symbolic_link_is_refused(tmp_path: Path) -> None:
    real = tmp_path / "elsewhere.sqlite3"
    SQLiteTokenStore(real, key=KEY).close()
    link = tmp_path / "tokens.sqlite3"
    link.symlink_to(real)
    with pytest.raises(TokenStoreError, match="symbolic link"):
        SQLiteTokenStore(link, key=KEY)
    dangling = tmp_path / "dangling.sqlite3"
    dangling.symlink_to(tmp_path / "nowhere" / "x.sqlite3")
    with pytest.raises((TokenStoreError, OSError)):
        SQLiteTokenStore(dangling, key=KEY)
    assert not (tmp_path / "nowhere").exists()  # the link was not followed to create anything


def test_another_users_token_database_is_refused(tmp_path: Path) -> None:
    if os.getuid() == 0:
        db = tmp_path / "theirs.sqlite3"
        SQLiteTokenStore(db, key=KEY).close()
        os.chown(db, 65534, 65534)  # nobody's
    else:
        db = Path("/etc/passwd")  # root's, and never a token database: refused before it is opened
    before = os.lstat(db)
    with pytest.raises(TokenStoreError, match="another user"):
        SQLiteTokenStore(db, key=KEY)
    after = os.lstat(db)
    assert (after.st_mode, after.st_size, after.st_mtime_ns) == (before.st_mode, before.st_size, before.st_mtime_ns)


def test_the_command_lines_configuration_directory_is_private(tmp_path: Path) -> None:
    config = tmp_path / "config" / "gist-authlib"
    _private_directory(config)
    assert mode(config) == 0o700
    os.chmod(config, 0o755)  # an older release, or a umask, left it open
    _private_directory(config)
    assert mode(config) == 0o700
    target = tmp_path / "real"
    target.mkdir()
    link = tmp_path / "linked"
    link.symlink_to(target)
    with pytest.raises(TokenStoreError, match="symbolic link"):
        _private_directory(link)


def test_a_wal_planted_beside_a_new_database_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "tokens.sqlite3"
    wal = tmp_path / "tokens.sqlite3-wal"
    wal.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(TokenStoreError, match="symbolic link"):
        SQLiteTokenStore(db, key=KEY)
    assert not (tmp_path / "elsewhere").exists()

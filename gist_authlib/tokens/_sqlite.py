"""SQLiteTokenStore: the embedded default, on the standard library's sqlite3.

WAL mode, a busy timeout and one transaction per write make it safe to share between the processes of one
machine (several uvicorn workers); a process killed mid-write leaves every committed token intact.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
import threading
import weakref
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Unpack
from urllib.parse import unquote

from ..errors import TokenStoreError
from ._base import COLUMNS, Admit, BaseTokenStore, DatabaseLoginState, Lookup, Row, StoreOptions, as_row

__all__ = ["SCHEMA", "SQLiteTokenStore"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS gist_tokens (
    subject        TEXT PRIMARY KEY,
    token          TEXT NOT NULL,      -- Fernet ciphertext (base64 JSON only with plaintext=True)
    key_id         TEXT NOT NULL,      -- fingerprint of the key that encrypted it
    token_hash     TEXT NOT NULL,      -- SHA-256 of the access token, to find a row by token
    refresh_hash   TEXT,               -- SHA-256 of the refresh token, if any
    scopes         TEXT NOT NULL,
    workspace_id   TEXT,
    workspace_name TEXT,
    created_at     REAL NOT NULL,
    updated_at     REAL NOT NULL,
    version        INTEGER NOT NULL,
    lease_holder   TEXT,
    lease_until    REAL
);
CREATE INDEX IF NOT EXISTS gist_tokens_workspace ON gist_tokens (workspace_id);
CREATE INDEX IF NOT EXISTS gist_tokens_token_hash ON gist_tokens (token_hash);
CREATE INDEX IF NOT EXISTS gist_tokens_refresh_hash ON gist_tokens (refresh_hash);
CREATE TABLE IF NOT EXISTS gist_consumed (
    digest TEXT PRIMARY KEY,           -- SHA-256 of a used login state or code (never the value itself)
    until  REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS gist_consumed_until ON gist_consumed (until);
CREATE TABLE IF NOT EXISTS gist_install_attempts (
    registration TEXT NOT NULL,        -- the registration's name
    network      TEXT NOT NULL,        -- the caller's /24 or /48 (its SHA-256 when longer than 64 characters)
    grace        INTEGER NOT NULL,     -- 1: a first attempt let through past the total
    at           REAL NOT NULL         -- when (at most twice the limit's total rows a registration, in its window)
);
CREATE INDEX IF NOT EXISTS gist_install_attempts_at ON gist_install_attempts (registration, at);
"""

_INSERT_COLUMNS = ", ".join(COLUMNS)
_PLACEHOLDERS = ", ".join(f":{c}" for c in COLUMNS)
_UPDATED = ("token", "key_id", "token_hash", "refresh_hash", "scopes", "workspace_id", "workspace_name", "updated_at")
_LOOKUPS = frozenset({"token_hash", "refresh_hash"})
_SET = ", ".join(f"{c} = excluded.{c}" for c in _UPDATED)
_SET_PARAMS = ", ".join(f"{c} = :{c}" for c in _UPDATED)

UPSERT = (
    f"INSERT INTO gist_tokens ({_INSERT_COLUMNS}) VALUES ({_PLACEHOLDERS}) "
    f"ON CONFLICT (subject) DO UPDATE SET {_SET}, version = gist_tokens.version + 1, "
    f"lease_holder = NULL, lease_until = NULL RETURNING {_INSERT_COLUMNS}"
)
REPLACE = (
    f"UPDATE gist_tokens SET {_SET_PARAMS}, version = version + 1, lease_holder = NULL, lease_until = NULL "
    f"WHERE subject = :subject AND version = :expected RETURNING {_INSERT_COLUMNS}"
)
#: Expired used values go a batch at a time, found through the index on ``until``: each call does bounded work
#: whatever the table holds, and a backlog drains, as every call records at most two rows.
PURGE_CONSUMED = "DELETE FROM gist_consumed WHERE digest IN (SELECT digest FROM gist_consumed WHERE until < ? LIMIT 64)"
LEASE = (
    "UPDATE gist_tokens SET lease_holder = :holder, lease_until = :until "
    "WHERE subject = :subject AND version = :version AND (lease_until IS NULL OR lease_until <= :now)"
)


def _plain_path(path: str) -> str:
    """The file of a ``file:`` location (which the SQLite library may open as a URI, past the checks that keep the
    database private): its path, without URI options, so that the file is created and checked like any other."""
    if not path.startswith("file:"):
        return path
    rest = path[len("file:") :].split("?", 1)[0].split("#", 1)[0]
    if rest.startswith("//"):  # file://host/path: only this machine's files
        host, _, rest = rest[2:].partition("/")
        if host not in ("", "localhost"):
            raise TokenStoreError(f"The token database {path} names another host; give a local file's path.")
        rest = "/" + rest
    return unquote(rest) or ":memory:"


def _create_private(path: str) -> None:
    """Create the database file readable by its owner only (0600) before SQLite opens it, or make an existing
    one so.

    SQLite gives the ``-wal`` and ``-shm`` files it creates beside it the database file's permissions, so the
    write-ahead log, which holds workspace names in clear, is private too. A file written by an older release
    with looser modes is tightened; a symbolic link, or a file of another user, is refused rather than followed
    or trusted.

    Raises:
        TokenStoreError: the path is a symbolic link, not a regular file, or owned by another user; or the file
            cannot be created (no such folder, no permission).
    """
    if path in (":memory:", ""):
        return
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR | getattr(os, "O_NOFOLLOW", 0), 0o600)
    except FileExistsError:
        _make_private(path)
    except OSError as exc:
        raise TokenStoreError(f"Cannot create the token database {path}: {exc.strerror}.") from None
    else:
        os.close(fd)
    # Checked for a new database too: a -wal or -shm planted beside it in a shared folder would be used as is.
    for name in (f"{path}-wal", f"{path}-shm"):
        _make_private(name)


def _make_private(path: str) -> None:
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISREG(info.st_mode):
        raise TokenStoreError(
            f"The token database {path} is a symbolic link or not a regular file, so it was not opened. "
            "Point GIST_TOKEN_DB (or the store's path) at the real file."
        )
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        raise TokenStoreError(
            f"The token database {path} belongs to another user, so it was not opened: its tokens could be read "
            "or replaced by that user. Use a file of your own."
        )
    if stat.S_IMODE(info.st_mode) & 0o077:
        os.chmod(path, 0o600)


#: What a failed call's SQLite result code (its primary code, the low byte) means for the caller.
_CAUSES = {
    sqlite3.SQLITE_BUSY: "token_store_timeout",
    sqlite3.SQLITE_LOCKED: "token_store_timeout",
    sqlite3.SQLITE_FULL: "token_store_full",
    sqlite3.SQLITE_READONLY: "token_store_read_only",
    sqlite3.SQLITE_CORRUPT: "token_store_corrupt",
    sqlite3.SQLITE_NOTADB: "token_store_corrupt",
}


def _failure(exc: sqlite3.Error, path: str) -> TokenStoreError:
    cause = _CAUSES.get(getattr(exc, "sqlite_errorcode", 0) & 0xFF)
    if cause is not None:
        return TokenStoreError.unavailable(cause, f"The token database {path}")
    return TokenStoreError(f"The token database {path} failed: {exc}.")


class _Connection(sqlite3.Connection):
    """A connection the store can track weakly: it closes when its thread ends."""


class SQLiteTokenStore(DatabaseLoginState, BaseTokenStore):
    """Tokens in a SQLite file, encrypted with the key given.

    Each thread has a connection of its own, so a read never waits behind another thread's call, and in WAL mode
    never behind a writer (of this process or another); a write waits at most ``busy_timeout`` for another
    writer's lock. A database that is locked past it, full, read-only or corrupted raises
    :class:`~gist_authlib.errors.TokenStoreError` (the login answers its 503 page), and a connection
    that failed is opened afresh by the next call, so a database freed, remounted or restored is used again with
    no restart.

    Args:
        path: the database file (created with its table on first use).
        key: a Fernet key or a list of keys (the first encrypts); see :class:`~gist_authlib.tokens.TokenCipher`.
        plaintext: store tokens unencrypted; refused unless asked for.
        busy_timeout: seconds a write waits for another writer's lock before giving up.
    """

    def __init__(self, path: str | Path, *, busy_timeout: float = 5.0, **kwargs: Unpack[StoreOptions]) -> None:
        super().__init__(**kwargs)
        self.path = _plain_path(str(path))
        #: An in-memory database lives in this process only, as the memory store's tokens do.
        self.shared = self.path not in (":memory:", "")
        self.busy_timeout = busy_timeout
        self._local = threading.local()
        self._connections: weakref.WeakSet[_Connection] = weakref.WeakSet()
        self._lock = threading.Lock()  # an in-memory database is one connection, which the threads take in turn
        _create_private(self.path)
        try:
            # An in-memory database lives in this connection. A file's is closed: no connection is kept beyond a
            # thread's, so that one opened while the file was read-only or broken does not outlive the fault.
            self._first = self._connect()
            self._first.execute("PRAGMA journal_mode = WAL")
            self._first.executescript(SCHEMA)
            if self.shared:
                self._first.close()
        except sqlite3.Error as exc:
            raise _failure(exc, self.path) from None

    def _connect(self) -> _Connection:
        db = sqlite3.connect(
            self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False, factory=_Connection
        )
        db.row_factory = sqlite3.Row
        # NORMAL is durable across process crashes in WAL mode; only a power loss can drop the last commits.
        db.execute("PRAGMA synchronous = NORMAL")
        self._connections.add(db)
        return db

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        """The calling thread's connection (an in-memory database's one connection, in turn). A failure is raised as
        a TokenStoreError; a connection that failed other than by waiting, or that was opened on a file it cannot
        write (it would stay read-only), is not kept, so the next call opens the database afresh."""
        with contextlib.nullcontext() if self.shared else self._lock:
            db: sqlite3.Connection | None = self._local.__dict__.get("db") if self.shared else self._first
            keep = True
            try:
                if db is None:
                    db = self._connect()
                    keep = os.access(self.path, os.W_OK)
                    self._local.db = db if keep else None
                yield db
            except sqlite3.Error as exc:
                error = _failure(exc, self.path)
                keep = keep and error.error_code == "token_store_timeout"
                raise error from None
            finally:
                if self.shared and db is not None and not keep:
                    self._local.db = None
                    db.close()

    def _execute(self, sql: str, params: Mapping[str, object] | tuple[object, ...] = ()) -> list[sqlite3.Row]:
        with self._connection() as db:
            return db.execute(sql, params).fetchall()

    def _upsert(self, row: Row) -> Row:
        return as_row(self._execute(UPSERT, row)[0])

    def _replace(self, row: Row, expected_version: int) -> Row | None:
        found = self._execute(REPLACE, {**row, "expected": expected_version})
        return as_row(found[0]) if found else None

    def _read(self, subject: str) -> Row | None:
        found = self._execute(f"SELECT {_INSERT_COLUMNS} FROM gist_tokens WHERE subject = ?", (subject,))
        return as_row(found[0]) if found else None

    def _read_where(self, column: Lookup, value: str) -> Row | None:
        if column not in _LOOKUPS:
            raise ValueError(f"Cannot look tokens up by {column!r}.")
        found = self._execute(f"SELECT {_INSERT_COLUMNS} FROM gist_tokens WHERE {column} = ?", (value,))
        return as_row(found[0]) if found else None

    def _read_workspace(self, workspace_id: str) -> list[Row]:
        sql = f"SELECT {_INSERT_COLUMNS} FROM gist_tokens WHERE workspace_id = ? ORDER BY subject"
        return [as_row(r) for r in self._execute(sql, (workspace_id,))]

    def _remove(self, subject: str) -> bool:
        return bool(self._execute("DELETE FROM gist_tokens WHERE subject = ? RETURNING subject", (subject,)))

    def _take_lease(self, subject: str, version: int, holder: str, until: float, now: float) -> bool:
        params = {"subject": subject, "version": version, "holder": holder, "until": until, "now": now}
        with self._connection() as db:
            return db.execute(LEASE, params).rowcount == 1

    @contextmanager
    def _write_transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction across processes: what runs in it cannot interleave with another's."""
        with self._connection() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:  # SQLite has rolled back by itself after some failures
                    with contextlib.suppress(sqlite3.Error):
                        db.execute("ROLLBACK")
                raise

    def _consume(self, digests: list[str], until: float, now: float) -> bool:
        marks = ", ".join("?" * len(digests))
        with self._write_transaction() as db:
            db.execute(PURGE_CONSUMED, (now,))
            live = f"SELECT 1 FROM gist_consumed WHERE digest IN ({marks}) AND until >= ?"
            if db.execute(live, (*digests, now)).fetchone() is not None:
                return False
            # REPLACE: a value recorded before may still have its expired row, not yet purged.
            db.executemany("INSERT OR REPLACE INTO gist_consumed VALUES (?, ?)", [(d, until) for d in digests])
            return True

    def _count_attempt(self, registration: str, network: str, start: float, now: float, admit: Admit) -> bool:
        with self._write_transaction() as db:
            db.execute("DELETE FROM gist_install_attempts WHERE registration = ? AND at <= ?", (registration, start))
            mine, counted, grace = db.execute(
                "SELECT COALESCE(SUM(network = ?), 0), COALESCE(SUM(grace = 0), 0), COALESCE(SUM(grace = 1), 0) "
                "FROM gist_install_attempts WHERE registration = ?",
                (network, registration),
            ).fetchone()
            kind = admit(mine, counted, grace)
            if kind is not None:
                db.execute(
                    "INSERT INTO gist_install_attempts VALUES (?, ?, ?, ?)",
                    (registration, network, int(kind == "grace"), now),
                )
            return kind is not None

    def _all_subjects(self) -> list[str]:
        return [r["subject"] for r in self._execute("SELECT subject FROM gist_tokens ORDER BY subject")]

    def close(self) -> None:
        """Close the database connections (each thread's, and the one kept open)."""
        for db in [*self._connections, self._first]:
            db.close()

    def __repr__(self) -> str:
        return f"<SQLiteTokenStore {self.path}>"

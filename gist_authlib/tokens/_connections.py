"""How the SQLAlchemy store's calls stay bounded in time: PostgreSQL's timeouts by default (each overridable from
the URL), a watchdog for a server that stops answering, and what a failure means for the caller."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from ..errors import ConfigurationError, TokenStoreError
from ._sqlite import _failure as sqlite_failure

if TYPE_CHECKING:
    from sqlalchemy import URL

__all__ = ["DEFAULTS", "Watch", "failure", "postgres_options", "shown"]

#: libpq's connection parameters set when the URL names none of its own (seconds), and ``statement_timeout`` (ms),
#: which the store turns into the session setting of that name.
DEFAULTS = {
    "connect_timeout": "5",
    "keepalives": "1",
    "keepalives_idle": "10",
    "keepalives_interval": "5",
    "keepalives_count": "3",
    "statement_timeout": "5000",
}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|min)?\s*$")
_UNIT = {None: 0.001, "ms": 0.001, "s": 1.0, "min": 60.0}
#: How long past its statement timeout a call may run before the watchdog ends it (the server's own cancel,
#: when it answers, comes first).
_GRACE = 1.0

#: SQLSTATE codes (and classes) of PostgreSQL's answers that name a fault of the database, not of the call.
_SQLSTATES = {
    "57014": "token_store_timeout",  # query_canceled: statement_timeout
    "55P03": "token_store_timeout",  # lock_not_available
    "53100": "token_store_full",  # disk_full
    "25006": "token_store_read_only",  # read_only_sql_transaction (a standby, default_transaction_read_only)
    "XX001": "token_store_corrupt",  # data_corrupted
    "XX002": "token_store_corrupt",  # index_corrupted
}
_UNREACHABLE_CLASSES = ("08", "57P")  # connection exceptions; the server shutting down or starting


def postgres_options(url: URL) -> tuple[URL, dict[str, str], float | None]:
    """The URL without ``statement_timeout``, the connection arguments adding the defaults it does not override,
    and the deadline of a whole call in seconds (None: no deadline).

    Raises:
        ConfigurationError: ``statement_timeout`` is not a duration (the message never quotes the URL).
    """
    query = dict(url.query)
    extra = {name: value for name, value in DEFAULTS.items() if name not in query}
    statement_timeout = str(query.pop("statement_timeout", None) or extra.pop("statement_timeout"))
    found = _DURATION.match(statement_timeout)
    if found is None:
        raise ConfigurationError(
            "The token store URL's statement_timeout is not a duration: give milliseconds (5000) or a number "
            "with ms, s or min (5s)."
        )
    seconds = float(found[1]) * _UNIT[found[2]]
    setting = f"-c statement_timeout={round(seconds * 1000)}"
    options = query.pop("options", None)
    extra["options"] = f"{options} {setting}" if options else setting
    return url.set(query=query), extra, seconds + _GRACE if seconds else None


def shown(url: URL) -> str:
    """``url`` as it may be shown (a repr, a log line, the command line): its password hidden, and the value of
    every query parameter whose name holds "password" or "secret" (``password=``, ``sslpassword=``)."""
    query = {
        name: "***" if "password" in name.lower() or "secret" in name.lower() else value
        for name, value in url.query.items()
    }
    return str(url.set(query=query).render_as_string(hide_password=True)).replace("=%2A%2A%2A", "=***")


class Watch:
    """One call's deadline: past it, the watchdog shuts the call's socket, so a driver blocked on a server that
    stopped answering (a frozen process, which the kernel still acknowledges, so neither TCP keepalives nor the
    server's own statement timeout notice) fails at once with a disconnect."""

    def __init__(self) -> None:
        self.fired = False

    @contextlib.contextmanager
    def guard(self, dbapi_connection: object, seconds: float | None) -> Iterator[None]:
        """Watch ``dbapi_connection`` (one with ``fileno()``) for ``seconds``; nothing when either is missing."""
        fileno = getattr(dbapi_connection, "fileno", None)
        if seconds is None or fileno is None:
            yield
            return
        # A duplicate of the socket: still valid when the driver closes its own on the failure the shutdown causes.
        sock = socket.socket(fileno=os.dup(fileno()))
        _WATCHDOG.arm(self, sock, time.monotonic() + seconds)
        try:
            yield
        finally:
            _WATCHDOG.disarm(self)
            sock.close()


class _Watchdog:
    """One daemon thread for every store: it sleeps until the nearest deadline, and shuts the socket of each call
    that passed its own."""

    def __init__(self) -> None:
        self._armed: dict[Watch, tuple[float, socket.socket]] = {}
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None

    def arm(self, watch: Watch, sock: socket.socket, deadline: float) -> None:
        with self._changed:
            self._armed[watch] = (deadline, sock)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="gist-authlib-store-watchdog", daemon=True)
                self._thread.start()
            self._changed.notify()

    def disarm(self, watch: Watch) -> None:
        with self._changed:
            self._armed.pop(watch, None)

    def _run(self) -> None:
        with self._changed:
            while True:
                now = time.monotonic()
                for watch, (deadline, sock) in list(self._armed.items()):
                    if deadline <= now:
                        del self._armed[watch]
                        watch.fired = True
                        with contextlib.suppress(OSError):
                            sock.shutdown(socket.SHUT_RDWR)
                nearest = min((deadline for deadline, _ in self._armed.values()), default=None)
                self._changed.wait(None if nearest is None else max(nearest - now, 0.0))


_WATCHDOG = _Watchdog()


def failure(exc: Exception, watch: Watch) -> TokenStoreError:
    """What a failed call raises: a typed fault of the database when one is recognised; never the driver's message,
    which can quote parameters."""
    from sqlalchemy.exc import DBAPIError, OperationalError

    orig = getattr(exc, "orig", None)
    if isinstance(orig, sqlite3.Error):  # SQLAlchemy on SQLite
        return sqlite_failure(orig, "The token database")
    state = str(getattr(orig, "sqlstate", None) or "")
    cause = "token_store_timeout" if watch.fired else _SQLSTATES.get(state)
    if cause is None and (
        state.startswith(_UNREACHABLE_CLASSES)
        or (isinstance(exc, OperationalError) and not state)
        or (isinstance(exc, DBAPIError) and exc.connection_invalidated)
    ):
        cause = "token_store_unreachable"
    if cause is not None:
        return TokenStoreError.unavailable(cause)
    return TokenStoreError(f"The token database failed ({type(exc).__name__}); nothing was written.")

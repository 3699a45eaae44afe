"""A throwaway PostgreSQL server for the tests: initdb in a temporary folder, on a loopback port.

PostgreSQL itself comes from the system (scripts/install-test-deps.sh installs Debian's package). The tests
fail, loudly, when it is missing: a store that was never run against PostgreSQL must not pass as tested.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


def find_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


@dataclass
class PostgresServer:
    """A private server, for the fault tests to stop, start and freeze."""

    url: str
    data: Path
    pg_ctl: list[str]  # pg_ctl, run as the postgres user when this process is root
    options: str

    def stop(self) -> None:
        subprocess.run([*self.pg_ctl, "-D", str(self.data), "-m", "fast", "-w", "stop"], **RUN)  # type: ignore[call-overload]

    def start(self) -> None:
        log = str(self.data.parent / "log")
        subprocess.run([*self.pg_ctl, "-D", str(self.data), "-o", self.options, "-l", log, "-w", "start"], **RUN)  # type: ignore[call-overload]

    def processes(self) -> list[int]:
        """The postmaster and every process it started (backends, writer, checkpointer, ...)."""
        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        children = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, IndexError):
                if stat.read_text().rpartition(")")[2].split()[1] == str(postmaster):
                    children.append(int(stat.parent.name))
        return [postmaster, *children]

    @contextmanager
    def frozen(self) -> Iterator[None]:
        """Every server process stopped (SIGSTOP) meanwhile: connections stay open, and nothing answers."""
        stopped = self.processes()
        for pid in stopped:
            os.kill(pid, signal.SIGSTOP)
        try:
            yield
        finally:
            for pid in stopped:
                os.kill(pid, signal.SIGCONT)


RUN = dict(check=True, capture_output=True, timeout=120)


@contextmanager
def postgres_server() -> Iterator[str]:
    """Start a private PostgreSQL server; yield a SQLAlchemy URL to a fresh database on it."""
    with running_postgres() as server:
        yield server.url


@contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    """Start a private PostgreSQL server with a fresh database on it."""
    initdb, pg_ctl = find_bin("initdb"), find_bin("pg_ctl")
    if not initdb or not pg_ctl:
        raise RuntimeError(
            "PostgreSQL is not installed, and the SQLAlchemy store must be tested against it. "
            "Run: bash scripts/install-test-deps.sh"
        )
    root = Path(tempfile.mkdtemp(prefix="gist-authlib-pg-"))
    data = root / "data"
    as_user: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root: run it as the postgres user
        shutil.chown(root, "postgres", "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    subprocess.run(
        [*as_user, initdb, "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"], **RUN
    )  # type: ignore[call-overload]
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    server = PostgresServer(
        f"postgresql+psycopg://postgres@127.0.0.1:{port}/gist_tokens_test", data, [*as_user, pg_ctl], options
    )
    server.start()
    try:
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={port} user=postgres dbname=postgres", autocommit=True) as conn:
            conn.execute("CREATE DATABASE gist_tokens_test")
        yield server
    finally:
        with contextlib.suppress(ProcessLookupError, OSError, ValueError):
            for pid in server.processes():
                os.kill(pid, signal.SIGCONT)  # a test that failed while the server was frozen
        subprocess.run(
            [*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True, timeout=60, check=False
        )
        shutil.rmtree(root, ignore_errors=True)


def fresh_database(url: str) -> str:
    """A new, empty database on the server of ``url`` (a SQLAlchemy URL from :func:`postgres_server`); its URL."""
    import psycopg

    server, _, _ = url.rpartition("/")
    name = "db_" + uuid.uuid4().hex[:12]
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return f"{server}/{name}"

"""Benchmark: a soak, logins and API calls at a steady concurrency, watching the app's process for growth.

Three processes on loopback: the sandbox (Gist, in a child of its own), the Starlette example
(``examples/starlette_app.py`` under uvicorn) with its token store in a SQLite file or a PostgreSQL database
(``--store``), and this one, the browsers. ``--concurrency`` browsers run at once, each in a loop of one login by a
new visitor (no cookies: the start, the sandbox's consent, the callback, which exchanges the code, asks Gist's
``GET /token``, stores the token and shows the workspace's teammates from the API) and then ``--calls`` visits of
``/me/teammates`` (the stored token read from the store, then one ``GET /teammates`` to the sandbox's API).

After ``--warm`` seconds (untimed), every ``--every`` seconds it prints for the app's process: its resident set
size, open file descriptors, threads and database connections (PostgreSQL: the database's backends in
``pg_stat_activity`` but the monitor's own; SQLite: the process's open handles of the database file, from
``/proc/<pid>/fd``), the database's size (SQLite: its main file), and the p50 and p99 of the logins and of the API
calls finished in that interval. At the end, a verdict on growth: the last interval against the first, where
the resident set may grow by 10% and each count by 4 (or 10%, if more) before it says "GREW"; latencies are
compared too, without a verdict (the shared machine's noise moves them). ``--quick``, a few seconds, is the
smoke run for CI.

Bounded: every loop stops at the run's deadline and after a fixed count, every request times out after
``REQUEST_TIMEOUT`` seconds, every server is on 127.0.0.1. Needs Linux (``/proc``).

    python bench/soak.py [--store sqlite|postgres] [--seconds 180] [--concurrency 8] [--calls 3] [--every 10]
                         [--warm 10] [--database-url URL] [--quick]

With ``--store postgres`` and no ``--database-url`` it starts a throwaway PostgreSQL server (as the tests do,
tests/support/postgres.py) and removes it afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx2
from instances import CLIENT_ID, free_port, percentile, postgres, sandbox_child, start_example, wait_until_serving

from gist_authlib.tokens import TokenCipher

REQUEST_TIMEOUT = 30.0
MAX_LOOPS_PER_SECOND = 1000  # a browser's loops are also bounded in count: the run's seconds times this
MIB = 1024 * 1024
# Growth allowed between the first interval and the last before the verdict says "grew".
RSS_GROWTH = 0.10  # a fraction
COUNT_GROWTH = 4  # file descriptors, threads, database connections: this many, or 10% if that is more


@dataclass
class Interval:
    """What the browsers finished in one interval: latencies in seconds, and why the failures failed."""

    logins: list[float] = field(default_factory=list)
    calls: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


@dataclass
class Usage:
    """The app's process and its database at one moment."""

    rss: int
    fds: int
    threads: int
    connections: int
    database_bytes: int


class Database:
    """The token database: its URL for the app (``GIST_TOKEN_DB``), and what it knows of its connections."""

    def __init__(self, url: str, sqlite_path: Path | None) -> None:
        self.url, self.sqlite_path = url, sqlite_path
        self._monitor = None
        if sqlite_path is None:
            import psycopg

            self._monitor = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True)

    def usage(self, pid: int) -> tuple[int, int]:
        """(connections of the app, bytes on disk)."""
        if self._monitor is not None:
            row = self._monitor.execute(
                "SELECT count(*) FILTER (WHERE pid <> pg_backend_pid()), pg_database_size(current_database()) "
                "FROM pg_stat_activity WHERE datname = current_database()"
            ).fetchone()
            assert row is not None
            return int(row[0]), int(row[1])
        assert self.sqlite_path is not None
        target = str(self.sqlite_path.resolve())
        handles = 0
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):  # a descriptor closed meanwhile
                handles += os.readlink(f"/proc/{pid}/fd/{fd}") == target
        # The main file only: the write-ahead log beside it is reused after each checkpoint, not grown.
        return handles, self.sqlite_path.stat().st_size

    def close(self) -> None:
        if self._monitor is not None:
            self._monitor.close()


@contextlib.contextmanager
def database(store: str, url: str | None) -> Iterator[Database]:
    """A SQLite file in a temporary folder, or a PostgreSQL database (``url``, else a throwaway server's)."""
    if store == "sqlite":
        with tempfile.TemporaryDirectory(prefix="gist-soak-") as folder:
            path = Path(folder) / "tokens.sqlite3"
            yield Database(str(path), path)
        return
    with postgres(url) as started:
        db = Database(started, None)
        try:
            yield db
        finally:
            db.close()


def usage_of(pid: int, db: Database) -> Usage:
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    connections, database_bytes = db.usage(pid)
    return Usage(
        rss=int(status["VmRSS"].split()[0]) * 1024,
        fds=len(os.listdir(f"/proc/{pid}/fd")),
        threads=int(status["Threads"]),
        connections=connections,
        database_bytes=database_bytes,
    )


async def browse(app: str, calls: int, deadline: float, loops: int, now: list[Interval]) -> None:
    """One browser's loop: a login by a new visitor, then ``calls`` API pages, until the deadline (or ``loops``
    loops). What it finishes goes into ``now[0]``, the interval under way."""
    async with httpx2.AsyncClient(timeout=REQUEST_TIMEOUT, trust_env=False) as browser:
        for _ in range(loops):
            if time.monotonic() >= deadline:
                return
            browser.cookies.clear()
            try:
                started = time.perf_counter()
                start = await browser.get(f"{app}/auth/gist")
                consent = await browser.get(start.headers["location"])
                done = await browser.get(consent.headers["location"])
                if done.status_code != 200:
                    raise LookupError(f"the callback answered {done.status_code}: {done.text[:200]}")
                now[0].logins.append(time.perf_counter() - started)
                for _ in range(calls):
                    started = time.perf_counter()
                    page = await browser.get(f"{app}/me/teammates")
                    if page.status_code != 200 or 'id="teammates"' not in page.text:
                        raise LookupError(f"/me/teammates answered {page.status_code}: {page.text[:200]}")
                    now[0].calls.append(time.perf_counter() - started)
            except (httpx2.HTTPError, KeyError, LookupError) as exc:
                now[0].failures.append(repr(exc)[:300])
                await asyncio.sleep(0.1)  # a failing app is not hammered


def row(seconds: float, taken: Interval, usage: Usage) -> str:
    def ms(values: list[float], q: float) -> str:
        return f"{percentile(values, q) * 1000:9.1f}" if values else f"{'-':>9}"

    return (
        f"{seconds:6.0f} {len(taken.logins):7} {len(taken.calls):7} {len(taken.failures):5} {usage.rss / MIB:8.1f} "
        f"{usage.fds:5} {usage.threads:7} {usage.connections:8} {usage.database_bytes / MIB:7.2f} "
        f"{ms(taken.logins, 0.5)} {ms(taken.logins, 0.99)} {ms(taken.calls, 0.5)} {ms(taken.calls, 0.99)}"
    )


HEADER = (
    f"{'t s':>6} {'logins':>7} {'calls':>7} {'fails':>5} {'RSS MiB':>8} {'fds':>5} {'threads':>7} {'db conns':>8} "
    f"{'db MiB':>7} {'login p50':>9} {'login p99':>9} {'call p50':>9} {'call p99':>9}   (latencies in ms)"
)


async def soak(args: argparse.Namespace, app: str, pid: int, db: Database) -> list[tuple[Interval, Usage]]:
    """Run the browsers for the warm-up and every interval, printing a line each; the intervals' figures."""
    intervals = max(1, round(args.seconds / args.every))
    began = time.monotonic()
    deadline = began + args.warm + intervals * args.every
    now = [Interval()]
    loops = int((deadline - began + 1) * MAX_LOOPS_PER_SECOND)
    browsers = [asyncio.create_task(browse(app, args.calls, deadline, loops, now)) for _ in range(args.concurrency)]
    seen: list[tuple[Interval, Usage]] = []
    try:
        await asyncio.sleep(args.warm)
        now[0] = Interval()  # the warm-up's figures are not kept
        print(HEADER, flush=True)
        for n in range(1, intervals + 1):
            await asyncio.sleep(max(0.0, began + args.warm + n * args.every - time.monotonic()))
            taken, now[0] = now[0], Interval()
            usage = await asyncio.to_thread(usage_of, pid, db)
            seen.append((taken, usage))
            print(row(n * args.every, taken, usage), flush=True)
    except BaseException:
        for task in browsers:
            task.cancel()
        raise
    finally:
        await asyncio.wait_for(asyncio.gather(*browsers, return_exceptions=True), REQUEST_TIMEOUT * 4)
    return seen


def verdict(seen: list[tuple[Interval, Usage]]) -> list[str]:
    """The last interval against the first: one line per figure, then the verdict."""
    (first_taken, first), (last_taken, last) = seen[0], seen[-1]
    lines, grew = ["", "growth, the last interval against the first:"], []

    def count(name: str, before: int, after: int) -> None:
        allowed = max(COUNT_GROWTH, int(before * 0.10))
        flat = after - before <= allowed
        lines.append(f"  {name:<14} {before:>8} -> {after:<8} {after - before:+6}  {'flat' if flat else 'GREW'}")
        if not flat:
            grew.append(name)

    rss_growth = last.rss / first.rss - 1
    rss_flat = rss_growth <= RSS_GROWTH
    lines.append(
        f"  {'RSS MiB':<14} {first.rss / MIB:8.1f} -> {last.rss / MIB:<8.1f} {rss_growth:+6.1%}  "
        f"{'flat' if rss_flat else 'GREW'} (limit +{RSS_GROWTH:.0%})"
    )
    if not rss_flat:
        grew.append("RSS")
    count("fds", first.fds, last.fds)
    count("threads", first.threads, last.threads)
    count("db conns", first.connections, last.connections)
    size = f"{first.database_bytes / MIB:8.2f} -> {last.database_bytes / MIB:<8.2f}"
    lines.append(f"  {'db MiB':<14} {size}         (the store's rows: consumed states, codes, tokens)")
    for name, before, after in (
        ("login p50 ms", first_taken.logins, last_taken.logins),
        ("call p50 ms", first_taken.calls, last_taken.calls),
    ):
        if before and after:
            b, a = statistics.median(before) * 1000, statistics.median(after) * 1000
            lines.append(f"  {name:<14} {b:8.1f} -> {a:<8.1f} {a / b:6.2f}x (the shared machine's noise included)")
    failures = sum(len(taken.failures) for taken, _ in seen)
    lines.append(
        f"verdict: {'no growth' if not grew else 'GREW: ' + ', '.join(grew)}; {failures} failed logins or calls; "
        f"{sum(len(t.logins) for t, _ in seen)} logins and {sum(len(t.calls) for t, _ in seen)} API calls timed"
    )
    for reason in sorted({reason for taken, _ in seen for reason in taken.failures})[:5]:
        lines.append(f"failed: {reason}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite", help="the token store")
    parser.add_argument("--seconds", type=float, default=180, help="seconds measured, after the warm-up (180)")
    parser.add_argument("--concurrency", type=int, default=8, help="browsers at once (default 8)")
    parser.add_argument("--calls", type=int, default=3, help="API pages a browser opens after each login (3)")
    parser.add_argument("--every", type=float, default=10, help="seconds an interval (default 10)")
    parser.add_argument("--warm", type=float, default=10, help="untimed seconds before the first interval (10)")
    parser.add_argument("--database-url", help="with --store postgres: a database to use (default: a throwaway one)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 4 seconds, 4 browsers, 1-second intervals")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.concurrency, args.calls, args.every, args.warm = 4, 4, 2, 1, 1
    if args.seconds <= 0 or args.every <= 0 or args.warm < 0 or args.concurrency < 1 or args.calls < 0:
        parser.error("--seconds, --every and --concurrency must be positive; --warm and --calls not negative")

    port = free_port()
    with database(args.store, args.database_url) as db:
        app = f"http://127.0.0.1:{port}"
        redirect_uri = f"{app}/oauth/gist/callback"
        with sandbox_child(redirect_uri) as gist:
            server = start_example(port, gist, redirect_uri, db.url, TokenCipher.generate_key())
            try:
                wait_until_serving(server, port)
                print(
                    f"soak: {args.concurrency} browsers, each a login then {args.calls} API pages, for "
                    f"{args.seconds:.0f} s after {args.warm:.0f} s of warm-up; the Starlette example (uvicorn, pid "
                    f"{server.pid}) with a {args.store} token store, the sandbox as Gist ({CLIENT_ID})",
                    flush=True,
                )
                seen = asyncio.run(soak(args, app, server.pid, db))
            finally:
                server.terminate()
                try:
                    server.wait(30)
                except subprocess.TimeoutExpired:
                    server.kill()
                    server.wait(30)
    for line in verdict(seen):
        print(line)


if __name__ == "__main__":
    main()

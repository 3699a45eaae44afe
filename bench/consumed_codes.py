"""Benchmark: the cost of one ``consume`` (a login's used state and code) as the used-values table fills.

A flood of cookieless callbacks with new codes adds rows to ``gist_consumed`` for the state lifetime (10 minutes).
This records 0, 10,000 and 100,000 live rows first, then times ``consume`` of fresh values on SQLite and on
PostgreSQL, and prints each as a ratio against the empty table: with the index on ``until`` and the purge done a
batch at a time, the ratios stay near 1. Medians of several runs; loopback only.

    python bench/consumed_codes.py [--calls 300] [--runs 5] [--rows 0,10000,100000] [--database-url URL]

Without ``--database-url`` it starts a throwaway PostgreSQL server (tests/support/postgres.py, Debian's
``postgresql`` package from scripts/install-test-deps.sh) and removes it afterwards.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from instances import postgres  # bench/ is on the path of a script run from it

from gist_authlib.tokens import LoginState, SQLAlchemyTokenStore, SQLiteTokenStore, TokenCipher

KEY = TokenCipher.generate_key()


def fill_sqlite(store: SQLiteTokenStore, rows: int) -> None:
    import sqlite3

    with sqlite3.connect(store.path) as db:
        db.execute("DELETE FROM gist_consumed")
        db.executemany("INSERT INTO gist_consumed VALUES (?, ?)", ((f"flood-{n}", 4e9) for n in range(rows)))


def fill_postgres(store: SQLAlchemyTokenStore, rows: int) -> None:
    from sqlalchemy import text

    with store._engine.begin() as connection:  # the benchmark's own setup, as a flood would leave the table
        connection.execute(text("DELETE FROM gist_consumed"))
        connection.execute(
            text("INSERT INTO gist_consumed SELECT 'flood-' || n, 4e9 FROM generate_series(1, :rows) AS n"),
            {"rows": rows},
        )
        connection.execute(text("ANALYZE gist_consumed"))


def time_consume(state: LoginState, calls: int) -> float:
    """Seconds per ``consume`` of two fresh values (a state and a code), the median of ``calls``."""
    times = []
    for _ in range(calls):
        values = [hashlib.sha256(uuid.uuid4().bytes).hexdigest() for _ in range(2)]
        started = time.perf_counter()
        assert state.consume(values, ttl=600)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300, help="consume calls timed per table size and run")
    parser.add_argument("--runs", type=int, default=5, help="runs; medians are reported")
    parser.add_argument("--rows", default="0,10000,100000", help="live rows recorded before timing")
    parser.add_argument("--database-url", default=None, help="a PostgreSQL URL (default: a throwaway server)")
    args = parser.parse_args()
    sizes = [int(n) for n in args.rows.split(",")]
    with tempfile.TemporaryDirectory(prefix="gist-bench-") as workdir, postgres(args.database_url) as url:
        stores: list[tuple[str, LoginState, Callable[[int], None]]] = []
        sqlite_store = SQLiteTokenStore(Path(workdir) / "tokens.sqlite3", key=KEY)
        stores.append(("SQLite", sqlite_store, lambda rows: fill_sqlite(sqlite_store, rows)))
        pg_store = SQLAlchemyTokenStore(url, key=KEY)
        stores.append(("PostgreSQL", pg_store, lambda rows: fill_postgres(pg_store, rows)))
        results: dict[tuple[str, int], list[float]] = {}
        for _ in range(args.runs):
            for name, state, fill in stores:
                for rows in sizes:
                    fill(rows)
                    results.setdefault((name, rows), []).append(time_consume(state, args.calls))
        print(f"consume of a state and a code: median per call over {args.calls} calls, medians of {args.runs} runs")
        for name, _, _ in stores:
            empty = statistics.median(results[(name, sizes[0])])
            for rows in sizes:
                cost = statistics.median(results[(name, rows)])
                print(f"{name:<11} {rows:>7,} rows  {cost * 1e6:8.0f} us  {cost / empty:5.2f}x")
        sqlite_store.close()
        pg_store.close()


if __name__ == "__main__":
    main()

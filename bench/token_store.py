"""Benchmark: token saves and reads per second for each store, against bare sqlite3 on the same rows.

The bare line upserts and selects the same row shape with the standard library's sqlite3 (WAL, synchronous
NORMAL, as SQLiteTokenStore sets): the ratio is the cost of encryption plus our layer. Figures are medians of
several runs; each run writes N tokens, then reads them back.

    python bench/token_store.py [--tokens 2000] [--runs 5]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from gist_authlib.tokens import MemoryTokenStore, SQLAlchemyTokenStore, SQLiteTokenStore, TokenCipher
from gist_authlib.tokens._sqlite import SCHEMA


def tokens(n: int) -> list[tuple[str, dict[str, str]]]:
    return [(f"user-{i}", {"access_token": f"gat-{i:08d}-" + "a" * 40}) for i in range(n)]


def bare_sqlite(
    path: Path,
) -> tuple[Callable[[str, dict[str, str]], None], Callable[[str], object], Callable[[], None]]:
    db = sqlite3.connect(str(path), isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")
    db.executescript(SCHEMA)

    def save(subject: str, token: dict[str, str]) -> None:
        now = time.time()
        db.execute(
            "INSERT INTO gist_tokens (subject, token, key_id, token_hash, scopes, created_at, updated_at, version) "
            "VALUES (?, ?, 'plain', ?, '', ?, ?, 1) "
            "ON CONFLICT (subject) DO UPDATE SET token = excluded.token, updated_at = excluded.updated_at, "
            "version = gist_tokens.version + 1",
            (subject, json.dumps(token), hashlib.sha256(token["access_token"].encode()).hexdigest(), now, now),
        )

    def get(subject: str) -> object:
        row = db.execute("SELECT * FROM gist_tokens WHERE subject = ?", (subject,)).fetchone()
        return json.loads(row[1])

    return save, get, db.close


def measure(n: int, runs: int) -> list[tuple[str, float, float]]:
    key = TokenCipher.generate_key()
    data = tokens(n)
    results: dict[str, tuple[list[float], list[float]]] = {}
    for _ in range(runs):
        workdir = Path(tempfile.mkdtemp(prefix="gist-bench-"))
        setups: list[
            tuple[str, Callable[[], tuple[Callable[..., object], Callable[[str], object], Callable[[], None]]]]
        ] = [
            ("bare sqlite3 (plaintext)", lambda w=workdir: bare_sqlite(w / "bare.sqlite3")),
            ("SQLiteTokenStore", lambda w=workdir: _store(SQLiteTokenStore(w / "ours.sqlite3", key=key))),
            (
                "SQLiteTokenStore plaintext",
                lambda w=workdir: _store(SQLiteTokenStore(w / "plain.sqlite3", plaintext=True)),
            ),
            (
                "SQLAlchemyTokenStore (sqlite)",
                lambda w=workdir: _store(SQLAlchemyTokenStore(f"sqlite:///{w / 'sa.sqlite3'}", key=key)),
            ),
            ("MemoryTokenStore", lambda: _store(MemoryTokenStore(key=key))),
        ]
        for name, make in setups:
            save, get, close = make()
            started = time.perf_counter()
            for subject, token in data:
                save(subject, token)
            saved = time.perf_counter() - started
            started = time.perf_counter()
            for subject, _ in data:
                get(subject)
            read = time.perf_counter() - started
            close()
            writes, reads = results.setdefault(name, ([], []))
            writes.append(n / saved)
            reads.append(n / read)
    return [(name, statistics.median(w), statistics.median(r)) for name, (w, r) in results.items()]


def _store(store: object) -> tuple[Callable[..., object], Callable[[str], object], Callable[[], None]]:
    return store.save, store.get, store.close  # type: ignore[attr-defined]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    rows = measure(args.tokens, args.runs)
    bare_writes, bare_reads = rows[0][1], rows[0][2]
    print(f"{args.tokens} tokens written then read, median of {args.runs} runs")
    print(f"{'store':<32} {'saves/s':>10} {'reads/s':>10} {'bare/ours save':>15} {'bare/ours read':>15}")
    for name, writes, reads in rows:
        print(f"{name:<32} {writes:10.0f} {reads:10.0f} {bare_writes / writes:14.2f}x {bare_reads / reads:14.2f}x")


if __name__ == "__main__":
    main()

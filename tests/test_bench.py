"""The benchmarks still run (tiny sizes; speed is reported by the benchmarks themselves, never asserted)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_api_calls_benchmark_runs_and_prints_every_line() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "api_calls.py"), "--requests", "10", "--runs", "1"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if re.search(r"\d+\.\d\dx$", line)]
    assert len(rows) == 16
    assert sum("(c) raw Authlib" in row for row in rows) == 4


def test_token_store_benchmark_runs_and_prints_every_store() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "token_store.py"), "--tokens", "20", "--runs", "1"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.rstrip().endswith("x")]
    assert [row.split("  ")[0].strip() for row in rows] == [
        "bare sqlite3 (plaintext)",
        "SQLiteTokenStore",
        "SQLiteTokenStore plaintext",
        "SQLAlchemyTokenStore (sqlite)",
        "MemoryTokenStore",
    ]

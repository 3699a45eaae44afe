"""The benchmarks still run (``nox -s bench``): each script at its smallest settings, every line it prints there.
Speed is reported by the benchmarks themselves, never asserted."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: Every script in bench/ and the test here that runs it at its smallest settings.
SMOKE_RUNS = {
    "api_calls.py": "test_api_calls_benchmark_runs_and_prints_every_line",
    "token_store.py": "test_token_store_benchmark_runs_and_prints_every_store",
    "login.py": "test_login_benchmark_quick_run_prints_every_line",
    "instances.py": "test_instances_benchmark_quick_run_prints_both_setups",
    "sandbox_memory.py": "test_sandbox_memory_benchmark_prints_each_checkpoint",
    "soak.py": "test_soak_quick_run_prints_each_interval_and_a_verdict",
    "consumed_codes.py": "test_consumed_codes_benchmark_prints_each_store_and_table_size",
}


def test_every_benchmark_has_a_smoke_run_here() -> None:
    scripts = {path.name for path in (ROOT / "bench").glob("*.py") if not path.name.startswith("_")}
    assert scripts == set(SMOKE_RUNS)
    assert all(callable(globals().get(test)) for test in SMOKE_RUNS.values())


def run_bench(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``bench/<script>`` with the worktree's package, also in the benchmark's own child processes (it passes
    its path on)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=env,
    )


def test_api_calls_benchmark_runs_and_prints_every_line() -> None:
    result = run_bench("api_calls.py", "--requests", "10", "--runs", "1")
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if re.search(r"\d+\.\d\dx$", line)]
    assert len(rows) == 16
    assert sum("(c) raw Authlib" in row for row in rows) == 4


def test_token_store_benchmark_runs_and_prints_every_store() -> None:
    result = run_bench("token_store.py", "--tokens", "20", "--runs", "1")
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.rstrip().endswith("x")]
    assert [row.split("  ")[0].strip() for row in rows] == [
        "bare sqlite3 (plaintext)",
        "SQLiteTokenStore",
        "SQLiteTokenStore plaintext",
        "SQLAlchemyTokenStore (sqlite)",
        "MemoryTokenStore",
    ]


def test_login_benchmark_quick_run_prints_every_line() -> None:
    result = run_bench("login.py", "--quick")
    assert result.returncode == 0, result.stderr
    parts: dict[str, list[str]] = {}
    for line in result.stdout.splitlines():
        heading = re.match(r"^([1-5])\. ", line)
        if heading:
            parts[heading.group(1)] = []
        elif parts and line.strip():
            parts[list(parts)[-1]].append(line)
    assert list(parts) == ["1", "2", "3", "4", "5"]

    def rows(part: str, label: str) -> list[str]:
        return [row for row in parts[part] if label in row]

    figure = r"\d+\.\d+x"
    for part, per_setup in (("1", 3), ("2", 9), ("3", 3), ("4", 3)):
        for label in ("raw Authlib", "gist_authlib"):
            found = rows(part, label)
            assert len(found) == per_setup, (part, label, parts[part])
            assert all(re.search(figure, row) for row in found), found
    # Each gist_authlib line says whether its target was met; part 2 checks two targets.
    assert all(re.search(r"\b(met|NOT met)$", row) for part in "1234" for row in rows(part, "gist_authlib"))
    assert all(row.count("met") == 2 for row in rows("2", "gist_authlib"))
    assert len(rows("2", "bare round trip")) == 3
    failures = [re.findall(r"(?:raw Authlib|gist_authlib)\s+(\d+)\s", row) for row in parts["3"]]
    assert [found for found in failures if found] == [["0"]] * 6  # no login failed under load
    assert len(rows("5", "import gist_authlib")) == 1 and len(rows("5", "import authlib")) == 1


def test_instances_benchmark_quick_run_prints_both_setups(postgres_url: str) -> None:
    from support.postgres import fresh_database

    result = run_bench("instances.py", "--quick", "--database-url", fresh_database(postgres_url))
    assert result.returncode == 0, result.stderr
    rows = {line.split("  ")[0]: line.split()[2:] for line in result.stdout.splitlines() if "instance" in line}
    assert list(rows) == ["1 instance", "3 instances"], result.stdout
    assert [row[0] for row in rows.values()] == ["0", "0"]  # no login failed
    assert all(re.fullmatch(r"\d+\.\d\dx", figure) for row in rows.values() for figure in row[-3:]), rows
    assert rows["1 instance"][-3:] == ["1.00x"] * 3


def test_sandbox_memory_benchmark_prints_each_checkpoint() -> None:
    result = run_bench("sandbox_memory.py", "--pairs", "20,40", "--warmup", "5")
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines() if re.match(r"^\s+\d+\s+\d", line)]
    assert [row[0] for row in rows] == ["20", "40"], result.stdout
    assert all("codes" in " ".join(row) and "tokens" in " ".join(row) for row in rows), result.stdout


def test_soak_quick_run_prints_each_interval_and_a_verdict() -> None:
    result = run_bench("soak.py", "--quick")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    intervals = [line.split() for line in lines if re.match(r"^\s+\d+\s+\d+\s+\d+\s+\d+\s", line)]
    assert [row[0] for row in intervals] == ["1", "2", "3", "4"], result.stdout
    assert all(int(row[1]) > 0 and int(row[2]) > 0 for row in intervals), result.stdout  # logins and calls each
    for figure in ("RSS MiB", "fds", "threads", "db conns", "db MiB"):
        assert any(line.strip().startswith(figure) for line in lines), figure
    (verdict,) = [line for line in lines if line.startswith("verdict: ")]
    assert "; 0 failed logins or calls;" in verdict, verdict


def test_consumed_codes_benchmark_prints_each_store_and_table_size(postgres_url: str) -> None:
    from support.postgres import fresh_database

    database = fresh_database(postgres_url)
    result = run_bench("consumed_codes.py", "--calls", "5", "--runs", "1", "--rows", "0,50", "--database-url", database)
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines() if re.search(r" rows .* us .*x$", line)]
    assert [(row[0], row[1]) for row in rows] == [("SQLite", "0"), ("SQLite", "50"), ("PostgreSQL", "0"),
                                                  ("PostgreSQL", "50")], result.stdout  # fmt: skip
    assert [row[-1] for row in rows][::2] == ["1.00x", "1.00x"]  # each store's empty table is its own baseline

"""Benchmark: logins under load on three instances of the Starlette example against one, on one PostgreSQL.

Four processes serve: three instances of ``examples/starlette_app.py`` (uvicorn), all on one PostgreSQL database
named by ``GIST_TOKEN_DB``, with one redirect URI, session secret and token key, and the sandbox (Gist) in a
process of its own. This process is the load balancer and the browsers: each login is its three requests (the
start, Gist's authorize, the callback, which exchanges the code, stores the token in PostgreSQL and reads the
teammates), by a browser of its own (a cookie jar), ``--concurrency`` at a time.

  1 instance    every request goes to the first instance (the other two sit idle);
  3 instances   login n starts on instance n mod 3 and its callback goes to the next one, so that every login
                crosses instances (its pending state in the cookie, its code's single use in the database).

The two setups take turns within each run (a burst of ``--logins`` each), so that noise on the shared machine lands
on both alike; the figures are medians over ``--runs`` runs, and the ratios are 3 instances against 1. Every server
and the clients share the machine's cores: on 2 cores three instances cannot be three times one, and the ratio
says what running several costs or gains here, not what it gains on several machines.

    python bench/instances.py [--quick] [--runs 5] [--logins 200] [--concurrency 20] [--database-url URL]

Without ``--database-url`` it starts a throwaway PostgreSQL server (as the tests do: tests/support/postgres.py,
Debian's ``postgresql`` package from scripts/install-test-deps.sh) and removes it afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx2

ROOT = Path(__file__).resolve().parents[1]
CLIENT_ID, CLIENT_SECRET = "bench-pool", "bench-pool-secret-" + "s" * 24
SETUPS = {"1 instance": 1, "3 instances": 3}


def serve_sandbox(redirect_uri: str) -> None:
    """The sandbox's child: serve it, print its URL, stop when stdin closes."""
    from gist_authlib.sandbox import SandboxClient, ServerThread, create_app

    sandbox = create_app(clients=[SandboxClient(CLIENT_ID, CLIENT_SECRET, (redirect_uri,))], auto_approve=True)
    with ServerThread(sandbox) as server:
        print(json.dumps({"url": server.url}), flush=True)
        sys.stdin.read()


@contextlib.contextmanager
def postgres(url: str | None) -> Iterator[str]:
    """The database URL given, else a throwaway server's (tests/support/postgres.py)."""
    if url:
        yield url
        return
    sys.path.insert(0, str(ROOT / "tests"))
    from support.postgres import postgres_server

    with postgres_server() as started:
        yield started


def child_env(extra: dict[str, str]) -> dict[str, str]:
    """This process's environment with this checkout first on the path, and ``extra``."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, **extra}


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_serving(process: subprocess.Popen[bytes], port: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx2.get(f"http://127.0.0.1:{port}/", timeout=1, trust_env=False)
            return
        except httpx2.TransportError:
            if process.poll() is not None:
                break
            time.sleep(0.05)
    raise RuntimeError(f"An instance on port {port} did not start (exit code {process.poll()}).")


@contextlib.contextmanager
def sandbox_child(redirect_uri: str) -> Iterator[str]:
    """The sandbox in a child process of its own, with this benchmark's app registered; yields its URL."""
    sandbox = subprocess.Popen(
        [sys.executable, __file__, "--serve-sandbox", redirect_uri],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=child_env({}),
        text=True,
    )
    try:
        assert sandbox.stdout is not None
        yield json.loads(sandbox.stdout.readline())["url"]
    finally:
        if sandbox.stdin is not None:
            sandbox.stdin.close()  # the sandbox serves until its stdin closes
        sandbox.wait(30)


def start_example(
    port: int, gist: str, redirect_uri: str, database_url: str, token_key: str
) -> subprocess.Popen[bytes]:
    """``examples/starlette_app.py`` under uvicorn on ``port`` (still starting: see wait_until_serving), against the
    sandbox at ``gist``, its tokens in ``database_url`` (``GIST_TOKEN_DB``)."""
    env = child_env(
        {
            "GIST_CLIENT_ID": CLIENT_ID,
            "GIST_CLIENT_SECRET": CLIENT_SECRET,
            "GIST_AUTHORIZE_URL": f"{gist}/oauth/authorize",
            "GIST_ACCESS_TOKEN_URL": f"{gist}/oauth/token",
            "GIST_API_BASE_URL": f"{gist}/",
            "GIST_REDIRECT_URI": redirect_uri,
            "SESSION_SECRET": "bench-session-secret-" + "k" * 24,
            "GIST_TOKEN_KEY": token_key,
            "GIST_TOKEN_DB": database_url,
        }
    )
    args = [sys.executable, "-m", "uvicorn", "--factory", "examples.starlette_app:create_app"]
    args += ["--host", "127.0.0.1", "--log-level", "error", "--no-access-log", "--port", str(port)]
    return subprocess.Popen(args, cwd=ROOT, env=env)


@contextlib.contextmanager
def pool(database_url: str) -> Iterator[list[str]]:
    """The sandbox and three instances, started at once on the database; yields the instances' URLs."""
    from gist_authlib.tokens import TokenCipher

    ports = [free_port() for _ in range(3)]
    instances = [f"http://127.0.0.1:{port}" for port in ports]
    redirect_uri = f"{instances[0]}/oauth/gist/callback"
    servers: list[subprocess.Popen[bytes]] = []
    with sandbox_child(redirect_uri) as gist:
        try:
            key = TokenCipher.generate_key()
            servers = [start_example(port, gist, redirect_uri, database_url, key) for port in ports]
            for server, port in zip(servers, ports, strict=True):
                wait_until_serving(server, port)
            yield instances
        finally:
            for server in servers:
                server.terminate()
            for server in servers:
                server.wait(30)


def routed(url: str, instance: str) -> str:
    """``url`` sent to ``instance``, as the load balancer routes it."""
    return urlunsplit(urlsplit(url)._replace(netloc=urlsplit(instance).netloc))


@dataclass
class Burst:
    """One burst's figures: latencies of the logins that succeeded (seconds), why the others failed, logins a
    second."""

    latencies: list[float]
    failures: list[str]
    rate: float


async def burst(instances: list[str], logins: int, concurrency: int) -> Burst:
    """``logins`` logins, ``concurrency`` at a time, spread over ``instances`` (each crossing to the next)."""
    transport = httpx2.AsyncHTTPTransport(limits=httpx2.Limits(max_connections=4 * concurrency))
    slots = asyncio.Semaphore(concurrency)
    n_instances = len(instances)

    async def login(n: int) -> float | str:
        browser = httpx2.AsyncClient(transport=transport, timeout=60, trust_env=False)  # the pool closes once
        async with slots:
            started = time.perf_counter()
            try:
                start = await browser.get(f"{instances[n % n_instances]}/auth/gist")
                gist = await browser.get(start.headers["location"])
                done = await browser.get(routed(gist.headers["location"], instances[(n + 1) % n_instances]))
            except (httpx2.HTTPError, KeyError) as exc:
                return repr(exc)[:200]
            if done.status_code != 200:
                return f"the callback answered {done.status_code}: {done.text[:200]}"
            return time.perf_counter() - started

    started = time.perf_counter()
    try:
        results = await asyncio.gather(*(login(n) for n in range(logins)))
    finally:
        await transport.aclose()
    elapsed = time.perf_counter() - started
    good = [r for r in results if isinstance(r, float)]
    return Burst(good, [r for r in results if isinstance(r, str)], len(good) / elapsed)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smoke run: 20 logins, 5 at a time, one run")
    parser.add_argument("--runs", type=int, default=5, help="runs; figures are medians over them (default 5)")
    parser.add_argument("--logins", type=int, default=200, help="logins a setup and run (default 200)")
    parser.add_argument("--concurrency", type=int, default=20, help="logins at a time (default 20)")
    parser.add_argument("--warm", type=int, default=30, help="untimed logins before the runs (default 30)")
    parser.add_argument("--database-url", help="a PostgreSQL database to use (default: a throwaway server's)")
    parser.add_argument("--serve-sandbox", metavar="REDIRECT_URI", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_sandbox:
        serve_sandbox(args.serve_sandbox)
        return
    if args.quick:
        args.runs, args.logins, args.concurrency, args.warm = 1, 20, 5, 3

    per_run: dict[str, list[Burst]] = {name: [] for name in SETUPS}
    with postgres(args.database_url) as database_url, pool(database_url) as instances:
        for count in SETUPS.values():
            asyncio.run(burst(instances[:count], args.warm, args.concurrency))
        for _ in range(args.runs):
            for name, count in SETUPS.items():
                per_run[name].append(asyncio.run(burst(instances[:count], args.logins, args.concurrency)))

    print(f"{args.logins} logins a burst, {args.concurrency} at a time, on one PostgreSQL; medians of {args.runs} runs")
    print(
        f"{'setup':<12} {'failures':>8} {'p50 ms':>8} {'p95 ms':>8} {'logins/s':>9} "
        f"{'p50 ratio':>10} {'p95 ratio':>10} {'rate ratio':>11}"
    )
    figures = {
        name: (
            sum(len(b.failures) for b in bursts),
            statistics.median(percentile(b.latencies, 0.5) for b in bursts),
            statistics.median(percentile(b.latencies, 0.95) for b in bursts),
            statistics.median(b.rate for b in bursts),
        )
        for name, bursts in per_run.items()
    }
    _, base_p50, base_p95, base_rate = figures["1 instance"]
    for name, (failures, p50, p95, rate) in figures.items():
        print(
            f"{name:<12} {failures:>8} {p50 * 1000:8.1f} {p95 * 1000:8.1f} {rate:9.1f} "
            f"{p50 / base_p50:9.2f}x {p95 / base_p95:9.2f}x {rate / base_rate:10.2f}x"
        )

    for name, bursts in per_run.items():
        for reason in sorted({reason for b in bursts for reason in b.failures}):
            print(f"{name} failed: {reason}")


if __name__ == "__main__":
    main()

"""Benchmark: API calls through gist_authlib's client against a bare pooled httpx2 client and raw Authlib.

One process runs every client setup against the same loopback server (bench/_server.py, a subprocess),
over plain HTTP and over TLS (a self-signed CA made at start with trustme):

  (a) bare   - a pooled httpx2.AsyncClient with a static Bearer header, parsing the JSON;
  (b) ours   - AsyncGistClient: client.teammates.list(), typed objects;
  (c) authlib - raw Authlib, ``await oauth.gist.get("teammates", token=token)`` and ``.json()``;
  and, for sync code, httpx2.Client against GistClient.

Each line does N sequential warm GETs, then N GETs at concurrency 20; within a run the setups take turns
in rounds of 100 calls, and the figures are medians over the runs. Per-request latency p50 and p99 in
milliseconds, and the ratio of each p50 to the bare client's.

    python bench/api_calls.py [--requests 1000] [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx2
from authlib.integrations.starlette_client import OAuth

import gist_authlib
from gist_authlib import AsyncGistClient, GistClient, GistProvider

HERE = Path(__file__).resolve().parent
CONCURRENCY = 20
ROUND = 100  # calls per setup before the next setup's turn


def start_server(token: str, tls: tuple[str, str] | None) -> tuple[subprocess.Popen[bytes], int]:
    port_file = Path(tempfile.mkdtemp()) / "port"
    args = [sys.executable, str(HERE / "_server.py"), str(port_file), *(tls or ())]
    process = subprocess.Popen(args, env={**os.environ, "BENCH_TOKEN": token})
    deadline = time.monotonic() + 20
    while not port_file.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("The benchmark server did not start.")
        time.sleep(0.02)
    port = int(port_file.read_text())
    while time.monotonic() < deadline:  # wait until it accepts connections
        try:
            httpx2.get(f"{'https' if tls else 'http'}://127.0.0.1:{port}/", verify=False, timeout=1)
            return process, port
        except httpx2.TransportError:
            time.sleep(0.05)
    raise RuntimeError("The benchmark server does not answer.")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def timed_async(call: Callable[[], Awaitable[Any]], n: int, concurrency: int) -> list[float]:
    latencies: list[float] = []
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with gate:
            started = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - started)

    if concurrency == 1:
        for _ in range(n):
            await one()
    else:
        await asyncio.gather(*(one() for _ in range(n)))
    return latencies


def timed_sync(call: Callable[[], Any], n: int) -> list[float]:
    latencies = []
    for _ in range(n):
        started = time.perf_counter()
        call()
        latencies.append(time.perf_counter() - started)
    return latencies


async def run_transport(
    base: str, token: str, verify: ssl.SSLContext | bool, n: int, runs: int
) -> list[tuple[str, str, list[float], list[float]]]:
    """Every setup over one transport; returns (mode, setup, p50s, p99s) with one figure per run."""
    bare = httpx2.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {token}"}, verify=verify)
    ours = AsyncGistClient(token, base_url=base, transport=httpx2.AsyncHTTPTransport(verify=verify))
    oauth = OAuth()
    gist_authlib.register(
        oauth,
        client_id="bench",
        client_secret="bench",
        provider=GistProvider.at(base),
        client_kwargs={"verify": verify},
    )
    authlib_token = {"access_token": token, "token_type": "bearer"}
    sync_bare = httpx2.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, verify=verify)
    sync_ours = GistClient(token, base_url=base, transport=httpx2.HTTPTransport(verify=verify))

    async def call_bare() -> Any:
        response = await bare.get("teammates")
        response.raise_for_status()
        return response.json()

    async def call_ours() -> Any:
        return await ours.teammates.list()

    async def call_authlib() -> Any:
        response = await oauth.gist.get("teammates", token=authlib_token)
        response.raise_for_status()
        return response.json()

    def call_sync_bare() -> Any:
        response = sync_bare.get("teammates")
        response.raise_for_status()
        return response.json()

    def call_sync_ours() -> Any:
        return sync_ours.teammates.list()

    setups: list[tuple[str, Callable[[], Awaitable[Any]]]] = [
        ("(a) bare httpx2", call_bare),
        ("(b) AsyncGistClient", call_ours),
        ("(c) raw Authlib", call_authlib),
    ]
    results: dict[tuple[str, str], tuple[list[float], list[float]]] = {}
    for _name, call in setups:  # warm every pool before measuring
        await timed_async(call, 20, 1)
    timed_sync(call_sync_bare, 20)
    timed_sync(call_sync_ours, 20)
    sync_setups = [("(a) bare httpx2.Client", call_sync_bare), ("(b) GistClient", call_sync_ours)]
    rounds = max(1, n // ROUND)
    for _ in range(runs):
        # The setups take turns in rounds of ROUND calls, so a burst of noise on the machine lands on all of
        # them alike instead of on whichever happened to be running.
        for mode, concurrency in (("sequential", 1), (f"concurrency {CONCURRENCY}", CONCURRENCY)):
            samples: dict[str, list[float]] = {name: [] for name, _ in setups}
            for _ in range(rounds):
                for name, call in setups:
                    samples[name] += await timed_async(call, n // rounds, concurrency)
            for name, latencies in samples.items():
                p50s, p99s = results.setdefault((mode, name), ([], []))
                p50s.append(percentile(latencies, 0.5))
                p99s.append(percentile(latencies, 0.99))
        sync_samples: dict[str, list[float]] = {name: [] for name, _ in sync_setups}
        for _ in range(rounds):
            for name, sync_call in sync_setups:
                sync_samples[name] += timed_sync(sync_call, n // rounds)
        for name, latencies in sync_samples.items():
            p50s, p99s = results.setdefault(("sync sequential", name), ([], []))
            p50s.append(percentile(latencies, 0.5))
            p99s.append(percentile(latencies, 0.99))
    await bare.aclose()
    await ours.aclose()
    await oauth.gist.gist_aclose()  # the registration's pooled connections: uvicorn waits on open ones at exit
    sync_bare.close()
    sync_ours.close()
    return [(mode, name, p50s, p99s) for (mode, name), (p50s, p99s) in results.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=1000, help="GETs per setup and mode (default 1000)")
    parser.add_argument("--runs", type=int, default=5, help="runs; figures are medians over them (default 5)")
    args = parser.parse_args()

    import trustme

    token = secrets.token_urlsafe(32)
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    workdir = Path(tempfile.mkdtemp())
    cert.private_key_and_cert_chain_pem.write_to_path(str(workdir / "cert.pem"))
    cert.private_key_pem.write_to_path(str(workdir / "key.pem"))
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)

    print(f"gist_authlib {gist_authlib.__version__}: {args.requests} GETs per line, median of {args.runs} runs")
    print(f"{'transport':<6} {'mode':<16} {'setup':<24} {'p50 ms':>8} {'p99 ms':>8} {'p50 / (a)':>10}")
    for label, tls in (("http", None), ("https", (str(workdir / "cert.pem"), str(workdir / "key.pem")))):
        process, port = start_server(token, tls)
        try:
            base = f"{label}://127.0.0.1:{port}"
            rows = asyncio.run(run_transport(base, token, client_ctx if tls else True, args.requests, args.runs))
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:  # uvicorn waits on open keep-alive connections: no need to here
                process.kill()
                process.wait()
        reference: dict[str, float] = {}
        for mode, name, p50s, p99s in rows:
            p50, p99 = statistics.median(p50s), statistics.median(p99s)
            if name.startswith("(a)"):
                reference[mode] = p50
            ratio = p50 / reference[mode]
            print(f"{label:<6} {mode:<16} {name:<24} {p50 * 1000:8.3f} {p99 * 1000:8.3f} {ratio:9.2f}x")


if __name__ == "__main__":
    main()

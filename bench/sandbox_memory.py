"""Benchmark: the sandbox's memory after many authorize + token request pairs.

One process drives a sandbox (auto-approving, so the authorize request answers with a code at once) in
process through httpx2's ASGITransport: each pair is ``GET /oauth/authorize`` (with an S256 PKCE challenge)
then ``POST /oauth/token`` exchanging the code. Nothing leaves the process; the loop is bounded by
``--pairs``.

The measure is chosen with ``--measure``:

  tracemalloc  the bytes Python's allocator holds for live objects (``tracemalloc``'s current size after a
               full garbage collection): what the sandbox keeps, without the allocator's free lists or the
               interpreter's own code. The default; it slows the loop down about threefold.
  rss          the process's resident set size (``VmRSS`` in /proc/self/status), as ``ps`` shows it.

Each checkpoint prints the figure, its growth since the baseline (taken after ``--warmup`` pairs) and how
many entries the sandbox's collections hold (codes, tokens, token request records).

    python bench/sandbox_memory.py [--pairs 1000,10000] [--measure tracemalloc|rss] [--warmup 100]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import hashlib
import secrets
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2

from gist_authlib.sandbox import GistSandbox, SandboxClient, create_app

REDIRECT = "http://127.0.0.1:9/oauth/gist/callback"
MIB = 1024 * 1024


def resident_bytes() -> int:
    """The process's resident set size, from /proc (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("No VmRSS in /proc/self/status: --measure rss needs Linux.")


def measured(kind: str) -> int:
    gc.collect()
    if kind == "tracemalloc":
        return tracemalloc.get_traced_memory()[0]
    return resident_bytes()


def held(sandbox: GistSandbox) -> dict[str, int]:
    """How many entries the sandbox's growing collections hold (private attributes: this is a benchmark)."""
    sizes = {
        "codes": len(sandbox._codes),
        "tokens": len(sandbox._tokens),
        "token_requests": len(sandbox.token_requests),
    }
    return sizes


async def one_pair(http: httpx2.AsyncClient) -> None:
    verifier = secrets.token_urlsafe(32)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    authorized = await http.get(
        "/oauth/authorize",
        params={
            "response_type": "code",
            "client_id": "bench",
            "redirect_uri": REDIRECT,
            "scope": "read_teammates",
            "state": secrets.token_urlsafe(16),
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        },
    )
    if authorized.status_code != 302:
        raise RuntimeError(f"authorize answered {authorized.status_code}: {authorized.text[:200]}")
    code = parse_qs(urlsplit(authorized.headers["location"]).query)["code"][0]
    token = await http.post(
        "/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "client_id": "bench",
            "client_secret": "bench-secret",
            "code_verifier": verifier,
        },
    )
    if token.status_code != 200:
        raise RuntimeError(f"the token endpoint answered {token.status_code}: {token.text[:200]}")


async def run(checkpoints: list[int], warmup: int, kind: str, out: Any) -> None:
    sandbox = create_app(clients=[SandboxClient("bench", "bench-secret", (REDIRECT,))], auto_approve=True)
    transport = httpx2.ASGITransport(app=sandbox)
    async with httpx2.AsyncClient(transport=transport, base_url="http://sandbox.test") as http:
        for _ in range(warmup):
            await one_pair(http)
        baseline = measured(kind)
        out(f"measure: {kind}; baseline after {warmup} pairs: {baseline / MIB:.2f} MiB")
        out(f"{'pairs':>7} {'MiB':>8} {'growth MiB':>11} {'s':>6}  entries held")
        done, started = warmup, time.perf_counter()
        for target in checkpoints:
            while done < target:
                await one_pair(http)
                done += 1
            now = measured(kind)
            entries = ", ".join(f"{name} {count}" for name, count in held(sandbox).items())
            elapsed = time.perf_counter() - started
            out(f"{done:>7} {now / MIB:8.2f} {(now - baseline) / MIB:11.2f} {elapsed:6.1f}  {entries}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", default="1000,10000", help="checkpoints, comma-separated (default 1000,10000)")
    parser.add_argument("--measure", choices=["tracemalloc", "rss"], default="tracemalloc")
    parser.add_argument("--warmup", type=int, default=100, help="pairs before the baseline (default 100)")
    args = parser.parse_args()
    checkpoints = sorted(int(n) for n in args.pairs.split(","))
    if not checkpoints or checkpoints[0] < args.warmup:
        parser.error("every checkpoint must be at least --warmup pairs")
    if args.measure == "tracemalloc":
        tracemalloc.start()
    asyncio.run(run(checkpoints, args.warmup, args.measure, print))
    sys.stdout.flush()


if __name__ == "__main__":
    main()

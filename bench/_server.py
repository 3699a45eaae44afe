"""A minimal Gist-shaped API for benchmarks: ``GET /teammates`` behind a bearer check, nothing else.

Run by bench/api_calls.py in a subprocess, so that server work does not share the clients' interpreter.
Usage: python bench/_server.py PORT_FILE [CERTFILE KEYFILE]
"""

from __future__ import annotations

import json
import os
import socket
import sys
from typing import Any

import uvicorn

TOKEN = os.environ["BENCH_TOKEN"].encode()
BODY = json.dumps(
    {
        "teammates": [
            {
                "id": 1000 + i,
                "name": f"Teammate {i}",
                "email": f"t{i}@bench.example",
                "agent_status": "available",
                "team_ids": [1],
                "has_inbox_seat": True,
            }
            for i in range(5)
        ]
    }
).encode()


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    headers = dict(scope["headers"])
    ok = scope["path"] == "/teammates" and headers.get(b"authorization") == b"Bearer " + TOKEN
    status, body = (200, BODY) if ok else (401, b'{"errors": [{"code": "unauthorized"}]}')
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def main() -> None:
    port_file = sys.argv[1]
    ssl = {"ssl_certfile": sys.argv[2], "ssl_keyfile": sys.argv[3]} if len(sys.argv) > 3 else {}
    sock = socket.socket()
    # Accepted sockets inherit this: without it, headers and body written apart wait out delayed ACKs.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", 0))
    with open(port_file + ".tmp", "w") as out:
        out.write(str(sock.getsockname()[1]))
    os.replace(port_file + ".tmp", port_file)
    config = uvicorn.Config(
        app, log_level="warning", access_log=False, lifespan="off", timeout_graceful_shutdown=1, **ssl
    )
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()

"""Subprocess half of the SQLite full and read-only fault tests (run as a script, never collected by pytest).

The app (the library's Starlette routes over a SQLite store) runs in a user namespace of its own, started by the
test: there it can mount a small file system that fills up (``--tmpfs``), and file modes hold even for root.

    storage_app.py PORT SANDBOX_URL CLIENT_ID CLIENT_SECRET KEY DATABASE [--tmpfs]

With ``--tmpfs`` a 512 KiB file system is mounted on the database's folder first. Beside the login routes:
``GET /state`` (each stored subject's version and the count of used states and codes), ``POST /fault/fill``
(fill the file system) and ``POST /fault/free`` (free it).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import uvicorn
from authlib.integrations.starlette_client import OAuth
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

import gist_authlib
from gist_authlib import GistProvider
from gist_authlib.starlette import gist_routes
from gist_authlib.tokens import SQLiteTokenStore


def create_app(sandbox_url: str, client_id: str, client_secret: str, key: str, database: Path) -> Starlette:
    store = SQLiteTokenStore(database, key=key, busy_timeout=0.5)
    gist = gist_authlib.register(
        OAuth(),
        client_id=client_id,
        client_secret=client_secret,
        provider=GistProvider.at(sandbox_url),
        token_store=store,
    )
    filler = database.parent / "filler"

    async def on_login(request: Request, token: dict[str, Any]) -> Response:
        return JSONResponse({"logged_in": True})

    def state(request: Request) -> Response:
        with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
            consumed = db.execute("SELECT COUNT(*) FROM gist_consumed").fetchone()[0]
        versions = {subject: store.get(subject).version for subject in store.subjects()}  # type: ignore[union-attr]
        return JSONResponse({"versions": versions, "consumed": consumed})

    def fault(request: Request) -> Response:
        if request.path_params["action"] == "fill":
            # What is committed moves into the database file, and the log restarts empty: the next write needs space.
            with contextlib.closing(sqlite3.connect(database)) as db:
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                while True:
                    os.write(fd, b"\0" * 65536)
            except OSError:
                pass  # no space left
            finally:
                os.close(fd)
        else:
            filler.unlink()
        return JSONResponse({"done": True})

    routes = [
        *gist_routes(gist, on_login=on_login),
        Route("/state", state),
        Route("/fault/{action}", fault, methods=["POST"]),
    ]
    return Starlette(routes=routes, middleware=[Middleware(SessionMiddleware, secret_key="fault-tests")])


def main() -> None:
    port, sandbox_url, client_id, client_secret, key, database, *flags = sys.argv[1:]
    path = Path(database)
    if "--tmpfs" in flags:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(path.parent)], check=True)
    app = create_app(sandbox_url, client_id, client_secret, key, path)
    uvicorn.run(app, host="127.0.0.1", port=int(port), log_level="warning")


if __name__ == "__main__":
    main()

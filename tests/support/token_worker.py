"""Subprocess half of tests/tokens/test_token_processes.py (run as a script, never imported by pytest as a test).

token_worker.py write DB KEY COUNT         save COUNT tokens, printing each index once it is committed
token_worker.py refresh DB KEY API_URL GO_FILE   print 'ready', wait for GO_FILE, then call the API through the store
"""

from __future__ import annotations

import os
import sys
import time

from gist_authlib import GistClient
from gist_authlib.client import RefreshSettings
from gist_authlib.tokens import SQLiteTokenStore


def write(db: str, key: str, count: int) -> None:
    store = SQLiteTokenStore(db, key=key)
    for i in range(count):
        store.save(
            f"user-{i}", {"access_token": f"gat-{i}-" + "x" * 40, "refresh_token": f"grt-{i}"}, workspace_id=i % 7
        )
        print(i, flush=True)


def refresh(db: str, key: str, api_url: str, go_file: str) -> None:
    store = SQLiteTokenStore(db, key=key)
    settings = RefreshSettings(f"{api_url}/oauth/token", "cid", "csecret")
    with GistClient.from_store(store, "user", base_url=api_url, refresh=settings) as client:
        print("ready", flush=True)
        while not os.path.exists(go_file):
            time.sleep(0.005)
        for _ in range(5):
            client.teams.list()
        print(client.token["access_token"], flush=True)


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    if command == "write":
        write(args[0], args[1], int(args[2]))
    else:
        refresh(*args)

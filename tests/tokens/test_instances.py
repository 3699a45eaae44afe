"""Three instances of the Starlette example behind one public address, on one PostgreSQL database.

The instances are processes of their own (uvicorn), started at once on a fresh database, with the same settings,
as a load balancer's pool runs them: one redirect URI (the public one, here the first instance's), one session
secret, one client secret, one token key, and ``GIST_TOKEN_DB`` naming the database by its URL. The test is the
load balancer: it sends each request of a login to the instance it chooses (cookies belong to the host, whatever
the port, as they do behind one public name), and it is the reverse proxy that the instances trust
(``GIST_TRUSTED_PROXIES``), saying in ``X-Forwarded-For`` whom a request came from.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx2
import pytest
from support.postgres import fresh_database
from support.servers import free_port, spawn_server_process, wait_until_serving
from support.web import browser_client

from gist_authlib.sandbox import GistSandbox, SandboxClient, ServerThread, create_app
from gist_authlib.tokens import TokenCipher, open_token_store

ROOT = Path(__file__).resolve().parents[2]
CLIENT_ID, CLIENT_SECRET = "pool-app", "pool-app-secret-0123456789"


@dataclass
class Pool:
    """The sandbox and the instances' URLs (the first one's is the public redirect URI's origin)."""

    sandbox: GistSandbox
    instances: list[str]

    def on(self, instance: int, url: str) -> str:
        """``url`` sent to another instance, as the load balancer would route it."""
        parts = urlsplit(url)
        return urlunsplit(parts._replace(netloc=urlsplit(self.instances[instance]).netloc))

    def token_requests(self) -> int:
        return len(self.sandbox.token_requests)


ARGS = [sys.executable, "-m", "uvicorn", "--factory", "examples.starlette_app:create_app"]
ARGS += ["--host", "127.0.0.1", "--log-level", "warning", "--no-access-log", "--port"]


def environment(gist_url: str, public_url: str, postgres_url: str) -> dict[str, str]:
    """The settings every instance shares (the token key aside in the rotation test), on a fresh database."""
    return {
        "GIST_CLIENT_ID": CLIENT_ID,
        "GIST_CLIENT_SECRET": CLIENT_SECRET,
        "GIST_AUTHORIZE_URL": f"{gist_url}/oauth/authorize",
        "GIST_ACCESS_TOKEN_URL": f"{gist_url}/oauth/token",
        "GIST_API_BASE_URL": f"{gist_url}/",
        "GIST_REDIRECT_URI": f"{public_url}/oauth/gist/callback",
        "SESSION_SECRET": "one-session-secret-for-every-instance",
        "GIST_TOKEN_KEY": TokenCipher.generate_key(),
        "GIST_TOKEN_DB": fresh_database(postgres_url).replace("postgresql+psycopg://", "postgresql://"),
        "GIST_TRUSTED_PROXIES": "127.0.0.0/8",
    }


def stop(processes: list[Any]) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        process.wait(10)


@contextmanager
def sandbox_for(instances: list[str]) -> Iterator[tuple[GistSandbox, str]]:
    """The sandbox, registered with the first instance's callback as the public redirect URI; and its URL."""
    sandbox = create_app(
        clients=[SandboxClient(CLIENT_ID, CLIENT_SECRET, (f"{instances[0]}/oauth/gist/callback",))], auto_approve=True
    )
    with ServerThread(sandbox) as gist:
        yield sandbox, gist.url


@pytest.fixture(scope="module")
def pool(postgres_url: str) -> Iterator[Pool]:
    ports = [free_port() for _ in range(3)]
    instances = [f"http://127.0.0.1:{port}" for port in ports]
    with sandbox_for(instances) as (sandbox, gist_url):
        env = environment(gist_url, instances[0], postgres_url)
        # All three at once on a fresh database: each creates the tables on start, and none may fail.
        processes = [spawn_server_process([*ARGS, str(port)], env=env, cwd=ROOT) for port in ports]
        try:
            for process, port in zip(processes, ports, strict=True):
                wait_until_serving(process, port, ARGS)
            yield Pool(sandbox, instances)
        finally:
            stop(processes)


def test_a_login_started_on_one_instance_finishes_on_another_and_its_token_is_read_on_a_third(pool: Pool) -> None:
    before = pool.token_requests()
    with browser_client(follow_redirects=False, timeout=30) as browser:
        start = browser.get(f"{pool.instances[0]}/auth/gist", params={"next": "/me/teammates"})
        assert start.status_code == 302
        callback = browser.get(start.headers["location"]).headers["location"]
        assert callback.startswith(pool.instances[0])  # the public redirect URI
        with_pending_login = httpx2.Cookies(browser.cookies)
        done = browser.get(pool.on(1, callback))
        assert done.status_code == 200, done.text
        assert all(t["name"] in done.text for t in pool.sandbox.workspace.teammates)
        read = browser.get(f"{pool.instances[2]}/me/teammates")
        assert read.status_code == 200, read.text
        assert all(t["name"] in read.text for t in pool.sandbox.workspace.teammates)
        assert pool.token_requests() == before + 1

        # The same callback again, on the third instance, with the cookie from before the login finished.
        with browser_client(follow_redirects=False, timeout=30, cookies=with_pending_login) as replayer:
            replay = replayer.get(pool.on(2, callback))
    assert replay.status_code == 400, replay.text
    assert pool.token_requests() == before + 1  # the replay reached no token endpoint


def test_one_install_limit_holds_across_the_instances(pool: Pool) -> None:
    before = pool.token_requests()
    callbacks = [f"{instance}/oauth/gist/callback" for instance in pool.instances]
    forged = [f"{callbacks[i]}?code=forged-{i}-{n}&state=nrrjryb4" for i in range(3) for n in range(12)]
    with browser_client(follow_redirects=False, timeout=30) as attacker:
        statuses = [attacker.get(url, headers={"X-Forwarded-For": "198.51.100.7"}).status_code for url in forged]
        assert pool.token_requests() == before + 10  # one limit of 10 a network, not 10 on each instance
        assert statuses.count(400) == 10 and statuses.count(429) == 26  # Gist refused the 10 forged codes
        # Another address of the same /24, on another instance: the same bucket; another network: its own.
        headers = {"X-Forwarded-For": "198.51.100.99"}
        assert attacker.get(f"{callbacks[2]}?code=fresh-1&state=nrrjryb4", headers=headers).status_code == 429
        other = {"X-Forwarded-For": "203.0.113.5"}
        assert attacker.get(f"{callbacks[1]}?code=fresh-2&state=nrrjryb4", headers=other).status_code == 400
    assert pool.token_requests() == before + 11


def test_200_logins_20_at_a_time_across_the_instances_all_succeed(pool: Pool) -> None:
    before = pool.token_requests()
    failures: list[str] = []

    async def logins() -> None:
        transport = httpx2.AsyncHTTPTransport(limits=httpx2.Limits(max_connections=60))
        slots = asyncio.Semaphore(20)

        async def login(n: int) -> None:
            # A browser of its own (a cookie jar) over the shared pool, which is closed once, below.
            browser = httpx2.AsyncClient(transport=transport, timeout=60, trust_env=False)
            async with slots:
                try:
                    start = await browser.get(f"{pool.instances[n % 3]}/auth/gist")
                    gist = await browser.get(start.headers["location"])
                    done = await browser.get(pool.on((n + 1) % 3, gist.headers["location"]))
                    if done.status_code != 200 or "teammates" not in done.text:
                        failures.append(f"{n}: HTTP {done.status_code}")
                except (httpx2.HTTPError, KeyError) as exc:
                    failures.append(f"{n}: {exc!r}")

        try:
            await asyncio.gather(*(login(n) for n in range(200)))
        finally:
            await transport.aclose()

    asyncio.run(logins())
    assert failures == []
    assert pool.token_requests() == before + 200
    assert all(record.status == 200 for record in pool.sandbox.token_requests[before:])


def test_keys_rotate_across_the_instances_by_environment_changes_only(postgres_url: str) -> None:
    """docs/INSTANCES.md's rolling rotation: each step changes GIST_TOKEN_KEY and restarts the instances one at a
    time, while users log in and read their tokens; no read fails at any step."""
    old, new = TokenCipher.generate_key(), TokenCipher.generate_key()
    ports = [free_port() for _ in range(3)]
    instances = [f"http://127.0.0.1:{port}" for port in ports]
    users: list[httpx2.Client] = []
    with sandbox_for(instances) as (sandbox, gist_url):
        env = environment(gist_url, instances[0], postgres_url)
        processes = [
            spawn_server_process([*ARGS, str(port)], env=env | {"GIST_TOKEN_KEY": old}, cwd=ROOT) for port in ports
        ]
        pool = Pool(sandbox, instances)

        def check(step: str, first: int) -> None:
            # A new user logs in (started on one instance, finished on the next); then every user so far reads their
            # teammates through every instance.
            user = browser_client(follow_redirects=False, timeout=30)
            users.append(user)
            start = user.get(f"{instances[first]}/auth/gist")
            done = user.get(pool.on((first + 1) % 3, user.get(start.headers["location"]).headers["location"]))
            assert done.status_code == 200, (step, done.status_code, done.text[:300])
            for n, reader in enumerate(users):
                for instance in instances:
                    read = reader.get(f"{instance}/me/teammates")
                    assert read.status_code == 200, (step, f"user {n}", instance, read.status_code, read.text[:300])

        try:
            for process, port in zip(processes, ports, strict=True):
                wait_until_serving(process, port, ARGS)
            # The example keys tokens by workspace, which every login here rewrites; a dormant user's is not.
            dormant = {"access_token": "gat-dormant-user-token"}
            open_token_store(env["GIST_TOKEN_DB"], key=old).save("user:dormant", dormant)
            check("every instance on the old key", 0)
            steps = [("the new key added second", f"{old},{new}"), ("the new key first", f"{new}, {old}")]
            steps.append(("the old key dropped", new))
            for step, keys in steps:
                if keys == new:  # once every instance encrypts with the new key: re-encrypt what the old one sealed
                    assert open_token_store(env["GIST_TOKEN_DB"], key=f"{new},{old}").rotate_keys() == 1
                # A rolling restart: one instance first, beside two on the step before; then the other two.
                for batch in ([0], [1, 2]):
                    stop([processes[i] for i in batch])
                    for i in batch:
                        args, step_env = [*ARGS, str(ports[i])], env | {"GIST_TOKEN_KEY": keys}
                        processes[i] = spawn_server_process(args, env=step_env, cwd=ROOT)
                    for i in batch:
                        wait_until_serving(processes[i], ports[i], ARGS)
                    check(f"{step}, instances {batch} restarted", batch[-1])
        finally:
            stop(processes)
            for user in users:
                user.close()
    assert len(users) == 7
    stored = open_token_store(env["GIST_TOKEN_DB"], key=new).get("user:dormant")  # the old key is gone for good
    assert stored is not None and stored.token == dormant

"""What a store shares between an app's instances beside the tokens: the install limit's counts, its tables made by
instances starting at once, and the one setting that names it (a path or a database URL)."""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from authlib.integrations.starlette_client import OAuth
from support.postgres import fresh_database

import gist_authlib
from gist_authlib import ConfigurationError, InstallLimit, TokenStoreError
from gist_authlib.tokens import (
    BaseTokenStore,
    InstallCounter,
    MemoryLoginState,
    MemoryTokenStore,
    SQLAlchemyTokenStore,
    SQLiteTokenStore,
    TokenCipher,
    open_token_store,
)

KEY = TokenCipher.generate_key()
Opener = Callable[[], BaseTokenStore]


@pytest.fixture(params=["memory", "sqlite", "sqlalchemy-sqlite", "sqlalchemy-postgres", "django"])
def counter(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], InstallCounter]]:
    """A function opening one and the same install counter each call (a new connection for a database)."""
    opened: list[Any] = []
    kind = request.param
    shared: Any = MemoryLoginState() if kind == "memory" else None

    def open_counter() -> InstallCounter:
        if shared is not None:
            return shared  # type: ignore[no-any-return]
        if kind == "sqlite":
            store: BaseTokenStore = SQLiteTokenStore(tmp_path / "tokens.sqlite3", key=KEY)
        elif kind == "sqlalchemy-sqlite":
            store = SQLAlchemyTokenStore(f"sqlite:///{tmp_path / 'sa.sqlite3'}", key=KEY)
        elif kind == "django":  # a Django project's database (SQLite), each thread on a connection of its own
            from gist_authlib.django import DjangoTokenStore

            request.getfixturevalue("django_project")
            store = DjangoTokenStore(key=KEY)
        else:
            store = SQLAlchemyTokenStore(request.getfixturevalue("postgres_url"), key=KEY, table_name=tmp_path.name)
        opened.append(store)
        return store

    yield open_counter
    for store in opened:
        store.close()


def attempt(counter: InstallCounter, network: str, now: float, name: str = "gist", **limits: Any) -> bool:
    rule = {"window": 60.0, "per_client": 2, "total": 3} | limits
    return counter.count_install_attempt(network, registration=name, now=now, **rule)


def test_install_attempts_follow_one_rule_in_every_counter(counter: Callable[[], InstallCounter]) -> None:
    count = counter()
    assert [attempt(count, "10.0.0.0/24", 1000) for _ in range(3)] == [True, True, False]
    assert [attempt(count, "10.0.1.0/24", 1000) for _ in range(2)] == [True, False]  # the total of 3 is reached
    assert [attempt(count, "10.0.2.0/24", 1000) for _ in range(2)] == [True, False]  # a first attempt still passes
    assert attempt(count, "10.0.2.0/24", 1061) is True  # the window moved on
    assert attempt(count, "10.0.3.0/24", 1000, name="other") is True  # another registration counts apart
    assert attempt(count, "x" * 300, 1062) is True  # a hop that is no address, of any length, is a network too
    assert attempt(count, "x" * 300, 1062) is True
    assert attempt(count, "x" * 300, 1062) is False


def test_racing_attempts_through_several_connections_stay_within_the_limit(
    counter: Callable[[], InstallCounter],
) -> None:
    counters = [counter(), counter()]  # two connections to one database, as two instances have
    start = threading.Barrier(8)
    results: list[bool] = []

    def race(count: InstallCounter, n: int) -> None:
        start.wait()
        for i in range(5):
            results.append(attempt(count, "203.0.113.0/24", 1000 + i / 10, per_client=10, total=100))
            results.append(attempt(count, f"2001:db8:{n}:{i}::/64", 1000 + i / 10, "apart", per_client=10, total=12))

    threads = [threading.Thread(target=race, args=(counters[n % 2], n)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # 10 for the one network; 40 networks with one attempt each against a total of 12: 12, then 12 first attempts.
    assert sum(results) == 10 + 24


def test_expired_attempts_are_deleted_so_the_table_stays_bounded(tmp_path: Path) -> None:
    store = SQLiteTokenStore(tmp_path / "tokens.sqlite3", key=KEY)
    for minute in range(5):
        for n in range(50):
            attempt(store, f"198.51.{n}.0/24", 1000 + 60 * minute, per_client=10, total=20)
    with sqlite3.connect(store.path) as raw:
        rows = raw.execute("SELECT COUNT(*) FROM gist_install_attempts").fetchone()[0]
    store.close()
    assert rows == 40  # the last window's 20 within the total and 20 first attempts past it, nothing older


def test_instances_starting_at_once_on_a_fresh_postgres_database_all_start(postgres_url: str) -> None:
    url = fresh_database(postgres_url)
    start = threading.Barrier(6)
    failures: list[BaseException] = []
    stores: list[BaseTokenStore] = []

    def instance() -> None:
        start.wait()
        try:
            stores.append(open_token_store(url, key=KEY))
        except BaseException as exc:  # every failure is the finding
            failures.append(exc)

    threads = [threading.Thread(target=instance) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    stores[0].save("user", {"access_token": "gat-shared"})
    assert all(s.get("user") is not None for s in stores)
    for store in stores:
        store.close()


# --- one setting: a path or a database URL ----------------------------------------------------------------------


def test_a_path_or_a_sqlite_url_opens_the_sqlite_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for location, path in [
        (tmp_path / "a.sqlite3", str(tmp_path / "a.sqlite3")),
        ("relative.sqlite3", "relative.sqlite3"),
        ("sqlite:///url.sqlite3", "url.sqlite3"),
        (f"sqlite:///{tmp_path}/absolute.sqlite3", f"{tmp_path}/absolute.sqlite3"),
    ]:
        with open_token_store(location, key=KEY) as store:
            assert isinstance(store, SQLiteTokenStore) and store.path == path
            store.save("user", {"access_token": "gat-1"})
        assert Path(path).exists()
    memory = MemoryTokenStore()
    assert open_token_store(memory) is memory


def test_a_postgres_url_opens_the_sqlalchemy_store_with_the_installed_driver(postgres_url: str) -> None:
    plain = postgres_url.replace("postgresql+psycopg://", "postgresql://")  # as a hosting service hands it out
    for url in (plain, plain.replace("postgresql://", "postgres://")):
        with open_token_store(url, key=KEY) as store:
            assert isinstance(store, SQLAlchemyTokenStore) and store.shared
            store.save("user", {"access_token": "gat-pg"})
            assert store.get("user") is not None


@pytest.mark.parametrize(
    ("location", "message"),
    [
        ("  ", "empty"),
        ("nosuchdialect://admin:hunter2@db.example/app", "not one SQLAlchemy can open"),
        ("postgresql://admin:hunter2@db.example:notaport/app", "not one SQLAlchemy can open"),
        ("sqlite:///tokens.sqlite3?mode=ro", "sqlite:///relative/path"),
    ],
)
def test_an_unusable_location_is_a_configuration_error_without_its_password(
    location: str, message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigurationError, match=message) as raised:
        open_token_store(location, key=KEY)
    assert "hunter2" not in str(raised.value) and raised.value.__cause__ is None


@pytest.mark.parametrize("location", ["sqlite://", "sqlite:///:memory:", ":memory:"])
def test_an_in_memory_sqlite_store_is_not_shared(location: str) -> None:
    """An in-memory SQLite database lives in one process, as the memory store does: ``register`` warns about it, and
    the install limit it counts knows it counts for this instance alone."""
    store = open_token_store(location, plaintext=True)
    try:
        assert isinstance(store, SQLiteTokenStore)
        assert store.shared is False
        assert InstallLimit().for_registration("gist", store).shared is False
    finally:
        store.close()


def test_a_store_without_a_key_or_in_no_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="encryption key"):
        open_token_store(tmp_path / "t.sqlite3")
    assert not (tmp_path / "t.sqlite3").exists()
    with pytest.raises(TokenStoreError, match="Cannot create the token database"):
        open_token_store(tmp_path / "no-such-folder" / "t.sqlite3", key=KEY)


def test_register_takes_a_location_with_its_key_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GIST_TOKEN_KEY", raising=False)
    with pytest.raises(ConfigurationError, match="GIST_TOKEN_KEY"):
        gist_authlib.register(OAuth(), client_id="cid", client_secret="cs", token_store=str(tmp_path / "t.sqlite3"))
    monkeypatch.setenv("GIST_TOKEN_KEY", KEY)
    limit = InstallLimit(per_client=1, trusted_proxies="10.0.0.0/8, 192.168.0.0/16")
    app = gist_authlib.register(
        OAuth(), client_id="cid", client_secret="cs", token_store=tmp_path / "t.sqlite3", install_limit=limit
    )
    store = app.gist_registration.store
    assert isinstance(store, SQLiteTokenStore) and app.gist_registration.login_state is store
    shared = app.gist_registration.install_limit
    assert shared.counter is store and shared.name == "gist" and shared.per_client == 1
    assert shared.client_address("192.168.1.1", "198.51.100.7") == "198.51.100.7"
    assert shared.allow("198.51.100.7") and not shared.allow("198.51.100.8")  # one /24, counted in the database
    # The limit given stays as it was: it counts in memory for whoever else holds it.
    assert limit.allow("198.51.100.7") and not limit.shared
    store.close()


def test_register_warns_when_replay_state_and_the_limit_are_per_process(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A token store that is not shared warns (the app asked for storage, and its login state is per process); a
    minimal app without one says so at INFO only (one process is its normal setup); a shared store says nothing."""
    with caplog.at_level(logging.INFO, logger="gist_authlib.registry"):
        gist_authlib.register(OAuth(), "nostore", client_id="cid", client_secret="cs")
        gist_authlib.register(OAuth(), "memory", client_id="cid", client_secret="cs", token_store=MemoryTokenStore())
        with SQLiteTokenStore(tmp_path / "t.sqlite3", key=KEY) as store:
            gist_authlib.register(OAuth(), "shared", client_id="cid", client_secret="cs", token_store=store)
    said = [(record.levelno, record.getMessage()) for record in caplog.records]
    assert [level for level, _ in said] == [logging.INFO, logging.WARNING]
    assert all("this process's memory" in line and "INSTANCES.md" in line for _, line in said)
    assert "'nostore'" in said[0][1] and "'memory'" in said[1][1]


def test_trusted_proxies_that_are_no_networks_are_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="trusted proxy"):
        InstallLimit(trusted_proxies="10.0.0.0/8 proxy.internal")
    assert InstallLimit(trusted_proxies="").trusted_proxies == ()


def test_a_postgres_store_has_timeouts_and_keepalives_by_default_and_its_url_overrides_each(postgres_url: str) -> None:
    def session(location: str) -> tuple[str, dict[str, str]]:
        store = open_token_store(location, key=KEY)
        assert isinstance(store, SQLAlchemyTokenStore)
        with store._engine.connect() as connection:  # a look at the session the store's connections get
            timeout = connection.exec_driver_sql("SHOW statement_timeout").scalar()
            parameters = connection.connection.dbapi_connection.info.get_parameters()  # type: ignore[union-attr]
        store.close()
        return str(timeout), parameters

    timeout, parameters = session(postgres_url)
    assert timeout == "5s"
    assert {k: parameters.get(k) for k in ("connect_timeout", "keepalives", "keepalives_idle")} == {
        "connect_timeout": "5",
        "keepalives": "1",
        "keepalives_idle": "10",
    }
    timeout, parameters = session(f"{postgres_url}?connect_timeout=3&statement_timeout=2s&keepalives_idle=30")
    assert timeout == "2s"
    assert (parameters["connect_timeout"], parameters["keepalives_idle"]) == ("3", "30")
    with pytest.raises(ConfigurationError, match="statement_timeout") as refused:
        open_token_store("postgresql://app:hunter2@127.0.0.1/app?statement_timeout=soon", key=KEY)
    assert "hunter2" not in str(refused.value)


def test_passwords_in_a_database_urls_query_string_are_hidden_wherever_the_url_is_shown(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from gist_authlib.cli import main

    secrets = ["hunter2-in-query", "ssl-key-pass", "api-secret-value", "pw-at-the-usual-place"]
    url = fresh_database(postgres_url).replace("postgres@", f"postgres:{secrets[3]}@")  # trusted loopback: unchecked
    url += f"?password={secrets[0]}&sslpassword={secrets[1]}&application_name=gist"
    store = open_token_store(f"{url}&Client_Secret={secrets[2]}", key=KEY, create_table=False)  # never connects
    shown = [store.url, repr(store), repr(gist_authlib.InstallLimit().for_registration("gist", store))]
    assert all("Client_Secret=***" in text and "application_name=gist" in text for text in shown), shown
    store.close()
    monkeypatch.setenv("GIST_TOKEN_KEY", KEY)
    assert main(["whoami", "--token-db", url]) != 0  # no token stored: the message names the database
    printed = capsys.readouterr()
    assert "sslpassword=***" in printed.err and "postgres:***@" in printed.err, printed.err
    for text in [*shown, printed.out, printed.err]:
        assert not any(secret in text for secret in secrets), text

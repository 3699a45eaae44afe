"""One suite for every token store: memory, SQLite, SQLAlchemy on SQLite, SQLAlchemy on a real PostgreSQL, and the
Django app's store in a Django project's database (SQLite)."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import stat
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support.postgres import fresh_database

from gist_authlib import ConfigurationError
from gist_authlib._cli_login import _private_directory
from gist_authlib.errors import (
    InvalidTokenResponseError,
    StaleTokenError,
    TokenDecryptionError,
    TokenStoreError,
)
from gist_authlib.tokens import (
    AsyncTokenStore,
    BaseTokenStore,
    LoginState,
    MemoryLoginState,
    MemoryTokenStore,
    SQLAlchemyTokenStore,
    SQLiteTokenStore,
    TokenCipher,
    open_token_store,
)

KEY = TokenCipher.generate_key()
OTHER_KEY = TokenCipher.generate_key()
TOKEN = {"access_token": "gat-secret-access-token-1", "scope": "read_teammates read_teams"}

Opener = Callable[..., BaseTokenStore]


def _opener(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Opener:
    """A function that opens a store on one and the same storage, with the key (or mode) asked for."""
    if kind == "memory":
        return lambda **kw: MemoryTokenStore(**({"key": KEY} | kw))
    if kind == "sqlite":
        return lambda **kw: SQLiteTokenStore(tmp_path / "tokens.sqlite3", **({"key": KEY} | kw))
    if kind == "sqlalchemy-sqlite":
        url = f"sqlite:///{tmp_path / 'sa-tokens.sqlite3'}"
        return lambda **kw: SQLAlchemyTokenStore(url, **({"key": KEY} | kw))
    if kind == "django":
        from django.test import override_settings

        from gist_authlib.django import DjangoTokenStore

        request.getfixturevalue("django_project")
        # No key in the settings nor the environment: each store here is given its own, as the others are.
        request.getfixturevalue("monkeypatch").delenv("GIST_TOKEN_KEY", raising=False)
        no_key = override_settings(GIST_TOKEN_KEY=None)
        no_key.enable()
        request.addfinalizer(no_key.disable)
        return lambda **kw: DjangoTokenStore(**({"key": KEY} | kw))
    url = request.getfixturevalue("postgres_url")
    table = "t_" + uuid.uuid4().hex[:12]  # a table of its own for each test
    return lambda **kw: SQLAlchemyTokenStore(url, table_name=table, **({"key": KEY} | kw))


ALL = ["memory", "sqlite", "sqlalchemy-sqlite", "sqlalchemy-postgres", "django"]
PERSISTENT = ["sqlite", "sqlalchemy-sqlite", "sqlalchemy-postgres", "django"]


@pytest.fixture(params=ALL)
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    opened: list[BaseTokenStore] = []
    # Made here, not in the test: the Django project it asks for is then set up before this fixture and taken
    # down after it, so the settings it overrides are back as they were for the next module's tests.
    make = _opener(request.param, tmp_path, request)

    def open_store(**kwargs: Any) -> BaseTokenStore:
        store = make(**kwargs)
        opened.append(store)
        return store

    yield open_store
    for store in opened:
        store.close()


@pytest.fixture(params=PERSISTENT)
def persistent(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Opener]]:
    opened: list[BaseTokenStore] = []
    make = _opener(request.param, tmp_path, request)

    def open_store(**kwargs: Any) -> BaseTokenStore:
        store = make(**kwargs)
        opened.append(store)
        return store

    yield request.param, open_store
    for store in opened:
        store.close()


def django_database(store: BaseTokenStore) -> tuple[str, str] | None:
    """The SQLite file and token table of a Django project's store, or None for another store."""
    if type(store).__name__ != "DjangoTokenStore":
        return None
    from django.conf import settings

    from gist_authlib.django.models import GistToken

    return settings.DATABASES["default"]["NAME"], GistToken._meta.db_table


def raw_rows(store: BaseTokenStore) -> str:
    """Everything the database holds for the store's table, as text (what a stolen backup shows)."""
    django = django_database(store)
    if django is not None:
        with sqlite3.connect(django[0]) as db:
            return repr(db.execute(f"SELECT * FROM {django[1]}").fetchall())
    if isinstance(store, SQLiteTokenStore):
        with sqlite3.connect(store.path) as db:
            text = repr(db.execute("SELECT * FROM gist_tokens").fetchall())
        files = [Path(store.path), Path(store.path + "-wal")]
        return text + "".join(f.read_bytes().decode("latin-1") for f in files if f.exists())
    assert isinstance(store, SQLAlchemyTokenStore)
    from sqlalchemy import select

    with store._engine.connect() as connection:  # read-only look, as an attacker with the database would
        return repr(connection.execute(select(store._table)).fetchall())


# --- the protocol, for every store --------------------------------------------------------------------


def test_save_then_get_round_trips(opener: Opener) -> None:
    store = opener()
    saved = store.save("user-42", TOKEN, workspace_id=1234, workspace_name="Acme")
    got = store.get("user-42")
    assert got == saved
    assert got is not None
    assert got.token == TOKEN
    assert got.scopes == ("read_teammates", "read_teams")
    assert (got.workspace_id, got.workspace_name, got.version) == ("1234", "Acme", 1)
    assert store.get("nobody") is None


def test_saving_again_replaces_atomically_and_bumps_the_version(opener: Opener) -> None:
    store = opener()
    first = store.save("user-42", TOKEN, workspace_id=1)
    second = store.save("user-42", {"access_token": "gat-newer"}, scopes=["read_tags"], workspace_id=1)
    assert second.version == first.version + 1
    assert second.created_at == first.created_at and second.updated_at >= first.updated_at
    assert store.get("user-42").token == {"access_token": "gat-newer"}  # type: ignore[union-attr]
    assert store.get("user-42").scopes == ("read_tags",)  # type: ignore[union-attr]


def test_delete_and_delete_by_token(opener: Opener) -> None:
    store = opener()
    store.save("a", TOKEN)
    store.save("b", {"access_token": "gat-b"})
    assert store.find_by_token(TOKEN).subject == "a"  # type: ignore[union-attr]
    assert store.delete_token("gat-b") is True
    assert store.get("b") is None
    assert store.delete("a") is True
    assert store.delete("a") is False
    assert store.find_by_token(TOKEN) is None


def test_list_by_workspace(opener: Opener) -> None:
    store = opener()
    store.save("u1", {"access_token": "t1"}, workspace_id=7)
    store.save("u2", {"access_token": "t2"}, workspace_id="7")
    store.save("u3", {"access_token": "t3"}, workspace_id=8)
    assert [s.subject for s in store.list_by_workspace(7)] == ["u1", "u2"]
    assert store.list_by_workspace(9) == []


def test_compare_and_set_keeps_the_newer_token(opener: Opener) -> None:
    store = opener()
    v1 = store.save("user", TOKEN)
    v2 = store.compare_and_set("user", {"access_token": "gat-refreshed"}, expected_version=v1.version)
    assert v2.version == v1.version + 1
    with pytest.raises(StaleTokenError) as info:  # a stale writer, still holding version 1
        store.compare_and_set("user", {"access_token": "gat-stale"}, expected_version=v1.version)
    assert (info.value.expected_version, info.value.found_version) == (1, 2)
    assert store.get("user").token == {"access_token": "gat-refreshed"}  # type: ignore[union-attr]
    with pytest.raises(StaleTokenError):
        store.compare_and_set("ghost", TOKEN, expected_version=1)


def test_refresh_lease_goes_to_exactly_one_holder(opener: Opener) -> None:
    store = opener()
    v1 = store.save("user", TOKEN)
    assert store.acquire_refresh_lease("user", version=v1.version, holder="p1") is True
    assert store.acquire_refresh_lease("user", version=v1.version, holder="p2") is False
    v2 = store.compare_and_set("user", {"access_token": "gat-2"}, expected_version=v1.version)
    assert store.acquire_refresh_lease("user", version=v1.version, holder="p2") is False  # old version
    assert store.acquire_refresh_lease("user", version=v2.version, holder="p2") is True


@pytest.mark.parametrize(
    "bad", [{}, {"access_token": ""}, {"access_token": 5}, {"error": "x", "access_token": "y"}, {"access_token": "a b"}]
)
def test_a_malformed_token_is_refused_and_nothing_is_stored(opener: Opener, bad: dict[str, Any]) -> None:
    store = opener()
    with pytest.raises(InvalidTokenResponseError):
        store.save("user", bad)
    assert store.get("user") is None


def test_reprs_and_records_hide_tokens_and_keys(opener: Opener) -> None:
    store = opener()
    record = store.save("user", TOKEN)
    for text in (repr(store), str(store), repr(record), str(record)):
        assert TOKEN["access_token"] not in text and KEY not in text


def test_async_form(opener: Opener) -> None:
    import asyncio

    store = AsyncTokenStore(opener())

    async def scenario() -> tuple[str | None, bool]:
        saved = await store.save("user", TOKEN, workspace_id=3)
        await store.compare_and_set("user", {"access_token": "gat-2"}, expected_version=saved.version)
        got = await store.get("user")
        listed = await store.list_by_workspace(3)
        return (got.token["access_token"] if got else None), [s.subject for s in listed] == ["user"]

    assert asyncio.run(scenario()) == ("gat-2", True)


# --- encryption at rest, for the stores that write somewhere ------------------------------------------


def test_the_database_never_holds_a_token_in_clear(persistent: tuple[str, Opener]) -> None:
    _, open_store = persistent
    store = open_store()
    store.save("user", {"access_token": "gat-find-me-if-you-can", "refresh_token": "grt-and-me"})
    dump = raw_rows(store)
    assert "user" in dump  # the look did see the row
    assert "gat-find-me-if-you-can" not in dump and "grt-and-me" not in dump


def test_a_store_without_a_key_refuses_to_start(persistent: tuple[str, Opener]) -> None:
    _, open_store = persistent
    with pytest.raises(ConfigurationError, match="needs an encryption key"):
        open_store(key=None).save("user", TOKEN)  # the Django store looks for its key in the settings then
    plain = open_store(key=None, plaintext=True)
    plain.save("user", TOKEN)
    assert plain.get("user").token == TOKEN  # type: ignore[union-attr]


def test_a_wrong_key_names_the_key_it_needs_and_returns_nothing(persistent: tuple[str, Opener]) -> None:
    _, open_store = persistent
    open_store(key=KEY).save("user", TOKEN)
    wrong = open_store(key=OTHER_KEY)
    with pytest.raises(TokenDecryptionError) as info:
        wrong.get("user")
    assert info.value.key_id == TokenCipher(KEY).key_ids[0]
    assert info.value.key_id in str(info.value) and TokenCipher(OTHER_KEY).key_ids[0] in str(info.value)
    assert KEY not in str(info.value) and OTHER_KEY not in str(info.value)
    with pytest.raises(TokenDecryptionError):
        open_store(key=None, plaintext=True).get("user")


def test_keys_rotate_out(persistent: tuple[str, Opener]) -> None:
    _, open_store = persistent
    open_store(key=KEY).save("old", TOKEN)
    both = open_store(key=[OTHER_KEY, KEY])  # the new key first: it encrypts; the old one still decrypts
    assert both.get("old").token == TOKEN  # type: ignore[union-attr]
    both.save("new", {"access_token": "gat-new"})
    assert both.rotate_keys() == 1
    only_new = open_store(key=OTHER_KEY)
    assert only_new.get("old").token == TOKEN  # type: ignore[union-attr]
    assert only_new.get("new").token == {"access_token": "gat-new"}  # type: ignore[union-attr]


def test_invalid_keys_are_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="not a valid Fernet key"):
        TokenCipher("too-short")
    with pytest.raises(ConfigurationError):
        TokenCipher([])


def test_several_keys_in_one_string_are_newest_first_and_a_bad_one_is_named_by_its_position() -> None:
    old = TokenCipher(KEY).encrypt(b"sealed with the old key")
    both = TokenCipher(f" {OTHER_KEY} ,\n{KEY}\n")  # as GIST_TOKEN_KEY holds them: commas, stray whitespace
    assert both.key_ids == TokenCipher([OTHER_KEY, KEY]).key_ids
    assert both.decrypt(old) == b"sealed with the old key"
    assert TokenCipher(OTHER_KEY).decrypt(both.encrypt(b"new")) == b"new"  # the first key encrypts
    assert TokenCipher(f"{OTHER_KEY},{KEY}".encode()).key_ids == both.key_ids
    for keys, position in [(f"{OTHER_KEY},{KEY[:-4]},{KEY}", "Key 2 of 3"), (f"{OTHER_KEY},", "Key 2 of 2")]:
        with pytest.raises(ConfigurationError, match=position) as refused:
            TokenCipher(keys)
        assert OTHER_KEY not in str(refused.value) and KEY[:-4] not in str(refused.value)


def test_sqlite_is_in_wal_mode(tmp_path: Path) -> None:
    store = SQLiteTokenStore(tmp_path / "t.sqlite3", key=KEY)
    with sqlite3.connect(store.path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.close()


def test_sqlalchemy_ddl_is_printable_for_migrations() -> None:
    from sqlalchemy import create_engine

    from gist_authlib.tokens._sqlalchemy import create_table_ddl

    ddl = create_table_ddl(create_engine("postgresql+psycopg://"))
    assert "CREATE TABLE gist_tokens" in ddl and "subject VARCHAR(255) NOT NULL" in ddl
    assert "CREATE INDEX gist_tokens_workspace" in ddl


def test_find_by_refresh_token(opener: Opener) -> None:
    store = opener()
    store.save("user", {"access_token": "gat-1", "refresh_token": "grt-1"})
    assert store.find_by_refresh_token("grt-1").subject == "user"  # type: ignore[union-attr]
    assert store.find_by_refresh_token("grt-other") is None
    assert store.find_by_refresh_token("") is None
    assert "grt-1" not in repr(store.get("user"))


def test_authlibs_own_refresh_writes_back_through_update_token(tmp_path: Path) -> None:
    """Authlib refreshes an expired stored token itself (``gist.get(..., request=...)``) and calls update_token
    with the new token and the old refresh token only: the store must still find and replace the row."""
    import asyncio
    import time

    from authlib.integrations.starlette_client import OAuth

    import gist_authlib
    from gist_authlib import GistProvider
    from gist_authlib.sandbox import SandboxClient, ServerThread, create_app

    sandbox = create_app(clients=[SandboxClient("cid", "csecret", ("http://127.0.0.1:9/cb",))], token_ttl=3600)
    store = SQLiteTokenStore(tmp_path / "authlib-refresh.sqlite3", key=KEY)
    token = sandbox.issue_token("cid", ["read_teams"], expires_in=3600)
    token["expires_at"] = int(time.time()) - 10
    store.save("user", token)

    class Request:  # what Authlib's fetch_token hook reads: a request with a session
        def __init__(self) -> None:
            self.session = {"_gist_authlib:gist:subject": "user"}

    with ServerThread(sandbox) as server:
        gist = gist_authlib.register(
            OAuth(), client_id="cid", client_secret="csecret", provider=GistProvider.at(server.url), token_store=store
        )
        response = asyncio.run(gist.get("teams", request=Request()))
    assert response.status_code == 200
    assert sandbox.refresh_requests == 1
    stored = store.get("user")
    assert stored is not None and stored.version == 2
    assert stored.token["access_token"] != token["access_token"]
    store.close()


# --- security round two: single use, rows bound to their subject, private files ---------------------------


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@pytest.fixture(params=ALL)
def login_state(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LoginState]:
    """Each LoginState: process memory, or a SQL store's database (the memory token store is none)."""
    if request.param == "memory":
        yield MemoryLoginState()
        return
    store = _opener(request.param, tmp_path, request)()
    assert isinstance(store, LoginState) and store.shared
    yield store
    store.close()


def test_only_the_sql_stores_and_the_memory_record_are_login_states(tmp_path: Path) -> None:
    assert not isinstance(MemoryTokenStore(), LoginState)
    assert not hasattr(MemoryTokenStore(), "consume")
    assert isinstance(MemoryLoginState(), LoginState) and not MemoryLoginState().shared


def test_consumed_values_are_refused_a_second_time_until_they_expire(login_state: LoginState) -> None:
    state, code, other = digest("state"), digest("code"), digest("another-state")
    assert login_state.consume([state, code], ttl=60) is True
    assert login_state.consume([code], ttl=60) is False
    assert login_state.consume([other, state], ttl=60) is False
    assert login_state.consume([other], ttl=60) is True  # the refused call recorded nothing
    assert login_state.consume([digest("short-lived")], ttl=0.05) is True
    time.sleep(0.1)
    assert login_state.consume([digest("short-lived")], ttl=60) is True


def test_a_flood_of_new_values_keeps_the_memory_record_bounded_and_its_live_entries_first() -> None:
    now = [1000.0]
    record = MemoryLoginState(max_entries=100, clock=lambda: now[0])
    assert record.consume([digest("genuine")], ttl=600)
    now[0] += 1
    for n in range(99):  # short-lived values fill the record, then expire
        assert record.consume([digest(f"short-{n}")], ttl=5)
    now[0] += 10
    for n in range(99):  # the flood finds room in what expired, and the genuine entry stays
        assert record.consume([digest(f"flood-{n}")], ttl=600)
    assert record.consume([digest("genuine")], ttl=600) is False
    assert record.consume([digest("one-more")], ttl=600)  # full of live entries: the oldest live one goes
    assert record.consume([digest("genuine")], ttl=600) is True


def test_consume_lets_exactly_one_of_racing_callers_win(persistent: tuple[str, Opener]) -> None:
    import threading

    _, open_store = persistent
    stores = [open_store(), open_store()]  # two connections to one database, as two app processes have
    start = threading.Barrier(8)
    results: list[bool] = []

    def race(store: BaseTokenStore) -> None:
        start.wait()
        assert isinstance(store, LoginState)
        results.append(store.consume([digest("the-code")], ttl=60))

    threads = [threading.Thread(target=race, args=(stores[i % 2],)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 7 + [True]


def execute_raw(store: BaseTokenStore, sql: str, params: dict[str, Any]) -> None:
    """Change rows with the database's own tools, as someone with write access to it would."""
    django = django_database(store)
    if django is not None:
        with sqlite3.connect(django[0]) as db:
            db.execute(sql.replace("gist_tokens", django[1]), params)
        return
    if isinstance(store, SQLiteTokenStore):
        with sqlite3.connect(store.path) as db:
            db.execute(sql, params)
        return
    assert isinstance(store, SQLAlchemyTokenStore)
    from sqlalchemy import text

    with store._engine.begin() as connection:
        connection.execute(text(sql.replace("gist_tokens", store._table.name)), params)


def test_a_ciphertext_copied_into_another_subjects_row_is_refused(persistent: tuple[str, Opener]) -> None:
    _, open_store = persistent
    store = open_store()
    store.save("alice", {"access_token": "gat-alice"})
    store.save("mallory", {"access_token": "gat-mallory"})
    execute_raw(
        store,
        "UPDATE gist_tokens SET token = (SELECT token FROM gist_tokens WHERE subject = 'alice'), "
        "key_id = (SELECT key_id FROM gist_tokens WHERE subject = 'alice') WHERE subject = 'mallory'",
        {},
    )
    with pytest.raises(TokenDecryptionError, match="copied from another row"):
        store.get("mallory")
    assert store.get("alice").token == {"access_token": "gat-alice"}  # type: ignore[union-attr]
    assert store.migrate() == 0  # a copied row is never adopted by a migration either
    with pytest.raises(TokenDecryptionError):
        store.get("mallory")


def test_an_encrypted_store_reads_plaintext_rows_only_after_an_explicit_migration(
    persistent: tuple[str, Opener],
) -> None:
    _, open_store = persistent
    open_store(key=None, plaintext=True).save("planted", {"access_token": "gat-planted"})
    store = open_store()
    with pytest.raises(TokenDecryptionError, match=r"store\.migrate\(\)"):
        store.get("planted")
    assert store.migrate() == 1
    assert store.get("planted").token == {"access_token": "gat-planted"}  # type: ignore[union-attr]
    assert "gat-planted" not in raw_rows(store)
    assert store.migrate() == 0


def test_rows_written_by_version_0_1_are_bound_by_the_migration(persistent: tuple[str, Opener]) -> None:
    import json

    _, open_store = persistent
    store = open_store()
    store.save("old-user", {"access_token": "gat-new-form"})
    # gist_authlib 0.1 encrypted the token dict alone, naming no subject.
    legacy = TokenCipher(KEY).encrypt(json.dumps({"access_token": "gat-old-form"}).encode()).decode()
    execute_raw(store, "UPDATE gist_tokens SET token = :token WHERE subject = 'old-user'", {"token": legacy})
    with pytest.raises(TokenDecryptionError, match="older or unencrypted form"):
        store.get("old-user")
    assert store.migrate() == 1
    assert store.get("old-user").token == {"access_token": "gat-old-form"}  # type: ignore[union-attr]


def test_a_row_whose_sealed_token_is_not_an_object_is_refused_as_tampered(persistent: tuple[str, Opener]) -> None:
    import json

    _, open_store = persistent
    store = open_store()
    store.save("odd", {"access_token": "gat-odd"})
    sealed = TokenCipher(KEY).encrypt(json.dumps({"subject": "odd", "token": "gat-odd"}).encode()).decode()
    execute_raw(store, "UPDATE gist_tokens SET token = :token WHERE subject = 'odd'", {"token": sealed})
    with pytest.raises(TokenDecryptionError, match="corrupt, was altered") as info:
        store.get("odd")
    assert "gat-odd" not in str(info.value)


def test_the_sqlite_files_are_private_to_their_owner(tmp_path: Path) -> None:
    import os
    import stat

    old_umask = os.umask(0o022)  # a common default, under which files come out world-readable
    try:
        store = SQLiteTokenStore(tmp_path / "private.sqlite3", key=KEY)
        store.save("user", TOKEN, workspace_name="Acme")
        files = [tmp_path / "private.sqlite3", tmp_path / "private.sqlite3-wal", tmp_path / "private.sqlite3-shm"]
        modes = {f.name: stat.S_IMODE(f.stat().st_mode) for f in files}
        store.close()
    finally:
        os.umask(old_umask)
    assert modes == dict.fromkeys(modes, 0o600), modes


def test_a_file_uri_token_db_is_private_and_no_symlink_is_followed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``GIST_TOKEN_DB=file:tokens.db`` (no ``://``: a path, which the SQLite library may open as a URI) gets the same
    checks as any other path: created private under a loose umask, and a symbolic link under its name refused."""
    import os
    import stat

    monkeypatch.chdir(tmp_path)
    old = os.umask(0o022)
    try:
        store = open_token_store("file:tokens.db", plaintext=True)
        store.save("user-1", TOKEN, workspace_name="Acme Secret Project")
        store.close()
    finally:
        os.umask(old)
    # Where the SQLite library honours URIs (most builds) the file is tokens.db; elsewhere it is "file:tokens.db".
    created = next(p for p in (tmp_path / "tokens.db", tmp_path / "file:tokens.db") if p.exists())
    assert stat.S_IMODE(created.stat().st_mode) & 0o077 == 0, oct(created.stat().st_mode)

    (tmp_path / "link.db").symlink_to(tmp_path / "elsewhere.db")
    with pytest.raises(TokenStoreError, match=r"symbolic link"):
        open_token_store("file:link.db", plaintext=True)


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_a_loose_token_database_and_its_wal_are_tightened(tmp_path: Path) -> None:
    db = tmp_path / "tokens.sqlite3"
    with SQLiteTokenStore(db, key=KEY) as store:
        store.save("user-1", {"access_token": "a"}, workspace_id="1", workspace_name="Acme")
        os.chmod(db, 0o644)  # as 0.1 left it
        wal = Path(f"{db}-wal")
        if wal.exists():
            os.chmod(wal, 0o644)
    assert mode(db) == 0o644
    with SQLiteTokenStore(db, key=KEY) as store:
        assert store.get("user-1") is not None
        assert mode(db) == 0o600
        for extra in (Path(f"{db}-wal"), Path(f"{db}-shm")):
            if extra.exists():
                assert mode(extra) & 0o077 == 0


def test_a_token_database_behind_a_symbolic_link_is_refused(tmp_path: Path) -> None:
    real = tmp_path / "elsewhere.sqlite3"
    SQLiteTokenStore(real, key=KEY).close()
    link = tmp_path / "tokens.sqlite3"
    link.symlink_to(real)
    with pytest.raises(TokenStoreError, match="symbolic link"):
        SQLiteTokenStore(link, key=KEY)
    dangling = tmp_path / "dangling.sqlite3"
    dangling.symlink_to(tmp_path / "nowhere" / "x.sqlite3")
    with pytest.raises((TokenStoreError, OSError)):
        SQLiteTokenStore(dangling, key=KEY)
    assert not (tmp_path / "nowhere").exists()  # the link was not followed to create anything


def test_another_users_token_database_is_refused(tmp_path: Path) -> None:
    if os.getuid() == 0:
        db = tmp_path / "theirs.sqlite3"
        SQLiteTokenStore(db, key=KEY).close()
        os.chown(db, 65534, 65534)  # nobody's
    else:
        db = Path("/etc/passwd")  # root's, and never a token database: refused before it is opened
    before = os.lstat(db)
    with pytest.raises(TokenStoreError, match="another user"):
        SQLiteTokenStore(db, key=KEY)
    after = os.lstat(db)
    assert (after.st_mode, after.st_size, after.st_mtime_ns) == (before.st_mode, before.st_size, before.st_mtime_ns)


def test_a_wal_planted_beside_a_new_database_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "tokens.sqlite3"
    wal = tmp_path / "tokens.sqlite3-wal"
    wal.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(TokenStoreError, match="symbolic link"):
        SQLiteTokenStore(db, key=KEY)
    assert not (tmp_path / "elsewhere").exists()


def test_the_command_lines_configuration_directory_is_private(tmp_path: Path) -> None:
    config = tmp_path / "config" / "gist-authlib"
    _private_directory(config)
    assert mode(config) == 0o700
    os.chmod(config, 0o755)  # an older release, or a umask, left it open
    _private_directory(config)
    assert mode(config) == 0o700
    target = tmp_path / "real"
    target.mkdir()
    link = tmp_path / "linked"
    link.symlink_to(target)
    with pytest.raises(TokenStoreError, match="symbolic link"):
        _private_directory(link)


# --- the used-values table: indexed, purged a batch at a time --------------------------------------------


def _old_database(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Callable[[str], Any]:
    """A consumed-values table as earlier releases made it (no index on ``until``); a function running SQL on it."""
    if kind == "sqlite":
        path = tmp_path / "tokens.sqlite3"
        with sqlite3.connect(path) as db:
            db.execute("CREATE TABLE gist_consumed (digest TEXT PRIMARY KEY, until REAL NOT NULL)")

        def run_sqlite(sql: str) -> Any:
            with sqlite3.connect(path) as db:
                return db.execute(sql).fetchall()

        return run_sqlite
    from sqlalchemy import create_engine, text

    url = fresh_database(request.getfixturevalue("postgres_url"))
    engine = create_engine(url)
    request.addfinalizer(engine.dispose)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE gist_consumed (digest VARCHAR(64) PRIMARY KEY, until FLOAT NOT NULL)"))

    def run_postgres(sql: str) -> Any:
        with engine.begin() as connection:
            result = connection.execute(text(sql))
            return result.fetchall() if result.returns_rows else None

    run_postgres.url = url  # type: ignore[attr-defined]
    return run_postgres


@pytest.mark.parametrize("kind", ["sqlite", "sqlalchemy-postgres"])
def test_a_database_of_an_earlier_release_gains_the_expiry_index_and_expired_rows_go_in_batches(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    run = _old_database(kind, tmp_path, request)
    run("INSERT INTO gist_consumed SELECT 'old-' || n, 1.0 FROM " + _series(kind, 200))
    if kind == "sqlite":
        store: BaseTokenStore = SQLiteTokenStore(tmp_path / "tokens.sqlite3", key=KEY)
        indexes = run("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'gist_consumed'")
    else:
        store = SQLAlchemyTokenStore(run.url, key=KEY)  # type: ignore[attr-defined]
        indexes = run("SELECT indexname FROM pg_indexes WHERE tablename = 'gist_consumed'")
    assert ("gist_consumed_until",) in indexes
    assert isinstance(store, LoginState)
    counts = []
    for n in range(4):  # each call deletes a bounded batch of the 200 expired rows, never all at once
        assert store.consume([digest(f"new-{n}")], ttl=60)
        counts.append(run("SELECT COUNT(*) FROM gist_consumed")[0][0])
    assert counts == [137, 74, 11, 4]
    store.close()


def _series(kind: str, count: int) -> str:
    if kind == "sqlite":
        return f"(WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < {count}) SELECT n FROM s)"
    return f"generate_series(1, {count}) AS n"


# --- SQLite under a lock held by another process ------------------------------------------------------------


def test_a_locked_sqlite_file_fails_each_write_within_its_busy_timeout_and_never_delays_reads(tmp_path: Path) -> None:
    import threading

    store = SQLiteTokenStore(tmp_path / "tokens.sqlite3", key=KEY, busy_timeout=0.5)
    store.save("reader", TOKEN)
    other = sqlite3.connect(tmp_path / "tokens.sqlite3", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process's long write transaction
    outcomes: list[tuple[str, float]] = []

    def write(n: int) -> None:
        started = time.monotonic()
        try:
            store.save(f"user-{n}", TOKEN)
            outcomes.append(("saved", time.monotonic() - started))
        except TokenStoreError as exc:
            outcomes.append((exc.error_code, time.monotonic() - started))

    started = time.monotonic()
    writers = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for thread in writers:
        thread.start()
    time.sleep(0.1)
    read_started = time.monotonic()
    assert store.get("reader") is not None
    read_took = time.monotonic() - read_started
    for thread in writers:
        thread.join()
    everything_took = time.monotonic() - started
    other.execute("ROLLBACK")
    other.close()
    assert [code for code, _ in outcomes] == ["token_store_timeout"] * 8
    # Each write waited its own busy timeout at once, not in turn (8 in turn would take 4 s); the read, not at all.
    assert max(took for _, took in outcomes) < 2.0 and everything_took < 2.5, outcomes
    assert read_took < 0.3, read_took
    assert store.subjects() == ["reader"]  # nothing half-stored
    store.save("user-after", TOKEN)  # the lock gone, the same store writes again
    assert store.subjects() == ["reader", "user-after"]
    store.close()

"""SQLAlchemyTokenStore: tokens in PostgreSQL or MySQL (or any SQLAlchemy 2 database) for apps on several machines.

Uses SQLAlchemy Core only. The tables are created on first use, safely when several instances start at once on
a fresh database; teams that manage migrations themselves can create them from ``print(create_table_ddl(engine))``
(docs/IDENTITY.md) and pass ``create_table=False``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, Unpack

from ..errors import TokenStoreError
from ._base import Admit, BaseTokenStore, DatabaseLoginState, Lookup, Row, StoreOptions, as_row, changed_columns
from ._connections import Watch, failure, postgres_options, shown

if TYPE_CHECKING:
    from sqlalchemy import ColumnElement, Connection, Engine, MetaData, Table
    from sqlalchemy.dialects.postgresql import Insert as PostgresInsert
    from sqlalchemy.dialects.sqlite import Insert as SQLiteInsert

__all__ = ["SQLAlchemyTokenStore", "create_table_ddl", "token_table"]

#: The PostgreSQL advisory lock held while the tables are created (the first instance creates them, the others wait
#: and find them): ``int.from_bytes(b"gistddl")``.
DDL_LOCK = 0x67697374646C
#: How long to wait between tries when creating the tables failed (another instance creating them at the same time
#: on a database without advisory locks); after the last, the error is raised.
DDL_RETRIES = (0.05, 0.2, 0.5, 1.0)

T = TypeVar("T")
_LOOKUPS = frozenset({"token_hash", "refresh_hash"})


class _DeadConnection(Exception):
    """A pooled connection was found closed before the call used it: safe to try the call again."""


def token_table(metadata: MetaData, name: str = "gist_tokens") -> Table:
    """The token table's SQLAlchemy definition (the same columns as the SQLite store's)."""
    from sqlalchemy import BigInteger, Column, Float, Index, String, Table, Text

    table = Table(
        name,
        metadata,
        Column("subject", String(255), primary_key=True),
        Column("token", Text, nullable=False),
        Column("key_id", String(64), nullable=False),
        Column("token_hash", String(64), nullable=False),
        Column("refresh_hash", String(64)),
        Column("scopes", Text, nullable=False),
        Column("workspace_id", String(64)),
        Column("workspace_name", String(255)),
        Column("created_at", Float, nullable=False),
        Column("updated_at", Float, nullable=False),
        Column("version", BigInteger, nullable=False),
        Column("lease_holder", String(64)),
        Column("lease_until", Float),
    )
    Index(f"{name}_workspace", table.c.workspace_id)
    Index(f"{name}_token_hash", table.c.token_hash)
    Index(f"{name}_refresh_hash", table.c.refresh_hash)
    return table


def consumed_table(metadata: MetaData, name: str = "gist_consumed") -> Table:
    """The table of used login states and codes (their SHA-256 only), for server-side single use."""
    from sqlalchemy import Column, Float, Index, String, Table

    digest, until = Column("digest", String(64), primary_key=True), Column("until", Float, nullable=False)
    table = Table(name, metadata, digest, until)
    Index(f"{name}_until", table.c.until)
    return table


def attempt_tables(metadata: MetaData, name: str = "gist_tokens") -> tuple[Table, Table]:
    """The install limit's tables, named after the token table (``gist_install_attempts`` and ``gist_locks`` for
    ``gist_tokens``): the attempts within the window (at most twice the limit's total rows a registration), and
    one row a registration whose update serializes the counting across instances."""
    from sqlalchemy import BigInteger, Column, Float, Index, Integer, SmallInteger, String, Table

    prefix = name.removesuffix("_tokens")
    attempts = Table(
        f"{prefix}_install_attempts",
        metadata,
        Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
        Column("registration", String(64), nullable=False),
        Column("network", String(64), nullable=False),
        Column("grace", SmallInteger, nullable=False),
        Column("at", Float, nullable=False),
    )
    Index(f"{prefix}_install_attempts_at", attempts.c.registration, attempts.c.at)
    locks = Table(f"{prefix}_locks", metadata, Column("name", String(64), primary_key=True), Column("held_at", Float))
    return attempts, locks


def create_table_ddl(engine: Engine, name: str = "gist_tokens") -> str:
    """The ``CREATE TABLE`` and ``CREATE INDEX`` statements for ``engine``'s dialect, as text."""
    from sqlalchemy import MetaData
    from sqlalchemy.schema import CreateIndex, CreateTable

    metadata = MetaData()
    tables = [token_table(metadata, name), consumed_table(metadata), *attempt_tables(metadata, name)]
    statements = [str(CreateTable(table).compile(engine)).strip() for table in tables]
    statements += [
        str(CreateIndex(index).compile(engine)).strip()
        for table in tables
        for index in sorted(table.indexes, key=lambda i: str(i.name))
    ]
    return ";\n".join(statements) + ";\n"


class SQLAlchemyTokenStore(DatabaseLoginState, BaseTokenStore):
    """Tokens in a SQL database through SQLAlchemy 2 Core, encrypted with the key given.

    Args:
        url: a database URL (``postgresql+psycopg://user:pw@host/db``, ``mysql+pymysql://...``,
            ``sqlite:///tokens.db``) or an existing ``Engine``. :func:`~gist_authlib.tokens.open_token_store`
            also takes ``postgresql://`` (with the driver the ``postgres`` extra installs).
        key: a Fernet key or a list of keys; see :class:`~gist_authlib.tokens.TokenCipher`.
        plaintext: store tokens unencrypted; refused unless asked for.
        table_name: the table's name.
        create_table: create the tables (and indexes) if missing, on first use. Many instances may do so
            at once on a fresh database: on PostgreSQL the first takes an advisory lock and the others wait for it;
            elsewhere a conflict with another instance's creation is tried again.
        engine_options: passed to ``create_engine`` when ``url`` is a string.
    """

    def __init__(
        self,
        url: str | Engine,
        *,
        table_name: str = "gist_tokens",
        create_table: bool = True,
        engine_options: dict[str, Any] | None = None,  # passed on to create_engine, untyped there
        **kwargs: Unpack[StoreOptions],
    ) -> None:
        from sqlalchemy import MetaData, create_engine, make_url
        from sqlalchemy.exc import SQLAlchemyError

        super().__init__(**kwargs)
        #: How long one call may take before the watchdog ends it (PostgreSQL URLs: statement_timeout + 1 s).
        self._deadline: float | None = None
        if isinstance(url, str):
            options = dict(engine_options or {})
            parsed = make_url(url)
            if parsed.get_backend_name() == "postgresql":
                parsed, defaults, self._deadline = postgres_options(parsed)
                options["connect_args"] = defaults | options.get("connect_args", {})
            self._engine = create_engine(parsed, **options)
        else:
            self._engine = url
        # A pooled connection is checked before each call (its server may have restarted since): not on SQLite.
        self._ping = self._engine.dialect.name != "sqlite"
        metadata = MetaData()
        self._table = token_table(metadata, table_name)
        self._consumed = consumed_table(metadata)
        self._attempts, self._locks = attempt_tables(metadata, table_name)
        self._errors = SQLAlchemyError
        if create_table:
            self._create_tables()

    def _create_tables(self) -> None:
        """Create what is missing, in one transaction; several instances may start at once on a fresh database."""
        from sqlalchemy import text

        for pause in (*DDL_RETRIES, None):
            try:
                with self._engine.begin() as connection:
                    if connection.dialect.name == "postgresql":
                        # DDL is transactional there: the others wait here, then find every table created.
                        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": DDL_LOCK})
                    self._table.metadata.create_all(connection, checkfirst=True)
                    for index in self._consumed.indexes:  # databases made by earlier releases lack it
                        index.create(connection, checkfirst=True)
                return
            except self._errors as exc:
                # Elsewhere two instances can both find a table missing and both create it: the loser tries again.
                if pause is None:
                    raise TokenStoreError(f"Cannot create the token table: {type(exc).__name__}.") from None
                time.sleep(pause)

    def _run(self, work: Callable[[Connection], T]) -> T:
        watch = Watch()
        try:
            try:
                return self._transaction(work, watch, ping=self._ping)
            except _DeadConnection:
                # The server closed the pooled connections (a restart): SQLAlchemy discarded them; once more, anew.
                return self._transaction(work, watch, ping=False)
        except self._errors as exc:
            raise failure(exc, watch) from None

    def _transaction(self, work: Callable[[Connection], T], watch: Watch, *, ping: bool) -> T:
        from sqlalchemy.exc import DBAPIError

        with self._engine.begin() as connection, watch.guard(connection.connection.dbapi_connection, self._deadline):
            if ping:
                try:
                    connection.exec_driver_sql("SELECT 1")
                except DBAPIError as exc:
                    if exc.connection_invalidated and not watch.fired:
                        raise _DeadConnection from None
                    raise
            return work(connection)

    def _select(self, connection: Connection, subject: str) -> Row | None:
        from sqlalchemy import select

        found = connection.execute(select(self._table).where(self._table.c.subject == subject)).mappings().first()
        return as_row(found) if found is not None else None

    def _upsert(self, row: Row) -> Row:
        from sqlalchemy import update

        table = self._table

        def work(connection: Connection) -> Row:
            dialect = connection.dialect.name
            changes = changed_columns(row)
            bumped = {**changes, "version": table.c.version + 1, "lease_holder": None, "lease_until": None}
            statement: PostgresInsert | SQLiteInsert
            if dialect in ("postgresql", "sqlite"):
                if dialect == "postgresql":
                    from sqlalchemy.dialects.postgresql import insert as pg_insert

                    statement = pg_insert(table).values(row)
                else:
                    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

                    statement = sqlite_insert(table).values(row)
                connection.execute(statement.on_conflict_do_update(index_elements=[table.c.subject], set_=bumped))
            elif dialect in ("mysql", "mariadb"):
                from sqlalchemy.dialects.mysql import insert as mysql_insert

                connection.execute(mysql_insert(table).values(row).on_duplicate_key_update(**bumped))
            else:  # any other database: update, else insert, in one transaction
                done = connection.execute(
                    update(table)
                    .where(table.c.subject == row["subject"])
                    .values(**changes, version=table.c.version + 1, lease_holder=None, lease_until=None)
                )
                if done.rowcount == 0:
                    connection.execute(table.insert().values(row))
            found = self._select(connection, row["subject"])
            assert found is not None
            return found

        return self._run(work)

    def _replace(self, row: Row, expected_version: int) -> Row | None:
        from sqlalchemy import update

        table = self._table

        def work(connection: Connection) -> Row | None:
            done = connection.execute(
                update(table)
                .where(table.c.subject == row["subject"], table.c.version == expected_version)
                .values(
                    **changed_columns(row),
                    version=table.c.version + 1,
                    lease_holder=None,
                    lease_until=None,
                )
            )
            return self._select(connection, row["subject"]) if done.rowcount == 1 else None

        return self._run(work)

    def _read(self, subject: str) -> Row | None:
        return self._run(lambda connection: self._select(connection, subject))

    def _read_where(self, column: Lookup, value: str) -> Row | None:
        from sqlalchemy import select

        if column not in _LOOKUPS:
            raise ValueError(f"Cannot look tokens up by {column!r}.")

        def work(connection: Connection) -> Row | None:
            query = select(self._table).where(self._table.c[column] == value)
            found = connection.execute(query).mappings().first()
            return as_row(found) if found is not None else None

        return self._run(work)

    def _read_workspace(self, workspace_id: str) -> list[Row]:
        from sqlalchemy import select

        query = select(self._table).where(self._table.c.workspace_id == workspace_id).order_by(self._table.c.subject)
        return self._run(lambda connection: [as_row(r) for r in connection.execute(query).mappings()])

    def _remove(self, subject: str) -> bool:
        from sqlalchemy import delete

        query = delete(self._table).where(self._table.c.subject == subject)
        return bool(self._run(lambda connection: connection.execute(query).rowcount))

    def _take_lease(self, subject: str, version: int, holder: str, until: float, now: float) -> bool:
        from sqlalchemy import or_, update

        table = self._table
        query = (
            update(table)
            .where(
                table.c.subject == subject,
                table.c.version == version,
                or_(table.c.lease_until.is_(None), table.c.lease_until <= now),
            )
            .values(lease_holder=holder, lease_until=until)
        )
        return bool(self._run(lambda connection: connection.execute(query).rowcount == 1))

    def _consume(self, digests: list[str], until: float, now: float) -> bool:
        from sqlalchemy import delete, insert, select

        table = self._consumed

        def work(connection: Connection) -> bool:
            # Expired values go a batch at a time, found through the index on until: bounded work per call.
            stale = list(connection.execute(select(table.c.digest).where(table.c.until < now).limit(64)).scalars())
            found = connection.execute(select(table.c.digest, table.c.until).where(table.c.digest.in_(digests)))
            for digest, expires in found:
                if expires >= now:
                    return False
                stale.append(digest)  # recorded before and expired, not purged yet
            if stale:
                connection.execute(delete(table).where(table.c.digest.in_(stale), table.c.until < now))
            # Two racing writers both insert; the primary key lets exactly one of them commit.
            connection.execute(insert(table), [{"digest": d, "until": until} for d in digests])
            return True

        try:
            return bool(self._run(work))
        except TokenStoreError as error:
            if error.error_code in TokenStoreError.error_codes:  # the database is down, not a lost race
                raise

            # _run turns the loser's IntegrityError into a TokenStoreError: look again to tell the two apart.
            def seen(connection: Connection) -> bool:
                query = select(table.c.digest).where(table.c.digest.in_(digests), table.c.until >= now)
                return connection.execute(query).first() is not None

            if self._run(seen):
                return False
            raise

    def _count_attempt(self, registration: str, network: str, start: float, now: float, admit: Admit) -> bool:
        from sqlalchemy import case, delete, func, insert, select, update

        attempts, locks = self._attempts, self._locks

        def total(condition: ColumnElement[bool]) -> ColumnElement[int]:
            return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

        def work(connection: Connection) -> bool:
            # The registration's lock row, updated first: every instance's count waits here until this one commits.
            held = connection.execute(update(locks).where(locks.c.name == registration).values(held_at=now))
            if held.rowcount == 0:
                connection.execute(insert(locks).values(name=registration, held_at=now))
            mine_ = attempts.c.registration == registration
            connection.execute(delete(attempts).where(mine_, attempts.c.at <= start))
            counts = select(
                total(attempts.c.network == network), total(attempts.c.grace == 0), total(attempts.c.grace == 1)
            ).where(mine_)
            mine, counted, grace = connection.execute(counts).one()
            kind = admit(int(mine), int(counted), int(grace))
            if kind is not None:
                row = {"registration": registration, "network": network, "grace": int(kind == "grace"), "at": now}
                connection.execute(insert(attempts).values(row))
            return kind is not None

        try:
            return bool(self._run(work))
        except TokenStoreError as error:
            if error.error_code in TokenStoreError.error_codes:
                raise
            # Two instances inserting a registration's first lock row at once: the loser's insert fails, and its
            # second try finds the row (any other failure fails again, and is raised).
            return bool(self._run(work))

    def _all_subjects(self) -> list[str]:
        from sqlalchemy import select

        query = select(self._table.c.subject).order_by(self._table.c.subject)
        return self._run(lambda connection: [r[0] for r in connection.execute(query)])

    @property
    def url(self) -> str:
        """The database's URL, its password hidden (also one given in its query string)."""
        return shown(self._engine.url)

    def close(self) -> None:
        """Dispose of the engine's connection pool (when the store created the engine)."""
        self._engine.dispose()

    def __repr__(self) -> str:
        return f"<SQLAlchemyTokenStore {self.url}>"

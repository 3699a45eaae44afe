"""open_token_store: one setting names the token store, a file path (SQLite) or a database URL (SQLAlchemy)."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import Any

from ..errors import ConfigurationError
from ._base import BaseTokenStore, TokenCipher

__all__ = ["open_token_store"]

# A URL's scheme (RFC 3986), with SQLAlchemy's "+driver"; "C:\\..." (one letter) stays a Windows path.
_SCHEME = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9.-]+)(?:\+(?P<driver>[A-Za-z0-9_]+))?://")
# The driver the "postgres" extra installs, used when a PostgreSQL URL names none (SQLAlchemy's own default,
# psycopg2, is not installed by it).
_POSTGRES_DRIVER = "psycopg"


def open_token_store(
    location: str | os.PathLike[str] | BaseTokenStore,
    *,
    key: str | bytes | Sequence[str | bytes] | TokenCipher | None = None,
    plaintext: bool = False,
    **options: Any,  # the chosen store's own keyword arguments: its signature checks them
) -> BaseTokenStore:
    """The token store ``location`` names: what ``GIST_TOKEN_DB`` holds in the examples and the command line.

    - a file path (``gist_tokens.sqlite3``, ``/var/lib/app/tokens.sqlite3``), or ``sqlite:///<path>``: a
      :class:`~gist_authlib.tokens.SQLiteTokenStore`, shared by the processes of one machine;
    - any other database URL (``postgresql://user:pw@db.internal/app``, ``mysql+pymysql://...``): a
      :class:`~gist_authlib.tokens.SQLAlchemyTokenStore`, shared by every machine that reaches the database
      (``pip install "gist-authlib[postgres]"`` for PostgreSQL; ``postgresql://`` and ``postgres://`` use the
      psycopg driver it installs);
    - a store: returned as it is.

    Args:
        location: the path, URL or store.
        key: the Fernet key or keys that encrypt the tokens (``GIST_TOKEN_KEY``); see
            :class:`~gist_authlib.tokens.TokenCipher`.
        plaintext: store tokens unencrypted, on purpose.
        **options: passed to the store (``busy_timeout`` for SQLite; ``table_name``, ``engine_options``,
            ``create_table`` for SQLAlchemy).

    Raises:
        ConfigurationError: the location is empty or not usable, no key was given, or the database's driver is not
            installed (the message names the package; it never quotes a password).
        TokenStoreError: the store cannot be opened.
    """
    if isinstance(location, BaseTokenStore):
        return location
    value = os.fspath(location).strip()
    if not value:
        raise ConfigurationError("The token store's location is empty: give a file path or a database URL.")
    found = _SCHEME.match(value)
    if found is None:
        from ._sqlite import SQLiteTokenStore

        return SQLiteTokenStore(value, key=key, plaintext=plaintext, **options)
    scheme = found["scheme"].lower()
    if scheme == "sqlite":
        from ._sqlite import SQLiteTokenStore

        return SQLiteTokenStore(_sqlite_path(value), key=key, plaintext=plaintext, **options)
    if scheme in ("postgres", "postgresql") and not found["driver"]:
        value = f"postgresql+{_POSTGRES_DRIVER}://" + value[found.end() :]
    try:
        from sqlalchemy.exc import ArgumentError, NoSuchModuleError

        from ._sqlalchemy import SQLAlchemyTokenStore
    except ImportError:
        raise ConfigurationError(
            f'A {scheme}:// token store needs SQLAlchemy: pip install "gist-authlib[sqlalchemy]" (for PostgreSQL, '
            '"gist-authlib[postgres]").'
        ) from None
    try:
        return SQLAlchemyTokenStore(value, key=key, plaintext=plaintext, **options)
    except ImportError as exc:
        raise ConfigurationError(
            f"The database driver for {scheme}:// is not installed ({exc.name or 'a module'} is missing)"
            + (': pip install "gist-authlib[postgres]".' if scheme.startswith("postgres") else ".")
        ) from None
    except (ArgumentError, NoSuchModuleError, ValueError):
        # SQLAlchemy's message can quote the URL, password included: name only the scheme.
        raise ConfigurationError(
            f"The token store's URL ({scheme}://...) is not one SQLAlchemy can open: check its form "
            "(dialect+driver://user:password@host/database) and that its dialect is installed."
        ) from None


def _sqlite_path(url: str) -> str:
    """The file of a ``sqlite:///relative`` or ``sqlite:////absolute`` URL; ``sqlite://`` is an in-memory one."""
    rest = url.split("://", 1)[1]
    if not rest:
        return ":memory:"
    if not rest.startswith("/") or len(rest) == 1 or "?" in rest:
        raise ConfigurationError(
            "A SQLite token store URL is sqlite:///relative/path or sqlite:////absolute/path (without options); "
            "or give the file path itself."
        )
    return rest[1:]

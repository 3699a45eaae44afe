"""Token storage: a small protocol and three stores (memory, SQLite, SQLAlchemy), encrypted at rest.

>>> from gist_authlib.tokens import open_token_store
>>> store = open_token_store(os.environ["GIST_TOKEN_DB"], key=os.environ["GIST_TOKEN_KEY"])   # doctest: +SKIP
>>> store.save("user-42", token, workspace_id=1234)                                          # doctest: +SKIP

``GIST_TOKEN_DB`` is a file path (``SQLiteTokenStore``, one machine) or a database URL such as
``postgresql://...`` (``SQLAlchemyTokenStore``, several machines). ``SQLAlchemyTokenStore`` needs the
``sqlalchemy`` extra (``postgres`` for PostgreSQL) and imports SQLAlchemy only when used. The SQL stores are also
a ``LoginState``: they keep what must hold across an app's instances, the used login states and codes and the
install limit's counts (see docs/INSTANCES.md); ``MemoryLoginState`` keeps them in one process.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._base import (
    AsyncTokenStore,
    BaseTokenStore,
    InstallCounter,
    LoginState,
    StoredToken,
    TokenCipher,
    TokenStore,
    admit_install_attempt,
    token_hash,
)
from ._memory import MemoryInstallCounter, MemoryLoginState, MemoryTokenStore
from ._open import open_token_store
from ._sqlite import SQLiteTokenStore

if TYPE_CHECKING:  # imported when first used (the module's __getattr__): SQLAlchemy is an optional extra
    from ._sqlalchemy import SQLAlchemyTokenStore, create_table_ddl

__all__ = [
    "AsyncTokenStore",
    "BaseTokenStore",
    "InstallCounter",
    "LoginState",
    "MemoryInstallCounter",
    "MemoryLoginState",
    "MemoryTokenStore",
    "SQLAlchemyTokenStore",
    "SQLiteTokenStore",
    "StoredToken",
    "TokenCipher",
    "TokenStore",
    "admit_install_attempt",
    "create_table_ddl",
    "open_token_store",
    "token_hash",
]


def __getattr__(name: str) -> object:
    # SQLAlchemy is an optional extra: import its store (and its DDL) only when asked for.
    if name == "SQLAlchemyTokenStore":
        from ._sqlalchemy import SQLAlchemyTokenStore

        return SQLAlchemyTokenStore
    if name == "create_table_ddl":
        from ._sqlalchemy import create_table_ddl

        return create_table_ddl
    raise AttributeError(name)

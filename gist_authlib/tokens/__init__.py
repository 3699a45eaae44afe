"""Token storage: a small protocol and three stores (memory, SQLite, SQLAlchemy), encrypted at rest.

>>> from gist_authlib.tokens import SQLiteTokenStore, TokenCipher
>>> store = SQLiteTokenStore("tokens.sqlite3", key=os.environ["GIST_TOKEN_KEY"])   # doctest: +SKIP
>>> store.save("user-42", token, workspace_id=1234)                                # doctest: +SKIP

``SQLAlchemyTokenStore`` needs the ``sqlalchemy`` extra and imports SQLAlchemy only when used.
"""

from __future__ import annotations

from typing import Any

from ._base import AsyncTokenStore, BaseTokenStore, StoredToken, TokenCipher, TokenStore, token_hash
from ._memory import MemoryTokenStore
from ._sqlite import SQLiteTokenStore

__all__ = [
    "AsyncTokenStore",
    "BaseTokenStore",
    "MemoryTokenStore",
    "SQLAlchemyTokenStore",
    "SQLiteTokenStore",
    "StoredToken",
    "TokenCipher",
    "TokenStore",
    "token_hash",
]


def __getattr__(name: str) -> Any:
    # SQLAlchemy is an optional extra: import its store only when asked for.
    if name == "SQLAlchemyTokenStore":
        from ._sqlalchemy import SQLAlchemyTokenStore

        return SQLAlchemyTokenStore
    raise AttributeError(name)

"""What every token store shares: the stored record, encryption at rest, and the public methods.

A concrete store only moves rows (plain dicts of column values) in and out of its storage; encoding,
encryption, versions and leases are decided here, once.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, ParamSpec, Protocol, TypedDict, TypeVar, Unpack, cast, runtime_checkable

from .._flow import check_token_response
from ..errors import ConfigurationError, StaleTokenError, TokenDecryptionError

if TYPE_CHECKING:
    from _typeshed import SupportsKeysAndGetItem

__all__ = [
    "AsyncTokenStore",
    "BaseTokenStore",
    "InstallCounter",
    "LoginState",
    "StoreOptions",
    "StoredToken",
    "TokenCipher",
    "TokenStore",
    "admit_install_attempt",
]

T = TypeVar("T")
P = ParamSpec("P")
#: How an admitted install attempt is counted: within the total, or as a first attempt past it.
AttemptKind = Literal["total", "grace"]
#: Decides an install attempt from the counts (the network's, the total's, past the total); see _count_attempt.
Admit = Callable[[int, int, int], AttemptKind | None]
PLAINTEXT = "plaintext"


class Row(TypedDict):
    """A stored row: the column values a store moves in and out of its storage (see :data:`COLUMNS`)."""

    subject: str
    token: str | bytes  # the sealed token, as text (or bytes, from a driver that gives it back so)
    key_id: str
    token_hash: str
    refresh_hash: str | None
    scopes: str
    workspace_id: str | None
    workspace_name: str | None
    created_at: float
    updated_at: float
    version: int
    lease_holder: str | None
    lease_until: float | None


#: The columns a row is looked up by, besides its subject.
Lookup = Literal["token_hash", "refresh_hash"]


def as_row(values: SupportsKeysAndGetItem[str, object]) -> Row:
    """A row as a database gave it back (its driver types nothing): the columns of :data:`COLUMNS`, of the types
    the schema gives them."""
    return cast(Row, dict(values))


def changed_columns(row: Row) -> dict[str, object]:
    """The columns of ``row`` an update writes: all but the subject, when it was created, and the version and
    lease, which the store sets itself."""
    return {column: value for column, value in row.items() if column in _UPDATED}


#: The columns of a stored row (the SQL stores use these names as they are).
COLUMNS = (
    "subject",
    "token",
    "key_id",
    "token_hash",
    "refresh_hash",
    "scopes",
    "workspace_id",
    "workspace_name",
    "created_at",
    "updated_at",
    "version",
    "lease_holder",
    "lease_until",
)
_UPDATED = frozenset(COLUMNS) - {"subject", "created_at", "version", "lease_holder", "lease_until"}


@dataclass(frozen=True)
class StoredToken:
    """A token as the store keeps it, decrypted.

    Attributes:
        subject: the key the app chose (its user id) or a Gist workspace id.
        token: the token dict (``access_token``, and ``refresh_token``/``expires_at`` if Gist ever sends them).
        scopes: the scopes granted.
        workspace_id: the Gist workspace the token belongs to, when known.
        workspace_name: its name, when known.
        created_at: when the subject's first token was saved (Unix seconds).
        updated_at: when the token was last written.
        version: increases on every write; the basis of :meth:`TokenStore.compare_and_set`.
    """

    subject: str
    token: dict[str, object]
    scopes: tuple[str, ...]
    workspace_id: str | None
    workspace_name: str | None
    created_at: float
    updated_at: float
    version: int

    def __repr__(self) -> str:
        return (
            f"StoredToken(subject={self.subject!r}, token=<hidden>, scopes={self.scopes!r}, "
            f"workspace_id={self.workspace_id!r}, version={self.version})"
        )


class TokenCipher:
    """Fernet encryption of tokens at rest, with key rotation.

    Args:
        keys: one Fernet key, or several, newest first: the first encrypts, all decrypt (so an old key can stay
            until :meth:`BaseTokenStore.rotate_keys` has re-encrypted everything with the new one). Several keys
            are a list, or one string of keys separated by commas, as ``GIST_TOKEN_KEY`` holds them
            (``"new-key,old-key"``; spaces around each are ignored).

    Make a key with :meth:`generate_key` and keep it outside the database (an environment variable or a
    secrets manager).

    Raises:
        ConfigurationError: no key, or one that is not a Fernet key (the message says which position, never a key).
    """

    def __init__(self, keys: str | bytes | Sequence[str | bytes]) -> None:
        from cryptography.fernet import Fernet, MultiFernet

        if isinstance(keys, bytes):
            keys = keys.decode("ascii", "replace")
        # Fernet keys are url-safe base64, which never holds a comma.
        items = [key.strip() for key in keys.split(",")] if isinstance(keys, str) else list(keys)
        if not items:
            raise ConfigurationError("TokenCipher needs at least one key (TokenCipher.generate_key() makes one).")
        fernets = []
        for position, key in enumerate(items, 1):
            try:
                fernets.append(Fernet(key))
            except (ValueError, TypeError):
                which = (
                    f"Key {position} of {len(items)} in the token-store keys"
                    if len(items) > 1
                    else "The token-store key"
                )
                raise ConfigurationError(
                    f"{which} is not a valid Fernet key (32 url-safe base64-encoded bytes; several keys are "
                    "separated by commas, newest first). Make one with gist_authlib.tokens.TokenCipher.generate_key()."
                ) from None
        self._fernet = MultiFernet(fernets)
        self.key_ids = [_key_id(k) for k in items]

    @staticmethod
    def generate_key() -> str:
        """A new random key, as text."""
        from cryptography.fernet import Fernet

        return Fernet.generate_key().decode()

    def encrypt(self, data: bytes) -> bytes:
        return self._fernet.encrypt(data)

    def decrypt(self, data: bytes) -> bytes:
        return self._fernet.decrypt(data)

    def __repr__(self) -> str:
        return f"TokenCipher(key_ids={self.key_ids!r})"


def _key_id(key: str | bytes) -> str:
    raw = key.encode() if isinstance(key, str) else key
    return "k-" + hashlib.sha256(raw).hexdigest()[:10]


def token_hash(token: str) -> str:
    """A one-way fingerprint of an access or refresh token, to find its row without storing it in clear."""
    return hashlib.sha256(token.encode()).hexdigest()


@runtime_checkable
class TokenStore(Protocol):
    """The synchronous token-store protocol; every method is atomic."""

    def save(
        self,
        subject: str,
        token: Mapping[str, object],
        *,
        scopes: Iterable[str] | None = None,
        workspace_id: str | int | None = None,
        workspace_name: str | None = None,
    ) -> StoredToken: ...

    def get(self, subject: str) -> StoredToken | None: ...

    def delete(self, subject: str) -> bool: ...

    def delete_token(self, token: Mapping[str, object] | str) -> bool: ...

    def find_by_token(self, token: Mapping[str, object] | str) -> StoredToken | None: ...

    def find_by_refresh_token(self, refresh_token: str) -> StoredToken | None: ...

    def list_by_workspace(self, workspace_id: str | int) -> list[StoredToken]: ...

    def compare_and_set(self, subject: str, token: Mapping[str, object], *, expected_version: int) -> StoredToken: ...

    def acquire_refresh_lease(self, subject: str, *, version: int, holder: str, ttl: float = 30.0) -> bool: ...


@runtime_checkable
class InstallCounter(Protocol):
    """Where :class:`~gist_authlib.InstallLimit` counts Gist-initiated install attempts: process memory
    (:class:`~gist_authlib.tokens.MemoryInstallCounter`, the default) or a token store's database, which every
    instance using that database shares."""

    def count_install_attempt(
        self, network: str, *, registration: str, now: float, window: float, per_client: int, total: int
    ) -> bool:
        """Count one attempt from ``network`` for ``registration`` at ``now``, atomically, when
        :func:`admit_install_attempt` admits it over the attempts of the last ``window`` seconds; False (and
        nothing counted) when it does not."""
        ...


@runtime_checkable
class LoginState(InstallCounter, Protocol):
    """What the login core records between callbacks: the used login states and codes (replay protection) and
    the install limit's counts. The SQL stores keep it in their database, which every instance using it shares;
    :class:`~gist_authlib.tokens.MemoryLoginState` keeps it in process memory.

    Attributes:
        shared: True when every process using the same storage sees the same records.
    """

    shared: bool

    def consume(self, digests: Iterable[str], *, ttl: float) -> bool:
        """Record one-time values (hashes of a login's state and code) as used, for ``ttl`` seconds; False,
        recording nothing, when any of them was recorded before and has not expired."""
        ...


def admit_install_attempt(mine: int, counted: int, grace: int, *, per_client: int, total: int) -> AttemptKind | None:
    """The install limit's rule, the same wherever the attempts are counted.

    Args:
        mine: attempts of the caller's network within the window.
        counted: attempts within the window counted in the total.
        grace: first attempts let through past the total within the window.
        per_client: the most a network may make within the window.
        total: the most all networks may make within the window before only first attempts pass.

    Returns:
        ``"total"`` or ``"grace"`` (how to count the attempt), or ``None``: refused. A network that has made no
        attempt within the window still passes when the total is spent, so that a few networks cannot lock
        every genuine install out, up to ``total`` such first attempts: the cost stays bounded by twice
        ``total`` a window.
    """
    if mine >= per_client:
        return None
    if counted < total:
        return "total"
    if mine or grace >= total:
        return None
    return "grace"


def bounded_key(value: str, limit: int = 64) -> str:
    """``value`` as it is when short enough for a key column, else its SHA-256 (a forwarded hop that is not an
    address can be any text)."""
    return value if len(value) <= limit else hashlib.sha256(value.encode()).hexdigest()[:limit]


class StoreOptions(TypedDict, total=False):
    """What every store takes besides where it keeps the tokens (see :class:`BaseTokenStore`)."""

    key: str | bytes | Sequence[str | bytes] | TokenCipher | None
    plaintext: bool
    clock: Callable[[], float]


class BaseTokenStore:
    """The logic of every store; subclasses implement the ``_``-prefixed row operations.

    Args:
        key: a Fernet key or a list of them (see :class:`TokenCipher`), or a :class:`TokenCipher`.
        plaintext: store tokens unencrypted; must be asked for explicitly when no key is given.
        clock: the time source.
    """

    #: Whether this store may hold tokens in clear without ``plaintext=True`` (only the memory store).
    _volatile = False

    def __init__(
        self,
        *,
        key: str | bytes | Sequence[str | bytes] | TokenCipher | None = None,
        plaintext: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if key is None and not plaintext and not self._volatile:
            raise ConfigurationError(
                f"{type(self).__name__} needs an encryption key: pass key=... (make one with "
                "gist_authlib.tokens.TokenCipher.generate_key() and keep it outside the database), or pass "
                "plaintext=True to store tokens unencrypted on purpose."
            )
        if key is not None and plaintext:
            raise ConfigurationError("Pass either key=... or plaintext=True, not both.")
        self._cipher = key if isinstance(key, TokenCipher) else TokenCipher(key) if key is not None else None
        self._clock = clock

    # -- the row operations a store implements -----------------------------------------------------

    def _upsert(self, row: Row) -> Row:
        """Insert, or update every column but ``created_at``, adding 1 to ``version``; return the row."""
        raise NotImplementedError

    def _replace(self, row: Row, expected_version: int) -> Row | None:
        """Update the row if its version is ``expected_version`` (adding 1); None when it is not."""
        raise NotImplementedError

    def _read(self, subject: str) -> Row | None:
        raise NotImplementedError

    def _read_where(self, column: Lookup, value: str) -> Row | None:
        """The row whose ``column`` (``token_hash`` or ``refresh_hash``) is ``value``."""
        raise NotImplementedError

    def _read_workspace(self, workspace_id: str) -> list[Row]:
        raise NotImplementedError

    def _remove(self, subject: str) -> bool:
        raise NotImplementedError

    def _take_lease(self, subject: str, version: int, holder: str, until: float, now: float) -> bool:
        """Set the lease if the row is at ``version`` and holds no live lease."""
        raise NotImplementedError

    def _all_subjects(self) -> list[str]:
        raise NotImplementedError

    # -- public API -------------------------------------------------------------------------------

    def save(
        self,
        subject: str,
        token: Mapping[str, object],
        *,
        scopes: Iterable[str] | None = None,
        workspace_id: str | int | None = None,
        workspace_name: str | None = None,
    ) -> StoredToken:
        """Store ``token`` for ``subject`` (insert or replace, atomically) and return what was stored.

        The token is validated first: a malformed one raises and nothing is written.
        """
        row = self._row(subject, token, scopes, workspace_id, workspace_name)
        return self._decode(self._upsert(row))

    def get(self, subject: str) -> StoredToken | None:
        """The token stored for ``subject``, or ``None``."""
        row = self._read(_subject(subject))
        return self._decode(row) if row is not None else None

    def delete(self, subject: str) -> bool:
        """Forget ``subject``'s token; True if there was one."""
        return self._remove(_subject(subject))

    def find_by_token(self, token: Mapping[str, object] | str) -> StoredToken | None:
        """The stored record holding this access token, or ``None``."""
        row = self._read_where("token_hash", token_hash(_access_token(token)))
        return self._decode(row) if row is not None else None

    def find_by_refresh_token(self, refresh_token: str) -> StoredToken | None:
        """The stored record holding this refresh token, or ``None`` (Authlib's ``update_token`` names only that)."""
        row = self._read_where("refresh_hash", token_hash(refresh_token)) if refresh_token else None
        return self._decode(row) if row is not None else None

    def delete_token(self, token: Mapping[str, object] | str) -> bool:
        """Forget whichever subject holds this access token (e.g. after Gist answered 401)."""
        found = self._read_where("token_hash", token_hash(_access_token(token)))
        return self._remove(found["subject"]) if found is not None else False

    def list_by_workspace(self, workspace_id: str | int) -> list[StoredToken]:
        """Every stored token of a Gist workspace."""
        return [self._decode(row) for row in self._read_workspace(str(workspace_id))]

    def compare_and_set(self, subject: str, token: Mapping[str, object], *, expected_version: int) -> StoredToken:
        """Replace ``subject``'s token only if it is still at ``expected_version`` (e.g. after a refresh).

        Raises:
            StaleTokenError: another writer got there first; the newer token is kept.
        """
        current = self._read(_subject(subject))
        if current is None:
            raise StaleTokenError(subject, expected_version, None)
        row = self._row(
            subject,
            token,
            current["scopes"].split() if current["scopes"] else None,
            current["workspace_id"],
            current["workspace_name"],
        )
        written = self._replace(row, expected_version)
        if written is None:
            latest = self._read(_subject(subject))
            raise StaleTokenError(subject, expected_version, latest["version"] if latest else None)
        return self._decode(written)

    def acquire_refresh_lease(self, subject: str, *, version: int, holder: str, ttl: float = 30.0) -> bool:
        """Claim the right to refresh ``subject``'s token at ``version``, across processes, for ``ttl`` seconds.

        Exactly one caller gets True; the lease ends with the next write or when ``ttl`` runs out.
        """
        now = self._clock()
        return self._take_lease(_subject(subject), version, holder, now + ttl, now)

    def subjects(self) -> list[str]:
        """Every subject that has a stored token, sorted."""
        return sorted(self._all_subjects())

    def migrate(self) -> int:
        """Bring every row up to this store's rules; returns how many rows were rewritten.

        Rows stored in plaintext (before a key was configured) are encrypted, and rows written by gist_authlib
        0.1 (whose ciphertext named no subject) are bound to their subject. An encrypted store refuses to read
        such rows until this explicit call, so that a row planted in plaintext, or a ciphertext copied from
        another subject's row, is never taken for a token.
        """
        count = 0
        for subject in self._all_subjects():
            row = self._read(subject)
            if row is None:
                continue
            bound, payload = self._open(row)
            in_clear = row["key_id"] == PLAINTEXT and self._cipher is not None
            if bound and (not in_clear or payload["subject"] != subject):
                continue  # up to date, or a copied row, which is never adopted
            token = self._token_in(row, payload) if bound else payload
            try:
                self.compare_and_set(subject, token, expected_version=int(row["version"]))
                count += 1
            except StaleTokenError:
                continue  # rewritten meanwhile, by then in the current form
        return count

    def rotate_keys(self) -> int:
        """Re-encrypt every token with the first key; returns how many were rewritten."""
        count = 0
        for subject in self._all_subjects():
            row = self._read(subject)
            if row is None or self._cipher is None or row["key_id"] == self._cipher.key_ids[0]:
                continue
            stored = self._decode(row)
            try:
                self.compare_and_set(subject, stored.token, expected_version=stored.version)
                count += 1
            except StaleTokenError:
                continue  # rewritten meanwhile, by then with the first key
        return count

    def close(self) -> None:
        """Release the store's connections."""

    def __enter__(self: T) -> T:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- encoding ---------------------------------------------------------------------------------

    def _row(
        self,
        subject: str,
        token: Mapping[str, object],
        scopes: Iterable[str] | None,
        workspace_id: str | int | None,
        workspace_name: str | None,
    ) -> Row:
        checked = check_token_response(token)
        if scopes is None:
            scope = checked.get("scope")
            scopes = scope.split() if isinstance(scope, str) else ()
        blob, key_id = self._seal(_subject(subject), checked)
        now = self._clock()
        return {
            "subject": _subject(subject),
            "token": blob,
            "key_id": key_id,
            "token_hash": token_hash(checked["access_token"]),
            "refresh_hash": token_hash(str(checked["refresh_token"])) if checked.get("refresh_token") else None,
            "scopes": " ".join(scopes),
            "workspace_id": str(workspace_id) if workspace_id is not None else None,
            "workspace_name": workspace_name,
            "created_at": now,
            "updated_at": now,
            "version": 1,
            "lease_holder": None,
            "lease_until": None,
        }

    def _seal(self, subject: str, token: Mapping[str, object]) -> tuple[str, str]:
        """The stored form of ``token`` and its key id: the subject goes inside the ciphertext with it, so a
        ciphertext copied into another subject's row does not decrypt as that subject's token."""
        payload = json.dumps({"subject": subject, "token": token}, separators=(",", ":"), sort_keys=True).encode()
        if self._cipher is not None:
            return self._cipher.encrypt(payload).decode(), self._cipher.key_ids[0]
        return base64.b64encode(payload).decode(), PLAINTEXT

    def _open(self, row: Row) -> tuple[bool, dict[str, object]]:
        """(bound, payload) of a row: ``bound`` when the payload names its subject (written by this version)."""
        blob = row["token"]
        raw = blob.encode() if isinstance(blob, str) else bytes(blob)
        known = self._cipher.key_ids if self._cipher else []
        if row["key_id"] == PLAINTEXT:
            try:
                payload = json.loads(base64.b64decode(raw))
            except ValueError:
                raise TokenDecryptionError(row["subject"], PLAINTEXT, known, tampered=True) from None
        else:
            if self._cipher is None:
                raise TokenDecryptionError(row["subject"], row["key_id"], known)
            from cryptography.fernet import InvalidToken

            try:
                payload = json.loads(self._cipher.decrypt(raw))
            except InvalidToken:
                raise TokenDecryptionError(
                    row["subject"], row["key_id"], known, tampered=row["key_id"] in known
                ) from None
        if not isinstance(payload, dict):
            raise TokenDecryptionError(row["subject"], row["key_id"], known, tampered=True)
        return set(payload) == {"subject", "token"}, payload

    def _token_in(self, row: Row, payload: dict[str, object]) -> dict[str, object]:
        """The token a bound payload holds: a JSON object, unless the row was tampered with."""
        token = payload["token"]
        if not isinstance(token, dict):
            known = self._cipher.key_ids if self._cipher else []
            raise TokenDecryptionError(row["subject"], row["key_id"], known, tampered=True)
        return token

    def _decode(self, row: Row) -> StoredToken:
        bound, payload = self._open(row)
        known = self._cipher.key_ids if self._cipher else []
        if self._cipher is not None and row["key_id"] == PLAINTEXT:
            raise TokenDecryptionError(row["subject"], PLAINTEXT, known, unbound=True)
        if not bound:
            raise TokenDecryptionError(row["subject"], row["key_id"], known, unbound=True)
        if payload["subject"] != row["subject"]:
            raise TokenDecryptionError(row["subject"], row["key_id"], known, tampered=True)
        return StoredToken(
            subject=row["subject"],
            token=dict(self._token_in(row, payload)),
            scopes=tuple(row["scopes"].split()) if row["scopes"] else (),
            workspace_id=row["workspace_id"],
            workspace_name=row["workspace_name"],
            created_at=float(row["created_at"]),
            updated_at=float(row["updated_at"]),
            version=int(row["version"]),
        )

    def __repr__(self) -> str:
        mode = "plaintext" if self._cipher is None else f"keys={self._cipher.key_ids}"
        return f"<{type(self).__name__} {mode}>"


class DatabaseLoginState:
    """:class:`LoginState` kept in a SQL store's database (mixed into the SQL stores), shared by every process
    using the database; the store implements the two row operations."""

    #: False only for an in-memory SQLite database, which lives in one process.
    shared = True
    _clock: Callable[[], float]

    def _consume(self, digests: list[str], until: float, now: float) -> bool:
        """Atomically: forget entries expired by ``now``; if none of ``digests`` is recorded, record them all
        (valid until ``until``) and return True; else record nothing and return False."""
        raise NotImplementedError

    def _count_attempt(self, registration: str, network: str, start: float, now: float, admit: Admit) -> bool:
        """Atomically: forget ``registration``'s attempts made at or before ``start``; ask ``admit`` with the
        counts of what is left (the network's, the total's, the first attempts past the total); record one attempt
        of ``network`` at ``now`` of the kind it answers and return True, or record nothing and return False."""
        raise NotImplementedError

    def consume(self, digests: Iterable[str], *, ttl: float) -> bool:
        """Record one-time values (hashes of a login's state and code) as used, for ``ttl`` seconds.

        Returns False, recording nothing, when any of them was recorded before: the login core then refuses
        the callback as a replay before any token request. Atomic across every process sharing the store.
        """
        now = self._clock()
        return self._consume(list(digests), now + ttl, now)

    def count_install_attempt(
        self, network: str, *, registration: str, now: float, window: float, per_client: int, total: int
    ) -> bool:
        """Count one Gist-initiated install attempt from ``network`` (see :class:`InstallCounter`), atomically
        across every process sharing the store; False, counting nothing, when the limit is reached.

        At most twice ``total`` attempts of a registration are kept (the refused ones are not recorded), and
        those older than ``window`` seconds are deleted by the next call.
        """

        def admit(mine: int, counted: int, grace: int) -> AttemptKind | None:
            return admit_install_attempt(mine, counted, grace, per_client=per_client, total=total)

        return self._count_attempt(bounded_key(registration), bounded_key(network), now - window, now, admit)


def _subject(subject: str) -> str:
    value = str(subject)
    if not value or len(value) > 255:
        raise ValueError("A token subject must be a non-empty string of at most 255 characters.")
    return value


def _access_token(token: Mapping[str, object] | str) -> str:
    value = token if isinstance(token, str) else token.get("access_token")
    if not isinstance(value, str) or not value:
        raise ValueError("Expected an access token string or a token dict.")
    return value


class _About(TypedDict, total=False):
    """What :meth:`TokenStore.save` records beside the token."""

    scopes: Iterable[str] | None
    workspace_id: str | int | None
    workspace_name: str | None


class AsyncTokenStore:
    """The async form of a store: each call runs the wrapped synchronous store in a worker thread.

    ``store = AsyncTokenStore(SQLiteTokenStore(path, key=...))``; then ``await store.get(subject)``.
    """

    def __init__(self, store: TokenStore) -> None:
        self.sync = store

    async def _run(self, func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        import functools

        import anyio.to_thread

        return await anyio.to_thread.run_sync(functools.partial(func, *args, **kwargs))

    async def save(self, subject: str, token: Mapping[str, object], **about: Unpack[_About]) -> StoredToken:
        """See :meth:`BaseTokenStore.save`."""
        return await self._run(self.sync.save, subject, token, **about)

    async def get(self, subject: str) -> StoredToken | None:
        """See :meth:`BaseTokenStore.get`."""
        return await self._run(self.sync.get, subject)

    async def delete(self, subject: str) -> bool:
        """See :meth:`BaseTokenStore.delete`."""
        return await self._run(self.sync.delete, subject)

    async def delete_token(self, token: Mapping[str, object] | str) -> bool:
        """See :meth:`BaseTokenStore.delete_token`."""
        return await self._run(self.sync.delete_token, token)

    async def find_by_token(self, token: Mapping[str, object] | str) -> StoredToken | None:
        """See :meth:`BaseTokenStore.find_by_token`."""
        return await self._run(self.sync.find_by_token, token)

    async def find_by_refresh_token(self, refresh_token: str) -> StoredToken | None:
        """See :meth:`BaseTokenStore.find_by_refresh_token`."""
        return await self._run(self.sync.find_by_refresh_token, refresh_token)

    async def list_by_workspace(self, workspace_id: str | int) -> list[StoredToken]:
        """See :meth:`BaseTokenStore.list_by_workspace`."""
        return await self._run(self.sync.list_by_workspace, workspace_id)

    async def compare_and_set(self, subject: str, token: Mapping[str, object], *, expected_version: int) -> StoredToken:
        """See :meth:`BaseTokenStore.compare_and_set`."""
        return await self._run(self.sync.compare_and_set, subject, token, expected_version=expected_version)

    def __repr__(self) -> str:
        return f"AsyncTokenStore({self.sync!r})"

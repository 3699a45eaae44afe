"""DjangoTokenStore: Gist tokens in the Django project's own database, through the app's models and migrations."""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

from django.db import DatabaseError, IntegrityError, router, transaction
from django.db.models import F, Q, QuerySet

from ..errors import ConfigurationError, TokenStoreError
from ..tokens._base import (
    COLUMNS,
    Admit,
    BaseTokenStore,
    DatabaseLoginState,
    Lookup,
    Row,
    TokenCipher,
    as_row,
    changed_columns,
)

if TYPE_CHECKING:
    from .models import GistToken

__all__ = ["DjangoTokenStore", "default_store"]

T = TypeVar("T")
#: Keys as a project's settings give them (a list becomes a tuple: the ciphers are cached by key).
Keys = str | bytes | tuple[str | bytes, ...]
_LOOKUPS = frozenset({"token_hash", "refresh_hash"})


class DjangoTokenStore(DatabaseLoginState, BaseTokenStore):
    """Tokens in the project's database (the ``gist_authlib`` app's tables), encrypted as every store's are.

    Shared by every process and machine that uses the database, as are the used login states and codes and the
    install limit's counts. Needs ``"gist_authlib.django"`` in ``INSTALLED_APPS`` and ``manage.py migrate``.

    Args:
        key: a Fernet key or a list of keys (the first encrypts). By default ``settings.GIST_TOKEN_KEY``, else the
            environment's ``GIST_TOKEN_KEY``, read when a token is written or read: a project without one starts,
            and its first login fails with a :class:`~gist_authlib.ConfigurationError` that says what to set.
        plaintext: store tokens unencrypted, on purpose.
        clock: the time source.
    """

    def __init__(
        self,
        *,
        key: str | bytes | Sequence[str | bytes] | TokenCipher | None = None,
        plaintext: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._given: TokenCipher | None = None
        self._from_settings = key is None and not plaintext
        if self._from_settings:
            self._clock = clock
        else:
            super().__init__(key=key, plaintext=plaintext, clock=clock)

    @property  # read from the settings when no key was given
    def _cipher(self) -> TokenCipher | None:
        if not self._from_settings:
            return self._given
        return _cipher_of(_configured_key())

    @_cipher.setter
    def _cipher(self, value: TokenCipher | None) -> None:
        self._given = value

    # -- the row operations ---------------------------------------------------------------------------

    def _upsert(self, row: Row) -> Row:
        model = _token_model()

        def work() -> Row:
            if not self._bump(model.objects.filter(subject=row["subject"]), row):
                try:
                    with transaction.atomic(using=self._db()):
                        model.objects.create(**row)
                except IntegrityError:  # another writer inserted it meanwhile: update theirs
                    self._bump(model.objects.filter(subject=row["subject"]), row)
            found = self._select(row["subject"])
            assert found is not None
            return found

        return self._run(work)

    def _replace(self, row: Row, expected_version: int) -> Row | None:
        model = _token_model()

        def work() -> Row | None:
            rows = model.objects.filter(subject=row["subject"], version=expected_version)
            return self._select(row["subject"]) if self._bump(rows, row) else None

        return self._run(work)

    def _read(self, subject: str) -> Row | None:
        return self._run(lambda: self._select(subject))

    def _read_where(self, column: Lookup, value: str) -> Row | None:
        if column not in _LOOKUPS:
            raise ValueError(f"Cannot look tokens up by {column!r}.")
        found = self._run(lambda: _token_model().objects.filter(**{column: value}).values(*COLUMNS).first())
        return as_row(found) if found is not None else None

    def _read_workspace(self, workspace_id: str) -> list[Row]:
        rows = _token_model().objects.filter(workspace_id=workspace_id).order_by("subject").values(*COLUMNS)
        return self._run(lambda: [as_row(row) for row in rows])

    def _remove(self, subject: str) -> bool:
        return bool(self._run(lambda: _token_model().objects.filter(subject=subject).delete()[0]))

    def _take_lease(self, subject: str, version: int, holder: str, until: float, now: float) -> bool:
        rows = _token_model().objects.filter(
            Q(lease_until__isnull=True) | Q(lease_until__lte=now), subject=subject, version=version
        )
        return bool(self._run(lambda: rows.update(lease_holder=holder, lease_until=until) == 1))

    def _all_subjects(self) -> list[str]:
        return self._run(lambda: list(_token_model().objects.values_list("subject", flat=True)))

    def _consume(self, digests: list[str], until: float, now: float) -> bool:
        from .models import ConsumedValue

        self._run(lambda: ConsumedValue.objects.filter(until__lt=now).delete())
        try:
            # The primary key lets exactly one of two racing writers insert a digest; the other's insert fails.
            self._run(
                lambda: ConsumedValue.objects.bulk_create([ConsumedValue(digest=d, until=until) for d in digests])
            )
        except TokenStoreError as error:
            if isinstance(error.__cause__, IntegrityError):
                return False
            raise
        return True

    def _count_attempt(self, registration: str, network: str, start: float, now: float, admit: Admit) -> bool:
        from .models import InstallAttempts

        def work() -> bool:
            rows = InstallAttempts.objects.filter(registration=registration)
            # An update first: it holds the row (a write lock on SQLite) until this transaction ends, so every
            # instance's count waits here for the one before it.
            if not rows.update(registration=registration):
                InstallAttempts.objects.create(registration=registration)
            held = rows.get()
            attempts = [attempt for attempt in held.attempts if attempt[2] > start]
            mine = sum(attempt[0] == network for attempt in attempts)
            grace = sum(attempt[1] for attempt in attempts)
            kind = admit(mine, len(attempts) - grace, grace)
            if kind is not None:
                attempts.append([network, int(kind == "grace"), now])
            held.attempts = attempts
            held.save(update_fields=["attempts"])
            return kind is not None

        try:
            return bool(self._run(work))
        except TokenStoreError as error:
            if not isinstance(error.__cause__, IntegrityError):
                raise
            # Two instances creating a registration's row at once: the loser's second try finds it.
            return bool(self._run(work))

    # -- helpers --------------------------------------------------------------------------------------

    def _db(self) -> str:
        alias: str = router.db_for_write(_token_model())
        return alias

    def _run(self, work: Callable[[], T]) -> T:
        """``work`` in one transaction; a database failure becomes a :class:`TokenStoreError` that quotes nothing
        (a driver's message can quote the values it was given)."""
        try:
            with transaction.atomic(using=self._db()):
                return work()
        except DatabaseError as exc:
            raise TokenStoreError(
                f"The token database failed ({type(exc).__name__}); nothing was written. If its tables are "
                "missing, run python manage.py migrate."
            ) from exc

    def _select(self, subject: str) -> Row | None:
        found = _token_model().objects.filter(subject=subject).values(*COLUMNS).first()
        return as_row(found) if found is not None else None

    @staticmethod
    def _bump(rows: QuerySet, row: Row) -> bool:
        """Write ``row``'s new values on ``rows``, with the next version and no lease; whether a row was written."""
        changes = changed_columns(row)
        written = rows.update(**changes, version=F("version") + 1, lease_holder=None, lease_until=None)
        return bool(written)

    def __repr__(self) -> str:
        if self._from_settings:
            return "<DjangoTokenStore key from settings.GIST_TOKEN_KEY>"
        mode = "plaintext" if self._given is None else f"keys={self._given.key_ids}"
        return f"<DjangoTokenStore {mode}>"


def _token_model() -> type[GistToken]:
    from .models import GistToken

    return GistToken


def _configured_key() -> Keys:
    from django.conf import settings

    key = getattr(settings, "GIST_TOKEN_KEY", None) or os.environ.get("GIST_TOKEN_KEY")
    if not key:
        raise ConfigurationError(
            "The Django token store needs an encryption key: set GIST_TOKEN_KEY in settings.py (from the "
            "environment or your secrets, never in the code; make one with "
            "python -c 'from gist_authlib.tokens import TokenCipher; print(TokenCipher.generate_key())'). "
            "Tokens are never stored in clear."
        )
    return tuple(key) if isinstance(key, list) else key


@functools.lru_cache(maxsize=8)
def _cipher_of(key: Keys) -> TokenCipher:
    return TokenCipher(key)


def default_store() -> DjangoTokenStore | None:
    """The token store of a Django registration given none: a :class:`DjangoTokenStore` when
    ``"gist_authlib.django"`` is in ``INSTALLED_APPS``, else ``None``. Its key is read when a token is written
    (``settings.GIST_TOKEN_KEY``, else the environment's ``GIST_TOKEN_KEY``)."""
    from django.apps import apps

    return DjangoTokenStore() if apps.is_installed("gist_authlib.django") else None

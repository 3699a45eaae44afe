"""MemoryTokenStore: tokens in a dict, for tests and single-process experiments (lost on restart); and
MemoryLoginState, the login's used states and codes and install counts in process memory."""

from __future__ import annotations

import collections
import heapq
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Unpack

from ._base import Admit, AttemptKind, BaseTokenStore, Lookup, Row, StoreOptions, admit_install_attempt

__all__ = ["MemoryInstallCounter", "MemoryLoginState", "MemoryTokenStore"]

log = logging.getLogger("gist_authlib.tokens")


class _Attempts:
    """One registration's install attempts within the window: their times, in all and per network."""

    def __init__(self) -> None:
        self.counted: collections.deque[float] = collections.deque()
        self.grace: collections.deque[float] = collections.deque()  # first attempts let through past the total
        self.by_network: collections.OrderedDict[str, collections.deque[float]] = collections.OrderedDict()

    def count(self, network: str, start: float, now: float, admit: Admit, max_networks: int) -> bool:
        for times in (self.counted, self.grace):
            while times and times[0] <= start:
                times.popleft()
        mine = self.by_network.get(network)
        if mine is None:
            mine = self.by_network[network] = collections.deque()
        self.by_network.move_to_end(network)
        while mine and mine[0] <= start:
            mine.popleft()
        kind = admit(len(mine), len(self.counted), len(self.grace))
        if kind is not None:
            (self.counted if kind == "total" else self.grace).append(now)
            mine.append(now)
        # Bounded: networks idle for a whole window go, and at most max_networks are kept.
        while self.by_network:
            oldest_key, oldest = next(iter(self.by_network.items()))
            if len(self.by_network) <= max_networks and oldest and oldest[-1] > start:
                break
            del self.by_network[oldest_key]
        return kind is not None


class MemoryLoginState:
    """The login's records in process memory (a :class:`~gist_authlib.tokens.LoginState`): used login states and
    codes, and install attempts. The login core's default for a registration without a SQL store; each process
    (each app instance) keeps its own, where a SQL store's database is shared by every instance.

    Both records are bounded. Used values are forgotten once expired; when ``max_entries`` live ones are held (a
    flood of new callbacks), each new value pushes out the one closest to its expiry, so a flood never grows the
    record and entries are only pushed out before their expiry when the cap is full of live ones (that replay
    then costs one token request, which Gist refuses: its codes are single use too). A warning is logged once.

    Args:
        max_entries: how many used values are remembered at once.
        max_networks: how many networks are remembered at once per registration (older ones are forgotten first).
        clock: the time source of :meth:`consume`.
    """

    shared = False

    def __init__(
        self, *, max_entries: int = 100_000, max_networks: int = 100_000, clock: Callable[[], float] = time.time
    ) -> None:
        self._max_entries, self._max_networks, self._clock = max_entries, max_networks, clock
        self._lock = threading.Lock()
        # Keys are the first 16 bytes of each digest: 128 bits tell used values apart, at a fraction of the memory.
        self._seen: dict[bytes, float] = {}
        self._expiries: list[tuple[float, bytes]] = []  # a heap: the entry closest to its expiry first
        self._overflowed = False
        self._registrations: dict[str, _Attempts] = {}

    def consume(self, digests: Iterable[str], *, ttl: float) -> bool:
        """See :class:`~gist_authlib.tokens.LoginState`."""
        now = self._clock()
        keys = [bytes.fromhex(digest)[:16] for digest in digests]
        with self._lock:
            while self._expiries and self._expiries[0][0] < now:
                self._forget()
            if any(key in self._seen for key in keys):
                return False
            until = now + ttl  # one float for both records of every value
            for key in keys:
                self._seen[key] = until
                heapq.heappush(self._expiries, (until, key))
            while len(self._seen) > self._max_entries:
                self._forget()
                if not self._overflowed:
                    self._overflowed = True
                    log.warning(
                        "The in-memory record of used login states and codes is full (%d live entries): the ones "
                        "closest to their expiry are forgotten early. A flood of callbacks? Give register() a "
                        "token store in a database.",
                        self._max_entries,
                    )
            return True

    def _forget(self) -> None:
        until, key = heapq.heappop(self._expiries)
        if self._seen.get(key) == until:
            del self._seen[key]

    def count_install_attempt(
        self, network: str, *, registration: str, now: float, window: float, per_client: int, total: int
    ) -> bool:
        """See :class:`~gist_authlib.tokens.InstallCounter`."""

        def admit(mine: int, counted: int, grace: int) -> AttemptKind | None:
            return admit_install_attempt(mine, counted, grace, per_client=per_client, total=total)

        with self._lock:
            attempts = self._registrations.setdefault(registration, _Attempts())
            return attempts.count(network, now - window, now, admit, self._max_networks)

    @property
    def used_values(self) -> int:
        """How many used states and codes are remembered (expired ones go at the next ``consume``)."""
        return len(self._seen)

    @property
    def networks(self) -> int:
        """How many networks the install counts remember (with an attempt within the window, at the last count)."""
        with self._lock:
            return sum(len(attempts.by_network) for attempts in self._registrations.values())

    def __repr__(self) -> str:
        return f"MemoryLoginState(max_entries={self._max_entries}, max_networks={self._max_networks})"


#: The former name of :class:`MemoryLoginState`, as :class:`~gist_authlib.InstallLimit`'s default counter.
MemoryInstallCounter = MemoryLoginState


class MemoryTokenStore(BaseTokenStore):
    """Tokens in process memory. A key is optional here (nothing reaches a disk); with one, the rows are
    encrypted just as the persistent stores' are, which makes it a faithful stand-in in tests."""

    _volatile = True

    def __init__(self, **kwargs: Unpack[StoreOptions]) -> None:
        super().__init__(**kwargs)
        self._rows: dict[str, Row] = {}
        self._lock = threading.Lock()

    def _upsert(self, row: Row) -> Row:
        with self._lock:
            old = self._rows.get(row["subject"])
            if old is not None:
                row = {**row, "created_at": old["created_at"], "version": old["version"] + 1}
            self._rows[row["subject"]] = row
            return row.copy()

    def _replace(self, row: Row, expected_version: int) -> Row | None:
        with self._lock:
            old = self._rows.get(row["subject"])
            if old is None or old["version"] != expected_version:
                return None
            row = {**row, "created_at": old["created_at"], "version": expected_version + 1}
            self._rows[row["subject"]] = row
            return row.copy()

    def _read(self, subject: str) -> Row | None:
        with self._lock:
            row = self._rows.get(subject)
            return row.copy() if row is not None else None

    def _read_where(self, column: Lookup, value: str) -> Row | None:
        with self._lock:
            return next((r.copy() for r in self._rows.values() if r[column] == value), None)

    def _read_workspace(self, workspace_id: str) -> list[Row]:
        with self._lock:
            return [r.copy() for r in self._rows.values() if r["workspace_id"] == workspace_id]

    def _remove(self, subject: str) -> bool:
        with self._lock:
            return self._rows.pop(subject, None) is not None

    def _take_lease(self, subject: str, version: int, holder: str, until: float, now: float) -> bool:
        with self._lock:
            row = self._rows.get(subject)
            if row is None or row["version"] != version or (row["lease_until"] or 0) > now:
                return False
            row["lease_holder"], row["lease_until"] = holder, until
            return True

    def _all_subjects(self) -> list[str]:
        with self._lock:
            return list(self._rows)

"""MemoryTokenStore: tokens in a dict, for tests and single-process experiments (lost on restart); and
MemoryInstallCounter, the install limit's counts in process memory."""

from __future__ import annotations

import collections
import threading
from typing import Any

from ._base import Admit, AttemptKind, BaseTokenStore, Row, admit_install_attempt

__all__ = ["MemoryInstallCounter", "MemoryTokenStore"]


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


class MemoryInstallCounter:
    """Install attempts counted in process memory: :class:`~gist_authlib.InstallLimit`'s default, which each
    process (each app instance) keeps for itself. A token store shared by every instance counts them in its
    database instead (``register`` does so when given one).

    Args:
        max_networks: how many networks are remembered at once per registration (older ones are forgotten first).
    """

    def __init__(self, *, max_networks: int = 100_000) -> None:
        self._max_networks = max_networks
        self._lock = threading.Lock()
        self._registrations: dict[str, _Attempts] = {}

    def count_install_attempt(
        self, network: str, *, registration: str, now: float, window: float, per_client: int, total: int
    ) -> bool:
        """See :class:`~gist_authlib.tokens.InstallCounter`."""

        def admit(mine: int, counted: int, grace: int) -> AttemptKind | None:
            return admit_install_attempt(mine, counted, grace, per_client=per_client, total=total)

        return self.count(registration, network, now - window, now, admit)

    def count(self, registration: str, network: str, start: float, now: float, admit: Admit) -> bool:
        """The row operation of :meth:`BaseTokenStore._count_attempt`, in memory."""
        with self._lock:
            attempts = self._registrations.setdefault(registration, _Attempts())
            return attempts.count(network, start, now, admit, self._max_networks)

    def __len__(self) -> int:
        """How many networks are remembered (with an attempt within the window, at the last count)."""
        with self._lock:
            return sum(len(attempts.by_network) for attempts in self._registrations.values())

    def __repr__(self) -> str:
        return f"MemoryInstallCounter(max_networks={self._max_networks})"


class MemoryTokenStore(BaseTokenStore):
    """Tokens in process memory. A key is optional here (nothing reaches a disk); with one, the rows are
    encrypted just as the persistent stores' are, which makes it a faithful stand-in in tests."""

    _volatile = True
    shared = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._rows: dict[str, Row] = {}
        self._consumed: dict[str, float] = {}
        self._attempts = MemoryInstallCounter()
        self._lock = threading.Lock()

    def _upsert(self, row: Row) -> Row:
        with self._lock:
            old = self._rows.get(row["subject"])
            if old is not None:
                row = {**row, "created_at": old["created_at"], "version": old["version"] + 1}
            self._rows[row["subject"]] = row
            return dict(row)

    def _replace(self, row: Row, expected_version: int) -> Row | None:
        with self._lock:
            old = self._rows.get(row["subject"])
            if old is None or old["version"] != expected_version:
                return None
            row = {**row, "created_at": old["created_at"], "version": expected_version + 1}
            self._rows[row["subject"]] = row
            return dict(row)

    def _read(self, subject: str) -> Row | None:
        with self._lock:
            row = self._rows.get(subject)
            return dict(row) if row is not None else None

    def _read_where(self, column: str, value: str) -> Row | None:
        with self._lock:
            return next((dict(r) for r in self._rows.values() if r[column] == value), None)

    def _read_workspace(self, workspace_id: str) -> list[Row]:
        with self._lock:
            return [dict(r) for r in self._rows.values() if r["workspace_id"] == workspace_id]

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

    def _consume(self, digests: list[str], until: float, now: float) -> bool:
        with self._lock:
            self._consumed = {d: t for d, t in self._consumed.items() if t >= now}
            if any(d in self._consumed for d in digests):
                return False
            self._consumed.update(dict.fromkeys(digests, until))
            return True

    def _count_attempt(self, registration: str, network: str, start: float, now: float, admit: Admit) -> bool:
        return self._attempts.count(registration, network, start, now, admit)

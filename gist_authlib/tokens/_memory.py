"""MemoryTokenStore: tokens in a dict, for tests and single-process experiments (lost on restart)."""

from __future__ import annotations

import threading
from typing import Any

from ._base import BaseTokenStore, Row

__all__ = ["MemoryTokenStore"]


class MemoryTokenStore(BaseTokenStore):
    """Tokens in process memory. A key is optional here (nothing reaches a disk); with one, the rows are
    encrypted just as the persistent stores' are, which makes it a faithful stand-in in tests."""

    _volatile = True

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._rows: dict[str, Row] = {}
        self._consumed: dict[str, float] = {}
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

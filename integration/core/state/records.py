"""What the state store takes and gives: the record types, its error, and the names of the
counters' scopes (which the queries keep and ``status`` reads)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class NewEntry:
    """An item fetched from a source, about to enter the inbox."""

    key: str
    """Ordering key: items of one key are applied in inbox order (a conversation)."""
    kind: str
    fingerprint: str
    """Identity for de-duplication: the same item fetched twice has the same fingerprint."""
    payload: str
    """The item as received (JSON text), so it can be re-validated when retried."""
    occurred_at: float | None = None


@dataclass(frozen=True)
class Rejected:
    """A fetched item that failed validation: kept, dead-lettered, never applied as is."""

    key: str
    fingerprint: str
    payload: str
    reason: str


@dataclass(frozen=True)
class InboxEntry:
    seq: int
    source: str
    key: str
    kind: str
    fingerprint: str
    payload: str
    occurred_at: float | None
    attempts: int
    intent_at: float | None = None
    """When an effect of this entry was started (and may have happened) by an earlier attempt."""

    @property
    def intent(self) -> bool:
        return self.intent_at is not None


@dataclass(frozen=True)
class StoredPage:
    new: int
    duplicate: int
    rejected: int


@dataclass(frozen=True)
class DeadLetter:
    id: int
    seq: int | None
    source: str
    key: str
    kind: str
    reason: str
    blocking: bool
    created_at: float
    payload: str


@dataclass(frozen=True)
class Status:
    cursors: dict[str, float]
    inbox: dict[str, int]
    """Inbox entries by state: pending, done, dead."""
    dead_letters: int
    blocked_keys: int
    maps: dict[str, int]
    oldest_pending_at: float | None


class StateError(Exception):
    """The state file cannot be used (e.g. written by a newer version)."""


MAPS = "maps"
"""The counters' scope of map sizes (one counter per namespace)."""


def inbox_scope(source: str) -> str:
    """The counters' scope of a source's inbox entries (one counter per state)."""
    return f"inbox:{source}"


def dead_scope(source: str) -> str:
    """The counters' scope of a source's open dead letters (``open``, ``blocked_keys``)."""
    return f"dead_letters:{source}"


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
"""Built once: ``json.dumps`` with these arguments builds a new encoder on every call."""


def dumps(value: Any) -> str:
    """Canonical JSON: the same value always gives the same text (fingerprints depend on it)."""
    return _CANONICAL.encode(value)


class Row(Protocol):
    """A result row by column name: ``sqlite3.Row`` and ``asyncpg.Record`` alike."""

    def __getitem__(self, key: str, /) -> Any: ...


def entry_from(row: Row) -> InboxEntry:
    return InboxEntry(
        seq=row["seq"],
        source=row["source"],
        key=row["key"],
        kind=row["kind"],
        fingerprint=row["fingerprint"],
        payload=row["payload"],
        occurred_at=row["occurred_at"],
        attempts=row["attempts"],
        intent_at=row["intent_at"],
    )


def dead_letter_from(row: Row) -> DeadLetter:
    return DeadLetter(
        id=row["id"],
        seq=row["seq"],
        source=row["source"],
        key=row["key"],
        kind=row["kind"],
        reason=row["reason"],
        blocking=bool(row["blocking"]),
        created_at=row["created_at"],
        payload=row["payload"],
    )

"""What the query groups (inbox, dead letters, maps, ledger, meta, prune) share: the base their
mixins build on, counter deltas, and ``IN (...)`` lists of bounded length."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import TypeVar

from ..clock import Clock
from .writer import StateFile

T = TypeVar("T")

_IN_CHUNK = 500
"""Values per ``IN (...)`` list: well under SQLite's limit on a statement's parameters."""


class Queries:
    """A group of the store's queries: ``SQLiteStore`` mixes them in and sets these."""

    _file: StateFile
    _clock: Clock
    """Dates the rows written (received_at, finished_at, intents, cursors, ledger rows)."""


def bump(db: sqlite3.Connection, scope: str, name: str, delta: int) -> None:
    """Add ``delta`` to a counter, in the transaction that made the change it counts."""
    if delta:
        db.execute(
            "INSERT INTO counters (scope, name, count) VALUES (?, ?, ?)"
            " ON CONFLICT (scope, name) DO UPDATE SET count = count + excluded.count",
            (scope, name, delta),
        )


def chunks(values: Sequence[T]) -> Iterable[Sequence[T]]:
    for start in range(0, len(values), _IN_CHUNK):
        yield values[start : start + _IN_CHUNK]


def marks(values: Sequence[object]) -> str:
    return ",".join("?" * len(values))

"""``SQLiteStore``: the ``StateStore`` on one SQLite file, the query groups over one writer.

Growth is bounded: ``status`` reads counters kept exact in the transactions that change what they
count (it is read on every ``/metrics`` scrape, and counting a million rows took close to a
second), and ``prune`` deletes finished inbox entries once the source can no longer re-serve them
(see ``prune``).
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from ..clock import Clock, SystemClock
from .dead_letters import DeadLetterQueries
from .inbox import InboxQueries
from .ledger import LedgerQueries
from .maps import MapQueries
from .meta import MetaQueries
from .prune import PruneQueries
from .writer import StateFile, WriteOp

T = TypeVar("T")


class SQLiteStore(
    MetaQueries, InboxQueries, DeadLetterQueries, MapQueries, LedgerQueries, PruneQueries
):
    """``StateStore`` on one SQLite file (WAL), schema created and migrated at open."""

    def __init__(self, path: str | Path, *, clock: Clock | None = None) -> None:
        self.path = str(path)
        self._clock = clock or SystemClock()
        self._file = StateFile(self.path)
        self.inbox_changed = asyncio.Event()

    async def open(self) -> None:
        await self._file.open()

    async def close(self) -> None:
        await self._file.close()

    async def write(self, op: WriteOp[T]) -> T:
        """Run ``op`` in the next write transaction; return once it is committed."""
        return await self._file.write(op)

    @property
    def _reader(self) -> aiosqlite.Connection | None:
        # The read connection, for tests that count what a query costs on it.
        return self._file.reader


@contextlib.asynccontextmanager
async def opened(store: SQLiteStore) -> Any:
    await store.open()
    try:
        yield store
    finally:
        await store.close()

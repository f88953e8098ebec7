"""Retention: finished inbox entries deleted once the source can no longer re-serve them, a
batch per transaction so the writer is never held for long, and the horizon recorded."""

from __future__ import annotations

import sqlite3
from collections import Counter

from .meta import meta_value
from .protocol import PRUNE_BATCH
from .records import inbox_scope
from .sql import Queries, bump, chunks, marks

PRUNED_MARK = "pruned:{source}"
"""The meta row holding a source's latest prune horizon (see ``SQLiteStore.pruned_before``)."""


class PruneQueries(Queries):
    async def prune(
        self,
        source: str,
        occurred_before: float,
        *,
        finished_before: float | None = None,
        batch: int = PRUNE_BATCH,
    ) -> int:
        """Delete the source's finished inbox entries that occurred before ``occurred_before``:
        those applied (done), and those dead whose dead letters are all resolved (with those
        resolved letters). Pending entries and open dead letters are never touched. At most
        ``batch`` entries per transaction, so the writer is never held for long; returns how
        many were deleted.

        An entry's fingerprint de-duplicates only while its row exists: an event the source
        serves again after its entry was pruned enters the inbox as new and is applied again.
        So ``occurred_before`` must be older than anything the source can still re-serve (the
        worker's RETENTION). An entry without ``occurred_at`` (an invalid event) is aged by when
        it was received. The horizon is recorded (``pruned_before``), so a pipeline can tell an
        old event it must not trust the inbox to de-duplicate. With ``finished_before``, only
        entries finished before it too: catching up on an old backlog never prunes what was just
        applied.
        """

        def op(db: sqlite3.Connection) -> int:
            deleted = prune_batch(db, source, occurred_before, finished_before, batch)
            db.execute(
                "INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET"
                " value = excluded.value WHERE CAST(value AS REAL) < CAST(excluded.value AS REAL)",
                (PRUNED_MARK.format(source=source), repr(occurred_before)),
            )
            return deleted

        return await self._file.write_in_batches(op, batch)

    async def pruned_before(self, source: str) -> float | None:
        """The latest horizon the source's inbox was pruned at: entries of events that occurred
        before it may be gone, so those events are no longer de-duplicated. None: never pruned."""
        value = await meta_value(self._file, PRUNED_MARK.format(source=source))
        return float(value) if value is not None else None


# Finished entries older than the horizon, one kind at a time; each uses the inbox_age index.
# A dead entry goes only once no open dead letter points at it (its letters are all resolved).
_PRUNABLE = [
    # Old by both clocks: the event occurred before the horizon (the source cannot serve it
    # again), and the worker finished with it before the horizon too (so catching up on an old
    # backlog never prunes what it has just applied, nor de-duplicates less while it runs).
    "SELECT seq, state FROM inbox WHERE source = ? AND state = 'done' AND occurred_at < ?"
    " AND (? IS NULL OR finished_at < ?) LIMIT ?",
    "SELECT seq, state FROM inbox WHERE source = ? AND state = 'done' AND occurred_at IS NULL"
    " AND received_at < ? AND (? IS NULL OR finished_at < ?) LIMIT ?",
    "SELECT seq, state FROM inbox i WHERE source = ? AND state = 'dead' AND occurred_at < ?"
    " AND (? IS NULL OR finished_at < ?) AND NOT EXISTS (SELECT 1 FROM dead_letters d"
    " WHERE d.seq = i.seq"
    " AND d.resolved_at IS NULL) LIMIT ?",
    "SELECT seq, state FROM inbox i WHERE source = ? AND state = 'dead' AND occurred_at IS NULL"
    " AND received_at < ? AND (? IS NULL OR finished_at < ?) AND NOT EXISTS (SELECT 1 FROM"
    " dead_letters d"
    " WHERE d.seq = i.seq AND d.resolved_at IS NULL) LIMIT ?",
]


def prune_batch(
    db: sqlite3.Connection,
    source: str,
    before: float,
    finished_before: float | None,
    batch: int,
) -> int:
    rows: list[tuple[int, str]] = []
    for query in _PRUNABLE:
        if len(rows) >= batch:
            break
        params = (source, before, finished_before, finished_before, batch - len(rows))
        rows += db.execute(query, params).fetchall()
    removed: Counter[str] = Counter()
    for chunk in chunks(rows):
        seqs = [seq for seq, _ in chunk]
        # Resolved letters are history nobody reads; they point at the rows (a foreign key).
        db.execute(
            f"DELETE FROM dead_letters WHERE resolved_at IS NOT NULL AND seq IN ({marks(seqs)})",
            seqs,
        )
        db.execute(f"DELETE FROM inbox WHERE seq IN ({marks(seqs)})", seqs)
        removed.update(state for _, state in chunk)
    for state, count in removed.items():
        bump(db, inbox_scope(source), state, -count)
    return len(rows)

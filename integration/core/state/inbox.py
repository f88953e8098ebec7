"""The inbox: pages as received, the entries parsed from them, and their way to done.

The inbox is the system of record for what was fetched: a source's events cannot be assumed
replayable, so an item is acknowledged (its cursor advanced) only once it is durably here.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections import Counter
from collections.abc import Sequence

from .meta import upsert_cursor
from .records import (
    InboxEntry,
    NewEntry,
    Rejected,
    StoredPage,
    dead_scope,
    entry_from,
    inbox_scope,
)
from .sql import Queries, bump, chunks, marks

_ENTRY_COLUMNS = "seq, source, key, kind, fingerprint, payload, occurred_at, attempts, intent_at"


class InboxQueries(Queries):
    inbox_changed: asyncio.Event
    """Set whenever new entries enter the inbox: wakes whoever applies them."""

    async def store_page(
        self,
        source: str,
        entries: Sequence[NewEntry],
        rejects: Sequence[Rejected] = (),
        cursor: tuple[str, float] | None = None,
        received_id: int | None = None,
    ) -> StoredPage:
        """Insert a page of fetched items, de-duplicated by fingerprint; dead-letter the rejects;
        for the last page of a window, advance the cursor; and forget the page as received
        (``received_id``): all in one transaction, so the cursor never passes an item that is
        not durably stored, and a page is never in neither place."""
        now = self._clock.now()

        def op(db: sqlite3.Connection) -> StoredPage:
            before = db.total_changes
            db.executemany(
                "INSERT OR IGNORE INTO inbox (source, key, kind, fingerprint, payload,"
                " occurred_at, state, received_at) VALUES (?, ?, ?, ?, ?, ?, 'pending', ?)",
                [
                    (source, e.key, e.kind, e.fingerprint, e.payload, e.occurred_at, now)
                    for e in entries
                ],
            )
            new = db.total_changes - before
            bump(db, inbox_scope(source), "pending", new)
            rejected = 0
            for r in rejects:
                cur = db.execute(
                    "INSERT OR IGNORE INTO inbox (source, key, kind, fingerprint, payload, state,"
                    " received_at, finished_at) VALUES (?, ?, 'invalid', ?, ?, 'dead', ?, ?)",
                    (source, r.key, r.fingerprint, r.payload, now, now),
                )
                if cur.rowcount:
                    rejected += 1
                    db.execute(
                        "INSERT INTO dead_letters (seq, source, key, kind, reason, blocking,"
                        " created_at) VALUES (?, ?, ?, 'invalid', ?, 0, ?)",
                        (cur.lastrowid, source, r.key, r.reason, now),
                    )
            bump(db, inbox_scope(source), "dead", rejected)
            bump(db, dead_scope(source), "open", rejected)
            if cursor is not None:
                upsert_cursor(db, cursor[0], cursor[1], now)
            if received_id is not None:
                db.execute("DELETE FROM received WHERE id = ?", (received_id,))
            return StoredPage(new=new, duplicate=len(entries) - new, rejected=rejected)

        stored = await self._file.write(op)
        if stored.new:
            self.inbox_changed.set()
        return stored

    async def receive(self, source: str, body: bytes) -> int:
        """Store a page exactly as received; returns its id for ``store_page``."""
        now = self._clock.now()

        def op(db: sqlite3.Connection) -> int:
            cur = db.execute(
                "INSERT INTO received (source, body, received_at) VALUES (?, ?, ?)",
                (source, body, now),
            )
            return int(cur.lastrowid or 0)

        return await self._file.write(op)

    async def received(self, source: str) -> list[tuple[int, bytes]]:
        """Pages stored as received whose entries never were (the process died in between)."""
        rows = await self._file.read(
            "SELECT id, body FROM received WHERE source = ? ORDER BY id", (source,)
        )
        return [(int(row[0]), bytes(row[1])) for row in rows]

    async def active_keys(self, source: str, since: float) -> list[str]:
        """Keys with an entry that occurred at or after ``since`` (and not yet pruned)."""
        # The states spelled out let the (source, state, occurred_at) index find the range.
        rows = await self._file.read(
            "SELECT DISTINCT key FROM inbox WHERE source = ?"
            " AND state IN ('pending', 'done', 'dead') AND occurred_at >= ?",
            (source, since),
        )
        return [str(row[0]) for row in rows]

    async def pending(self, source: str, after_seq: int, limit: int) -> list[InboxEntry]:
        """Pending entries after ``after_seq`` in inbox order, skipping blocked keys (those with
        an unresolved blocking dead letter: their later entries wait behind it)."""
        rows = await self._file.read(
            f"SELECT {_ENTRY_COLUMNS} FROM inbox i"
            " WHERE i.source = ? AND i.state = 'pending' AND i.seq > ?"
            " AND NOT EXISTS (SELECT 1 FROM dead_letters d WHERE d.source = i.source"
            "   AND d.key = i.key AND d.blocking = 1 AND d.resolved_at IS NULL)"
            " ORDER BY i.seq LIMIT ?",
            (source, after_seq, limit),
        )
        return [entry_from(row) for row in rows]

    async def blocked_keys(self, source: str) -> set[str]:
        """Keys waiting behind an unresolved blocking dead letter."""
        rows = await self._file.read(
            "SELECT DISTINCT key FROM dead_letters WHERE source = ? AND blocking = 1"
            " AND resolved_at IS NULL",
            (source,),
        )
        return {str(row[0]) for row in rows}

    async def applied_before(self, source: str, key: str, seq: int) -> list[InboxEntry]:
        """Entries of ``key`` before ``seq`` whose effects were made, or may have been: all but
        those dead-lettered as blocking (refused, or given up on, and waiting for a retry). They
        were applied before ``seq``, since a key's entries are applied in inbox order."""
        rows = await self._file.read(
            f"SELECT {_ENTRY_COLUMNS} FROM inbox i WHERE i.source = ? AND i.key = ? AND i.seq < ?"
            " AND i.kind != 'invalid' AND NOT (i.state = 'dead' AND EXISTS (SELECT 1 FROM"
            " dead_letters d WHERE d.seq = i.seq AND d.blocking = 1 AND d.resolved_at IS NULL))"
            " ORDER BY i.seq",
            (source, key, seq),
        )
        return [entry_from(row) for row in rows]

    async def entries_for_key(self, source: str, key: str) -> list[InboxEntry]:
        rows = await self._file.read(
            f"SELECT {_ENTRY_COLUMNS} FROM inbox WHERE source = ? AND key = ? ORDER BY seq",
            (source, key),
        )
        return [entry_from(row) for row in rows]

    async def mark_done(self, seqs: Sequence[int]) -> None:
        if not seqs:
            return
        now = self._clock.now()

        def op(db: sqlite3.Connection) -> None:
            moved: Counter[str] = Counter()
            for chunk in chunks(seqs):
                for (source,) in db.execute(
                    "UPDATE inbox SET state = 'done', finished_at = ?, attempts = attempts + 1"
                    f" WHERE state = 'pending' AND seq IN ({marks(chunk)}) RETURNING source",
                    (now, *chunk),
                ):
                    moved[source] += 1
            for source, count in moved.items():
                bump(db, inbox_scope(source), "pending", -count)
                bump(db, inbox_scope(source), "done", count)

        await self._file.write(op)

    async def mark_intent(self, seq: int, started: bool = True) -> None:
        """Record, durably, that an effect of entry ``seq`` is about to start (or, with
        ``started=False``, that it provably did not happen)."""
        now = self._clock.now() if started else None

        def op(db: sqlite3.Connection) -> None:
            db.execute("UPDATE inbox SET intent_at = ? WHERE seq = ?", (now, seq))

        await self._file.write(op)

    async def reopen(self, source: str, seqs: Sequence[int]) -> int:
        """Put applied entries back in the queue WITH an intent dated at the epoch: whoever
        applies them next treats their effect as possibly made already (and reads the target
        back before making it again), without waiting for a request in flight to land (none
        is). Used by repairs. Returns how many were reopened."""

        def op(db: sqlite3.Connection) -> int:
            before = db.total_changes
            db.executemany(
                "UPDATE inbox SET state = 'pending', finished_at = NULL, intent_at = 0"
                " WHERE seq = ? AND source = ? AND state = 'done'",
                [(seq, source) for seq in seqs],
            )
            reopened = db.total_changes - before
            bump(db, inbox_scope(source), "done", -reopened)
            bump(db, inbox_scope(source), "pending", reopened)
            return reopened

        reopened = await self._file.write(op) if seqs else 0
        if reopened:
            self.inbox_changed.set()
        return reopened

"""Dead letters: entries set aside (refused, given up on, invalid), and their retry.

A blocking letter holds back its key's later entries until it is retried; the count of blocked
keys is kept exact in the same transactions (see ``status``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from .records import DeadLetter, InboxEntry, dead_letter_from, dead_scope, inbox_scope
from .sql import Queries, bump, chunks, marks


class DeadLetterQueries(Queries):
    async def dead_letter(self, entry: InboxEntry, reason: str, *, blocking: bool) -> int:
        now = self._clock.now()

        def op(db: sqlite3.Connection) -> int:
            row = db.execute(
                "SELECT source, state FROM inbox WHERE seq = ?", (entry.seq,)
            ).fetchone()
            db.execute(
                "UPDATE inbox SET state = 'dead', finished_at = ?, attempts = attempts + 1"
                " WHERE seq = ?",
                (now, entry.seq),
            )
            if row is not None and row[1] != "dead":
                bump(db, inbox_scope(row[0]), row[1], -1)
                bump(db, inbox_scope(row[0]), "dead", 1)
            if blocking and not _blocked(db, entry.source, entry.key):
                bump(db, dead_scope(entry.source), "blocked_keys", 1)
            bump(db, dead_scope(entry.source), "open", 1)
            cur = db.execute(
                "INSERT INTO dead_letters (seq, source, key, kind, reason, blocking, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (entry.seq, entry.source, entry.key, entry.kind, reason, int(blocking), now),
            )
            return int(cur.lastrowid or 0)

        return await self._file.write(op)

    async def dead_letters(self, source: str | None = None) -> list[DeadLetter]:
        rows = await self._file.read(
            "SELECT d.id, d.seq, d.source, d.key, d.kind, d.reason, d.blocking, d.created_at,"
            " COALESCE(i.payload, '') AS payload"
            " FROM dead_letters d LEFT JOIN inbox i ON i.seq = d.seq"
            " WHERE d.resolved_at IS NULL AND (? IS NULL OR d.source = ?) ORDER BY d.id",
            (source, source),
        )
        return [dead_letter_from(row) for row in rows]

    async def retry_dead_letters(self, ids: Sequence[int] | None) -> int:
        """Put dead-lettered entries back in the queue (``None``: all). Their key unblocks; the
        entry keeps its place in the order, so what waited behind it still comes after it."""
        now = self._clock.now()

        def op(db: sqlite3.Connection) -> int:
            columns = "SELECT id, seq, source, key, blocking FROM dead_letters"
            if ids is None:
                rows = db.execute(f"{columns} WHERE resolved_at IS NULL").fetchall()
            else:
                rows = []
                for chunk in chunks(ids):
                    rows += db.execute(
                        f"{columns} WHERE resolved_at IS NULL AND id IN ({marks(chunk)})", chunk
                    ).fetchall()
            blocked = {(row[2], row[3]) for row in rows if row[4]}
            for row in rows:
                db.execute("UPDATE dead_letters SET resolved_at = ? WHERE id = ?", (now, row[0]))
                bump(db, dead_scope(row[2]), "open", -1)
                if row[1] is not None:
                    was = db.execute(
                        "SELECT source, state FROM inbox WHERE seq = ?", (row[1],)
                    ).fetchone()
                    db.execute(
                        "UPDATE inbox SET state = 'pending', finished_at = NULL WHERE seq = ?",
                        (row[1],),
                    )
                    if was is not None and was[1] != "pending":
                        bump(db, inbox_scope(was[0]), was[1], -1)
                        bump(db, inbox_scope(was[0]), "pending", 1)
            # Every key in ``blocked`` was blocked before; it stays so only if another open
            # blocking letter of it was not retried.
            for source, key in blocked:
                if not _blocked(db, source, key):
                    bump(db, dead_scope(source), "blocked_keys", -1)
            return len(rows)

        return await self._file.write(op)


def _blocked(db: sqlite3.Connection, source: str, key: str) -> bool:
    """Whether the key has an open blocking dead letter (its later entries wait)."""
    row = db.execute(
        "SELECT 1 FROM dead_letters WHERE source = ? AND key = ? AND resolved_at IS NULL"
        " AND blocking = 1 LIMIT 1",
        (source, key),
    ).fetchone()
    return row is not None

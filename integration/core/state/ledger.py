"""The effect ledger: per key, the state of an effect on another system (started, made, ...),
dated so old rows can be pruned."""

from __future__ import annotations

import sqlite3

from .protocol import PRUNE_BATCH
from .sql import Queries


class LedgerQueries(Queries):
    async def ledger_get(self, namespace: str, key: str) -> str | None:
        rows = await self._file.read(
            "SELECT state FROM ledger WHERE namespace = ? AND key = ?", (namespace, key)
        )
        return str(rows[0][0]) if rows else None

    async def ledger_put(self, namespace: str, key: str, state: str) -> None:
        now = self._clock.now()

        def op(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO ledger (namespace, key, state, updated_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (namespace, key) DO UPDATE SET state = excluded.state,"
                " updated_at = excluded.updated_at",
                (namespace, key, state, now),
            )

        await self._file.write(op)

    async def ledger_delete(self, namespace: str, key: str) -> None:
        def op(db: sqlite3.Connection) -> None:
            db.execute("DELETE FROM ledger WHERE namespace = ? AND key = ?", (namespace, key))

        await self._file.write(op)

    async def ledger_prune(
        self, namespace: str, updated_before: float, *, batch: int = PRUNE_BATCH
    ) -> int:
        """Delete the namespace's ledger entries last written before ``updated_before``, at most
        ``batch`` per transaction (other writes go in between); returns how many."""

        def op(db: sqlite3.Connection) -> int:
            cur = db.execute(
                "DELETE FROM ledger WHERE namespace = ? AND key IN (SELECT key FROM ledger"
                " WHERE namespace = ? AND updated_at < ? LIMIT ?)",
                (namespace, namespace, updated_before, batch),
            )
            return cur.rowcount

        return await self._file.write_in_batches(op, batch)

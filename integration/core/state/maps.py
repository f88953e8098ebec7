"""Key/value maps by namespace: id maps between systems, per-key state of a pipeline."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Sequence

from .records import MAPS
from .sql import Queries, bump, chunks, marks


class MapQueries(Queries):
    async def map_get(self, namespace: str, key: str) -> str | None:
        rows = await self._file.read(
            "SELECT value FROM maps WHERE namespace = ? AND key = ?", (namespace, key)
        )
        return str(rows[0][0]) if rows else None

    async def map_put(self, namespace: str, key: str, value: str) -> None:
        def op(db: sqlite3.Connection) -> None:
            cur = db.execute(
                "INSERT INTO maps (namespace, key, value) VALUES (?, ?, ?)"
                " ON CONFLICT (namespace, key) DO NOTHING",
                (namespace, key, value),
            )
            if cur.rowcount:
                bump(db, MAPS, namespace, 1)
            else:
                db.execute(
                    "UPDATE maps SET value = ? WHERE namespace = ? AND key = ?",
                    (value, namespace, key),
                )

        await self._file.write(op)

    async def map_delete(self, namespace: str, keys: Sequence[str]) -> int:
        """Delete ``keys`` from the map (those absent are ignored); returns how many were there."""
        if not keys:
            return 0

        def op(db: sqlite3.Connection) -> int:
            deleted = 0
            for chunk in chunks(keys):
                cur = db.execute(
                    f"DELETE FROM maps WHERE namespace = ? AND key IN ({marks(chunk)})",
                    (namespace, *chunk),
                )
                deleted += cur.rowcount
            bump(db, MAPS, namespace, -deleted)
            return deleted

        return await self._file.write(op)

    async def map_iter(self, namespace: str, batch: int = 1000) -> AsyncIterator[tuple[str, str]]:
        """Every (key, value) of the map in key order, read ``batch`` at a time: memory stays
        bounded however large the map (``map_items`` holds it all; 150k conversation states
        took the worker from 39 to 323 MB).

        Each batch is its own read, continuing after the last key seen (keyset pagination), so
        writes made meanwhile may or may not be seen; a key present throughout is seen exactly
        once."""
        if batch < 1:
            raise ValueError("batch must be at least 1")
        rows = await self._file.read(
            "SELECT key, value FROM maps WHERE namespace = ? ORDER BY key LIMIT ?",
            (namespace, batch),
        )
        while rows:
            for row in rows:
                yield str(row[0]), str(row[1])
            if len(rows) < batch:
                return
            rows = await self._file.read(
                "SELECT key, value FROM maps WHERE namespace = ? AND key > ? ORDER BY key LIMIT ?",
                (namespace, rows[-1][0], batch),
            )

    async def map_keys(self, namespace: str) -> list[str]:
        rows = await self._file.read("SELECT key FROM maps WHERE namespace = ?", (namespace,))
        return [str(row[0]) for row in rows]

    async def map_items(self, namespace: str) -> dict[str, str]:
        rows = await self._file.read(
            "SELECT key, value FROM maps WHERE namespace = ?", (namespace,)
        )
        return {str(row[0]): str(row[1]) for row in rows}

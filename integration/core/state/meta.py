"""Cursors (how far each source has been fetched), named values, and the store's status."""

from __future__ import annotations

import sqlite3

from .records import MAPS, Status, dead_scope, inbox_scope
from .sql import Queries
from .writer import StateFile


class MetaQueries(Queries):
    # -- cursors -----------------------------------------------------------------------------

    async def get_cursor(self, name: str) -> float | None:
        rows = await self._file.read("SELECT position FROM cursors WHERE name = ?", (name,))
        return float(rows[0][0]) if rows else None

    async def set_cursor(self, name: str, position: float) -> None:
        now = self._clock.now()

        def op(db: sqlite3.Connection) -> None:
            upsert_cursor(db, name, position, now)

        await self._file.write(op)

    # -- meta --------------------------------------------------------------------------------

    async def meta_get(self, name: str) -> str | None:
        return await meta_value(self._file, name)

    async def meta_put(self, name: str, value: str | None) -> None:
        def op(db: sqlite3.Connection) -> None:
            if value is None:
                db.execute("DELETE FROM meta WHERE name = ?", (name,))
            else:
                db.execute(
                    "INSERT INTO meta (name, value) VALUES (?, ?)"
                    " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                    (name, value),
                )

        await self._file.write(op)

    # -- status ------------------------------------------------------------------------------

    async def status(self, source: str) -> Status:
        """Counts and the oldest pending entry, from counters and one index seek: it costs the
        same at a million entries as at ten (it runs on every ``/metrics`` scrape)."""
        read = self._file.read
        cursors = {str(r[0]): float(r[1]) for r in await read("SELECT name, position FROM cursors")}
        inbox = {"pending": 0, "done": 0, "dead": 0}
        dead = {"open": 0, "blocked_keys": 0}
        maps: dict[str, int] = {}
        for scope, name, count in await read(
            "SELECT scope, name, count FROM counters WHERE scope IN (?, ?, ?)",
            (inbox_scope(source), dead_scope(source), MAPS),
        ):
            if scope == MAPS:
                if count:
                    maps[str(name)] = int(count)
            elif scope == inbox_scope(source):
                inbox[str(name)] = int(count)
            else:
                dead[str(name)] = int(count)
        oldest = await read(
            "SELECT MIN(occurred_at) FROM inbox WHERE source = ? AND state = 'pending'", (source,)
        )
        return Status(
            cursors=cursors,
            inbox=inbox,
            dead_letters=dead["open"],
            blocked_keys=dead["blocked_keys"],
            maps=maps,
            oldest_pending_at=float(oldest[0][0]) if oldest and oldest[0][0] is not None else None,
        )


async def meta_value(file: StateFile, name: str) -> str | None:
    """The meta row ``name``'s value (None: there is none)."""
    rows = await file.read("SELECT value FROM meta WHERE name = ?", (name,))
    return str(rows[0][0]) if rows else None


def upsert_cursor(db: sqlite3.Connection, name: str, position: float, now: float) -> None:
    """Set a cursor, in the caller's transaction (a page's cursor commits with its entries)."""
    db.execute(
        "INSERT INTO cursors (name, position, updated_at) VALUES (?, ?, ?)"
        " ON CONFLICT (name) DO UPDATE SET position = excluded.position,"
        " updated_at = excluded.updated_at",
        (name, position, now),
    )

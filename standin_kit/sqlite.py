"""Opening a stand-in's SQLite database the one way they all want it."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import aiosqlite


@contextlib.asynccontextmanager
async def open_db(
    path: str, schema: str, *, foreign_keys: bool = False
) -> AsyncIterator[aiosqlite.Connection]:
    """``path`` (or ``:memory:``) opened with ``schema`` applied; closed on exit.

    ``isolation_level=None``: the stores issue BEGIN/COMMIT themselves. WAL with
    ``synchronous=NORMAL``: a commit survives the process dying (only an OS crash can lose the
    last ones), one fsync per checkpoint rather than per commit; ``:memory:`` has no WAL.
    """
    db = await aiosqlite.connect(path, isolation_level=None)
    try:
        if path != ":memory:":
            await db.execute("PRAGMA journal_mode=WAL")
        await db.execute("PRAGMA synchronous=NORMAL")
        if foreign_keys:
            await db.execute("PRAGMA foreign_keys=ON")
        await db.executescript(schema)
        yield db
    finally:
        await db.close()

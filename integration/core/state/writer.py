"""The state file opened: its two connections, and the one writer task all writes go through
(group commit, ``group_commit.py``). Reads use a second connection; WAL mode lets them run beside
the writer.

The file and its -wal/-shm are readable by their owner only.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from ..private import create_private, describe, tighten
from .group_commit import GroupCommit
from .records import StateError
from .schema import migrate

log = logging.getLogger("integration.core.store")
"""The logger the store has always logged under (before it was split into this package)."""

T = TypeVar("T")
WriteOp = Callable[[sqlite3.Connection], T]
"""A write: a plain function run on the database's own thread, inside the batch's transaction."""


class StateFile:
    """One SQLite file (WAL): created owner-only, migrated at open, written by group commit."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._db: aiosqlite.Connection | None = None
        self.reader: aiosqlite.Connection | None = None
        """The connection reads use (the writer's own for ``:memory:``); None while closed."""
        self._commits: GroupCommit[WriteOp[Any]] = GroupCommit(
            path, self._run_batch, (sqlite3.Error,)
        )

    # -- lifecycle -------------------------------------------------------------------------

    async def open(self) -> None:
        tightened: list[tuple[Path, int]] = []
        if self.path != ":memory:":
            path = Path(self.path)
            path.parent.mkdir(parents=True, exist_ok=True)
            # Created 0600 before SQLite opens it: SQLite would create it 0644 (umask allowing).
            if (mode := create_private(path)) is not None:
                tightened.append((path, mode))
        self._db = await self._connect()
        try:
            await migrate(self._db, self.path)
        except sqlite3.Error as exc:
            await self._db.close()
            self._db = None
            raise StateError(
                f"{self.path}: cannot bring the state schema up to date: {exc}"
            ) from exc
        except BaseException:
            await self._db.close()
            self._db = None
            raise
        if self.path != ":memory:":
            # WAL mode is on: the -wal and -shm exist. New ones take the file's mode; old ones,
            # left by an earlier version, may be wider.
            for suffix in ("-wal", "-shm"):
                side = Path(self.path + suffix)
                if (mode := tighten(side)) is not None:
                    tightened.append((side, mode))
        if tightened:
            log.warning(
                "state files were readable by others (they hold message texts); now owner-only"
                " (0600): %s",
                describe(tightened),
            )
        # A second connection for reads, so a long read never waits for the writer's batch.
        self.reader = await self._connect() if self.path != ":memory:" else self._db
        self._commits.start()

    async def _connect(self) -> aiosqlite.Connection:
        # isolation_level=None: no implicit transactions; the writer says BEGIN/COMMIT itself.
        db = await aiosqlite.connect(self.path, isolation_level=None)
        db.row_factory = aiosqlite.Row
        await db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode: a commit survives a killed process (the WAL is in the OS cache);
        # only a power loss can take the last transactions, which the sources can re-serve.
        await db.execute("PRAGMA synchronous=NORMAL")
        await db.execute("PRAGMA busy_timeout=10000")
        await db.execute("PRAGMA foreign_keys=ON")
        return db

    async def close(self) -> None:
        await self._commits.stop()
        if self.reader is not None and self.reader is not self._db:
            await self.reader.close()
        if self._db is not None:
            await self._db.close()
        self._db = self.reader = None

    # -- reads and writes ------------------------------------------------------------------

    async def read(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        if self.reader is None:
            raise StateError(f"{self.path}: the state store is not open")
        try:
            return list(await self.reader.execute_fetchall(sql, tuple(params)))
        except sqlite3.Error as exc:
            raise StateError(f"{self.path}: {exc}") from exc

    async def write(self, op: WriteOp[T]) -> T:
        """Run ``op`` in the next write transaction; return once it is committed."""
        result: T = await self._commits.write(op)
        return result

    async def write_in_batches(self, op: WriteOp[int], batch: int) -> int:
        """Run ``op`` (which deletes at most ``batch`` rows) until it deletes fewer, each run its
        own transaction (other writes go in between); returns how many it deleted in all."""
        return await self._commits.write_in_batches(op, batch)

    async def _run_batch(self, ops: list[WriteOp[Any]]) -> list[tuple[bool, Any]]:
        # The whole transaction runs as one call on aiosqlite's own thread (its _execute runs a
        # function there): one thread hop per batch instead of one per statement.
        db = self._db
        if db is None:
            raise StateError(f"{self.path}: the state store is not open")
        results: list[tuple[bool, Any]] = await db._execute(  # type: ignore[no-untyped-call]
            _transaction, db._conn, ops
        )
        return results


def _transaction(conn: sqlite3.Connection, ops: list[WriteOp[Any]]) -> list[tuple[bool, Any]]:
    """Run ``ops`` in one transaction, on the database's thread. All commit, or none."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        results = [(True, op(conn)) for op in ops]
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    return results

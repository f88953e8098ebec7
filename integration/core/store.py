"""The worker's state: cursors, inbox, dead letters, id maps, effect ledger, in one SQLite file.

The inbox is the system of record for what was fetched: a source's events cannot be assumed
replayable, so an item is acknowledged (its cursor advanced) only once it is durably here.

All writes go through one writer task that commits whatever is queued in a single transaction
("group commit"): each caller still awaits its own commit, so a write is durable before the caller
goes on (an effect's intent before the request it guards), yet fifty concurrent writers cost one
commit, not fifty. Reads use a second connection; WAL mode lets them run beside the writer.

``StateStore`` is the interface the engine and pipelines use; ``SQLiteStore`` is the embedded
implementation. A PostgreSQL one for several workers side by side would implement the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import aiosqlite

from .clock import Clock, SystemClock

log = logging.getLogger(__name__)

T = TypeVar("T")
WriteOp = Callable[[sqlite3.Connection], T]
"""A write: a plain function run on the database's own thread, inside the batch's transaction."""


@dataclass(frozen=True)
class NewEntry:
    """An item fetched from a source, about to enter the inbox."""

    key: str
    """Ordering key: items of one key are applied in inbox order (a conversation)."""
    kind: str
    fingerprint: str
    """Identity for de-duplication: the same item fetched twice has the same fingerprint."""
    payload: str
    """The item as received (JSON text), so it can be re-validated when retried."""
    occurred_at: float | None = None


@dataclass(frozen=True)
class Rejected:
    """A fetched item that failed validation: kept, dead-lettered, never applied as is."""

    key: str
    fingerprint: str
    payload: str
    reason: str


@dataclass(frozen=True)
class InboxEntry:
    seq: int
    source: str
    key: str
    kind: str
    fingerprint: str
    payload: str
    occurred_at: float | None
    attempts: int
    intent: bool = False
    """An effect of this entry was started (and may have happened) by an earlier attempt."""


@dataclass(frozen=True)
class StoredPage:
    new: int
    duplicate: int
    rejected: int


@dataclass(frozen=True)
class DeadLetter:
    id: int
    seq: int | None
    source: str
    key: str
    kind: str
    reason: str
    blocking: bool
    created_at: float
    payload: str


@dataclass(frozen=True)
class Status:
    cursors: dict[str, float]
    inbox: dict[str, int]
    """Inbox entries by state: pending, done, dead."""
    dead_letters: int
    blocked_keys: int
    maps: dict[str, int]
    oldest_pending_at: float | None


class StateError(Exception):
    """The state file cannot be used (e.g. written by a newer version)."""


class StateStore(Protocol):
    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def get_cursor(self, name: str) -> float | None: ...
    async def set_cursor(self, name: str, position: float) -> None: ...
    async def store_page(
        self,
        source: str,
        entries: Sequence[NewEntry],
        rejects: Sequence[Rejected] = (),
        cursor: tuple[str, float] | None = None,
    ) -> StoredPage: ...
    async def pending(self, source: str, after_seq: int, limit: int) -> list[InboxEntry]: ...
    async def mark_done(self, seqs: Sequence[int]) -> None: ...
    async def dead_letter(self, entry: InboxEntry, reason: str, *, blocking: bool) -> int: ...
    async def dead_letters(self, source: str | None = None) -> list[DeadLetter]: ...
    async def retry_dead_letters(self, ids: Sequence[int] | None) -> int: ...
    async def map_get(self, namespace: str, key: str) -> str | None: ...
    async def map_put(self, namespace: str, key: str, value: str) -> None: ...
    async def map_keys(self, namespace: str) -> list[str]: ...
    async def map_items(self, namespace: str) -> dict[str, str]: ...
    async def active_keys(self, source: str, since: float) -> list[str]: ...
    async def ledger_get(self, namespace: str, key: str) -> str | None: ...
    async def ledger_put(self, namespace: str, key: str, state: str) -> None: ...
    async def ledger_delete(self, namespace: str, key: str) -> None: ...
    async def meta_get(self, name: str) -> str | None: ...
    async def meta_put(self, name: str, value: str | None) -> None: ...
    async def status(self, source: str) -> Status: ...

    @property
    def inbox_changed(self) -> asyncio.Event: ...


_MIGRATIONS: list[str] = [
    # 1: the initial schema.
    """
    CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE cursors (name TEXT PRIMARY KEY, position REAL NOT NULL, updated_at REAL NOT NULL);
    CREATE TABLE inbox (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        source TEXT NOT NULL,
        key TEXT NOT NULL,
        kind TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        payload TEXT NOT NULL,
        occurred_at REAL,
        state TEXT NOT NULL CHECK (state IN ('pending', 'done', 'dead')),
        attempts INTEGER NOT NULL DEFAULT 0,
        received_at REAL NOT NULL,
        finished_at REAL,
        UNIQUE (source, fingerprint)
    );
    CREATE INDEX inbox_pending ON inbox (source, seq) WHERE state = 'pending';
    CREATE TABLE dead_letters (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        seq INTEGER REFERENCES inbox (seq),
        source TEXT NOT NULL,
        key TEXT NOT NULL,
        kind TEXT NOT NULL,
        reason TEXT NOT NULL,
        blocking INTEGER NOT NULL,
        created_at REAL NOT NULL,
        resolved_at REAL
    );
    CREATE INDEX dead_letters_open ON dead_letters (source, key) WHERE resolved_at IS NULL;
    CREATE TABLE maps (
        namespace TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
        PRIMARY KEY (namespace, key)
    ) WITHOUT ROWID;
    CREATE TABLE ledger (
        namespace TEXT NOT NULL, key TEXT NOT NULL, state TEXT NOT NULL, updated_at REAL NOT NULL,
        PRIMARY KEY (namespace, key)
    ) WITHOUT ROWID;
    """,
    # 2: an entry's intent (an effect started) lives on its row: no separate read before it.
    """
    ALTER TABLE inbox ADD COLUMN intent_at REAL;
    """,
]

_ENTRY_COLUMNS = (
    "seq, source, key, kind, fingerprint, payload, occurred_at, attempts, intent_at IS NOT NULL"
)

_BATCH_LIMIT = 500


@dataclass
class _Write:
    op: WriteOp[Any]
    future: asyncio.Future[Any]


class SQLiteStore:
    """``StateStore`` on one SQLite file (WAL), schema created and migrated at open."""

    def __init__(self, path: str | Path, *, clock: Clock | None = None) -> None:
        self.path = str(path)
        self._clock = clock or SystemClock()
        self._db: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._queue: asyncio.Queue[_Write | None] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        self.inbox_changed = asyncio.Event()
        """Set whenever new entries enter the inbox: wakes whoever applies them."""

    # -- lifecycle -------------------------------------------------------------------------

    async def open(self) -> None:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._db = await self._connect()
        try:
            await self._migrate(self._db)
        except BaseException:
            await self._db.close()
            self._db = None
            raise
        # A second connection for reads, so a long read never waits for the writer's batch.
        self._reader = await self._connect() if self.path != ":memory:" else self._db
        self._writer = asyncio.create_task(self._write_loop(), name="store-writer")

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

    async def _migrate(self, db: aiosqlite.Connection) -> None:
        async with db.execute("PRAGMA user_version") as cur:
            row = await cur.fetchone()
        version = int(row[0]) if row else 0
        if version > len(_MIGRATIONS):
            raise StateError(
                f"{self.path}: state schema version {version} is newer than this program "
                f"understands ({len(_MIGRATIONS)}); run the newer version"
            )
        for number, script in enumerate(_MIGRATIONS[version:], start=version + 1):
            await db.execute("BEGIN IMMEDIATE")
            try:
                for statement in filter(str.strip, script.split(";")):
                    await db.execute(statement)
                await db.execute(f"PRAGMA user_version={number}")
                await db.commit()
            except BaseException:
                await db.rollback()
                raise
            log.info("state schema migrated to version %d", number)

    async def close(self) -> None:
        if self._writer is not None:
            await self._queue.put(None)
            await self._writer
            self._writer = None
        if self._reader is not None and self._reader is not self._db:
            await self._reader.close()
        if self._db is not None:
            await self._db.close()
        self._db = self._reader = None

    # -- the writer --------------------------------------------------------------------------

    async def write(self, op: WriteOp[T]) -> T:
        """Run ``op`` in the next write transaction; return once it is committed."""
        if self._writer is None or self._writer.done():
            raise RuntimeError("state store is not open")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Write(op, future))
        return await future

    async def _write_loop(self) -> None:
        assert self._db is not None
        db = self._db
        while True:
            first = await self._queue.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while len(batch) < _BATCH_LIMIT and not self._queue.empty():
                nxt = self._queue.get_nowait()
                if nxt is None:
                    stop = True
                    break
                batch.append(nxt)
            try:
                results = await self._run_batch(db, batch)
            except Exception:
                # One op broke the batch: run each alone, so only the broken one fails.
                results = [await self._run_alone(db, w) for w in batch]
            for write, (ok, value) in zip(batch, results, strict=True):
                if write.future.done():
                    continue
                if ok:
                    write.future.set_result(value)
                else:
                    write.future.set_exception(value)
            if stop:
                return

    async def _run_batch(
        self, db: aiosqlite.Connection, batch: list[_Write]
    ) -> list[tuple[bool, Any]]:
        # The whole transaction runs as one call on aiosqlite's own thread (its _execute runs a
        # function there): one thread hop per batch instead of one per statement.
        ops = [w.op for w in batch]
        results: list[tuple[bool, Any]] = await db._execute(  # type: ignore[no-untyped-call]
            _transaction, db._conn, ops
        )
        return results

    async def _run_alone(self, db: aiosqlite.Connection, write: _Write) -> tuple[bool, Any]:
        try:
            return (await self._run_batch(db, [write]))[0]
        except Exception as exc:
            return (False, exc)

    async def _read(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        assert self._reader is not None, "state store is not open"
        return list(await self._reader.execute_fetchall(sql, tuple(params)))

    # -- cursors -----------------------------------------------------------------------------

    async def get_cursor(self, name: str) -> float | None:
        rows = await self._read("SELECT position FROM cursors WHERE name = ?", (name,))
        return float(rows[0][0]) if rows else None

    async def set_cursor(self, name: str, position: float) -> None:
        now = self._clock.now()

        def op(db: sqlite3.Connection) -> None:
            _upsert_cursor(db, name, position, now)

        await self.write(op)

    # -- inbox -------------------------------------------------------------------------------

    async def store_page(
        self,
        source: str,
        entries: Sequence[NewEntry],
        rejects: Sequence[Rejected] = (),
        cursor: tuple[str, float] | None = None,
    ) -> StoredPage:
        """Insert a page of fetched items, de-duplicated by fingerprint; dead-letter the rejects;
        and, for the last page of a window, advance the cursor: all in one transaction, so the
        cursor never passes an item that is not durably stored."""
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
            if cursor is not None:
                _upsert_cursor(db, cursor[0], cursor[1], now)
            return StoredPage(new=new, duplicate=len(entries) - new, rejected=rejected)

        stored = await self.write(op)
        if stored.new:
            self.inbox_changed.set()
        return stored

    async def active_keys(self, source: str, since: float) -> list[str]:
        """Keys with an entry that occurred at or after ``since``."""
        rows = await self._read(
            "SELECT DISTINCT key FROM inbox WHERE source = ? AND occurred_at >= ?", (source, since)
        )
        return [str(row[0]) for row in rows]

    async def pending(self, source: str, after_seq: int, limit: int) -> list[InboxEntry]:
        """Pending entries after ``after_seq`` in inbox order, skipping blocked keys (those with
        an unresolved blocking dead letter: their later entries wait behind it)."""
        rows = await self._read(
            f"SELECT {_ENTRY_COLUMNS} FROM inbox i"
            " WHERE i.source = ? AND i.state = 'pending' AND i.seq > ?"
            " AND NOT EXISTS (SELECT 1 FROM dead_letters d WHERE d.source = i.source"
            "   AND d.key = i.key AND d.blocking = 1 AND d.resolved_at IS NULL)"
            " ORDER BY i.seq LIMIT ?",
            (source, after_seq, limit),
        )
        return [_entry(row) for row in rows]

    async def entries_for_key(self, source: str, key: str) -> list[InboxEntry]:
        rows = await self._read(
            f"SELECT {_ENTRY_COLUMNS} FROM inbox WHERE source = ? AND key = ? ORDER BY seq",
            (source, key),
        )
        return [_entry(row) for row in rows]

    async def mark_done(self, seqs: Sequence[int]) -> None:
        if not seqs:
            return
        now = self._clock.now()

        def op(db: sqlite3.Connection) -> None:
            db.executemany(
                "UPDATE inbox SET state = 'done', finished_at = ?, attempts = attempts + 1"
                " WHERE seq = ? AND state = 'pending'",
                [(now, seq) for seq in seqs],
            )

        await self.write(op)

    async def mark_intent(self, seq: int, started: bool = True) -> None:
        """Record, durably, that an effect of entry ``seq`` is about to start (or, with
        ``started=False``, that it provably did not happen)."""
        now = self._clock.now() if started else None

        def op(db: sqlite3.Connection) -> None:
            db.execute("UPDATE inbox SET intent_at = ? WHERE seq = ?", (now, seq))

        await self.write(op)

    async def dead_letter(self, entry: InboxEntry, reason: str, *, blocking: bool) -> int:
        now = self._clock.now()

        def op(db: sqlite3.Connection) -> int:
            db.execute(
                "UPDATE inbox SET state = 'dead', finished_at = ?, attempts = attempts + 1"
                " WHERE seq = ?",
                (now, entry.seq),
            )
            cur = db.execute(
                "INSERT INTO dead_letters (seq, source, key, kind, reason, blocking, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (entry.seq, entry.source, entry.key, entry.kind, reason, int(blocking), now),
            )
            return int(cur.lastrowid or 0)

        return await self.write(op)

    async def dead_letters(self, source: str | None = None) -> list[DeadLetter]:
        rows = await self._read(
            "SELECT d.id, d.seq, d.source, d.key, d.kind, d.reason, d.blocking, d.created_at,"
            " COALESCE(i.payload, '') AS payload"
            " FROM dead_letters d LEFT JOIN inbox i ON i.seq = d.seq"
            " WHERE d.resolved_at IS NULL AND (? IS NULL OR d.source = ?) ORDER BY d.id",
            (source, source),
        )
        return [
            DeadLetter(
                id=row["id"],
                seq=row["seq"],
                source=row["source"],
                key=row["key"],
                kind=row["kind"],
                reason=row["reason"],
                blocking=bool(row["blocking"]),
                created_at=row["created_at"],
                payload=row["payload"],
            )
            for row in rows
        ]

    async def retry_dead_letters(self, ids: Sequence[int] | None) -> int:
        """Put dead-lettered entries back in the queue (``None``: all). Their key unblocks; the
        entry keeps its place in the order, so what waited behind it still comes after it."""
        now = self._clock.now()

        def op(db: sqlite3.Connection) -> int:
            if ids is None:
                rows = db.execute(
                    "SELECT id, seq FROM dead_letters WHERE resolved_at IS NULL"
                ).fetchall()
            else:
                marks = ",".join("?" * len(ids))
                rows = db.execute(
                    f"SELECT id, seq FROM dead_letters WHERE resolved_at IS NULL"
                    f" AND id IN ({marks})",
                    tuple(ids),
                ).fetchall()
            for row in rows:
                db.execute("UPDATE dead_letters SET resolved_at = ? WHERE id = ?", (now, row[0]))
                if row[1] is not None:
                    db.execute(
                        "UPDATE inbox SET state = 'pending', finished_at = NULL WHERE seq = ?",
                        (row[1],),
                    )
            return len(list(rows))

        return await self.write(op)

    # -- id maps, per-key state --------------------------------------------------------------

    async def map_get(self, namespace: str, key: str) -> str | None:
        rows = await self._read(
            "SELECT value FROM maps WHERE namespace = ? AND key = ?", (namespace, key)
        )
        return str(rows[0][0]) if rows else None

    async def map_put(self, namespace: str, key: str, value: str) -> None:
        def op(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO maps (namespace, key, value) VALUES (?, ?, ?)"
                " ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value",
                (namespace, key, value),
            )

        await self.write(op)

    async def map_keys(self, namespace: str) -> list[str]:
        rows = await self._read("SELECT key FROM maps WHERE namespace = ?", (namespace,))
        return [str(row[0]) for row in rows]

    async def map_items(self, namespace: str) -> dict[str, str]:
        rows = await self._read("SELECT key, value FROM maps WHERE namespace = ?", (namespace,))
        return {str(row[0]): str(row[1]) for row in rows}

    # -- the effect ledger -------------------------------------------------------------------

    async def ledger_get(self, namespace: str, key: str) -> str | None:
        rows = await self._read(
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

        await self.write(op)

    async def ledger_delete(self, namespace: str, key: str) -> None:
        def op(db: sqlite3.Connection) -> None:
            db.execute("DELETE FROM ledger WHERE namespace = ? AND key = ?", (namespace, key))

        await self.write(op)

    # -- meta --------------------------------------------------------------------------------

    async def meta_get(self, name: str) -> str | None:
        rows = await self._read("SELECT value FROM meta WHERE name = ?", (name,))
        return str(rows[0][0]) if rows else None

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

        await self.write(op)

    # -- status ------------------------------------------------------------------------------

    async def status(self, source: str) -> Status:
        cursors = {
            str(r[0]): float(r[1]) for r in await self._read("SELECT name, position FROM cursors")
        }
        inbox = {"pending": 0, "done": 0, "dead": 0}
        for row in await self._read(
            "SELECT state, COUNT(*) FROM inbox WHERE source = ? GROUP BY state", (source,)
        ):
            inbox[str(row[0])] = int(row[1])
        dead = await self._read(
            "SELECT COUNT(*), COUNT(DISTINCT CASE WHEN blocking = 1 THEN key END)"
            " FROM dead_letters WHERE source = ? AND resolved_at IS NULL",
            (source,),
        )
        maps = {
            str(r[0]): int(r[1])
            for r in await self._read("SELECT namespace, COUNT(*) FROM maps GROUP BY namespace")
        }
        oldest = await self._read(
            "SELECT MIN(occurred_at) FROM inbox WHERE source = ? AND state = 'pending'", (source,)
        )
        return Status(
            cursors=cursors,
            inbox=inbox,
            dead_letters=int(dead[0][0]),
            blocked_keys=int(dead[0][1] or 0),
            maps=maps,
            oldest_pending_at=float(oldest[0][0]) if oldest and oldest[0][0] is not None else None,
        )


def _upsert_cursor(db: sqlite3.Connection, name: str, position: float, now: float) -> None:
    db.execute(
        "INSERT INTO cursors (name, position, updated_at) VALUES (?, ?, ?)"
        " ON CONFLICT (name) DO UPDATE SET position = excluded.position,"
        " updated_at = excluded.updated_at",
        (name, position, now),
    )


def _entry(row: sqlite3.Row) -> InboxEntry:
    return InboxEntry(
        seq=row["seq"],
        source=row["source"],
        key=row["key"],
        kind=row["kind"],
        fingerprint=row["fingerprint"],
        payload=row["payload"],
        occurred_at=row["occurred_at"],
        attempts=row["attempts"],
        intent=bool(row[8]),
    )


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


def dumps(value: Any) -> str:
    """Canonical JSON: the same value always gives the same text (fingerprints depend on it)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@contextlib.asynccontextmanager
async def opened(store: SQLiteStore) -> Any:
    await store.open()
    try:
        yield store
    finally:
        await store.close()

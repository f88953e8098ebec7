"""``PostgresStore``: the ``StateStore`` on PostgreSQL (asyncpg), for workers that outgrow one
SQLite file.

The same semantics as ``SQLiteStore``, query for query: counters kept by delta in the
transactions that change what they count (``status`` reads them, never scans), a page's entries,
rejects, cursor and received row in one transaction, pending entries in inbox order skipping
blocked keys, prunes in batches. Only the SQL dialect differs: ``$n`` parameters, arrays
(``= ANY($n)``) instead of ``IN (...)`` lists, a statement's row count from its status.

Imported only when a PostgreSQL state is asked for (``STATE_URL``): asyncpg is an optional
dependency (the ``distributed`` extra).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, TypeVar

import asyncpg

from ..clock import Clock, SystemClock
from ..distributed.partitions import partition_of
from .pg_schema import is_worker_state
from .pg_writer import DB_ERRORS, PgWriteOp, StateDatabase, one_line
from .protocol import PRUNE_BATCH
from .prune import PRUNED_MARK
from .records import (
    MAPS,
    DeadLetter,
    InboxEntry,
    NewEntry,
    Rejected,
    StateError,
    Status,
    StoredPage,
    dead_letter_from,
    dead_scope,
    entry_from,
    inbox_scope,
)

T = TypeVar("T")

_ENTRY_COLUMNS = "seq, source, key, kind, fingerprint, payload, occurred_at, attempts, intent_at"


def rowcount(status: str) -> int:
    """The rows a statement touched, from its status (``INSERT 0 3``, ``UPDATE 2``)."""
    return int(status.rsplit(" ", 1)[-1])


async def bump(conn: asyncpg.Connection, scope: str, name: str, delta: int) -> None:
    """Add ``delta`` to a counter, in the transaction that made the change it counts."""
    if delta:
        await conn.execute(
            "INSERT INTO counters (scope, name, count) VALUES ($1, $2, $3)"
            " ON CONFLICT (scope, name) DO UPDATE SET count = counters.count + excluded.count",
            scope,
            name,
            delta,
        )


async def upsert_cursor(conn: asyncpg.Connection, name: str, position: float, now: float) -> None:
    await conn.execute(
        "INSERT INTO cursors (name, position, updated_at) VALUES ($1, $2, $3)"
        " ON CONFLICT (name) DO UPDATE SET position = excluded.position,"
        " updated_at = excluded.updated_at",
        name,
        position,
        now,
    )


class FenceLost(StateError):
    """A write that depends on holding a role (the poller's, a partition's) found that another
    process has taken it over: this process must not write on its behalf any more."""


async def _check_cursor_fence(conn: asyncpg.Connection, fence: tuple[str, int] | None) -> None:
    """In the writing transaction: the poller role is still ours. ``FOR SHARE`` makes a new
    poller's epoch bump wait for this transaction, so no cursor write of an old poller can land
    after the new one has started."""
    if fence is None:
        return
    name, epoch = fence
    current = await conn.fetchval("SELECT epoch FROM fences WHERE name = $1 FOR SHARE", name)
    if current != epoch:
        raise FenceLost(
            f"the poller role ({name}) was taken over (epoch {current}, ours {epoch}); "
            "this process stops polling"
        )


async def insert_entries(
    conn: asyncpg.Connection,
    source: str,
    entries: Sequence[NewEntry],
    now: float,
    parts: Sequence[int | None],
) -> int:
    """Insert entries as pending, de-duplicated by fingerprint, and count them: one statement,
    one round trip. WITH ORDINALITY keeps the page's order in the seqs, and the first of two
    equal fingerprints in a page wins (as in SQLite). Returns how many were new."""
    if not entries:
        return 0
    new = await conn.fetchval(
        "WITH new AS (INSERT INTO inbox (source, key, kind, fingerprint, payload,"
        " occurred_at, state, received_at, part) SELECT $1, k, kd, f, p, o, 'pending', $2, pt"
        " FROM unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::float8[],"
        " $9::int4[]) WITH ORDINALITY AS t (k, kd, f, p, o, pt, n) ORDER BY n"
        " ON CONFLICT (source, fingerprint) DO NOTHING RETURNING 1),"
        " counted AS (INSERT INTO counters (scope, name, count)"
        " SELECT $8, 'pending', COUNT(*) FROM new HAVING COUNT(*) > 0"
        " ON CONFLICT (scope, name) DO UPDATE"
        " SET count = counters.count + excluded.count)"
        " SELECT COUNT(*) FROM new",
        source,
        now,
        [e.key for e in entries],
        [e.kind for e in entries],
        [e.fingerprint for e in entries],
        [e.payload for e in entries],
        [e.occurred_at for e in entries],
        inbox_scope(source),
        list(parts),
    )
    return int(new)


async def _blocked(conn: asyncpg.Connection, source: str, key: str) -> bool:
    """Whether the key has an open blocking dead letter (its later entries wait)."""
    found = await conn.fetchval(
        "SELECT 1 FROM dead_letters WHERE source = $1 AND key = $2 AND resolved_at IS NULL"
        " AND blocking LIMIT 1",
        source,
        key,
    )
    return found is not None


# Finished entries older than the horizon, one kind at a time (as in ``prune``): done entries by
# when they occurred, or were received (no occurred_at: invalid events); dead ones only once no
# open dead letter points at them.
_PRUNABLE = [
    "SELECT seq, state FROM inbox WHERE source = $1 AND state = 'done' AND occurred_at < $2"
    " AND ($3::float8 IS NULL OR finished_at < $3) LIMIT $4",
    "SELECT seq, state FROM inbox WHERE source = $1 AND state = 'done' AND occurred_at IS NULL"
    " AND received_at < $2 AND ($3::float8 IS NULL OR finished_at < $3) LIMIT $4",
    "SELECT seq, state FROM inbox i WHERE source = $1 AND state = 'dead' AND occurred_at < $2"
    " AND ($3::float8 IS NULL OR finished_at < $3) AND NOT EXISTS (SELECT 1 FROM dead_letters d"
    " WHERE d.seq = i.seq AND d.resolved_at IS NULL) LIMIT $4",
    "SELECT seq, state FROM inbox i WHERE source = $1 AND state = 'dead' AND occurred_at IS NULL"
    " AND received_at < $2 AND ($3::float8 IS NULL OR finished_at < $3) AND NOT EXISTS"
    " (SELECT 1 FROM dead_letters d WHERE d.seq = i.seq AND d.resolved_at IS NULL) LIMIT $4",
]


async def prune_batch(
    conn: asyncpg.Connection,
    source: str,
    before: float,
    finished_before: float | None,
    batch: int,
) -> int:
    """Delete at most ``batch`` of the source's prunable entries (and their resolved letters),
    counters moved with them, in the caller's transaction; returns how many."""
    rows: list[asyncpg.Record] = []
    for query in _PRUNABLE:
        if len(rows) >= batch:
            break
        rows += await conn.fetch(query, source, before, finished_before, batch - len(rows))
    if not rows:
        return 0
    seqs = [int(row["seq"]) for row in rows]
    # Resolved letters are history nobody reads; they point at the rows (a foreign key).
    await conn.execute(
        "DELETE FROM dead_letters WHERE resolved_at IS NOT NULL AND seq = ANY($1::bigint[])", seqs
    )
    await conn.execute("DELETE FROM inbox WHERE seq = ANY($1::bigint[])", seqs)
    removed = Counter(str(row["state"]) for row in rows)
    for state, count in removed.items():
        await bump(conn, inbox_scope(source), state, -count)
    return len(rows)


class PostgresStore:
    """``StateStore`` on one PostgreSQL schema, created and migrated at open."""

    def __init__(
        self, url: str, *, clock: Clock | None = None, schema: str = "integration"
    ) -> None:
        self.url = url
        self.schema = schema
        self._clock = clock or SystemClock()
        self._db = StateDatabase(url, schema)
        self.inbox_changed = asyncio.Event()
        """Set whenever new entries enter the inbox: wakes whoever applies them."""
        self._partitions: int | None = None
        self._keyspaces: dict[str, str] = {}
        self._cursor_fence: tuple[str, int] | None = None

    # -- several workers ---------------------------------------------------------------------

    def partition_by(self, partitions: int, keyspaces: Mapping[str, str]) -> None:
        """Several workers: every entry stored from now on carries its partition (computed from
        its flow's keyspace, by source name), so that its partition's owner applies it."""
        self._partitions = partitions
        self._keyspaces = dict(keyspaces)

    def fence_cursors(self, name: str, epoch: int) -> None:
        """Cursor writes from now on commit only while the poller fence ``name`` is at
        ``epoch`` (see ``distributed.roles``): a poller that lost its role cannot move them."""
        self._cursor_fence = (name, epoch)

    def _parts(self, source: str, entries: Sequence[NewEntry]) -> list[int | None]:
        if self._partitions is None:
            return [None] * len(entries)
        space = self._keyspaces.get(source, source)
        return [partition_of(space, e.key, self._partitions) for e in entries]

    async def read(self, sql: str, *params: Any) -> list[asyncpg.Record]:
        """A read on the pool (for the distributed roles' own tables)."""
        return await self._db.read(sql, *params)

    async def store_owned(
        self,
        sync: str,
        part: int,
        epoch: int,
        offset: int,
        by_source: Mapping[str, Sequence[NewEntry]],
    ) -> int:
        """Entries a partition's owner read from the JetStream inbox, and the partition's new
        offset, in one transaction, only while the claim ``epoch`` is still the partition's
        (``FenceLost`` otherwise). Returns how many entries were new."""
        now = self._clock.now()

        async def op(conn: asyncpg.Connection) -> int:
            current = await conn.fetchval(
                "SELECT epoch FROM partitions WHERE sync = $1 AND part = $2 FOR UPDATE", sync, part
            )
            if current != epoch:
                raise FenceLost(
                    f"partition {part} was claimed by another worker (epoch {current}, ours "
                    f"{epoch})"
                )
            new = 0
            for source, entries in by_source.items():
                new += await insert_entries(conn, source, entries, now, [part] * len(entries))
            await conn.execute(
                "UPDATE partitions SET stream_offset = GREATEST(stream_offset, $3)"
                " WHERE sync = $1 AND part = $2",
                sync,
                part,
                offset,
            )
            return new

        new = await self._db.write(op)
        if new:
            self.inbox_changed.set()
        return new

    async def assign_missing_partitions(self) -> int:
        """Pending entries stored before the state was run by several workers carry no
        partition: give them theirs, so that their owners apply them. Returns how many."""
        if self._partitions is None:
            return 0
        rows = await self._db.read(
            "SELECT seq, source, key FROM inbox WHERE part IS NULL AND state = 'pending'"
        )
        if not rows:
            return 0
        seqs = [int(r["seq"]) for r in rows]
        parts = [
            partition_of(self._keyspaces.get(r["source"], r["source"]), r["key"], self._partitions)
            for r in rows
        ]

        async def op(conn: asyncpg.Connection) -> None:
            await conn.execute(
                "UPDATE inbox SET part = t.pt FROM unnest($1::bigint[], $2::int4[]) AS t (s, pt)"
                " WHERE inbox.seq = t.s",
                seqs,
                parts,
            )

        await self._db.write(op)
        self.inbox_changed.set()
        return len(seqs)

    @property
    def where(self) -> str:
        """The state as a person reads it: the URL (password masked) and the schema."""
        return self._db.where

    async def open(self) -> None:
        await self._db.open()

    async def close(self) -> None:
        await self._db.close()

    async def write(self, op: PgWriteOp[T]) -> T:
        """Run ``op`` in the next write transaction; return once it is committed."""
        return await self._db.write(op)

    # -- cursors and meta --------------------------------------------------------------------

    async def get_cursor(self, name: str) -> float | None:
        rows = await self._db.read("SELECT position FROM cursors WHERE name = $1", name)
        return float(rows[0][0]) if rows else None

    async def set_cursor(self, name: str, position: float) -> None:
        now = self._clock.now()

        async def op(conn: asyncpg.Connection) -> None:
            await _check_cursor_fence(conn, self._cursor_fence)
            await upsert_cursor(conn, name, position, now)

        await self._db.write(op)

    async def meta_get(self, name: str) -> str | None:
        rows = await self._db.read("SELECT value FROM meta WHERE name = $1", name)
        return str(rows[0][0]) if rows else None

    async def meta_put(self, name: str, value: str | None) -> None:
        async def op(conn: asyncpg.Connection) -> None:
            if value is None:
                await conn.execute("DELETE FROM meta WHERE name = $1", name)
            else:
                await conn.execute(
                    "INSERT INTO meta (name, value) VALUES ($1, $2)"
                    " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                    name,
                    value,
                )

        await self._db.write(op)

    async def status(self, source: str) -> Status:
        """Counts and the oldest pending entry, from counters and one index seek."""
        read = self._db.read
        cursors = {str(r[0]): float(r[1]) for r in await read("SELECT name, position FROM cursors")}
        inbox = {"pending": 0, "done": 0, "dead": 0}
        dead = {"open": 0, "blocked_keys": 0}
        maps: dict[str, int] = {}
        for scope, name, count in await read(
            "SELECT scope, name, count FROM counters WHERE scope IN ($1, $2, $3)",
            inbox_scope(source),
            dead_scope(source),
            MAPS,
        ):
            if scope == MAPS:
                if count:
                    maps[str(name)] = int(count)
            elif scope == inbox_scope(source):
                inbox[str(name)] = int(count)
            else:
                dead[str(name)] = int(count)
        oldest = await read(
            "SELECT MIN(occurred_at) FROM inbox WHERE source = $1 AND state = 'pending'", source
        )
        return Status(
            cursors=cursors,
            inbox=inbox,
            dead_letters=dead["open"],
            blocked_keys=dead["blocked_keys"],
            maps=maps,
            oldest_pending_at=float(oldest[0][0]) if oldest and oldest[0][0] is not None else None,
        )

    # -- the inbox ---------------------------------------------------------------------------

    async def store_page(
        self,
        source: str,
        entries: Sequence[NewEntry],
        rejects: Sequence[Rejected] = (),
        cursor: tuple[str, float] | None = None,
        received_id: int | None = None,
    ) -> StoredPage:
        """Insert a page of fetched items, de-duplicated by fingerprint; dead-letter the rejects;
        advance the cursor; forget the page as received: all in one transaction."""
        now = self._clock.now()
        parts = self._parts(source, entries)

        async def op(conn: asyncpg.Connection) -> StoredPage:
            new = await insert_entries(conn, source, entries, now, parts)
            rejected = 0
            for r in rejects:
                seq = await conn.fetchval(
                    "INSERT INTO inbox (source, key, kind, fingerprint, payload, state,"
                    " received_at, finished_at) VALUES ($1, $2, 'invalid', $3, $4, 'dead', $5, $5)"
                    " ON CONFLICT (source, fingerprint) DO NOTHING RETURNING seq",
                    source,
                    r.key,
                    r.fingerprint,
                    r.payload,
                    now,
                )
                if seq is not None:
                    rejected += 1
                    await conn.execute(
                        "INSERT INTO dead_letters (seq, source, key, kind, reason, blocking,"
                        " created_at) VALUES ($1, $2, $3, 'invalid', $4, FALSE, $5)",
                        seq,
                        source,
                        r.key,
                        r.reason,
                        now,
                    )
            await bump(conn, inbox_scope(source), "dead", rejected)
            await bump(conn, dead_scope(source), "open", rejected)
            if cursor is not None:
                await _check_cursor_fence(conn, self._cursor_fence)
                await upsert_cursor(conn, cursor[0], cursor[1], now)
            if received_id is not None:
                await conn.execute("DELETE FROM received WHERE id = $1", received_id)
            return StoredPage(new=new, duplicate=len(entries) - new, rejected=rejected)

        stored = await self._db.write(op)
        if stored.new:
            self.inbox_changed.set()
        return stored

    async def receive(self, source: str, body: bytes) -> int:
        """Store a page exactly as received; returns its id for ``store_page``."""
        now = self._clock.now()

        async def op(conn: asyncpg.Connection) -> int:
            return int(
                await conn.fetchval(
                    "INSERT INTO received (source, body, received_at) VALUES ($1, $2, $3)"
                    " RETURNING id",
                    source,
                    body,
                    now,
                )
            )

        return await self._db.write(op)

    async def received(self, source: str) -> list[tuple[int, bytes]]:
        """Pages stored as received whose entries never were (the process died in between)."""
        rows = await self._db.read(
            "SELECT id, body FROM received WHERE source = $1 ORDER BY id", source
        )
        return [(int(row[0]), bytes(row[1])) for row in rows]

    async def active_keys(self, source: str, since: float) -> list[str]:
        """Keys with an entry that occurred at or after ``since`` (and not yet pruned)."""
        rows = await self._db.read(
            "SELECT DISTINCT key FROM inbox WHERE source = $1"
            " AND state IN ('pending', 'done', 'dead') AND occurred_at >= $2",
            source,
            since,
        )
        return [str(row[0]) for row in rows]

    async def pending(
        self,
        source: str,
        after_seq: int,
        limit: int,
        partitions: Sequence[int] | None = None,
    ) -> list[InboxEntry]:
        """Pending entries after ``after_seq`` in inbox order, skipping blocked keys; only those
        of ``partitions`` when given (a worker applies its own partitions' entries)."""
        rows = await self._db.read(
            f"SELECT {_ENTRY_COLUMNS} FROM inbox i"
            " WHERE i.source = $1 AND i.state = 'pending' AND i.seq > $2"
            " AND ($4::int4[] IS NULL OR i.part = ANY($4::int4[]))"
            " AND NOT EXISTS (SELECT 1 FROM dead_letters d WHERE d.source = i.source"
            "   AND d.key = i.key AND d.blocking AND d.resolved_at IS NULL)"
            " ORDER BY i.seq LIMIT $3",
            source,
            after_seq,
            limit,
            list(partitions) if partitions is not None else None,
        )
        return [entry_from(row) for row in rows]

    async def blocked_keys(self, source: str) -> set[str]:
        """Keys waiting behind an unresolved blocking dead letter."""
        rows = await self._db.read(
            "SELECT DISTINCT key FROM dead_letters WHERE source = $1 AND blocking"
            " AND resolved_at IS NULL",
            source,
        )
        return {str(row[0]) for row in rows}

    async def applied_before(self, source: str, key: str, seq: int) -> list[InboxEntry]:
        """Entries of ``key`` before ``seq`` whose effects were made, or may have been: all but
        invalid ones and those dead-lettered as blocking (waiting for a retry)."""
        rows = await self._db.read(
            f"SELECT {_ENTRY_COLUMNS} FROM inbox i WHERE i.source = $1 AND i.key = $2"
            " AND i.seq < $3 AND i.kind != 'invalid' AND NOT (i.state = 'dead' AND EXISTS"
            " (SELECT 1 FROM dead_letters d WHERE d.seq = i.seq AND d.blocking"
            " AND d.resolved_at IS NULL)) ORDER BY i.seq",
            source,
            key,
            seq,
        )
        return [entry_from(row) for row in rows]

    async def entries_for_key(self, source: str, key: str) -> list[InboxEntry]:
        rows = await self._db.read(
            f"SELECT {_ENTRY_COLUMNS} FROM inbox WHERE source = $1 AND key = $2 ORDER BY seq",
            source,
            key,
        )
        return [entry_from(row) for row in rows]

    async def mark_done(self, seqs: Sequence[int]) -> None:
        if not seqs:
            return
        now = self._clock.now()
        wanted = list(seqs)

        async def op(conn: asyncpg.Connection) -> None:
            # One statement, one round trip: the entries moved and, per source, both counters.
            # The scope is inbox_scope(source) spelled in SQL, as RECOUNT spells it.
            await conn.execute(
                "WITH moved AS (UPDATE inbox SET state = 'done', finished_at = $1,"
                " attempts = attempts + 1 WHERE state = 'pending' AND seq = ANY($2::bigint[])"
                " RETURNING source),"
                " per_source AS (SELECT source, COUNT(*) AS n FROM moved GROUP BY source)"
                " INSERT INTO counters (scope, name, count)"
                " SELECT 'inbox:' || source, s.name, s.sign * n FROM per_source"
                " CROSS JOIN (VALUES ('pending', -1), ('done', 1)) AS s (name, sign)"
                " ON CONFLICT (scope, name) DO UPDATE SET count = counters.count + excluded.count",
                now,
                wanted,
            )

        await self._db.write(op)

    async def mark_intent(self, seq: int, started: bool = True) -> None:
        """Record, durably, that an effect of entry ``seq`` is about to start (or, with
        ``started=False``, that it provably did not happen)."""
        now = self._clock.now() if started else None

        async def op(conn: asyncpg.Connection) -> None:
            await conn.execute("UPDATE inbox SET intent_at = $1 WHERE seq = $2", now, seq)

        await self._db.write(op)

    async def reopen(self, source: str, seqs: Sequence[int]) -> int:
        """Put applied entries back in the queue with an intent dated at the epoch (see
        ``SQLiteStore.reopen``). Returns how many were reopened."""
        wanted = list(seqs)

        async def op(conn: asyncpg.Connection) -> int:
            status = await conn.execute(
                "UPDATE inbox SET state = 'pending', finished_at = NULL, intent_at = 0"
                " WHERE seq = ANY($1::bigint[]) AND source = $2 AND state = 'done'",
                wanted,
                source,
            )
            reopened = rowcount(status)
            await bump(conn, inbox_scope(source), "done", -reopened)
            await bump(conn, inbox_scope(source), "pending", reopened)
            return reopened

        reopened = await self._db.write(op) if wanted else 0
        if reopened:
            self.inbox_changed.set()
        return reopened

    # -- dead letters ------------------------------------------------------------------------

    async def dead_letter(self, entry: InboxEntry, reason: str, *, blocking: bool) -> int:
        now = self._clock.now()

        async def op(conn: asyncpg.Connection) -> int:
            row = await conn.fetchrow(
                "SELECT source, state FROM inbox WHERE seq = $1 FOR UPDATE", entry.seq
            )
            await conn.execute(
                "UPDATE inbox SET state = 'dead', finished_at = $1, attempts = attempts + 1"
                " WHERE seq = $2",
                now,
                entry.seq,
            )
            if row is not None and row[1] != "dead":
                await bump(conn, inbox_scope(row[0]), row[1], -1)
                await bump(conn, inbox_scope(row[0]), "dead", 1)
            if blocking and not await _blocked(conn, entry.source, entry.key):
                await bump(conn, dead_scope(entry.source), "blocked_keys", 1)
            await bump(conn, dead_scope(entry.source), "open", 1)
            return int(
                await conn.fetchval(
                    "INSERT INTO dead_letters (seq, source, key, kind, reason, blocking,"
                    " created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
                    entry.seq,
                    entry.source,
                    entry.key,
                    entry.kind,
                    reason,
                    blocking,
                    now,
                )
            )

        return await self._db.write(op)

    async def dead_letters(self, source: str | None = None) -> list[DeadLetter]:
        rows = await self._db.read(
            "SELECT d.id, d.seq, d.source, d.key, d.kind, d.reason, d.blocking, d.created_at,"
            " COALESCE(i.payload, '') AS payload"
            " FROM dead_letters d LEFT JOIN inbox i ON i.seq = d.seq"
            " WHERE d.resolved_at IS NULL AND ($1::text IS NULL OR d.source = $1) ORDER BY d.id",
            source,
        )
        return [dead_letter_from(row) for row in rows]

    async def retry_dead_letters(self, ids: Sequence[int] | None) -> int:
        """Put dead-lettered entries back in the queue (``None``: all); their keys unblock."""
        now = self._clock.now()
        wanted = None if ids is None else list(ids)

        async def op(conn: asyncpg.Connection) -> int:
            columns = "SELECT id, seq, source, key, blocking FROM dead_letters"
            if wanted is None:
                rows = await conn.fetch(f"{columns} WHERE resolved_at IS NULL ORDER BY id")
            else:
                rows = await conn.fetch(
                    f"{columns} WHERE resolved_at IS NULL AND id = ANY($1::bigint[]) ORDER BY id",
                    wanted,
                )
            blocked = {(row["source"], row["key"]) for row in rows if row["blocking"]}
            for row in rows:
                await conn.execute(
                    "UPDATE dead_letters SET resolved_at = $1 WHERE id = $2", now, row["id"]
                )
                await bump(conn, dead_scope(row["source"]), "open", -1)
                if row["seq"] is not None:
                    was = await conn.fetchrow(
                        "SELECT source, state FROM inbox WHERE seq = $1 FOR UPDATE", row["seq"]
                    )
                    await conn.execute(
                        "UPDATE inbox SET state = 'pending', finished_at = NULL WHERE seq = $1",
                        row["seq"],
                    )
                    if was is not None and was[1] != "pending":
                        await bump(conn, inbox_scope(was[0]), was[1], -1)
                        await bump(conn, inbox_scope(was[0]), "pending", 1)
            # Every key in ``blocked`` was blocked before; it stays so only if another open
            # blocking letter of it was not retried.
            for source, key in blocked:
                if not await _blocked(conn, source, key):
                    await bump(conn, dead_scope(source), "blocked_keys", -1)
            return len(rows)

        return await self._db.write(op)

    # -- maps --------------------------------------------------------------------------------

    async def map_get(self, namespace: str, key: str) -> str | None:
        rows = await self._db.read(
            "SELECT value FROM maps WHERE namespace = $1 AND key = $2", namespace, key
        )
        return str(rows[0][0]) if rows else None

    async def map_put(self, namespace: str, key: str, value: str) -> None:
        async def op(conn: asyncpg.Connection) -> None:
            status = await conn.execute(
                "INSERT INTO maps (namespace, key, value) VALUES ($1, $2, $3)"
                " ON CONFLICT (namespace, key) DO NOTHING",
                namespace,
                key,
                value,
            )
            if rowcount(status):
                await bump(conn, MAPS, namespace, 1)
            else:
                await conn.execute(
                    "UPDATE maps SET value = $1 WHERE namespace = $2 AND key = $3",
                    value,
                    namespace,
                    key,
                )

        await self._db.write(op)

    async def map_delete(self, namespace: str, keys: Sequence[str]) -> int:
        """Delete ``keys`` from the map (those absent are ignored); returns how many were there."""
        if not keys:
            return 0
        wanted = list(keys)

        async def op(conn: asyncpg.Connection) -> int:
            deleted = rowcount(
                await conn.execute(
                    "DELETE FROM maps WHERE namespace = $1 AND key = ANY($2::text[])",
                    namespace,
                    wanted,
                )
            )
            await bump(conn, MAPS, namespace, -deleted)
            return deleted

        return await self._db.write(op)

    async def map_iter(self, namespace: str, batch: int = 1000) -> AsyncIterator[tuple[str, str]]:
        """Every (key, value) of the map in key order, ``batch`` at a time (keyset pagination:
        a key present throughout is seen exactly once)."""
        if batch < 1:
            raise ValueError("batch must be at least 1")
        rows = await self._db.read(
            "SELECT key, value FROM maps WHERE namespace = $1 ORDER BY key LIMIT $2",
            namespace,
            batch,
        )
        while rows:
            for row in rows:
                yield str(row[0]), str(row[1])
            if len(rows) < batch:
                return
            rows = await self._db.read(
                "SELECT key, value FROM maps WHERE namespace = $1 AND key > $2"
                " ORDER BY key LIMIT $3",
                namespace,
                rows[-1][0],
                batch,
            )

    async def map_keys(self, namespace: str) -> list[str]:
        # In key order, as SQLite returns them (its rows are stored in key order).
        rows = await self._db.read(
            "SELECT key FROM maps WHERE namespace = $1 ORDER BY key", namespace
        )
        return [str(row[0]) for row in rows]

    async def map_items(self, namespace: str) -> dict[str, str]:
        rows = await self._db.read(
            "SELECT key, value FROM maps WHERE namespace = $1 ORDER BY key", namespace
        )
        return {str(row[0]): str(row[1]) for row in rows}

    # -- the effect ledger -------------------------------------------------------------------

    async def ledger_get(self, namespace: str, key: str) -> str | None:
        rows = await self._db.read(
            "SELECT state FROM ledger WHERE namespace = $1 AND key = $2", namespace, key
        )
        return str(rows[0][0]) if rows else None

    async def ledger_put(self, namespace: str, key: str, state: str) -> None:
        now = self._clock.now()

        async def op(conn: asyncpg.Connection) -> None:
            await conn.execute(
                "INSERT INTO ledger (namespace, key, state, updated_at) VALUES ($1, $2, $3, $4)"
                " ON CONFLICT (namespace, key) DO UPDATE SET state = excluded.state,"
                " updated_at = excluded.updated_at",
                namespace,
                key,
                state,
                now,
            )

        await self._db.write(op)

    async def ledger_delete(self, namespace: str, key: str) -> None:
        async def op(conn: asyncpg.Connection) -> None:
            await conn.execute(
                "DELETE FROM ledger WHERE namespace = $1 AND key = $2", namespace, key
            )

        await self._db.write(op)

    async def ledger_prune(
        self, namespace: str, updated_before: float, *, batch: int = PRUNE_BATCH
    ) -> int:
        """Delete the namespace's ledger entries last written before ``updated_before``, at most
        ``batch`` per transaction; returns how many."""

        async def op(conn: asyncpg.Connection) -> int:
            return rowcount(
                await conn.execute(
                    "DELETE FROM ledger WHERE namespace = $1 AND key IN (SELECT key FROM ledger"
                    " WHERE namespace = $1 AND updated_at < $2 LIMIT $3)",
                    namespace,
                    updated_before,
                    batch,
                )
            )

        return await self._db.write_in_batches(op, batch)

    # -- retention ---------------------------------------------------------------------------

    async def prune(
        self,
        source: str,
        occurred_before: float,
        *,
        finished_before: float | None = None,
        batch: int = PRUNE_BATCH,
    ) -> int:
        """Delete the source's finished inbox entries that occurred before ``occurred_before``
        (see ``PruneQueries.prune``: the same rules), a batch per transaction; the horizon is
        recorded and never moves back."""

        async def op(conn: asyncpg.Connection) -> int:
            deleted = await prune_batch(conn, source, occurred_before, finished_before, batch)
            await conn.execute(
                "INSERT INTO meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET"
                " value = excluded.value"
                " WHERE CAST(meta.value AS float8) < CAST(excluded.value AS float8)",
                PRUNED_MARK.format(source=source),
                repr(occurred_before),
            )
            return deleted

        return await self._db.write_in_batches(op, batch)

    async def pruned_before(self, source: str) -> float | None:
        """The latest horizon the source's inbox was pruned at; None: never pruned."""
        value = await self.meta_get(PRUNED_MARK.format(source=source))
        return float(value) if value is not None else None


async def has_worker_state(url: str, schema: str = "integration") -> bool:
    """Whether the database at ``url`` holds a worker's state in ``schema`` (nothing created);
    a ``StateError`` when it cannot be reached."""
    where = StateDatabase(url, schema).where
    try:
        conn = await asyncpg.connect(url, timeout=10.0)
    except (*DB_ERRORS, ValueError) as exc:
        raise one_line(where, exc) from exc
    try:
        return await is_worker_state(conn, schema)
    except DB_ERRORS as exc:
        raise one_line(where, exc) from exc
    finally:
        await conn.close()

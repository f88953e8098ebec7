"""Who does what among several workers of one sync, decided in PostgreSQL.

- **Membership**: each worker heartbeats a row; a worker whose heartbeat is older than the TTL
  is gone. Times are the database server's clock, so workers on hosts with skewed clocks agree.
- **Partitions**: each partition has one row: its owner, the epoch of the owner's claim, and the
  offset in the JetStream stream up to which its entries are stored in the inbox table. Each
  worker owns at most its share, ceil(P / live workers), keeping what it has (the coordinator's
  ``_rebalance``). A partition is claimed only when free or when its owner is gone, and every
  claim raises the epoch: an owner that lost its claim finds out at its
  next write (``PostgresStore.store_owned`` checks the epoch) and stops.
- **The poller role**: one worker polls the sources. It holds a session advisory lock on a
  connection of its own; taking the role raises the poller fence's epoch, which every cursor
  write checks (``PostgresStore.fence_cursors``), so an old poller that lost its connection
  cannot move a cursor after the new one started. Losing that connection stops the process.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import uuid
from dataclasses import dataclass

import asyncpg

from ..backends import close_quietly
from ..http import mask_url
from ..state.pg_schema import quoted_schema
from ..state.pg_writer import DB_ERRORS, one_line
from ..state.postgres import PostgresStore
from ..state.records import StateError

log = logging.getLogger("integration.distributed")

_NOW = "extract(epoch from clock_timestamp())"
"""The database server's clock, in seconds: the one clock every worker shares."""


def new_worker_id() -> str:
    """A worker's name: where it runs, and a random part (a restarted process is a new worker)."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def fair_share(partitions: int, workers: int) -> int:
    """The most partitions one of ``workers`` live workers may own."""
    return math.ceil(partitions / max(workers, 1))


@dataclass(frozen=True)
class Claim:
    part: int
    epoch: int
    offset: int
    """The stream sequence up to which the partition's entries are in the inbox table."""


@dataclass(frozen=True)
class PartitionRow:
    part: int
    owner: str | None
    epoch: int
    offset: int
    owner_alive: bool


class Membership:
    """One worker's view of the others, and its claims, on one sync's PostgreSQL state."""

    def __init__(
        self, store: PostgresStore, sync: str, worker: str, partitions: int, ttl: float
    ) -> None:
        self.store = store
        self.sync = sync
        self.worker = worker
        self.partitions = partitions
        self.ttl = ttl

    async def join(self) -> None:
        """Create the partition rows if missing (first worker ever), check that the partition
        count is the one the state was started with, and heartbeat."""
        meta = f"partitions:{self.sync}"
        stored = await self.store.meta_get(meta)
        if stored is None:
            await self.store.meta_put(meta, str(self.partitions))
        elif int(stored) != self.partitions:
            raise StateError(
                f"this state was started with PARTITIONS={stored}; every worker must use the "
                f"same count (this one has {self.partitions}); changing it needs a new stream "
                "and state"
            )
        sync, count = self.sync, self.partitions

        async def op(conn: asyncpg.Connection) -> None:
            await conn.execute(
                "INSERT INTO partitions (sync, part) SELECT $1, g FROM generate_series(0, $2 - 1)"
                " AS g ON CONFLICT DO NOTHING",
                sync,
                count,
            )

        await self.store.write(op)
        await self.heartbeat()

    async def heartbeat(self) -> None:
        sync, worker = self.sync, self.worker
        host, pid = socket.gethostname(), os.getpid()

        async def op(conn: asyncpg.Connection) -> None:
            await conn.execute(
                "INSERT INTO workers (sync, worker, host, pid, started_at, heartbeat_at)"
                f" VALUES ($1, $2, $3, $4, {_NOW}, {_NOW}) ON CONFLICT (sync, worker)"
                f" DO UPDATE SET heartbeat_at = {_NOW}",
                sync,
                worker,
                host,
                pid,
            )

        await self.store.write(op)

    async def live(self) -> list[str]:
        rows = await self.store.read(
            f"SELECT worker FROM workers WHERE sync = $1 AND heartbeat_at > {_NOW} - $2"
            " ORDER BY worker",
            self.sync,
            self.ttl,
        )
        return [str(r["worker"]) for r in rows]

    async def claim(self, part: int) -> Claim | None:
        """Take ``part`` if it is free, ours, or its owner is gone; None otherwise."""
        sync, worker, ttl = self.sync, self.worker, self.ttl

        async def op(conn: asyncpg.Connection) -> asyncpg.Record | None:
            return await conn.fetchrow(
                "UPDATE partitions p SET owner = $3, epoch = p.epoch + 1,"
                f" claimed_at = {_NOW} WHERE p.sync = $1 AND p.part = $2 AND (p.owner IS NULL"
                " OR p.owner = $3 OR NOT EXISTS (SELECT 1 FROM workers w WHERE w.sync = p.sync"
                f" AND w.worker = p.owner AND w.heartbeat_at > {_NOW} - $4))"
                " RETURNING epoch, stream_offset",
                sync,
                part,
                worker,
                ttl,
            )

        row = await self.store.write(op)
        if row is None:
            return None
        return Claim(part, int(row["epoch"]), int(row["stream_offset"]))

    async def release(self, claim: Claim) -> None:
        """Give ``claim``'s partition up (its in-flight work finished): free for its next owner."""
        sync, worker = self.sync, self.worker

        async def op(conn: asyncpg.Connection) -> None:
            await conn.execute(
                "UPDATE partitions SET owner = NULL WHERE sync = $1 AND part = $2 AND owner = $3"
                " AND epoch = $4",
                sync,
                claim.part,
                worker,
                claim.epoch,
            )

        await self.store.write(op)

    async def leave(self) -> None:
        """A clean stop: free every partition still ours and drop the heartbeat row, so the
        others take over at once instead of after the TTL."""
        sync, worker = self.sync, self.worker

        async def op(conn: asyncpg.Connection) -> None:
            await conn.execute(
                "UPDATE partitions SET owner = NULL WHERE sync = $1 AND owner = $2", sync, worker
            )
            await conn.execute("DELETE FROM workers WHERE sync = $1 AND worker = $2", sync, worker)

        await self.store.write(op)

    async def forget_gone(self, older_than: float) -> None:
        """Drop heartbeat rows of workers gone for longer than ``older_than`` seconds."""
        sync = self.sync

        async def op(conn: asyncpg.Connection) -> None:
            await conn.execute(
                f"DELETE FROM workers WHERE sync = $1 AND heartbeat_at < {_NOW} - $2",
                sync,
                older_than,
            )

        await self.store.write(op)

    async def table(self) -> list[PartitionRow]:
        """Every partition: owner, epoch, stored offset, whether the owner is alive."""
        rows = await self.store.read(
            "SELECT p.part, p.owner, p.epoch, p.stream_offset, EXISTS (SELECT 1 FROM workers w"
            f" WHERE w.sync = p.sync AND w.worker = p.owner AND w.heartbeat_at > {_NOW} - $2)"
            " AS alive FROM partitions p WHERE p.sync = $1 ORDER BY p.part",
            self.sync,
            self.ttl,
        )
        return [
            PartitionRow(
                int(r["part"]),
                r["owner"],
                int(r["epoch"]),
                int(r["stream_offset"]),
                bool(r["alive"]),
            )
            for r in rows
        ]


class PollerLock:
    """The poller role: a session advisory lock on a connection of its own, and the fence epoch
    raised each time the role changes hands."""

    def __init__(self, url: str, sync: str, worker: str, schema: str = "integration") -> None:
        self.url = url
        self.sync = sync
        self.worker = worker
        self.schema = schema
        self._conn: asyncpg.Connection | None = None
        self.epoch: int | None = None

    @property
    def key(self) -> str:
        """What ``hashtext`` turns into the lock's number: the sync and its state's schema (two
        states in one database are two deployments, each with a poller of its own)."""
        return f"integration-worker:poller:{self.schema}:{self.sync}"

    @property
    def fence(self) -> str:
        return f"poller:{self.sync}"

    @property
    def held(self) -> bool:
        return self._conn is not None

    async def try_acquire(self) -> int | None:
        """Take the role if nobody holds it; returns the new fence epoch, or None."""
        where = mask_url(self.url)
        try:
            conn = await asyncpg.connect(
                self.url, timeout=10.0, server_settings={"search_path": quoted_schema(self.schema)}
            )
        except (*DB_ERRORS, ValueError) as exc:
            raise one_line(where, exc) from exc
        try:
            taken = await conn.fetchval("SELECT pg_try_advisory_lock(hashtext($1))", self.key)
            if not taken:
                await conn.close()
                return None
            # Raised on the lock's own connection, once the lock is ours: an old poller's
            # cursor write either committed before this or fails its fence check after it.
            epoch = await conn.fetchval(
                "INSERT INTO fences (name, epoch, holder) VALUES ($1, 1, $2) ON CONFLICT (name)"
                " DO UPDATE SET epoch = fences.epoch + 1, holder = excluded.holder"
                " RETURNING epoch",
                self.fence,
                self.worker,
            )
        except DB_ERRORS as exc:
            conn.terminate()
            raise one_line(where, exc) from exc
        self._conn = conn
        self.epoch = int(epoch)
        return self.epoch

    async def check(self) -> None:
        """Raise ``StateError`` if the lock's connection is gone (the lock with it)."""
        if self._conn is None:
            return
        try:
            await self._conn.fetchval("SELECT 1", timeout=5.0)
        except Exception as exc:  # whatever the driver says, the lock can no longer be trusted
            raise StateError(
                f"{mask_url(self.url)}: lost the connection holding the poller role "
                f"({' '.join(str(exc).split()) or type(exc).__name__}); stopping"
            ) from exc

    async def release(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await close_quietly(conn)

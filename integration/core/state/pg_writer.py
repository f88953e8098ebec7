"""The PostgreSQL state opened: a connection pool, the schema migrated, and the one writer task
all writes go through.

As with the SQLite file (``writer``), writes are grouped: the writer task commits whatever is
queued in one transaction, and each caller still awaits its own commit, so a write is durable
before the caller goes on (an effect's intent before the request it guards). Each batch takes a
connection from the pool, so a connection the server dropped is replaced, not fatal. Reads use
the pool's other connections.

Every asyncpg error surfaces as a ``StateError``: one line naming the database (its URL with
the password masked).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

import asyncpg

from ..http import mask_url
from .group_commit import GroupCommit
from .pg_schema import migrate, quoted_schema
from .records import StateError

T = TypeVar("T")
PgWriteOp = Callable[[asyncpg.Connection], Awaitable[T]]
"""A write: a coroutine function run on a connection, inside the batch's transaction."""

DB_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, asyncio.TimeoutError)
"""What asyncpg raises for a server error, a value it cannot send, or a connection lost."""

_CONNECT_TIMEOUT = 10.0

_CONFLICTS = (asyncpg.exceptions.DeadlockDetectedError, asyncpg.exceptions.SerializationError)
"""A transaction PostgreSQL failed to resolve a conflict with another: try it again."""
_CONFLICT_TRIES = 8


def one_line(where: str, exc: BaseException) -> StateError:
    """``exc`` as a StateError of one line: ``<masked url>: <what went wrong>``."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return StateError(f"{where}: {text}")


class StateDatabase:
    """One PostgreSQL schema: created and migrated at open, written by group commit."""

    def __init__(self, url: str, schema: str, *, pool_size: int = 8) -> None:
        self.url = url
        self.schema = schema
        self.where = f"{mask_url(url)} (schema {schema})"
        """The database as errors and logs name it: the URL with its password masked."""
        self._pool_size = pool_size
        self._pool: asyncpg.Pool | None = None
        self._commits: GroupCommit[PgWriteOp[Any]] = GroupCommit(
            self.where, self._run_batch, DB_ERRORS, one_line
        )

    # -- lifecycle -------------------------------------------------------------------------

    async def open(self) -> None:
        quoted = quoted_schema(self.schema)
        try:
            conn = await asyncpg.connect(self.url, timeout=_CONNECT_TIMEOUT)
        except (*DB_ERRORS, ValueError) as exc:  # ValueError: a URL asyncpg cannot parse
            raise one_line(self.where, exc) from exc
        try:
            await migrate(conn, self.schema, self.where)
        except DB_ERRORS as exc:
            raise one_line(f"{self.where}: cannot bring the state schema up to date", exc) from exc
        finally:
            await conn.close()
        try:
            # Every connection finds the tables by their plain names, as the SQLite queries do.
            self._pool = await asyncpg.create_pool(
                self.url,
                min_size=1,
                max_size=self._pool_size,
                timeout=_CONNECT_TIMEOUT,
                server_settings={"search_path": quoted},
            )
        except DB_ERRORS as exc:
            raise one_line(self.where, exc) from exc
        self._commits.start()

    async def close(self) -> None:
        await self._commits.stop()
        if self._pool is not None:
            pool, self._pool = self._pool, None
            try:
                await asyncio.wait_for(pool.close(), _CONNECT_TIMEOUT)
            except (*DB_ERRORS, TimeoutError):
                pool.terminate()

    # -- reads and writes ------------------------------------------------------------------

    async def read(self, sql: str, *params: Any) -> list[asyncpg.Record]:
        if self._pool is None:
            raise StateError(f"{self.where}: the state store is not open")
        try:
            return list(await self._pool.fetch(sql, *params))
        except DB_ERRORS as exc:
            raise one_line(self.where, exc) from exc

    async def write(self, op: PgWriteOp[T]) -> T:
        """Run ``op`` in the next write transaction; return once it is committed."""
        result: T = await self._commits.write(op)
        return result

    async def write_in_batches(self, op: PgWriteOp[int], batch: int) -> int:
        """Run ``op`` (which deletes at most ``batch`` rows) until it deletes fewer, each run its
        own transaction (other writes go in between); returns how many it deleted in all."""
        return await self._commits.write_in_batches(op, batch)

    async def _run_batch(self, ops: list[PgWriteOp[Any]]) -> list[tuple[bool, Any]]:
        """The ops in one transaction. Several workers write the same rows (the counters, the
        maps) in their own orders, and PostgreSQL breaks a deadlock by failing one of the
        transactions: that one is run again (rolled back whole, so running it again is safe),
        after a short random pause so that the two do not meet again in step."""
        assert self._pool is not None
        for attempt in range(1, _CONFLICT_TRIES + 1):
            try:
                async with self._pool.acquire() as proxy, proxy.transaction():
                    # The pool hands out a proxy that forwards every call to its connection.
                    conn = cast(asyncpg.Connection, proxy)
                    return [(True, await op(conn)) for op in ops]
            except _CONFLICTS:
                if attempt == _CONFLICT_TRIES:
                    raise
                await asyncio.sleep(random.uniform(0.005, 0.05) * attempt)
        raise AssertionError("unreachable")

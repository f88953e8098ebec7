"""Group commit, for any database: one writer task runs whatever writes are queued in a single
transaction, and each caller awaits its own commit. A write is durable before its caller goes on
(an effect's intent before the request it guards), yet fifty concurrent writers cost one commit,
not fifty. A batch that fails is run again one write at a time, so only the broken write fails.

A backend says how to run a batch in one transaction (``run_batch``) and what its driver's errors
are (``errors``, turned into ``StateError`` naming the store)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from .records import StateError

Op = TypeVar("Op")
T = TypeVar("T")

BATCH_LIMIT = 500


@dataclass
class Write(Generic[Op]):
    op: Op
    future: asyncio.Future[Any]


RunBatch = Callable[[list[Op]], Awaitable[list[tuple[bool, Any]]]]
"""Run the ops in one transaction: each op's ``(True, result)``, or raise (all rolled back)."""


class GroupCommit(Generic[Op]):
    def __init__(
        self,
        where: str,
        run_batch: RunBatch[Op],
        errors: tuple[type[BaseException], ...],
        wrap: Callable[[str, BaseException], StateError] | None = None,
    ) -> None:
        self.where = where
        self._run_batch = run_batch
        self._errors = errors
        self._wrap = wrap or (lambda where, exc: StateError(f"{where}: {exc}"))
        self._queue: asyncio.Queue[Write[Op] | None] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._writer = asyncio.create_task(self._write_loop(), name="store-writer")

    async def stop(self) -> None:
        if self._writer is not None:
            await self._queue.put(None)
            await self._writer
            self._writer = None

    async def write(self, op: Op) -> Any:
        """Run ``op`` in the next write transaction; return once it is committed."""
        if self._writer is None or self._writer.done():
            raise StateError(f"{self.where}: the state store is not open")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        await self._queue.put(Write(op, future))
        try:
            return await future
        except self._errors as exc:
            # A full disk, a file made read-only, a lost server: not a failure a caller can
            # work around. It surfaces as one line naming the store.
            raise self._wrap(self.where, exc) from exc

    async def write_in_batches(self, op: Op, batch: int) -> int:
        """Run ``op`` (which deletes at most ``batch`` rows) until it deletes fewer, each run its
        own transaction (other writes go in between); returns how many it deleted in all."""
        if batch < 1:
            raise ValueError("batch must be at least 1")
        total = 0
        while True:
            deleted = int(await self.write(op))
            total += deleted
            if deleted < batch:
                return total

    async def _write_loop(self) -> None:
        while True:
            first = await self._queue.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while len(batch) < BATCH_LIMIT and not self._queue.empty():
                nxt = self._queue.get_nowait()
                if nxt is None:
                    stop = True
                    break
                batch.append(nxt)
            try:
                results = await self._run_batch([w.op for w in batch])
            except Exception:
                # One op broke the batch (rolled back whole): run each alone, so only the
                # broken one fails.
                results = [await self._run_alone(w) for w in batch]
            for write, (ok, value) in zip(batch, results, strict=True):
                if write.future.done():
                    continue
                if ok:
                    write.future.set_result(value)
                else:
                    write.future.set_exception(value)
            if stop:
                return

    async def _run_alone(self, write: Write[Op]) -> tuple[bool, Any]:
        try:
            return (await self._run_batch([write.op]))[0]
        except Exception as exc:
            return (False, exc)

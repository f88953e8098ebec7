"""Writes to a provider, several records per call where the provider answers per record.

Records are applied one at a time per key, but many keys are in flight at once; each one's write
waits here up to ``linger`` seconds for others of the same object, and they go as one batch call
(at most the connector's ``max_batch``). Each caller gets its own record's result, so a refused
record fails alone. A call that fails as a whole (a 5xx, a timeout, a limit) fails every record in
it, each to be retried by its own key: the writes are upserts by our id, so a repeat cannot create
a second record.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

from ...connectors.crm.base import Connector, ObjectName, Write, WriteResult
from ...core.clock import Clock


@dataclass
class _Pending:
    writes: list[Write] = field(default_factory=list)
    waiters: list[asyncio.Future[WriteResult]] = field(default_factory=list)
    timer: asyncio.Task[None] | None = None


class Writer:
    def __init__(
        self, connector: Connector, clock: Clock, *, linger: float = 0.02, batch: bool = True
    ) -> None:
        self.connector = connector
        self.clock = clock
        self.linger = linger
        self.size = connector.max_batch if batch else 1
        self._pending: dict[str, _Pending] = {}
        self._calls: set[asyncio.Task[None]] = set()
        self.calls = 0
        self.records = 0

    async def upsert(self, object: ObjectName, write: Write) -> WriteResult:
        if self.size <= 1:
            self.calls += 1
            self.records += 1
            return (await self.connector.upsert(object, [write]))[0]
        waiter: asyncio.Future[WriteResult] = asyncio.get_running_loop().create_future()
        pending = self._pending.setdefault(object, _Pending())
        pending.writes.append(write)
        pending.waiters.append(waiter)
        if len(pending.writes) >= self.size:
            self._flush(object)
        elif pending.timer is None:
            pending.timer = asyncio.create_task(self._after_linger(object))
        return await waiter

    async def delete(self, object: ObjectName, ids: Sequence[str]) -> WriteResult:
        self.calls += 1
        return (await self.connector.delete(object, ids))[0]

    async def _after_linger(self, object: ObjectName) -> None:
        await self.clock.sleep(self.linger)
        pending = self._pending.get(object)
        if pending is not None:
            pending.timer = None
            self._flush(object)

    def _flush(self, object: ObjectName) -> None:
        pending = self._pending.pop(object, None)
        if pending is None or not pending.writes:
            return
        if pending.timer is not None:
            pending.timer.cancel()
        task = asyncio.create_task(self._send(object, pending))
        self._calls.add(task)
        task.add_done_callback(self._calls.discard)

    async def _send(self, object: ObjectName, pending: _Pending) -> None:
        self.calls += 1
        self.records += len(pending.writes)
        try:
            results = await self.connector.upsert(object, pending.writes)
        except Exception as exc:  # every record of the call fails with it, each retried by its key
            for waiter in pending.waiters:
                if not waiter.done():
                    waiter.set_exception(exc)
            return
        except BaseException:
            for waiter in pending.waiters:
                waiter.cancel()
            raise
        for waiter, result in zip(pending.waiters, results, strict=True):
            if not waiter.done():
                waiter.set_result(result)

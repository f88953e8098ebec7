"""Keyed dispatch: items of one key run one at a time in the order submitted; different keys run
concurrently, at most ``concurrency`` at once.

A key is the unit of order (one conversation). Nothing here assumes this process owns every key,
so the same shape works when keys are partitioned across workers.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")

Handler = Callable[[K, T], Awaitable[bool]]
"""Process one item; return False to drop the key's queued items (they wait in the store)."""


class KeyedDispatcher(Generic[K, T]):
    def __init__(
        self,
        handler: Handler[K, T],
        *,
        concurrency: int,
        max_queued: int = 10_000,
        batch_per_turn: int = 16,
        on_dropped: Callable[[list[T]], None] | None = None,
        on_crash: Callable[[BaseException], None] | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._handler = handler
        self._concurrency = concurrency
        self._queues: dict[K, deque[T]] = {}
        self._ready: asyncio.Queue[K] = asyncio.Queue()
        self._queued = 0
        self._max_queued = max_queued
        self._batch_per_turn = batch_per_turn
        self._on_dropped = on_dropped
        self._on_crash = on_crash
        self._room = asyncio.Condition()
        self._waiting_for_room = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._running: set[K] = set()
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def queued(self) -> int:
        """Items submitted and not yet finished (running ones included)."""
        return self._queued

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._run(), name=f"dispatch-{n}") for n in range(self._concurrency)
        ]
        for task in self._tasks:
            task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[None]) -> None:
        """A runner only ends when cancelled; one that ends otherwise is reported, never lost."""
        if task.cancelled():
            return
        exc = task.exception() or RuntimeError(f"{task.get_name()} ended on its own")
        log.error("dispatcher runner failed: %s: %s", exc.__class__.__name__, exc)
        if self._on_crash is not None:
            self._on_crash(exc)

    async def submit(self, key: K, item: T) -> None:
        """Queue ``item`` behind the key's earlier items; waits while the dispatcher is full."""
        if self._queued >= self._max_queued:
            self._waiting_for_room += 1
            try:
                async with self._room:
                    await self._room.wait_for(lambda: self._queued < self._max_queued)
            finally:
                self._waiting_for_room -= 1
        self._queued += 1
        self._idle.clear()
        queue = self._queues.get(key)
        if queue is None:
            # A key is in the ready queue at most once, so one runner owns it at a time.
            self._queues[key] = deque([item])
            self._ready.put_nowait(key)
        else:
            queue.append(item)

    async def join(self) -> None:
        """Wait until everything submitted has been handled."""
        await self._idle.wait()

    async def stop(self, grace: float) -> bool:
        """Let running items finish within ``grace`` seconds, then cancel. True if it drained."""
        drained = True
        if self._queued:
            try:
                async with asyncio.timeout(grace):
                    await self._idle.wait()
            except TimeoutError:
                drained = False
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        return drained

    async def drop_queued(self) -> int:
        """Forget queued (not running) items: at shutdown, they stay pending in the store."""
        dropped: list[T] = []
        for key, queue in self._queues.items():
            keep = 1 if key in self._running else 0
            while len(queue) > keep:
                dropped.append(queue.pop())
        await self._dropped(dropped)
        return len(dropped)

    async def _dropped(self, items: list[T]) -> None:
        if self._on_dropped is not None and items:
            self._on_dropped(items)
        await self._release(len(items))

    async def _run(self) -> None:
        while True:
            key = await self._ready.get()
            queue = self._queues[key]
            self._running.add(key)
            try:
                for _ in range(self._batch_per_turn):
                    if not queue:
                        break
                    item = queue[0]
                    try:
                        keep_going = await self._handler(key, item)
                    finally:
                        # Done or not, the item leaves the queue: whatever did not finish is
                        # still pending in the store and comes back from there.
                        queue.popleft()
                        await self._release(1)
                    if not keep_going:
                        dropped = list(queue)
                        queue.clear()
                        await self._dropped(dropped)
            finally:
                self._running.discard(key)
                if queue:
                    # Give other keys a turn; this one goes to the back of the line.
                    self._ready.put_nowait(key)
                else:
                    del self._queues[key]

    async def _release(self, count: int) -> None:
        if not count:
            return
        self._queued -= count
        if self._queued == 0:
            self._idle.set()
        # Only a submitter waiting for room needs waking: taking the condition's lock for every
        # item finished cost more than the rest of the dispatcher's own work per item.
        if self._waiting_for_room:
            async with self._room:
                self._room.notify_all()

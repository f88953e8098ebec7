"""Late-landing writes: held, then applied whether or not their client is still there.

Some deployments apply a write long after the client gave up on it (timed out, disconnected),
so a client that retries may write twice, and one that reads back too early sees nothing. To
play that, a chosen write is held ``late_landing_s`` seconds, then applied, then answered if
anyone is still listening.

aiohttp may cancel a handler when its client goes away (``handler_cancellation``), and server
shutdown cancels handlers that outlive its timeout. The hold and the write therefore run in a
task of their own that the handler only awaits through ``asyncio.shield``: cancelling the
handler leaves the write to land. At shutdown, held writes get ``SHUTDOWN_WAIT_S`` to land, then
are cancelled (lost, as in a crash), before the database closes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Handler

from standin_kit.faults import FaultLog

Sleep = Callable[[float], Awaitable[None]]

SHUTDOWN_WAIT_S = 5.0
"""How long a shutdown waits for held writes to land before cancelling them."""


class LateLandings:
    """The writes being held, and how they land."""

    def __init__(self, log: FaultLog, sleep: Sleep = asyncio.sleep) -> None:
        self._log = log
        self._sleep = sleep
        self._tasks: set[asyncio.Task[web.StreamResponse]] = set()

    def __len__(self) -> int:
        """Writes held and not landed yet."""
        return len(self._tasks)

    async def hold_then_apply(
        self, request: web.Request, handler: Handler, hold_s: float
    ) -> web.StreamResponse:
        """Hold the write ``hold_s`` seconds, apply it, answer with the handler's answer."""
        # Read the body now: once cached on the request, the write needs nothing from the client.
        await request.read()
        task = asyncio.create_task(self._land(request, handler, hold_s))
        self._tasks.add(task)
        task.add_done_callback(self._forget)
        return await asyncio.shield(task)

    async def _land(
        self, request: web.Request, handler: Handler, hold_s: float
    ) -> web.StreamResponse:
        await self._sleep(hold_s)
        response = await handler(request)
        self._log.add("late_landing", request.method, request.path)  # at: when it was applied
        return response

    def _forget(self, task: asyncio.Task[web.StreamResponse]) -> None:
        self._tasks.discard(task)
        if not task.cancelled():
            # Retrieved here, so that a write whose client is gone leaves no "exception was
            # never retrieved" warning behind; the handler that still awaits it gets it too.
            task.exception()

    async def close(self, wait_s: float = SHUTDOWN_WAIT_S) -> None:
        """Let held writes land for up to ``wait_s`` seconds, then cancel the rest."""
        if not self._tasks:
            return
        _, pending = await asyncio.wait(set(self._tasks), timeout=wait_s)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

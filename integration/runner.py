"""Running the worker as a process: signals, the state lock, exit statuses a supervisor can act
on (0 clean stop, 1 unexpected failure, 2 bad configuration)."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Coroutine
from typing import Any

from .core.engine import Engine

log = logging.getLogger("integration")

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIG = 2


def install_stop_signals(stopping: asyncio.Event, task: asyncio.Task[Any] | None = None) -> None:
    """First SIGINT/SIGTERM: stop cleanly. A second one: stop now."""
    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        if not stopping.is_set():
            log.info("%s received: stopping (again to stop at once)", signal.Signals(signum).name)
            stopping.set()
        elif task is not None:
            log.warning("second signal: stopping at once")
            task.cancel()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal, signum)


async def run_engine(
    engine: Engine,
    stopping: asyncio.Event,
    *,
    alongside: Callable[[], Coroutine[Any, Any, None]] | None = None,
) -> bool:
    """Run ``engine`` (and ``alongside``, e.g. a progress line) until ``stopping`` is set."""
    extra = asyncio.create_task(alongside()) if alongside else None
    try:
        return await engine.run(stopping)
    finally:
        if extra is not None:
            extra.cancel()
            await asyncio.gather(extra, return_exceptions=True)

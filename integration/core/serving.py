"""Serve an aiohttp application inside the current event loop.

Used by the test-suite and by ``python run.py demo`` to run the stand-ins in-process, and by the
metrics endpoint. Port 0 asks the OS for a free port; the real one is read back from the socket.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aiohttp import web


@dataclass(frozen=True)
class Served:
    """Where a served application can be reached."""

    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


@asynccontextmanager
async def serve_app(
    app: web.Application, host: str = "127.0.0.1", port: int = 0, *, shutdown_timeout: float = 2.0
) -> AsyncIterator[Served]:
    """Run ``app`` on ``host:port`` until the block exits, then shut it down cleanly."""
    runner = web.AppRunner(
        app, handle_signals=False, access_log=None, shutdown_timeout=shutdown_timeout
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    try:
        await site.start()
        # runner.addresses lists the bound sockets' names, with the port the OS chose for port 0.
        real_port = int(runner.addresses[0][1])
        yield Served(host, real_port)
    finally:
        await runner.cleanup()

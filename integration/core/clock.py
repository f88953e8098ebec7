"""Time, injected.

Everything that reads the time or sleeps takes a ``Clock`` so tests can run a worker through many
poll cycles in a fraction of a second, and so windows are computed from one consistent source.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Unix time in seconds."""

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds``; cancellable."""


class SystemClock:
    """The real clock."""

    def now(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def utc(ts: float) -> datetime:
    """A Unix timestamp as an aware UTC datetime."""
    return datetime.fromtimestamp(ts, tz=UTC)


def iso(ts: float) -> str:
    """A Unix timestamp as ISO 8601 with an explicit ``+00:00`` offset."""
    return utc(ts).isoformat()

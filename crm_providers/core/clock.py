"""Time, injected: budgets, windows, timestamps and webhook back-off all read one ``Clock``.

Tests pass a manual clock (``now()`` returns what the test set, ``sleep`` only yields), so a
24-hour allocation or a retry schedule is exercised without waiting.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Unix time in seconds."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds``; cancellable."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def utc(ts: float) -> datetime:
    """A Unix timestamp as an aware UTC datetime."""
    return datetime.fromtimestamp(ts, tz=UTC)


def parse_instant(text: str) -> float:
    """Unix seconds from an ISO 8601 / RFC 3339 text (``Z``, ``+00:00`` or ``+0000``).

    A text without an offset is taken as UTC. Raises ``ValueError`` when it is not a date-time.
    """
    value = text.strip()
    if value.endswith("Z"):
        value = value[:-1] + "+00:00"
    # Salesforce writes offsets without a colon (+0000); fromisoformat wants one.
    if len(value) > 5 and value[-5] in "+-" and value[-4:].isdigit():
        value = value[:-2] + ":" + value[-2:]
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()

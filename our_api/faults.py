"""Fault injection: errors, ambiguous writes (committed, then 500), latency, rate limiting and
late-landing writes (held, then applied whether or not the client is still there).

Decisions are drawn from one ``random.Random`` seeded from the settings, so a test with a seed sees
the same faults on every run. Every fault injected is logged, so a test can tell an injected failure
from a real one.
"""

from __future__ import annotations

import asyncio
import math
import time

from our_api.settings import FaultSettings
from standin_kit.faults import Dice, FaultLog, Faults

LATE_LANDING_METHODS = frozenset({"POST", "PATCH"})


class TokenBucket:
    """``rate`` requests a second on average, bursts of up to ``max(1, rate)``."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate)
        self._tokens = self.capacity
        self._updated = time.monotonic()

    def take(self) -> float | None:
        """Take a token: ``None`` if one was free, else the seconds until one will be."""
        now = time.monotonic()
        self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
        self._updated = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return None
        return (1.0 - self._tokens) / self.rate


class FaultInjector:
    """Decides, request by request, which fault (if any) to inject, and logs it."""

    def __init__(self, settings: FaultSettings, seed: int | None, log: FaultLog) -> None:
        self._dice = Dice(seed)
        self._faults = Faults(self._dice, log, asyncio.sleep)
        self.log = log
        self.settings = settings
        self._bucket: TokenBucket | None = None
        self.update(settings)

    def update(self, settings: FaultSettings) -> None:
        """Switch to new settings (the bucket restarts full when the rate changes)."""
        if self._bucket is None or settings.rate_limit != self.settings.rate_limit:
            self._bucket = None if settings.rate_limit is None else TokenBucket(settings.rate_limit)
        self.settings = settings

    def retry_after(self, method: str, path: str) -> int | None:
        """Seconds to put in ``Retry-After`` if this request is over the rate limit, else None."""
        if self._bucket is None:
            return None
        wait = self._bucket.take()
        if wait is None:
            return None
        self.log.add("rate_limit", method, path)
        return max(1, math.ceil(wait))

    def error(self, method: str, path: str) -> bool:
        """Whether to answer this request 500 before doing anything."""
        return self._faults.error(self.settings, method, path)

    async def delay(self, method: str, path: str) -> None:
        """Add the configured latency (a sleep: other requests go on meanwhile)."""
        await self._faults.delay(self.settings, method, path)

    def ambiguous(self, method: str, path: str, status: int) -> bool:
        """Whether to answer this write, committed if ``status`` is a 2xx, 500 anyway."""
        return self._faults.ambiguous(self.settings, method, path, status)

    def late_landing(self, method: str, path: str) -> float | None:
        """Seconds to hold this write before applying it, or None to apply it at once."""
        s = self.settings
        if method not in LATE_LANDING_METHODS or s.late_landing_rate <= 0.0:
            return None
        if s.late_landing_paths is not None and s.late_landing_paths not in path:
            return None
        return s.late_landing_s if self._dice.draw(s.late_landing_rate) else None

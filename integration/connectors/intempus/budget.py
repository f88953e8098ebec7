"""The client's own share of Intempus's rate limits, spent before a request is sent.

Intempus counts every request per user, refused ones included, in **any** 60-second window and per
UTC day (``docs/intempus-contract.md``, *Rate limits*). A classic token bucket of N tokens refilled
at N per minute lets up to 2N through some 60-second window (a full bucket, then a minute of
refill), which that sliding window would answer with 429s. So the per-minute part here is exact: it
remembers the send times of the last N requests, and the next one waits until the oldest of them is
60 s old. The per-day part counts per UTC day, as Intempus does. The defaults (400, 40 000) leave
headroom under Intempus's 500 and 50 000 for other integrations sharing the key.

After a 429 the client calls ``hold`` with the ``Retry-After``: while Intempus locks us out, every
early request would only count against us and extend the lock-out, so nobody sends until then.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from typing import NamedTuple

from ...core.clock import Clock, SystemClock

WINDOW_S = 60.0
DAY_S = 86_400.0


class Remaining(NamedTuple):
    """Requests that could go out right now without waiting: in the current 60 s window and in
    the current UTC day (for metrics)."""

    minute: int
    day: int


class RateBudget:
    """``await take()`` before each request; it returns once the request fits the budget."""

    def __init__(
        self, per_minute: int = 400, per_day: int = 40_000, clock: Clock | None = None
    ) -> None:
        if per_minute < 1 or per_day < 1:
            raise ValueError("a rate budget needs at least one request per minute and per day")
        self.per_minute = per_minute
        self.per_day = per_day
        self._clock = clock or SystemClock()
        self._sent: deque[float] = deque(maxlen=per_minute)
        self._day = -1
        self._day_count = 0
        self._hold_until = 0.0
        # Waiters are served in arrival order, one at a time: a waiter that slept re-checks the
        # budget before anyone behind it can take the freed slot.
        self._lock = asyncio.Lock()

    def _wait(self, now: float) -> float:
        """Seconds until one more request fits (0: it fits now)."""
        waits = [self._hold_until - now]
        if len(self._sent) >= self.per_minute:
            waits.append(self._sent[0] + WINDOW_S - now)
        day = math.floor(now / DAY_S)
        if day == self._day and self._day_count >= self.per_day:
            waits.append((day + 1) * DAY_S - now)
        return max(0.0, *waits)

    async def take(self) -> None:
        """Wait until a request fits the budget, then count it as sent."""
        async with self._lock:
            while (wait := self._wait(self._clock.now())) > 0:
                await self._clock.sleep(wait)
            now = self._clock.now()
            day = math.floor(now / DAY_S)
            if day != self._day:
                self._day, self._day_count = day, 0
            self._day_count += 1
            self._sent.append(now)  # maxlen drops the oldest: only the last N matter

    def hold(self, seconds: float) -> None:
        """Send nothing for ``seconds`` from now (Intempus's ``Retry-After`` after a 429)."""
        self._hold_until = max(self._hold_until, self._clock.now() + max(0.0, seconds))

    def remaining(self) -> Remaining:
        now = self._clock.now()
        in_window = sum(1 for sent in self._sent if sent > now - WINDOW_S)
        day_count = self._day_count if math.floor(now / DAY_S) == self._day else 0
        return Remaining(
            minute=max(0, self.per_minute - in_window), day=max(0, self.per_day - day_count)
        )

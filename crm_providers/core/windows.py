"""Budget counters read from the injected clock: a rolling window and a calendar-day budget.

A request (or a token cost) is taken only if it fits; a refused one takes nothing, so a client
that keeps asking while over the limit does not push its own reset further away.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

from crm_providers.core.clock import Clock

DAY = 86_400.0


class RollingWindow:
    """At most ``limit`` units in any ``window_s`` seconds (HubSpot's ten-secondly, Salesforce's
    rolling 24 hours, Pipedrive's 2-second burst)."""

    def __init__(self, limit: int, window_s: float, clock: Clock) -> None:
        self.limit = limit
        self.window_s = window_s
        self._clock = clock
        self._taken: deque[tuple[float, int]] = deque()
        self._sum = 0

    def _prune(self, now: float) -> None:
        while self._taken and self._taken[0][0] <= now - self.window_s:
            self._sum -= self._taken.popleft()[1]

    def used(self) -> int:
        self._prune(self._clock.now())
        return self._sum

    def remaining(self) -> int:
        return max(0, self.limit - self.used())

    def fits(self, cost: int = 1) -> bool:
        return self.used() + cost <= self.limit

    def take(self, cost: int = 1) -> bool:
        """Take ``cost`` units if they fit; whether they did."""
        now = self._clock.now()
        self._prune(now)
        if self._sum + cost > self.limit:
            return False
        if self._taken and self._taken[-1][0] == now:
            # Same instant (a manual clock): one entry, so memory stays small.
            self._taken[-1] = (now, self._taken[-1][1] + cost)
        else:
            self._taken.append((now, cost))
        self._sum += cost
        return True

    def reset_in(self) -> float:
        """Seconds until the oldest unit leaves the window (0 when the window is empty)."""
        now = self._clock.now()
        self._prune(now)
        if not self._taken:
            return 0.0
        return max(0.0, self._taken[0][0] + self.window_s - now)

    def clear(self) -> None:
        self._taken.clear()
        self._sum = 0

    def state(self) -> dict[str, Any]:
        return {
            "limit": self.limit,
            "window_s": self.window_s,
            "used": self.used(),
            "remaining": self.remaining(),
            "reset_in_s": round(self.reset_in(), 3),
        }


class DailyBudget:
    """At most ``limit`` units per calendar day, reset at midnight UTC plus ``utc_offset_s``
    (HubSpot resets at midnight in the account's time zone; Pipedrive's tokens daily)."""

    def __init__(self, limit: int, clock: Clock, utc_offset_s: float = 0.0) -> None:
        self.limit = limit
        self.utc_offset_s = utc_offset_s
        self._clock = clock
        self._day = self._today()
        self._used = 0

    def _today(self) -> int:
        return math.floor((self._clock.now() + self.utc_offset_s) / DAY)

    def _roll(self) -> None:
        today = self._today()
        if today != self._day:
            self._day, self._used = today, 0

    def used(self) -> int:
        self._roll()
        return self._used

    def remaining(self) -> int:
        return max(0, self.limit - self.used())

    def fits(self, cost: int = 1) -> bool:
        return self.used() + cost <= self.limit

    def take(self, cost: int = 1) -> bool:
        self._roll()
        if self._used + cost > self.limit:
            return False
        self._used += cost
        return True

    def reset_in(self) -> float:
        """Seconds until the next midnight of the account's day."""
        local = self._clock.now() + self.utc_offset_s
        return (math.floor(local / DAY) + 1) * DAY - local

    def clear(self) -> None:
        self._used = 0

    def state(self) -> dict[str, Any]:
        return {
            "limit": self.limit,
            "used": self.used(),
            "remaining": self.remaining(),
            "reset_in_s": round(self.reset_in(), 3),
        }

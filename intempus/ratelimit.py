"""Intempus's rate limits: N requests per user in any 60 s (a sliding window) and M per UTC day.

Every request counts, the refused ones included (the contract's choice for an unknown detail), so
a client that keeps hammering stays locked out. ``Retry-After`` is the time until a request sent
then would be served. Time comes from the injected clock, so tests move it by hand.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

WINDOW_S = 60.0
DAY_S = 86_400


@dataclass
class _User:
    window: deque[float] = field(default_factory=deque)
    day: int = -1
    day_count: int = 0


class RateLimiter:
    """Counts requests per user; ``check`` answers None (serve it) or the seconds to wait."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._users: dict[str, _User] = {}

    def check(self, user: str, per_minute: int | None, per_day: int | None) -> int | None:
        now = self._clock()
        state = self._users.setdefault(user, _User())
        window = state.window
        window.append(now)
        while window and window[0] <= now - WINDOW_S:
            window.popleft()
        day = math.floor(now / DAY_S)
        if day != state.day:
            state.day, state.day_count = day, 0
        state.day_count += 1
        waits: list[float] = []
        if per_minute is not None and len(window) > per_minute:
            # Served once all but per_minute - 1 of the counted requests have left the window.
            waits.append(window[len(window) - per_minute] + WINDOW_S - now)
        if per_day is not None and state.day_count > per_day:
            waits.append((day + 1) * DAY_S - now)
        if not waits:
            return None
        return max(1, math.ceil(max(waits)))

    def reset(self) -> None:
        self._users.clear()

"""Fault injection: errors, ambiguous writes (committed, then 500), latency and rate limiting.

Decisions are drawn from one ``random.Random`` seeded from the settings, so a test with a seed sees
the same faults on every run. Every fault injected is logged, so a test can tell an injected failure
from a real one.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

from our_api.settings import FaultSettings

LOG_LIMIT = 10_000
"""Most fault records kept (the counts keep growing): a long loaded run must not grow memory."""

WRITE_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})


@dataclass(frozen=True)
class FaultRecord:
    """One injected fault. ``kind`` is ``error``, ``ambiguous``, ``latency`` or ``rate_limit``."""

    kind: str
    method: str
    path: str
    at: float


class FaultLog:
    """The faults injected so far: the last ``LOG_LIMIT`` records and a count per kind."""

    def __init__(self) -> None:
        self._records: deque[FaultRecord] = deque(maxlen=LOG_LIMIT)
        self.counts: Counter[str] = Counter()

    def add(self, kind: str, method: str, path: str) -> None:
        self._records.append(FaultRecord(kind, method, path, time.time()))
        self.counts[kind] += 1

    def __iter__(self) -> Iterator[FaultRecord]:
        return iter(list(self._records))

    def __len__(self) -> int:
        return len(self._records)

    def of_kind(self, kind: str) -> list[FaultRecord]:
        return [record for record in self._records if record.kind == kind]

    def snapshot(self) -> dict[str, Any]:
        return {"counts": dict(self.counts), "faults": [asdict(r) for r in self._records]}


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
        self._rng = random.Random(seed)
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
        if self._draw(self.settings.error_rate):
            self.log.add("error", method, path)
            return True
        return False

    async def delay(self, method: str, path: str) -> None:
        """Add the configured latency (a sleep: other requests go on meanwhile)."""
        if self.settings.latency_ms > 0:
            self.log.add("latency", method, path)
            await asyncio.sleep(self.settings.latency_ms / 1000)

    def ambiguous(self, method: str, path: str) -> bool:
        """Whether to answer this successful, committed write 500 anyway."""
        if method in WRITE_METHODS and self._draw(self.settings.ambiguous_rate):
            self.log.add("ambiguous", method, path)
            return True
        return False

    def _draw(self, rate: float) -> bool:
        # Rates of 0 and 1 draw nothing, so switching one fault on does not shift another's draws.
        if rate <= 0.0:
            return False
        if rate >= 1.0:
            return True
        return self._rng.random() < rate

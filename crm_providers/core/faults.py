"""Fault injection: 500 before commit, 500 after commit (ambiguous), latency, and the webhook
faults (duplicates, reordering) drawn from the same settings.

Draws come from ``random.Random`` instances seeded from the settings' seed, one for requests and
one for webhooks, so switching a webhook fault on does not shift which requests fail. Every
injected fault is logged, so a test can tell an injected failure from a real one.
"""

from __future__ import annotations

import random
from collections import Counter, deque
from dataclasses import asdict, dataclass
from typing import Any

from crm_providers.core.clock import Clock
from crm_providers.core.settings import FaultSettings

LOG_LIMIT = 10_000
WRITE_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})


@dataclass(frozen=True)
class FaultRecord:
    """One injected fault: ``error``, ``ambiguous``, ``latency``, ``duplicate`` or ``reorder``."""

    kind: str
    where: str
    at: float


class FaultInjector:
    """Decides, request by request and delivery by delivery, which fault to inject."""

    def __init__(self, settings: FaultSettings, seed: int, clock: Clock) -> None:
        self.settings = settings
        self._clock = clock
        self._requests = random.Random(f"{seed}:requests")
        self._webhooks = random.Random(f"{seed}:webhooks")
        self._log: deque[FaultRecord] = deque(maxlen=LOG_LIMIT)
        self.counts: Counter[str] = Counter()

    def update(self, settings: FaultSettings) -> None:
        self.settings = settings

    def _add(self, kind: str, where: str) -> None:
        self._log.append(FaultRecord(kind, where, self._clock.now()))
        self.counts[kind] += 1

    @staticmethod
    def _draw(rng: random.Random, rate: float) -> bool:
        # Rates of 0 and 1 draw nothing, so switching one fault on does not shift another's draws.
        if rate <= 0.0:
            return False
        if rate >= 1.0:
            return True
        return rng.random() < rate

    def error(self, where: str) -> bool:
        """Whether to answer this request 500 before doing anything."""
        if self._draw(self._requests, self.settings.error_rate):
            self._add("error", where)
            return True
        return False

    def ambiguous(self, method: str, where: str) -> bool:
        """Whether to answer this committed write 500 anyway."""
        if method in WRITE_METHODS and self._draw(self._requests, self.settings.ambiguous_rate):
            self._add("ambiguous", where)
            return True
        return False

    async def delay(self, where: str) -> None:
        if self.settings.latency_ms > 0:
            self._add("latency", where)
            await self._clock.sleep(self.settings.latency_ms / 1000)

    def duplicate(self, where: str) -> bool:
        """Whether to send this (successfully delivered) webhook delivery again."""
        if self._draw(self._webhooks, self.settings.duplicate_rate):
            self._add("duplicate", where)
            return True
        return False

    def reorder(self, where: str) -> bool:
        """Whether to swap this webhook event with the one before it."""
        if self._draw(self._webhooks, self.settings.reorder_rate):
            self._add("reorder", where)
            return True
        return False

    def snapshot(self) -> dict[str, Any]:
        return {
            "settings": self.settings.model_dump(),
            "counts": dict(self.counts),
            "faults": [asdict(r) for r in self._log],
        }

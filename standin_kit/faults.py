"""The fault log and the seeded draws behind the 500-before-commit, ambiguous and latency faults.

Draws come from one ``random.Random`` seeded from the settings, so a seeded run sees the same
faults; a rate of 0 or 1 draws nothing, so switching one fault on does not shift another's draws.
"""

from __future__ import annotations

import random
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

LOG_LIMIT = 10_000
"""Most fault records kept (the counts keep growing): a long loaded run must not grow memory."""
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class FaultRates(BaseModel):
    """The faults every stand-in can switch while it runs (``PATCH /_standin/faults``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    error_rate: float = Field(0.0, ge=0.0, le=1.0, description="share of requests answered 500")
    ambiguous_rate: float = Field(
        0.0, ge=0.0, le=1.0, description="share of successful writes committed, then answered 500"
    )
    latency_ms: float = Field(0.0, ge=0.0, le=60_000.0, description="delay added per request")


@dataclass(frozen=True)
class FaultRecord:
    """One injected fault, at ``at`` (Unix seconds): ``error``, ``ambiguous``, ``latency``, or
    one a stand-in adds (intempus: ``rate_limit``, ``late_lt``; our_api: ``rate_limit``,
    ``late_landing``, then ``at`` is when the held write was applied)."""

    kind: str
    method: str
    path: str
    at: float


class FaultLog:
    """The last ``LOG_LIMIT`` faults and a count per kind."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._records: deque[FaultRecord] = deque(maxlen=LOG_LIMIT)
        self.counts: Counter[str] = Counter()

    def add(self, kind: str, method: str, path: str) -> None:
        self._records.append(FaultRecord(kind, method, path, self._clock()))
        self.counts[kind] += 1

    def __iter__(self) -> Iterator[FaultRecord]:
        return iter(list(self._records))

    def __len__(self) -> int:
        return len(self._records)

    def of_kind(self, kind: str) -> list[FaultRecord]:
        return [r for r in self._records if r.kind == kind]

    def reset(self) -> None:
        self._records.clear()
        self.counts.clear()

    def snapshot(self) -> dict[str, Any]:
        return {"counts": dict(self.counts), "faults": [asdict(r) for r in self._records]}


class Dice:
    """Seeded yes/no draws at a given rate (``seed=None``: different on every run)."""

    def __init__(self, seed: int | None) -> None:
        self._rng = random.Random(seed)

    def draw(self, rate: float) -> bool:
        if rate <= 0.0:
            return False
        if rate >= 1.0:
            return True
        return self._rng.random() < rate


class Rates(Protocol):
    """What the draws read: ``FaultRates`` or a stand-in's larger switches model."""

    @property
    def error_rate(self) -> float: ...
    @property
    def ambiguous_rate(self) -> float: ...
    @property
    def latency_ms(self) -> float: ...


@dataclass(frozen=True)
class Faults:
    """The draws of one request, each logged when it fires.

    The order of the calls is the order of the draws, so a stand-in that calls them in the same
    order as before sees the same faults for the same seed.
    """

    dice: Dice
    log: FaultLog
    sleep: Callable[[float], Awaitable[None]]

    def error(self, rates: Rates, method: str, path: str) -> bool:
        """Whether to answer this request 500 before doing anything."""
        if self.dice.draw(rates.error_rate):
            self.log.add("error", method, path)
            return True
        return False

    async def delay(self, rates: Rates, method: str, path: str) -> None:
        if rates.latency_ms > 0:
            self.log.add("latency", method, path)
            await self.sleep(rates.latency_ms / 1000)

    def ambiguous(self, rates: Rates, method: str, path: str, status: int) -> bool:
        """Whether to answer this committed write (a 2xx) 500 anyway."""
        if method in WRITE_METHODS and 200 <= status < 300 and self.dice.draw(rates.ambiguous_rate):
            self.log.add("ambiguous", method, path)
            return True
        return False

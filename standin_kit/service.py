"""What every store-backed stand-in's service object holds (``case_store``, ``intempus``): the
injected clock and sleep, the request counts, the fault log and draws, the write hooks, and the
store, which opens only when the application starts."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import InitVar, dataclass, field
from typing import Generic, TypeVar

from standin_kit.faults import Dice, FaultLog, Faults
from standin_kit.hooks import KillHook
from standin_kit.stats import RequestStats

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]
WriteHook = Callable[[str, int], None]
"""Called as ``hook(op, case_id)`` right after a write commits, before it is answered."""

StoreT = TypeVar("StoreT")


@dataclass(kw_only=True)
class ServiceCore(Generic[StoreT]):
    """Made from the clock, the sleep, the fault seed and the caller's write hook; the counts,
    fault log, dice and hooks follow from them."""

    clock: Clock
    sleep: Sleep
    seed: InitVar[int]
    on_write_committed: InitVar[WriteHook | None] = None
    stats: RequestStats = field(init=False, default_factory=RequestStats)
    faults: FaultLog = field(init=False)
    dice: Dice = field(init=False)
    kill: KillHook = field(init=False, default_factory=KillHook)
    hooks: list[WriteHook] = field(init=False)
    _store: StoreT | None = None

    def __post_init__(self, seed: int, on_write_committed: WriteHook | None) -> None:
        self.faults = FaultLog(self.clock)
        self.dice = Dice(seed)
        # The caller's hook first: it records the write even when the kill-after hook then
        # stops the process.
        self.hooks = [self.kill] if on_write_committed is None else [on_write_committed, self.kill]

    @property
    def store(self) -> StoreT:
        if self._store is None:
            raise RuntimeError("the store opens when the application starts")
        return self._store

    def draws(self) -> Faults:
        """This request's fault draws, from the service's one seeded dice and one log."""
        return Faults(self.dice, self.faults, self.sleep)

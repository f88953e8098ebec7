"""The clock the tests inject: it reads what the test set, and its sleep only yields."""

from __future__ import annotations

import asyncio


class ManualClock:
    """``now()`` is ``at``, which only the test moves; ``sleep`` yields without waiting."""

    def __init__(self, at: float) -> None:
        self.at = at

    def now(self) -> float:
        return self.at

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(0)

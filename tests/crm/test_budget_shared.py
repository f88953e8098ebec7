"""Several workers spend one provider budget: through PostgreSQL, on the server's clock, no
rolling window of the provider's length ever holds the limit, whichever worker sent."""

from __future__ import annotations

import asyncio
from pathlib import Path

from integration.connectors.crm.base import Dimension
from integration.connectors.crm.budget import ConnectionBudget, shared_budget
from integration.core.clock import SystemClock
from tests.crm.test_budget import most_in_any_window
from tests.helpers.stores import opened_store, same_state


async def test_two_workers_sharing_a_budget_never_fill_a_rolling_window_between_them(
    tmp_path: Path,
) -> None:
    burst = Dimension("burst", 20, 1.0)
    async with opened_store("postgres", tmp_path) as first:
        second = same_state(first)
        await second.open()
        try:
            budgets = [
                await shared_budget([burst], store, "hubspot", reserve=0.0, clock=SystemClock())
                for store in (first, second)
            ]

            async def worker(budget: ConnectionBudget, count: int) -> None:
                for _ in range(count):
                    await budget.take("write")

            async with asyncio.timeout(30):
                await asyncio.gather(*(worker(b, 30) for b in budgets))
        finally:
            await second.close()
    # Judged on the server's clock, the one both workers' grants were decided by (this process's
    # own clock would see a loaded machine's scheduling, not the budget).
    sent = [
        at
        for budget in budgets
        for at in budget.ledger.granted  # type: ignore[attr-defined]
    ]
    assert len(sent) == 60
    assert most_in_any_window(sent, 1.0) < 20

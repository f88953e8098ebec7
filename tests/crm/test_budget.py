"""The budget never lets a provider's window see its limit, rolling or fixed, whatever the
pattern of calls; it waits instead, and a provider's refusal holds the dimension."""

from __future__ import annotations

import asyncio
import random

import pytest

from integration.connectors.crm.base import Dimension
from integration.connectors.crm.budget import local_budget


class Clock:
    def __init__(self) -> None:
        self.at = 1_000_000.0

    def now(self) -> float:
        return self.at

    async def sleep(self, seconds: float) -> None:
        self.at += seconds
        await asyncio.sleep(0)


def most_in_any_window(times: list[float], window: float) -> int:
    times = sorted(times)
    best, start = 0, 0
    for end, at in enumerate(times):
        while times[start] <= at - window:
            start += 1
        best = max(best, end - start + 1)
    return best


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_no_rolling_window_ever_holds_the_limit_under_random_bursts(seed: int) -> None:
    clock = Clock()
    budget = local_budget([Dimension("burst", 100, 10.0)], reserve=0.0, clock=clock)
    rng = random.Random(seed)
    sent: list[float] = []
    for _ in range(1500):
        if rng.random() < 0.2:
            clock.at += rng.uniform(0, 12)
        await budget.take("write")
        sent.append(clock.at)
    assert most_in_any_window(sent, 10.0) < 100


async def test_a_reserve_leaves_its_share_of_the_limit_unused() -> None:
    clock = Clock()
    budget = local_budget([Dimension("burst", 100, 10.0)], reserve=0.2, clock=clock)
    sent = []
    for _ in range(400):
        await budget.take("read")
        sent.append(clock.at)
    assert most_in_any_window(sent, 10.0) <= 80


async def test_a_fixed_daily_budget_counts_costs_and_waits_for_the_next_day() -> None:
    clock = Clock()
    clock.at = 86_400.0 * 100 + 3600  # 01:00 UTC
    day = Dimension("tokens", 100, 86_400.0, rolling=False, costs={"search": 20, "get": 1})
    budget = local_budget([day], reserve=0.0, clock=clock)
    for _ in range(5):
        await budget.take("search")
    assert clock.at == 86_400.0 * 100 + 3600  # 100 tokens fit without a wait
    await budget.take("get")
    assert clock.at >= 86_400.0 * 101  # the 101st token waited for midnight
    assert await budget.remaining() == {"tokens": 99}


async def test_a_call_that_costs_nothing_on_a_dimension_is_not_held_by_it() -> None:
    clock = Clock()
    search = Dimension("search", 4, 1.0, costs={"search": 1}, default_cost=0)
    budget = local_budget([search], reserve=0.0, clock=clock)
    for _ in range(50):
        await budget.take("write")
    assert clock.at == 1_000_000.0


async def test_a_refusal_by_the_provider_holds_the_dimension_for_its_wait() -> None:
    clock = Clock()
    budget = local_budget([Dimension("burst", 100, 10.0)], reserve=0.0, clock=clock)
    budget.refused("burst", 30.0)
    await asyncio.sleep(0)
    await budget.take("write")
    assert clock.at >= 1_000_030.0


async def test_a_write_does_not_wait_behind_a_search_held_by_the_search_limit() -> None:
    clock = Clock()
    search = Dimension("search", 4, 1.0, costs={"search": 1}, default_cost=0)
    burst = Dimension("burst", 100, 10.0)
    budget = local_budget([search, burst], reserve=0.0, clock=clock)
    searches = [asyncio.create_task(budget.take("search")) for _ in range(20)]
    await asyncio.sleep(0)
    started = clock.at
    await budget.take("write")
    write_waited = clock.at - started
    await asyncio.gather(*searches)
    assert write_waited < 0.5

"""Keyed dispatch: order within a key, concurrency across keys."""

from __future__ import annotations

import asyncio
import random

from integration.core.dispatch import KeyedDispatcher


async def test_items_of_one_key_are_handled_in_the_order_submitted() -> None:
    seen: dict[str, list[int]] = {}

    async def handle(key: str, item: int) -> bool:
        await asyncio.sleep(random.random() / 1000)
        seen.setdefault(key, []).append(item)
        return True

    dispatcher: KeyedDispatcher[str, int] = KeyedDispatcher(handle, concurrency=8, batch_per_turn=2)
    dispatcher.start()
    for n in range(600):
        await dispatcher.submit(f"k{n % 7}", n)
    await dispatcher.join()
    await dispatcher.stop(1)

    assert {k: v for k, v in seen.items()} == {
        f"k{r}": [n for n in range(600) if n % 7 == r] for r in range(7)
    }


async def test_one_key_never_runs_twice_at_once() -> None:
    running: set[str] = set()
    overlaps = 0

    async def handle(key: str, item: int) -> bool:
        nonlocal overlaps
        overlaps += key in running
        running.add(key)
        await asyncio.sleep(0)
        running.discard(key)
        return True

    dispatcher: KeyedDispatcher[str, int] = KeyedDispatcher(handle, concurrency=16)
    dispatcher.start()
    for n in range(500):
        await dispatcher.submit(f"k{n % 3}", n)
    await dispatcher.join()
    await dispatcher.stop(1)

    assert overlaps == 0


async def test_different_keys_run_concurrently_up_to_the_limit() -> None:
    active = peak = 0
    gate = asyncio.Event()

    async def handle(key: str, item: int) -> bool:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await gate.wait()
        active -= 1
        return True

    dispatcher: KeyedDispatcher[str, int] = KeyedDispatcher(handle, concurrency=4)
    dispatcher.start()
    for n in range(10):
        await dispatcher.submit(f"k{n}", n)
    await asyncio.sleep(0.05)
    gate.set()
    await dispatcher.join()
    await dispatcher.stop(1)

    assert peak == 4


async def test_a_handler_returning_false_drops_the_rest_of_its_key_only() -> None:
    handled: list[tuple[str, int]] = []
    dropped: list[int] = []

    async def handle(key: str, item: int) -> bool:
        handled.append((key, item))
        return not (key == "a" and item == 1)

    dispatcher: KeyedDispatcher[str, int] = KeyedDispatcher(
        handle, concurrency=1, on_dropped=dropped.extend
    )
    for key, item in [("a", 0), ("a", 1), ("a", 2), ("b", 3), ("a", 4), ("b", 5)]:
        await dispatcher.submit(key, item)
    dispatcher.start()
    await dispatcher.join()
    await dispatcher.stop(1)

    assert [i for k, i in handled if k == "a"] == [0, 1]
    assert [i for k, i in handled if k == "b"] == [3, 5]
    assert sorted(dropped) == [2, 4]


async def test_submit_waits_while_the_dispatcher_is_full() -> None:
    release = asyncio.Event()

    async def handle(key: str, item: int) -> bool:
        await release.wait()
        return True

    dispatcher: KeyedDispatcher[str, int] = KeyedDispatcher(handle, concurrency=1, max_queued=2)
    dispatcher.start()
    await dispatcher.submit("a", 1)
    await dispatcher.submit("a", 2)
    third = asyncio.create_task(dispatcher.submit("a", 3))
    await asyncio.sleep(0.02)
    assert not third.done()

    release.set()
    await asyncio.wait_for(third, 1)
    await dispatcher.join()
    await dispatcher.stop(1)


async def test_stop_cancels_what_does_not_finish_within_the_grace_period() -> None:
    async def handle(key: str, item: int) -> bool:
        await asyncio.sleep(10)
        return True

    dispatcher: KeyedDispatcher[str, int] = KeyedDispatcher(handle, concurrency=1)
    dispatcher.start()
    await dispatcher.submit("a", 1)
    await asyncio.sleep(0.01)

    assert await dispatcher.stop(0.05) is False

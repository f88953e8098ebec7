"""The Intempus sync's crash-and-fault suite: the sync as a real process while a simulated user
creates, edits and deletes cases on both sides, both services failing (5xx, writes committed
and answered 500, latency, Intempus's rate limit), the worker SIGKILLed again and again (right
after a committed write, by a stand-in's kill-after hook, or on a timer) and restarted. Then the
user stops, the faults go, the worker settles: ``verify`` passes, no case was created twice and
every case is on both sides.

Seeded: ``INTEMPUS_CRASH_SEED=N pytest tests/intempus_cases/test_crash_suite.py`` replays the
user's and the killer's choices (the timing is the machine's); the seed is in the failure message.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import string
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from .test_crash import (
    CUSTOMER,
    SIGKILLED,
    Live,
    Spawn,
    assert_in_step,
    spawn,
    start_live,
    worker_starts,
)

__all__ = ["spawn", "start_live"]  # fixtures, used by name

pytestmark = pytest.mark.slow  # the sync as a process, killed over and over

KILLS = 12
INTEMPUS_FAULTS = {"error_rate": 0.1, "ambiguous_rate": 0.05, "latency_ms": 5}
STORE_FAULTS = {"error_rate": 0.1, "ambiguous_rate": 0.05, "latency_ms": 5}
NO_FAULTS = {"error_rate": 0, "ambiguous_rate": 0, "latency_ms": 0}
# Writes the sync makes: where a kill-after hook can catch it. Intempus's are the sync's alone
# (the user writes there through /_standin/, other kinds); the store's may be the user's too, a
# kill at a random moment then.
HOOKS = [
    ("intempus", "POST"),
    ("intempus", "PATCH"),
    ("intempus", "DELETE"),
    ("store", "POST"),
    ("store", "PATCH"),
    ("store", "DELETE"),
]
EDITABLE = ("name", "number", "notes", "city", "zip_code", "street_address")


def text(rng: random.Random) -> str:
    return "".join(rng.choices(string.ascii_letters, k=rng.randint(3, 12)))


@dataclass
class User:
    """Someone working on both sides at once, seeded. Remembers which cases they made and which
    they deleted, by the sync's link key (``i<Intempus id>``, ``l<local id>``)."""

    live: Live
    rng: random.Random
    made: set[str] = field(default_factory=set)
    deleted: set[str] = field(default_factory=set)
    actions: int = 0
    intempus_ids: list[int] = field(default_factory=list)
    local_ids: list[int] = field(default_factory=list)

    async def refresh(self) -> None:
        self.intempus_ids = [c["id"] for c in await self.live.intempus_cases()]
        self.local_ids = [r["id"] for r in await self.live.local_cases()]

    async def work(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            if self.actions % 20 == 0:
                await self.refresh()
            await self.act()
            self.actions += 1
            await asyncio.sleep(self.rng.uniform(0.02, 0.12))

    async def act(self) -> None:
        roll = self.rng.random()
        if roll < 0.12 or not self.intempus_ids:
            await self.create_in_intempus()
        elif roll < 0.24 or not self.local_ids:
            await self.create_locally()
        elif roll < 0.58:
            await self.edit_in_intempus(self.rng.choice(self.intempus_ids))
        elif roll < 0.92:
            await self.edit_locally(self.rng.choice(self.local_ids))
        elif roll < 0.96:
            await self.delete_in_intempus(self.rng.choice(self.intempus_ids))
        else:
            await self.delete_locally(self.rng.choice(self.local_ids))

    def fields(self) -> dict[str, Any]:
        return {self.rng.choice(EDITABLE): text(self.rng) for _ in range(self.rng.randint(1, 3))}

    async def create_in_intempus(self) -> None:
        body = {"name": text(self.rng), "customer": CUSTOMER, **self.fields()}
        answer = await self.live.intempus.call("POST", "/_standin/cases", body, {})
        assert answer.status == 201, answer.raw
        self.made.add(f"i{answer.body['id']}")
        self.intempus_ids.append(answer.body["id"])

    async def create_locally(self) -> None:
        body = {"name": text(self.rng), "customer": 6666940, **self.fields()}
        # The store's faults hit the user too: a 500 may or may not have made the case (then it
        # is a case like any other, just not one the user remembers making).
        answer = await self.live.store.call("POST", "/cases/", body)
        if answer.status == 201:
            self.made.add(f"l{answer.body['id']}")
            self.local_ids.append(answer.body["id"])

    async def edit_in_intempus(self, case_id: int) -> None:
        answer = await self.live.intempus.call(
            "POST", f"/_standin/cases/{case_id}/touch", self.fields(), {}
        )
        if answer.status == 404:  # deleted meanwhile
            self.intempus_ids.remove(case_id)

    async def edit_locally(self, case_id: int) -> None:
        current = await self.live.store.call("GET", f"/cases/{case_id}")
        if current.status == 200:
            await self.live.store.call(
                "PATCH", f"/cases/{case_id}", self.fields(), {"If-Match": current.headers["ETag"]}
            )  # 412 (the sync wrote first) or 500: the user gives up on this one

    async def delete_in_intempus(self, case_id: int) -> None:
        case = (await self.live.intempus.truth()).get(case_id)
        answer = await self.live.intempus.call("DELETE", f"/_standin/cases/{case_id}", None, {})
        if answer.status == 204 and case is not None:
            self.deleted.add(key_of_intempus(case))
        self.intempus_ids.remove(case_id)

    async def delete_locally(self, case_id: int) -> None:
        current = await self.live.store.call("GET", f"/cases/{case_id}")
        if current.status != 200:
            return
        answer = await self.live.store.call(
            "DELETE", f"/cases/{case_id}", None, {"If-Match": current.headers["ETag"]}
        )
        if answer.status in (200, 500):  # a 500 may have deleted it: forget it either way
            self.deleted.add(key_of_local(current.body))
            self.local_ids.remove(case_id)


def key_of_intempus(case: dict[str, Any]) -> str:
    creation = str(case.get("creation_id") or "")
    return (
        f"l{creation.removeprefix('local:')}" if creation.startswith("local:") else f"i{case['id']}"
    )


def key_of_local(row: dict[str, Any]) -> str:
    return f"i{row['intempus_id']}" if row.get("intempus_id") is not None else f"l{row['id']}"


async def disarm(live: Live) -> None:
    await live.intempus.call("DELETE", "/_standin/hooks/kill-after", None, {})
    await live.store.call("DELETE", "/_standin/hooks/kill-after")


async def test_killed_over_and_over_while_users_edit_both_sides_nothing_is_lost_or_twice(
    start_live: Callable[..., Awaitable[Live]], spawn: Spawn
) -> None:
    seed = int(os.environ.get("INTEMPUS_CRASH_SEED") or random.randrange(1_000_000))
    rng = random.Random(seed)
    live = await start_live(poll_interval=0.4)
    # Full scans (Intempus's deletes) every few seconds; a user deleting now and then may
    # remove more than the default 10% between two scans, which the guard would hold back.
    live.env.update(INTEMPUS_FULL_SCAN_INTERVAL="3", INTEMPUS_MAX_DELETE_FRACTION="0.5")
    context = f"seed {seed} (replay with INTEMPUS_CRASH_SEED={seed}); worker log {live.log_path}"
    started = time.monotonic()

    user = User(live, random.Random(rng.random()))
    for _ in range(10):
        await user.create_in_intempus()
        await user.create_locally()
    await live.intempus.switch(**INTEMPUS_FAULTS)
    await live.store.call("PATCH", "/_standin/faults", STORE_FAULTS)
    stop = asyncio.Event()
    working = asyncio.create_task(user.work(stop))

    kills = lives = 0
    hooked: Counter[str] = Counter()  # kills by a hook, by side and write
    terminated = False
    try:
        while kills < KILLS:
            lives += 1
            assert lives < KILLS * 3, f"too many lives without a kill; {context}"
            starts = worker_starts(live)
            worker = await spawn(live)
            hook = rng.choice(HOOKS) if rng.random() < 0.5 else None
            clean_stop = lives == KILLS // 2 and not terminated
            if hook is not None and not clean_stop:
                await live.arm(hook[0], hook[1], worker.pid)
            await worker.wait_started(starts)
            if clean_stop:
                # Once, the clean way, in the middle of the work.
                await asyncio.sleep(rng.uniform(0.5, 1.5))
                assert await worker.stop(signal.SIGTERM) == 0, f"{worker.log()[-3000:]}\n{context}"
                terminated = True
                continue
            try:
                code = await asyncio.wait_for(worker.process.wait(), rng.uniform(0.3, 2.5))
                if hook is not None:
                    hooked[" ".join(hook)] += 1
            except TimeoutError:
                code = await worker.stop(signal.SIGKILL)
            await disarm(live)
            assert code == SIGKILLED, f"worker exited {code} by itself; {context}"
            kills += 1
    finally:
        stop.set()
        await working

    # The storm is over: the user stops, the faults go, the worker settles.
    storm = time.monotonic() - started
    await live.intempus.switch(**NO_FAULTS)
    await live.store.call("PATCH", "/_standin/faults", NO_FAULTS)
    try:
        await live.settle(drains=4)
        await live.verify()
        await assert_in_step(live)
        present = {key_of_intempus(c) for c in await live.intempus_cases()}
        lost = sorted(user.made - user.deleted - present)
        assert not lost, f"made by the user, never deleted, gone: {lost}"
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{context}") from None
    print(
        f"seed {seed}: {kills} SIGKILLs ({sum(hooked.values())} by a hook: {dict(hooked)}) "
        f"and a SIGTERM in {lives} lives, "
        f"{user.actions} user actions, {len(present)} cases; storm {storm:.0f}s, "
        f"total {time.monotonic() - started:.0f}s"
    )
    assert terminated

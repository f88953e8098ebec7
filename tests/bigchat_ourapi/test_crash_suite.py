"""The crash-and-fault suite: the worker as a real process, both services misbehaving, killed
with SIGKILL at random moments and restarted, again and again. At the end, with the faults off,
it drains, and OurAPI must hold every conversation exactly once.

Seeded: ``CRASH_SEED=N pytest tests/bigchat_ourapi/test_crash_suite.py`` replays a run; the seed is
in the failure message.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from typing import Any

import pytest
from aiohttp import web

from big_chat.app import FAULTS as BIGCHAT_FAULTS
from big_chat.app import PAGE_HOOKS
from our_api.app import INJECTOR as OURAPI_FAULTS
from our_api.settings import FaultSettings as OurApiFaults

from .processes import WorkerProcess, wait_until_drained
from .test_crash import Handler, worker_env
from .test_sync import assert_mirrored

pytestmark = pytest.mark.slow  # the worker as a process, killed dozens of times

KILLS = 22
BIGCHAT = {
    "error_rate": 0.2,
    "late_rate": 0.1,
    "duplicate_rate": 0.1,
    "repeat_end_rate": 0.3,
    "missing_start_rate": 0.1,
    "after_end_rate": 0.1,
    "unreplayable": True,
    "shuffle": True,
    "page_size": 10,
    "latency_ms": 5,
    "history": 1500,
    "conversation_rate": 0.2,
}
OURAPI = {"error_rate": 0.1, "ambiguous_rate": 0.05, "rate_limit": 400, "latency_ms": 5}


def worker_starts(log_path: Any) -> int:
    return log_path.read_text(errors="replace").count("worker starting") if log_path.exists() else 0


class Killer:
    """Kills the current worker right after BigChat has sent it its n-th page of a life, so
    some deaths fall between receiving a page and storing it."""

    def __init__(self) -> None:
        self.victim: WorkerProcess | None = None
        self.after_pages: int | None = None
        self.pages = 0

    def arm(self, victim: WorkerProcess, after_pages: int | None) -> None:
        self.victim, self.after_pages, self.pages = victim, after_pages, 0

    def middleware(self) -> Any:
        @web.middleware
        async def kill_after_page(request: web.Request, handler: Handler) -> web.StreamResponse:
            response = await handler(request)
            if request.path == "/events" and response.status == 200 and self.after_pages:
                self.pages += 1
                if self.pages == self.after_pages and self.victim is not None:
                    await response.prepare(request)
                    await response.write_eof()
                    if self.victim.process.returncode is None:
                        os.kill(self.victim.pid, signal.SIGKILL)
            return response

        return kill_after_page


async def test_killed_over_and_over_with_faults_everywhere_nothing_is_lost_or_duplicated(
    start_live_standins: Any, spawn: Any
) -> None:
    seed = int(os.environ.get("CRASH_SEED") or random.randrange(1_000_000))
    rng = random.Random(seed)
    killer = Killer()
    standins = await start_live_standins(
        bigchat={"seed": seed % 1000, **BIGCHAT}, ourapi=OURAPI, middleware=killer.middleware()
    )
    env = worker_env(standins, MAX_WINDOW="60", CONCURRENCY="8", HTTP_TIMEOUT="2")
    log_path = standins.tmp / "worker.log"
    state_db = standins.tmp / "state.db"
    context = f"seed {seed} (replay with CRASH_SEED={seed}); worker log {log_path}"

    kills = 0
    lives = 0
    terminated_cleanly = False
    while kills < KILLS:
        lives += 1
        assert lives < KILLS * 3, f"too many lives without a kill; {context}"
        starts = worker_starts(log_path)
        worker = await spawn(env, log_path)
        by_page = rng.random() < 0.4
        killer.arm(worker, rng.randint(1, 6) if by_page else None)
        # Deaths while Python is still importing prove nothing: the clock starts once the
        # worker has started, so kills land while it polls, stores and writes.
        await worker.wait_started(starts)
        if lives == KILLS // 2 and not terminated_cleanly:
            # Once, the clean way: SIGTERM in the middle of the work.
            killer.arm(worker, None)
            await asyncio.sleep(rng.uniform(0.3, 1.0))
            assert await worker.stop(signal.SIGTERM) == 0, context
            terminated_cleanly = True
            continue
        try:
            code = await asyncio.wait_for(worker.process.wait(), rng.uniform(0.1, 1.2))
        except TimeoutError:
            code = await worker.stop(signal.SIGKILL)
        killer.arm(worker, None)
        assert code == -signal.SIGKILL, f"worker exited {code} by itself; {context}"
        kills += 1

    # The storm is over: faults off, one last worker drains everything.
    standins.bigchat_app[BIGCHAT_FAULTS].update(
        {"error_rate": 0, "late_rate": 0, "duplicate_rate": 0}
    )
    standins.ourapi_app[OURAPI_FAULTS].update(OurApiFaults())
    final = await spawn(env, log_path)
    await wait_until_drained(final, state_db, until=standins.frozen_now, limit=120)
    assert await final.stop() == 0, context

    assert kills >= 20
    assert terminated_cleanly
    report = await standins.verify()
    try:
        assert_mirrored(report)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{context}") from None


class LiveClock:
    """BigChat's clock in live mode: real time while the worker is killed again and again, then
    stopped, so that the last worker can drain a world that no longer moves."""

    def __init__(self) -> None:
        self.frozen_at: float | None = None

    def __call__(self) -> float:
        return self.frozen_at if self.frozen_at is not None else time.time()

    def freeze(self) -> float:
        self.frozen_at = float(int(time.time()))
        return self.frozen_at


LIVE_BIGCHAT = {
    **BIGCHAT,
    "live": True,  # each event served once
    "history": 120,
    "conversation_rate": 0.5,
    "message_gap_min_s": 0,
    "message_gap_max_s": 8,
    "repeat_text_rate": 0.3,
    "same_second_rate": 0.3,
    "transfer_before_start_rate": 0.1,
    "after_end_delay_s": 60,
    "page_size": 5,
}


class PageKiller:
    """SIGKILLs the worker right around the n-th page BigChat serves it: before the answer is
    written (the events were served, and will never be served again, but never arrived) or
    right after it was written."""

    def __init__(self, app: web.Application) -> None:
        self.victim: WorkerProcess | None = None
        self.after_pages: int | None = None
        self.pages = 0
        hooks = app[PAGE_HOOKS]
        hooks.before_page_sent = self._before
        hooks.on_page_served = self._after
        self.before = True

    def arm(self, victim: WorkerProcess, after_pages: int | None, before: bool) -> None:
        self.victim, self.after_pages, self.pages, self.before = victim, after_pages, 0, before

    def _kill(self) -> None:
        if self.victim is not None and self.victim.process.returncode is None:
            os.kill(self.victim.pid, signal.SIGKILL)
        self.after_pages = None

    def _before(self, window: Any, page: int, events: int, now: float) -> None:
        if self.after_pages and events:
            self.pages += 1
            if self.before and self.pages == self.after_pages:
                self._kill()

    def _after(self, window: Any, page: int, events: int, now: float) -> None:
        if self.after_pages and events and not self.before and self.pages == self.after_pages:
            self._kill()


async def test_live_world_killed_over_and_over_nothing_is_lost_or_duplicated(
    start_standins: Any, spawn: Any
) -> None:
    """The same storm against a live BigChat: its clock runs, each event is served once,
    identical messages in one second, transfers tied in one second or dated before the START,
    messages long after the END; SIGKILLs land right before and right after a page is served.
    The check compares OurAPI with BigChat's full history once the world stopped."""
    seed = int(os.environ.get("CRASH_SEED") or random.randrange(1_000_000))
    rng = random.Random(seed)
    clock = LiveClock()
    standins = await start_standins(
        bigchat={"seed": seed % 1000, **LIVE_BIGCHAT}, ourapi=OURAPI, clock=clock
    )
    killer = PageKiller(standins.bigchat_app)
    env = worker_env(standins, MAX_WINDOW="60", CONCURRENCY="8", HTTP_TIMEOUT="2")
    log_path = standins.tmp / "worker.log"
    state_db = standins.tmp / "state.db"
    context = f"seed {seed} (replay with CRASH_SEED={seed}); worker log {log_path}"

    kills = lives = 0
    while kills < KILLS:
        lives += 1
        assert lives < KILLS * 3, f"too many lives without a kill; {context}"
        starts = worker_starts(log_path)
        worker = await spawn(env, log_path)
        by_page = rng.random() < 0.6
        killer.arm(worker, rng.randint(1, 4) if by_page else None, before=rng.random() < 0.5)
        await worker.wait_started(starts)
        try:
            code = await asyncio.wait_for(worker.process.wait(), rng.uniform(0.2, 1.5))
        except TimeoutError:
            code = await worker.stop(signal.SIGKILL)
        killer.arm(worker, None, before=False)
        assert code == -signal.SIGKILL, f"worker exited {code} by itself; {context}"
        kills += 1

    # The storm is over: the world stops, faults off, one last worker drains everything.
    end = clock.freeze()
    standins.frozen_now = end
    standins.bigchat_app[BIGCHAT_FAULTS].update(
        {"error_rate": 0, "late_rate": 0, "duplicate_rate": 0}
    )
    standins.ourapi_app[OURAPI_FAULTS].update(OurApiFaults())
    final = await spawn(env, log_path)
    # Windows end before their last second: the cursor must pass the frozen second itself.
    await wait_until_drained(final, state_db, until=end + 1, limit=120)
    assert await final.stop() == 0, context

    report = await standins.verify()
    try:
        assert_mirrored(report)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{context}") from None

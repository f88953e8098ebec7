"""The crash-and-fault suite: the worker as a real process, both services misbehaving, killed
with SIGKILL at random moments and restarted, again and again. At the end, with the faults off,
it drains, and OurAPI must hold every conversation exactly once.

Seeded: ``CRASH_SEED=N pytest tests/worker/test_crash_suite.py`` replays a run; the seed is in
the failure message.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
from typing import Any

from aiohttp import web

from big_chat.app import FAULTS as BIGCHAT_FAULTS
from our_api.app import INJECTOR as OURAPI_FAULTS
from our_api.settings import FaultSettings as OurApiFaults

from .processes import WorkerProcess, wait_until_drained
from .test_crash import Handler, worker_env
from .test_sync import assert_mirrored

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

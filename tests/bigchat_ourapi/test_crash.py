"""Killed at the worst moment, restarted: nothing lost, nothing duplicated."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

from .processes import read_progress, wait_until_drained
from .test_sync import assert_mirrored

pytestmark = pytest.mark.slow  # the worker as a process, killed and restarted

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def kill_after_page(victim: dict[str, int], page_number: int) -> Any:
    """BigChat middleware (test-only): after fully sending the n-th successful /events page,
    SIGKILL the worker, so it has received that page and cannot store it. With
    ``--unreplayable`` those events are never served by /events again."""
    served = 0

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        nonlocal served
        response = await handler(request)
        if request.path == "/events" and response.status == 200 and "pid" in victim:
            served += 1
            if served == page_number:
                await response.prepare(request)
                await response.write_eof()
                os.kill(victim.pop("pid"), signal.SIGKILL)
        return response

    return middleware


def worker_env(standins: Any, **extra: str) -> dict[str, str]:
    return {
        "BIGCHAT_URL": standins.bigchat_url,
        "OURAPI_URL": standins.ourapi_url,
        "STATE_DB": str(standins.tmp / "state.db"),
        "START_AT": str(standins.epoch),
        "POLL_INTERVAL": "0.2",
        "POLL_LAG": "0",
        "MAX_WINDOW": "300",
        "OURAPI_WRITE_HORIZON": "1",
        **extra,
    }


async def test_a_page_received_but_not_stored_when_killed_is_healed_from_histories(
    start_live_standins: Any, spawn: Any
) -> None:
    victim: dict[str, int] = {}
    standins = await start_live_standins(
        bigchat={"unreplayable": True, "page_size": 10},
        middleware=kill_after_page(victim, page_number=4),
    )
    env = worker_env(standins)

    first = await spawn(env, standins.tmp / "worker.log")
    victim["pid"] = first.pid
    assert await first.wait() == -signal.SIGKILL

    second = await spawn(env, standins.tmp / "worker.log")
    await wait_until_drained(second, standins.tmp / "state.db", until=standins.frozen_now)
    assert await second.stop() == 0

    log = second.log()
    assert "did not stop cleanly" in log
    assert "recovery (unclean stop)" in log
    assert_mirrored(await standins.verify())


async def test_sigterm_stops_cleanly_and_a_restart_carries_on_where_it_stopped(
    start_live_standins: Any, spawn: Any
) -> None:
    standins = await start_live_standins(bigchat={"unreplayable": True}, ourapi={"latency_ms": 5})
    env = worker_env(standins)

    first = await spawn(env, standins.tmp / "worker.log")
    await wait_for_some_progress(standins)
    assert await first.stop(signal.SIGTERM) == 0

    second = await spawn(env, standins.tmp / "worker.log")
    await wait_until_drained(second, standins.tmp / "state.db", until=standins.frozen_now)
    assert await second.stop(signal.SIGINT) == 0

    assert "did not stop cleanly" not in second.log()
    assert_mirrored(await standins.verify())


async def wait_for_some_progress(standins: Any) -> None:
    async with asyncio.timeout(30):
        # Another process's file: there is no event to wait on, so look every 50 ms.
        while read_progress(standins.tmp / "state.db")[0] <= standins.epoch:  # noqa: ASYNC110
            await asyncio.sleep(0.05)

"""The worker end to end: BigChat's ground truth ends up in OurAPI, exactly once."""

from __future__ import annotations

import asyncio
from typing import Any

from integration.core.shell import open_engine
from integration.pipelines.bigchat_ourapi import SYNC as BIGCHAT
from tests.helpers.policies import FAST_RETRY

from .conftest import Standins, ahead_clock, run_until_idle


def assert_mirrored(report: Any) -> None:
    assert report.conversations > 10, "the world should have conversations to sync"
    assert report.messages_expected > 0
    problems = [f"{f.conversation_id}: {f.problem} ({f.detail})" for f in report.findings]
    assert problems == [], "\n".join(problems[:20])
    assert report.duplicated_agents == {}
    assert report.chats == report.conversations
    assert report.messages_held == report.messages_expected


async def test_every_conversation_becomes_a_chat_with_its_messages_exactly_once(
    standins: Standins,
) -> None:
    await run_until_idle(standins.settings())

    assert_mirrored(await standins.verify())


async def test_a_second_run_over_the_same_history_changes_nothing(standins: Standins) -> None:
    await run_until_idle(standins.settings())
    writes_before = standins.ourapi_requests()

    await run_until_idle(standins.settings(state_db=standins.tmp / "state.db"))

    assert standins.ourapi_requests() == writes_before
    assert_mirrored(await standins.verify())


BIGCHAT_FAULTS = {
    "error_rate": 0.2,
    "duplicate_rate": 0.1,
    "late_rate": 0.1,
    "repeat_end_rate": 0.3,
    "after_end_rate": 0.2,
    "missing_start_rate": 0.2,
    "wrong_old_advisor_rate": 0.5,
    "shuffle": True,
    "ignore_end_at": True,
    "unreplayable": True,
}
OURAPI_FAULTS = {"error_rate": 0.1, "ambiguous_rate": 0.05, "latency_ms": 2}


async def test_every_conversation_arrives_exactly_once_despite_faults_on_both_sides(
    start_standins: Any,
) -> None:
    standins = await start_standins(bigchat=BIGCHAT_FAULTS, ourapi=OURAPI_FAULTS)

    await run_until_idle(standins.settings(), limit=120)

    assert_mirrored(await standins.verify())


async def test_rate_limits_on_both_sides_slow_the_worker_but_lose_nothing(
    start_standins: Any,
) -> None:
    standins = await start_standins(
        bigchat={"rate_limit": 50, "history": 300}, ourapi={"rate_limit": 200}
    )

    await run_until_idle(standins.settings(), limit=120)

    assert_mirrored(await standins.verify())


async def test_one_request_in_flight_to_each_service_is_enough(standins: Standins) -> None:
    await run_until_idle(standins.settings(ourapi_max_in_flight=1, bigchat_max_in_flight=1))

    assert_mirrored(await standins.verify())


async def test_asked_to_stop_mid_window_it_stops_between_pages_and_loses_nothing(
    start_standins: Any,
) -> None:
    standins = await start_standins(bigchat={"unreplayable": True, "page_size": 5})
    settings = standins.settings(max_window=100_000)  # the whole history in one window
    stopping = asyncio.Event()
    async with open_engine(BIGCHAT, settings, clock=ahead_clock(), retry=FAST_RETRY) as engine:
        stopping.set()  # already asked to stop: the first page is the last one read
        more = await engine.poll_once(stopping)
        status = await engine.store.status("bigchat")

    assert more is False
    assert 0 < status.inbox["pending"] <= 5
    assert status.cursors["bigchat"] == standins.epoch  # the window was not acknowledged

    await run_until_idle(settings)  # a new run asks the window again and gets the rest
    assert_mirrored(await standins.verify())

"""Serving modes: start-only histories, live mode on the real clock, malformed next-page links,
and the hooks called around each page."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
from aiohttp import web

from big_chat.app import FAULTS, create_app
from big_chat.faults import Window
from big_chat.settings import BigChatSettings
from integration.core.serving import serve_app
from tests.big_chat.conftest import EPOCH, HOUR, Start, iso

NOW = EPOCH + HOUR


async def test_start_only_lists_only_the_start_and_keeps_the_advisor(start_big_chat: Start) -> None:
    bc = await start_big_chat(history_mode="start_only")
    script = bc.world.script(3)
    status, body = await bc.get_json("/conversations/3")
    assert status == 200
    assert body["advisor_id"] == script.advisor_id
    assert body["events"] == [script.events[0].as_json()]
    assert len(script.happened(NOW)) > 2  # there was more to list


async def test_history_mode_can_be_switched_at_run_time(start_big_chat: Start) -> None:
    bc = await start_big_chat()
    async with bc.session.patch(
        bc.url + "/_standin/faults", json={"history_mode": "start_only"}
    ) as resp:
        assert resp.status == 200
    assert len((await bc.get_json("/conversations/3"))[1]["events"]) == 1


async def test_live_mode_serves_each_event_once_on_a_running_clock() -> None:
    settings = BigChatSettings(
        live=True,
        history=20,
        conversation_rate=20,
        message_gap_min_s=0,
        message_gap_max_s=2,
        page_size=10_000,
    )
    async with serve_app(create_app(settings, clock=time.time)) as served:  # noqa: SIM117
        async with aiohttp.ClientSession(served.url) as session:

            async def events(start: float, end: float) -> list[str]:
                params = {"start_at": iso(start), "end_at": iso(end)}
                async with session.get("/events", params=params) as resp:
                    assert resp.status == 200
                    page = await resp.json()
                    assert page["nextPageUrl"] is None
                    return [json.dumps(e, sort_keys=True) for e in page["events"]]

            began = time.time()
            first = await events(began - 30, began)
            assert first and await events(began - 30, began) == []
            await asyncio.sleep(1.2)
            later = await events(began - 30, time.time())
            assert later and not set(first) & set(later)


async def test_live_mode_keeps_each_event_served_once_even_if_patched(
    start_big_chat: Start,
) -> None:
    bc = await start_big_chat(live=True)
    async with bc.session.patch(bc.url + "/_standin/faults", json={"unreplayable": False}) as r:
        assert (await r.json())["unreplayable"] is True
    assert await bc.window(NOW - 300, NOW)
    assert await bc.window(NOW - 300, NOW) == []


async def test_next_page_url_override_replaces_every_next_link(start_big_chat: Start) -> None:
    bc = await start_big_chat(page_size=5, next_page_url_override="http://[::1")
    first = await bc.page(NOW - 600, NOW)
    assert first.nextPageUrl == "http://[::1"
    async with bc.session.patch(
        bc.url + "/_standin/faults", json={"next_page_url_override": None}
    ) as resp:
        assert resp.status == 200
    assert (await bc.page(NOW - 600, NOW)).nextPageUrl != "http://[::1"


async def test_next_page_url_override_leaves_the_last_page_without_a_link(
    start_big_chat: Start,
) -> None:
    bc = await start_big_chat(page_size=10_000, next_page_url_override="http://[::1")
    assert (await bc.page(NOW - 600, NOW)).nextPageUrl is None


async def test_before_page_sent_runs_after_the_events_count_as_served_and_before_the_answer(
    start_big_chat: Start,
) -> None:
    calls: list[tuple[Window, int, int, float, int]] = []
    apps: list[web.Application] = []

    async def before(window: Window, page: int, events: int, now: float) -> None:
        calls.append((window, page, events, now, apps[0][FAULTS].served_count()))
        await asyncio.sleep(0.3)

    bc = await start_big_chat(before_page_sent=before, unreplayable=True, page_size=10_000)
    apps.append(bc.app)
    began = time.monotonic()
    page = await bc.page(NOW - 120, NOW)
    assert time.monotonic() - began >= 0.3  # the answer waited for the hook
    [(window, number, count, now, served_then)] = calls
    assert (window, number, count, now) == (Window(NOW - 120, NOW), 0, len(page.events), NOW)
    assert served_then == len(page.events) > 0


async def test_on_page_served_runs_once_the_answer_is_written(start_big_chat: Start) -> None:
    finished: list[float] = []

    async def after(window: Window, page: int, events: int, now: float) -> None:
        await asyncio.sleep(0.5)
        finished.append(time.monotonic())

    bc = await start_big_chat(on_page_served=after, page_size=20)
    first = await bc.page(NOW - 600, NOW)
    received = time.monotonic()
    assert first.events and not finished  # the client had the page while the hook still ran
    await asyncio.sleep(0.7)
    assert finished and finished[0] > received

"""Late-landing writes: held ``late_landing_s``, then applied whether or not the client is still
there, logged as ``late_landing`` when applied; off by default."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import pytest

from integration.core.serving import serve_app
from our_api import FAULTS, OurApiSettings, create_app
from our_api.__main__ import parse_args
from tests.our_api.conftest import Api, StartApi

MESSAGE = {"sent_at": "2024-05-01T03:00:00Z", "text": "hello"}
HOLD_S = 1.5


async def _messages(api: Api, chat_id: str) -> list[object]:
    status, body = await api.call("GET", f"/chats/{chat_id}/messages")
    assert status == 200
    return list(body)


async def _hold_messages(api: Api, seconds: float) -> None:
    changes = {
        "late_landing_rate": 1.0,
        "late_landing_s": seconds,
        "late_landing_paths": "/messages",
    }
    assert (await api.call("PATCH", "/_standin/faults", json=changes))[0] == 200


async def test_a_message_whose_client_timed_out_is_stored_when_the_hold_ends_and_not_before(
    start_api: StartApi,
) -> None:
    api = await start_api(seed=1)
    chat_id = await api.chat()
    await _hold_messages(api, HOLD_S)
    began, wall = time.monotonic(), time.time()
    with pytest.raises(TimeoutError):
        async with api.request(
            "POST",
            f"/chats/{chat_id}/messages",
            json=MESSAGE,
            timeout=aiohttp.ClientTimeout(total=0.5),
        ):
            pass
    await asyncio.sleep(began + HOLD_S - 0.25 - time.monotonic())
    assert await _messages(api, chat_id) == []
    for _ in range(200):  # 4 s at most
        if await _messages(api, chat_id):
            break
        await asyncio.sleep(0.02)
    landed = time.monotonic() - began
    assert HOLD_S <= landed < HOLD_S + 1.0
    [record] = api.app[FAULTS].of_kind("late_landing")
    assert (record.method, record.path) == ("POST", f"/chats/{chat_id}/messages")
    assert HOLD_S <= record.at - wall < HOLD_S + 3.0


async def test_a_client_that_waits_gets_the_answer_after_the_hold(start_api: StartApi) -> None:
    api = await start_api(seed=1)
    chat_id = await api.chat()
    await _hold_messages(api, 0.3)
    began = time.monotonic()
    assert await api.call("POST", f"/chats/{chat_id}/messages", json=MESSAGE) == (200, {})
    assert time.monotonic() - began >= 0.3


async def test_late_landing_paths_hold_only_the_writes_that_match(start_api: StartApi) -> None:
    api = await start_api(seed=1)
    await _hold_messages(api, 5.0)
    began = time.monotonic()
    await api.agent()
    await api.chat()
    assert time.monotonic() - began < 4.0  # not held the 5 s the messages would be
    assert api.app[FAULTS].of_kind("late_landing") == []


async def test_shutdown_lets_a_held_write_land_before_the_database_closes(tmp_path: Path) -> None:
    db = str(tmp_path / "late.db")
    held = OurApiSettings(db=db, late_landing_rate=1.0, late_landing_s=0.5, late_landing_paths="/m")
    # A shutdown timeout far shorter than the hold: the server cancels the handler, not the write.
    async with (
        serve_app(create_app(held), shutdown_timeout=0.05) as served,
        aiohttp.ClientSession(served.url) as s,
    ):
        async with s.post(
            "/chats", json={"external_id": "1", "started_at": MESSAGE["sent_at"]}
        ) as r:
            chat_id = (await r.json())["chat_id"]
        with pytest.raises(TimeoutError):
            await s.post(
                f"/chats/{chat_id}/messages", json=MESSAGE, timeout=aiohttp.ClientTimeout(0.1)
            )
    # The server is gone; a new one on the same file sees the write that was held at shutdown.
    async with (
        serve_app(create_app(OurApiSettings(db=db))) as served,
        aiohttp.ClientSession(served.url) as s,
        s.get(f"/chats/{chat_id}/messages") as r,
    ):
        assert [m["text"] for m in await r.json()] == ["hello"]


def test_the_late_landing_flags_map_onto_settings() -> None:
    args = parse_args(
        ["--late-landing-rate", "0.25", "--late-landing-s", "2", "--late-landing-paths", "/m"]
    )
    assert (args.late_landing_rate, args.late_landing_s, args.late_landing_paths) == (
        0.25,
        2.0,
        "/m",
    )
    assert OurApiSettings().late_landing_rate == 0.0

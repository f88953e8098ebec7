"""Property: whatever order, repetition and paging a conversation's events arrive in, OurAPI ends
in the state a simple model of the conversation says it should."""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from integration.connectors.bigchat.client import BigChatClient
from integration.connectors.ourapi.client import OurApiClient
from integration.core.engine import Engine
from integration.core.flow import Received
from integration.core.http import HttpService
from integration.core.serving import serve_app
from integration.core.store import SQLiteStore
from integration.pipelines.bigchat_ourapi import bigchat_flow
from integration.pipelines.bigchat_ourapi.source import BigChatSource
from our_api.app import create_app as create_ourapi
from our_api.settings import OurApiSettings
from tests.helpers.clocks import ManualClock

from .scripted import scripted_settings

pytestmark = pytest.mark.slow  # many generated worlds, each through the whole worker

CID = 7
ADVISORS = {n: (f"Advisor {n}", f"advisor{n}@example.com") for n in (1, 2, 3)}


@dataclass(frozen=True)
class Story:
    history: list[dict[str, Any]]
    """The conversation as /conversations/{id} tells it."""
    windows: list[list[list[dict[str, Any]]]]
    """How /events delivers it: windows of pages of events."""
    advisor_id: int


@st.composite
def stories(draw: st.DrawFn) -> Story:
    """A conversation as hostile as the real ones: events in the same second, the same text
    typed again (or again with spaces around it, which OurAPI trims away), TRANSFERs tied in one
    second or dated before the START; delivered in time windows where some events come late
    (in a later window), some again (a later window too), the START perhaps never, and each
    window's pages unsorted."""
    start = 1_000_000
    count = draw(st.integers(2, 14))
    times = sorted(
        draw(st.lists(st.integers(start + 1, start + 40), min_size=count, max_size=count))
    )
    kinds = draw(
        st.lists(
            st.sampled_from(["MESSAGE", "MESSAGE", "TRANSFER"]), min_size=count, max_size=count
        )
    )
    history: list[dict[str, Any]] = [{"event_name": "START", "event_at": start, "data": None}]
    if draw(st.integers(0, 4)) == 0:  # a TRANSFER dated before its START
        times[0] = start - draw(st.integers(1, 5))
        kinds[0] = "TRANSFER"
    for at, kind in sorted(zip(times, kinds, strict=True), key=lambda p: p[0]):
        if kind == "MESSAGE":
            text = draw(st.sampled_from(["ok", " ok", "ok  ", "hello", "  padded  ", "Olá 👋"]))
            history.append({"event_name": "MESSAGE", "event_at": at, "data": {"message": text}})
        else:
            history.append(
                {
                    "event_name": "TRANSFER",
                    "event_at": at,
                    # old_advisor_id is not always right (the contract says so): never used.
                    "data": {
                        "old_advisor_id": draw(st.sampled_from([1, 2, 3])),
                        "new_advisor_id": draw(st.sampled_from([1, 2, 3])),
                    },
                }
            )
    history.sort(key=lambda e: e["event_at"])  # the conversation's own order (stable on ties)
    end_at = max(times[-1], start) + 1
    history.append({"event_name": "END", "event_at": end_at, "data": None})
    for extra in range(draw(st.integers(0, 3))):  # a repeated END, later
        history.append({"event_name": "END", "event_at": end_at + 1 + extra, "data": None})
    if draw(st.booleans()):  # a message after the END
        history.append(
            {"event_name": "MESSAGE", "event_at": end_at + 10, "data": {"message": "after the end"}}
        )
    history = [{"conversation_id": CID, **e} for e in history]

    # Delivery: one window per 10 seconds of event time. An event comes in its own window, or
    # late (a later one); identical events (same second, same data) come together, since the
    # real service serves what happened in one second together.
    def twin_key(e: dict[str, Any]) -> str:
        return repr((e["event_name"], e["event_at"], e["data"]))

    first = min(e["event_at"] for e in history)
    lateness = {twin_key(e): draw(st.sampled_from([0, 0, 0, 1, 2])) for e in history}
    slots: dict[int, list[dict[str, Any]]] = {}
    for e in history:
        if e["event_name"] == "START" and draw(st.booleans()):
            continue  # a START /events never serves
        slot = (e["event_at"] - first) // 10 + lateness[twin_key(e)]
        slots.setdefault(slot, []).append(e)
        if draw(st.integers(0, 5)) == 0:  # served again, in a later window
            slots.setdefault(slot + draw(st.integers(1, 3)), []).append(e)
    windows: list[list[list[dict[str, Any]]]] = []
    for slot in range(max(slots) + 1):
        chunk = draw(st.permutations(slots.get(slot, [])))
        size = draw(st.integers(1, 4))
        windows.append([chunk[i : i + size] for i in range(0, len(chunk), size)] or [[]])
    return Story(history, windows, advisor_id=draw(st.sampled_from([1, 2, 3])))


def model(story: Story) -> dict[str, Any]:
    """What OurAPI must hold: START's time, the earliest END, the advisor of the latest
    TRANSFER (else the conversation's), every message once with its text trimmed."""
    transfers = [e for e in story.history if e["event_name"] == "TRANSFER"]
    # The last by time, ties in the conversation's own order (sorted() is stable).
    transfers = sorted(transfers, key=lambda e: e["event_at"])
    advisor = transfers[-1]["data"]["new_advisor_id"] if transfers else story.advisor_id
    return {
        "started_at": min(e["event_at"] for e in story.history if e["event_name"] == "START"),
        "ended_at": min(e["event_at"] for e in story.history if e["event_name"] == "END"),
        "agent_email": ADVISORS[advisor][1],
        "messages": sorted(
            (e["event_at"], e["data"]["message"].strip())
            for e in story.history
            if e["event_name"] == "MESSAGE" and len(e["data"]["message"].strip()) >= 2
        ),
    }


class ScriptedSource(BigChatSource):
    """The real BigChat source, fed from a script instead of /events."""

    def __init__(
        self, windows: list[list[list[dict[str, Any]]]], *args: Any, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.script = list(windows)

    async def fetch(self, start: float, end: float) -> AsyncIterator[Received]:
        self._occurrences = Counter()  # one window, one answer: identical events numbered
        pages = self.script.pop(0) if self.script else [[]]
        for n, raw in enumerate(pages):
            body = json.dumps({"nextPageUrl": None, "events": raw}).encode()
            yield Received(body, last=n == len(pages) - 1)


def bigchat_app(story: Story) -> web.Application:
    async def conversation(request: web.Request) -> web.Response:
        return web.json_response(
            {"conversation_id": CID, "advisor_id": story.advisor_id, "events": story.history}
        )

    async def advisor(request: web.Request) -> web.Response:
        n = int(request.match_info["id"])
        name, email = ADVISORS[n]
        return web.json_response({"advisor_id": n, "name": name, "email_address": email})

    app = web.Application()
    app.router.add_get("/conversations/{id}", conversation)
    app.router.add_get("/advisors/{id}", advisor)
    return app


async def replay(story: Story, folder: Path) -> dict[str, Any]:
    async with (
        serve_app(bigchat_app(story)) as bigchat_url,
        serve_app(create_ourapi(OurApiSettings(db=str(folder / "ourapi.db")))) as ourapi_url,
        aiohttp.ClientSession() as session,
    ):
        store = SQLiteStore(folder / "state.db")
        await store.open()
        clock = ManualClock(2_000_000)  # after every event of the story
        ourapi = OurApiClient(HttpService("ourapi", ourapi_url.url, session))
        bigchat = BigChatClient(HttpService("bigchat", bigchat_url.url, session))
        flow = bigchat_flow(bigchat, ourapi, store, clock)
        script = ScriptedSource(story.windows, bigchat, store, clock, flow.sink.states)  # type: ignore[attr-defined]
        engine = Engine(
            replace(flow, source=script),
            store,
            clock,
            scripted_settings(len(story.windows), clock.now()),
        )
        async with asyncio.timeout(20):
            assert await engine.run(asyncio.Event(), once=True)  # drain mode
        assert engine.drained and not script.script
        await store.close()
        chat = await ourapi.find_chat(str(CID))
        assert chat is not None
        agents = {a.agent_id: a.email for a in await ourapi.find_agents()}
        messages = await ourapi.messages(chat.chat_id)
        return {
            "started_at": int(chat.started_at.timestamp()),
            "ended_at": int(chat.ended_at.timestamp()) if chat.ended_at else None,
            "agent_email": agents.get(chat.agent_id) if chat.agent_id else None,
            "messages": sorted((int(m.sent_at.timestamp()), m.text) for m in messages),
        }


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(story=stories())
def test_ourapi_ends_as_the_model_says_whatever_the_delivery(story: Story) -> None:
    with tempfile.TemporaryDirectory() as folder:
        assert asyncio.run(replay(story, Path(folder))) == model(story)

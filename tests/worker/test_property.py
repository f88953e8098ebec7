"""Property: whatever order, repetition and paging a conversation's events arrive in, OurAPI ends
in the state a simple model of the conversation says it should."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from integration.connectors.bigchat.client import BigChatClient
from integration.connectors.ourapi.client import OurApiClient
from integration.core.engine import Engine
from integration.core.http import HttpService
from integration.core.pipeline import Page
from integration.core.serving import serve_app
from integration.core.store import SQLiteStore
from integration.pipelines.bigchat_ourapi.pipeline import BigChatToOurApi
from our_api.app import create_app as create_ourapi
from our_api.settings import OurApiSettings
from tests.clocks import ManualClock

from .scripted import scripted_settings

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
    start = 1_000_000
    times = sorted(draw(st.sets(st.integers(start + 1, start + 500), min_size=2, max_size=14)))
    kinds = draw(
        st.lists(
            st.sampled_from(["MESSAGE", "MESSAGE", "TRANSFER"]),
            min_size=len(times) - 1,
            max_size=len(times) - 1,
        )
    )
    history: list[dict[str, Any]] = [{"event_name": "START", "event_at": start, "data": None}]
    for n, (at, kind) in enumerate(zip(times, kinds, strict=False)):
        if kind == "MESSAGE":
            text = (
                draw(st.sampled_from(["hello", "  padded  ", "Olá 👋", "מה שלומך", "ok"])) + f" {n}"
            )
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
    end_at = times[-1]
    history.append({"event_name": "END", "event_at": end_at, "data": None})
    for extra in range(draw(st.integers(0, 3))):  # a repeated END, later
        history.append({"event_name": "END", "event_at": end_at + 1 + extra, "data": None})
    if draw(st.booleans()):  # a message after the END
        history.append(
            {"event_name": "MESSAGE", "event_at": end_at + 10, "data": {"message": "after the end"}}
        )
    history = [{"conversation_id": CID, **e} for e in history]

    delivered = [e for e in history if not (e["event_name"] == "START" and draw(st.booleans()))]
    delivered += draw(st.lists(st.sampled_from(history), max_size=6))  # duplicates
    delivered = draw(st.permutations(delivered))
    windows: list[list[list[dict[str, Any]]]] = []
    rest = list(delivered)
    while rest:
        take = draw(st.integers(1, max(1, len(rest))))
        chunk, rest = rest[:take], rest[take:]
        size = draw(st.integers(1, 4))
        windows.append([chunk[i : i + size] for i in range(0, len(chunk), size)])
    return Story(history, windows, advisor_id=draw(st.sampled_from([1, 2, 3])))


def model(story: Story) -> dict[str, Any]:
    """What OurAPI must hold: START's time, the earliest END, the advisor of the latest
    TRANSFER (else the conversation's), every message once with its text trimmed."""
    transfers = [e for e in story.history if e["event_name"] == "TRANSFER"]
    advisor = transfers[-1]["data"]["new_advisor_id"] if transfers else story.advisor_id
    return {
        "started_at": min(e["event_at"] for e in story.history if e["event_name"] == "START"),
        "ended_at": min(e["event_at"] for e in story.history if e["event_name"] == "END"),
        "agent_email": ADVISORS[advisor][1],
        "messages": sorted(
            (e["event_at"], e["data"]["message"].strip())
            for e in story.history
            if e["event_name"] == "MESSAGE"
        ),
    }


class ScriptedPipeline(BigChatToOurApi):
    """The real pipeline, fed from a script instead of /events."""

    def __init__(
        self, windows: list[list[list[dict[str, Any]]]], *args: Any, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.script = list(windows)

    async def pages(self, start: float, end: float) -> AsyncIterator[Page]:
        pages = self.script.pop(0) if self.script else [[]]
        for n, raw in enumerate(pages):
            entries, rejects = self._entries(raw)
            yield Page(entries, rejects, last=n == len(pages) - 1)


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
        pipeline = ScriptedPipeline(
            story.windows,
            BigChatClient(HttpService("bigchat", bigchat_url.url, session)),
            ourapi,
            store,
            clock,
        )
        engine = Engine(
            pipeline,
            store,
            clock,
            scripted_settings(len(story.windows), clock.now()),
        )
        stopping = asyncio.Event()
        task = asyncio.create_task(engine.run(stopping))
        async with asyncio.timeout(20):
            # Progress lives in the store; there is no event for "drained" to wait on.
            while pipeline.script or (await store.status("bigchat")).inbox["pending"]:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.05)
        stopping.set()
        await task
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

"""Fixtures for the BigChat stand-in tests: a controllable clock and a served stand-in."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from big_chat.app import FAULT_LOG, STATS, WORLD, PageHook, create_app
from big_chat.faults import FaultLog
from big_chat.models import Event, EventsPage
from big_chat.settings import BigChatSettings
from big_chat.stats import RequestStats
from big_chat.view import WorldView
from big_chat.world import World
from integration.core.serving import serve_app

EPOCH = 1_700_000_000.0  # a fixed world start, so that tests see the same world every run
HOUR = 3600.0


class FakeClock:
    """A clock that only moves when told to."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def iso(ts: float) -> str:
    """An ISO 8601 UTC datetime with an explicit offset, as clients should send."""
    return datetime.fromtimestamp(ts, UTC).isoformat()


@dataclass
class Running:
    """A stand-in served on a real socket, with a client session and its ground truth."""

    app: web.Application
    url: str
    session: aiohttp.ClientSession
    clock: FakeClock

    @property
    def world(self) -> World:
        return self.app[WORLD]

    @property
    def log(self) -> FaultLog:
        return self.app[FAULT_LOG]

    @property
    def stats(self) -> RequestStats:
        return self.app[STATS]

    async def get_json(self, path: str, **params: Any) -> tuple[int, Any]:
        async with self.session.get(self.url + path, params=params) as resp:
            return resp.status, await resp.json()

    async def page(self, start: float, end: float | None = None, page: int = 0) -> EventsPage:
        params: dict[str, Any] = {"start_at": iso(start), "page": page}
        if end is not None:
            params["end_at"] = iso(end)
        async with self.session.get(self.url + "/events", params=params) as resp:
            assert resp.status == 200, await resp.text()
            return EventsPage.model_validate(await resp.json())

    async def window(self, start: float, end: float | None = None) -> list[Event]:
        """Every event of a window, following nextPageUrl to the end."""
        first = await self.page(start, end)
        events = list(first.events)
        next_url = first.nextPageUrl
        while next_url is not None:
            async with self.session.get(next_url) as resp:
                assert resp.status == 200, await resp.text()
                body = EventsPage.model_validate(await resp.json())
            events.extend(body.events)
            next_url = body.nextPageUrl
        return events


Start = Callable[..., Awaitable[Running]]


@pytest.fixture
async def start_big_chat() -> AsyncIterator[Start]:
    """Factory: ``await start_big_chat(now=..., **settings)`` serves a stand-in until teardown.

    The world begins at ``EPOCH`` unless ``epoch`` is given; the clock starts at ``now``
    (default: one hour into the world). ``world`` (a ``ScriptedWorld``) and the page hooks go
    to ``create_app``.
    """
    async with AsyncExitStack() as stack:
        session = await stack.enter_async_context(aiohttp.ClientSession())

        async def start(
            now: float = EPOCH + HOUR,
            world: WorldView | None = None,
            on_page_served: PageHook | None = None,
            before_page_sent: PageHook | None = None,
            **settings: Any,
        ) -> Running:
            settings.setdefault("epoch", EPOCH)
            clock = FakeClock(now)
            app = create_app(
                BigChatSettings(**settings),
                clock=clock,
                world=world,
                on_page_served=on_page_served,
                before_page_sent=before_page_sent,
            )
            served = await stack.enter_async_context(serve_app(app))
            return Running(app, served.url, session, clock)

        yield start


def key(event: Event) -> tuple[int, str, int, str]:
    """What tells two events apart (the contract gives no event id)."""
    return (event.conversation_id, event.event_name, event.event_at, event.model_dump_json())

"""Fixtures: a provider stand-in served on a real socket with a manual clock, a client, and a
real webhook receiver that records what it is sent and can be told to fail."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from crm_providers.core.app import PROVIDER
from crm_providers.core.provider import ProviderCore
from integration.core.serving import serve_app
from tests.helpers.clocks import ManualClock


class SteppingClock(ManualClock):
    """A manual clock whose ``sleep`` moves time on at once and remembers each wait."""

    def __init__(self, at: float) -> None:
        super().__init__(at)
        self.slept: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.at += seconds
        await super().sleep(seconds)


START = 1_767_225_600.0  # 2026-01-01T00:00:00Z: a day boundary, so daily budgets are simple


@dataclass
class Running:
    """A served stand-in: its app, URL, a client session and the clock it reads."""

    app: web.Application
    url: str
    session: aiohttp.ClientSession
    clock: ManualClock

    @property
    def core(self) -> ProviderCore:
        return self.app[PROVIDER]

    async def call(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        """Status and body (JSON when JSON, else text)."""
        status, body, _ = await self.call_h(method, path, **kwargs)
        return status, body

    async def call_h(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any, Any]:
        """Status, body and headers."""
        async with self.session.request(method, self.url + path, **kwargs) as response:
            if response.content_type == "application/json":
                body: Any = await response.json()
            else:
                body = await response.text()
            return response.status, body, response.headers

    async def standin(self, method: str, path: str, **kwargs: Any) -> Any:
        status, body = await self.call(method, "/_standin/" + path, **kwargs)
        assert 200 <= status < 300, (status, body)
        return body


@dataclass
class Receiver:
    """A webhook receiver: every POST's JSON body and headers; answers 500 to the first
    ``failures`` posts."""

    url: str
    posts: list[Any] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    answered: list[int] = field(default_factory=list)
    failures: int = 0

    @property
    def delivered(self) -> list[Any]:
        """Bodies of the posts answered 2xx."""
        return [p for p, s in zip(self.posts, self.answered, strict=True) if s < 300]


Start = Callable[..., Awaitable[Running]]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    box: list[Receiver] = []

    async def hook(request: web.Request) -> web.Response:
        rec = box[0]
        rec.posts.append(await request.json())
        rec.headers.append(dict(request.headers))
        status = 500 if rec.failures > 0 else 200
        rec.failures = max(0, rec.failures - 1)
        rec.answered.append(status)
        return web.Response(status=status)

    app = web.Application()
    app.router.add_post("/hook", hook)
    async with serve_app(app) as served:
        box.append(Receiver(served.url + "/hook"))
        yield box[0]


@pytest.fixture
async def start() -> AsyncIterator[Start]:
    """``await start(create_app, settings[, clock])`` serves a stand-in on a manual clock (by
    default one starting at ``START``) until teardown."""
    async with AsyncExitStack() as stack:
        session = await stack.enter_async_context(aiohttp.ClientSession())

        async def run(
            create_app: Callable[..., web.Application],
            settings: Any,
            clock: ManualClock | None = None,
        ) -> Running:
            clock = clock or ManualClock(START)
            app = create_app(settings, clock=clock)
            served = await stack.enter_async_context(serve_app(app))
            return Running(app, served.url, session, clock)

        yield run

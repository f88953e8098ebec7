"""Operations fixtures: the stand-ins on real sockets (BigChat on the real clock, so the worker's
health and lag move with time), a worker run in the background, and scrapes of its endpoint."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from big_chat.app import create_app as create_bigchat
from big_chat.settings import BigChatSettings
from integration.core.engine import Engine
from integration.core.serving import Served, serve_app
from integration.pipelines.bigchat_ourapi.settings import BigChatOurApiSettings as Settings
from our_api.app import create_app as create_ourapi
from our_api.settings import OurApiSettings
from tests.helpers.cli import free_port

HISTORY = 60.0
"""Seconds of conversations BigChat has when a test starts: a few hundred events."""


@dataclass
class Ops:
    tmp: Path
    epoch: float
    stack: AsyncExitStack
    ourapi_url: str = ""

    async def start_ourapi(self) -> Served:
        app = create_ourapi(OurApiSettings(db=str(self.tmp / "ourapi.db"), seed=3))
        served = await self.stack.enter_async_context(serve_app(app))
        self.ourapi_url = served.url
        return served

    @asynccontextmanager
    async def bigchat(self, port: int = 0) -> AsyncIterator[Served]:
        """BigChat on the real clock; the same world each time (a fixed epoch), so it can be
        stopped and started again on the same port as if it had been unreachable."""
        settings = BigChatSettings(seed=7, epoch=self.epoch, conversation_rate=0.5, page_size=25)
        async with serve_app(create_bigchat(settings), port=port) as served:
            yield served

    def settings(self, bigchat_url: str, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "bigchat_url": bigchat_url,
            "ourapi_url": self.ourapi_url or f"http://127.0.0.1:{free_port()}",
            "state_db": self.tmp / "state.db",
            "poll_interval": 0.5,
            "poll_lag": 0,
            "max_window": 600,
            "start_at": self.epoch,
            "concurrency": 8,
            "http_timeout": 2,
            "shutdown_grace": 0.5,
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)


@pytest.fixture
async def ops(tmp_path: Path) -> AsyncIterator[Ops]:
    async with AsyncExitStack() as stack:
        yield Ops(tmp_path, time.time() - HISTORY, stack)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@asynccontextmanager
async def running(engine: Engine) -> AsyncIterator[Engine]:
    """The engine running in the background until the block exits, then stopped the clean way
    (as SIGTERM would)."""
    stopping = asyncio.Event()
    task = asyncio.create_task(engine.run(stopping))
    try:
        yield engine
    finally:
        stopping.set()
        async with asyncio.timeout(10):
            await task


async def eventually(
    probe: Callable[[], Awaitable[bool]], *, within: float, every: float = 0.05
) -> None:
    """Wait until ``probe()`` is true; fail after ``within`` seconds."""
    async with asyncio.timeout(within):
        # Polling: what is awaited (an HTTP answer, a row in the store) has no event to wait on.
        while not await probe():  # noqa: ASYNC110
            await asyncio.sleep(every)


async def get_health(session: aiohttp.ClientSession, url: str) -> tuple[int, dict[str, Any]]:
    async with session.get(f"{url}/healthz") as resp:
        return resp.status, await resp.json()


async def scrape(
    session: aiohttp.ClientSession, url: str
) -> dict[tuple[str, frozenset[Any]], float]:
    """``/metrics`` parsed: each sample's value by (name, labels)."""
    async with session.get(f"{url}/metrics") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
        text = await resp.text()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: dict[tuple[str, frozenset[Any]], float], name: str, **labels: str) -> float:
    """A sample's value; 0 when it is absent (a labelled counter not yet counted)."""
    return samples.get((name, frozenset(labels.items())), 0.0)

"""End-to-end fixtures: both stand-ins served in-process over real sockets, BigChat's clock
frozen so its ground truth is fixed, and a worker run until it has nothing left to do."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from big_chat.app import WORLD
from big_chat.app import create_app as create_bigchat
from big_chat.settings import BigChatSettings
from big_chat.world import World
from integration.connectors.bigchat.client import BigChatClient
from integration.connectors.ourapi.client import OurApiClient
from integration.core.engine import Engine
from integration.core.http import HttpService
from integration.core.serving import serve_app
from integration.core.shell import open_engine
from integration.core.stats import Stats
from integration.pipelines.bigchat_ourapi import SYNC as BIGCHAT
from integration.pipelines.bigchat_ourapi.settings import BigChatOurApiSettings as Settings
from integration.pipelines.bigchat_ourapi.verify import Report, verify
from our_api.app import STATS as OURAPI_STATS
from our_api.app import create_app as create_ourapi
from our_api.settings import OurApiSettings
from tests.helpers.clocks import ManualClock
from tests.helpers.policies import FAST_RETRY

from .processes import WorkerProcess, start_worker

NOW = 1_800_000_000.0
"""BigChat's frozen now: its world has happened up to here and no further."""


def ahead_clock() -> ManualClock:
    """The worker's clock: a second past BigChat's frozen now, so the last window covers every
    event that has happened."""
    return ManualClock(NOW + 1)


@dataclass
class Standins:
    bigchat_url: str
    ourapi_url: str
    bigchat_app: web.Application
    ourapi_app: web.Application
    session: aiohttp.ClientSession
    tmp: Path
    frozen_now: float = NOW

    @property
    def world(self) -> World:
        return self.bigchat_app[WORLD]

    @property
    def epoch(self) -> float:
        return self.world.epoch

    def conversation_ids(self) -> list[int]:
        return list(self.world.conversation_ids(self.frozen_now))

    def ourapi_requests(self) -> int:
        return self.ourapi_app[OURAPI_STATS].total

    def settings(self, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "bigchat_url": self.bigchat_url,
            "ourapi_url": self.ourapi_url,
            "state_db": self.tmp / "state.db",
            "poll_interval": 0.05,
            "poll_lag": 0,
            "max_window": 600,
            "start_at": self.epoch,
            "concurrency": 8,
            "http_timeout": 5,
            # OurAPI's stand-in applies a write before it answers (unless told to land it late),
            # so a lost answer's write has landed within a second.
            "ourapi_write_horizon": 1,
            "shutdown_grace": 5,
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)  # type: ignore[call-arg]

    async def verify(self) -> Report:
        bigchat = BigChatClient(HttpService("bigchat", self.bigchat_url, self.session))
        ourapi = OurApiClient(HttpService("ourapi", self.ourapi_url, self.session))
        return await verify(bigchat, ourapi, self.conversation_ids(), retry=FAST_RETRY)


@pytest.fixture
async def start_standins(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    async with AsyncExitStack() as stack:
        yield _starter(stack, tmp_path)


def _starter(stack: AsyncExitStack, tmp_path: Path) -> Callable[..., Any]:
    async def start(
        bigchat: dict[str, Any] | None = None,
        ourapi: dict[str, Any] | None = None,
        *,
        now: float = NOW,
        middleware: Any = None,
        clock: Callable[[], float] | None = None,
    ) -> Standins:
        bigchat_settings = BigChatSettings(
            **{
                "seed": 7,
                "history": 1200,
                "conversation_rate": 0.1,
                "page_size": 25,
                **(bigchat or {}),
            }
        )
        bigchat_app = create_bigchat(bigchat_settings, clock=clock or (lambda: now))
        if middleware is not None:
            bigchat_app.middlewares.append(middleware)
        ourapi_app = create_ourapi(
            OurApiSettings(**{"db": str(tmp_path / "ourapi.db"), "seed": 3, **(ourapi or {})})
        )
        served_bigchat = await stack.enter_async_context(serve_app(bigchat_app))
        served_ourapi = await stack.enter_async_context(serve_app(ourapi_app))
        session = await stack.enter_async_context(aiohttp.ClientSession())
        return Standins(
            served_bigchat.url, served_ourapi.url, bigchat_app, ourapi_app, session, tmp_path, now
        )

    return start


@pytest.fixture
async def start_live_standins(
    start_standins: Callable[..., Any],
) -> AsyncIterator[Callable[..., Any]]:
    """Stand-ins for a worker running on the real clock (a subprocess): BigChat is frozen a
    moment in the past, so the worker's windows soon pass its frozen now."""

    async def start(**kwargs: Any) -> Standins:
        return await start_standins(now=float(int(time.time()) - 1), **kwargs)  # type: ignore[no-any-return]

    yield start


@pytest.fixture
async def spawn() -> AsyncIterator[Callable[..., Any]]:
    """Start worker subprocesses that are killed at teardown, whatever the test's outcome."""
    started: list[WorkerProcess] = []

    async def start(env: dict[str, str], log_path: Path, *args: str) -> WorkerProcess:
        worker = await start_worker(env, log_path, *args)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        if worker.process.returncode is None:
            worker.process.kill()
            await worker.process.wait()


@pytest.fixture
async def standins(start_standins: Callable[..., Any]) -> AsyncIterator[Standins]:
    yield await start_standins()


async def run_until_idle(
    settings: Settings, *, limit: float = 60.0, stats: Stats | None = None
) -> Engine:
    """Run a worker in drain mode: it reads BigChat up to the frozen now, applies everything,
    and stops the clean way by itself."""
    async with open_engine(
        BIGCHAT, settings, clock=ahead_clock(), stats=stats, retry=FAST_RETRY
    ) as engine:
        async with asyncio.timeout(limit):
            assert await engine.run(asyncio.Event(), once=True)
        assert engine.drained, engine.drain_problems
    return engine

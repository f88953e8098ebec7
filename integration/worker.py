"""Assembles the BigChat → OurAPI worker from settings: one HTTP session, a client per service,
the state store, the pipeline and the engine."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp

from .config import Settings
from .connectors.bigchat.client import BigChatClient
from .connectors.ourapi.client import OurApiClient
from .core.clock import Clock, SystemClock
from .core.engine import Engine, EngineSettings
from .core.http import HttpService
from .core.retry import RetryPolicy
from .core.stats import Stats
from .core.store import SQLiteStore
from .pipelines.bigchat_ourapi.pipeline import BigChatToOurApi


def engine_settings(settings: Settings, retry: RetryPolicy | None = None) -> EngineSettings:
    return EngineSettings(
        poll_interval=settings.poll_interval,
        lag=settings.poll_lag,
        max_window=settings.max_window,
        start_at=settings.start_at.timestamp() if settings.start_at else None,
        concurrency=settings.concurrency,
        shutdown_grace=settings.shutdown_grace,
        retry=retry or RetryPolicy(),
    )


@asynccontextmanager
async def bigchat_worker(
    settings: Settings,
    *,
    clock: Clock | None = None,
    stats: Stats | None = None,
    retry: RetryPolicy | None = None,
) -> AsyncIterator[Engine]:
    clock = clock or SystemClock()
    stats = stats or Stats()
    store = SQLiteStore(settings.state_db, clock=clock)
    await store.open()
    connector = aiohttp.TCPConnector(
        limit=settings.ourapi_max_in_flight + settings.bigchat_max_in_flight + 4
    )
    try:
        async with aiohttp.ClientSession(connector=connector, raise_for_status=False) as session:

            def service(name: str, url: object, max_in_flight: int) -> HttpService:
                return HttpService(
                    name,
                    str(url),
                    session,
                    max_in_flight=max_in_flight,
                    timeout=settings.http_timeout,
                    clock=clock,
                    observer=stats.observe_request,
                )

            bigchat = service("bigchat", settings.bigchat_url, settings.bigchat_max_in_flight)
            ourapi = service("ourapi", settings.ourapi_url, settings.ourapi_max_in_flight)
            pipeline = BigChatToOurApi(BigChatClient(bigchat), OurApiClient(ourapi), store, clock)
            yield Engine(pipeline, store, clock, engine_settings(settings, retry), stats)
    finally:
        await store.close()

"""Both services' clients from the settings: one HTTP session, Intempus behind its rate budget."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp

from ...connectors.case_store.client import CaseStoreClient
from ...connectors.intempus.budget import RateBudget
from ...connectors.intempus.client import IntempusClient
from ...core.clock import Clock, SystemClock
from ...core.http import HttpService
from ...core.stats import Stats
from .settings import IntempusSettings


@asynccontextmanager
async def connect(
    settings: IntempusSettings, clock: Clock | None = None, stats: Stats | None = None
) -> AsyncIterator[tuple[IntempusClient, CaseStoreClient]]:
    clock = clock or SystemClock()
    connector = aiohttp.TCPConnector(limit=2 * settings.max_in_flight + 4)
    async with aiohttp.ClientSession(connector=connector, raise_for_status=False) as session:

        def service(name: str, label: str, url: object) -> HttpService:
            return HttpService(
                name,
                str(url),
                session,
                max_in_flight=settings.max_in_flight,
                timeout=settings.http_timeout,
                clock=clock,
                observer=stats.observe_request if stats is not None else None,
                label=label,
            )

        intempus = IntempusClient(
            service("intempus", "Intempus", settings.intempus_url),
            user=settings.intempus_user,
            api_key=settings.intempus_api_key.get_secret_value(),
            budget=RateBudget(settings.max_per_minute, settings.max_per_day, clock),
        )
        local = CaseStoreClient(service("case-store", "case store", settings.case_store_url))
        yield intempus, local

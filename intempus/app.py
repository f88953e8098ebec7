"""``create_app``: the Intempus stand-in as an aiohttp application.

``clock`` (Unix seconds) drives the rate limits, ``creation_date`` and the fault log, so tests
move time by hand; ``sleep`` is what the latency fault awaits. ``on_write_committed(op,
case_id)`` is called right after each write commits and before it is answered (``op``: POST,
PUT, PATCH, DELETE; TOUCH, STANDIN_POST, STANDIN_DELETE for the ``/_standin/`` writes; SEED for
the sample cases): a test can SIGKILL a worker at that instant.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from aiohttp import web

from intempus import openapi, routes, standin
from intempus.case import Hydrator
from intempus.listing import OffsetSnapshots
from intempus.middleware import limits_middleware, stats_middleware, tastypie_middleware
from intempus.ratelimit import RateLimiter
from intempus.service import SERVICE, Service
from intempus.settings import IntempusSettings
from intempus.store import CaseStore
from intempus.world import World, sample_bodies
from standin_kit.service import Clock, Sleep, WriteHook

__all__ = ["SERVICE", "create_app"]


def create_app(
    settings: IntempusSettings,
    clock: Clock = time.time,
    on_write_committed: WriteHook | None = None,
    sleep: Sleep = asyncio.sleep,
) -> web.Application:
    """The stand-in, configured by ``settings``; the database opens when the app starts."""
    service = Service(
        settings=settings,
        switches=settings.switches(),
        world=World(),
        limiter=RateLimiter(clock),
        snapshots=OffsetSnapshots(),
        clock=clock,
        sleep=sleep,
        seed=settings.seed,
        on_write_committed=on_write_committed,
    )
    app = web.Application(
        middlewares=[
            standin.standin_errors,
            stats_middleware,
            limits_middleware,
            tastypie_middleware,
        ]
    )
    app[SERVICE] = service

    async def storage(app: web.Application) -> AsyncIterator[None]:
        async with CaseStore.open(
            settings.db,
            lt_start=settings.lt_start,
            lt_step=settings.lt_step,
            id_start=settings.id_start,
            seed=settings.seed,
            hooks=service.hooks,
        ) as store:
            service._store = store
            if settings.cases and not store.cases and store.next_id == settings.id_start:
                hydrator = Hydrator(service.world, store.cases)
                bodies = sample_bodies(settings.cases, settings.seed, service.world)
                await store.seed([hydrator.create(b) for b in bodies], today=service.today())
            yield

    app.cleanup_ctx.append(storage)
    routes.add_routes(app)
    standin.add_routes(app)
    openapi.add_routes(app)
    return app

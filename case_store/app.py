"""``create_app``: the local case store as an aiohttp application.

``clock`` (Unix seconds) stamps rows and ages tombstones, so tests move time by hand; ``sleep``
is what the latency fault awaits.
``on_write_committed(op, case_id)`` is called right after each write commits, before it is
answered (``op``: POST, PATCH, DELETE or RESTORE): a test can SIGKILL a worker at that instant.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from aiohttp import web

from case_store import openapi, routes, standin
from case_store.middleware import errors_middleware, fault_middleware, stats_middleware
from case_store.service import SERVICE, Service
from case_store.settings import CaseStoreSettings
from case_store.store import CaseStore
from standin_kit.service import Clock, Sleep, WriteHook

__all__ = ["SERVICE", "create_app"]

DAY_S = 86_400


def create_app(
    settings: CaseStoreSettings,
    clock: Clock = time.time,
    on_write_committed: WriteHook | None = None,
    sleep: Sleep = asyncio.sleep,
) -> web.Application:
    """The case store, configured by ``settings``; the database opens when the app starts."""
    service = Service(
        settings=settings,
        faults_settings=settings.faults(),
        clock=clock,
        sleep=sleep,
        seed=settings.seed,
        on_write_committed=on_write_committed,
    )
    app = web.Application(middlewares=[stats_middleware, fault_middleware, errors_middleware])
    app[SERVICE] = service

    async def storage(app: web.Application) -> AsyncIterator[None]:
        async with CaseStore.open(
            settings.db,
            clock=clock,
            retention_s=settings.tombstone_days * DAY_S,
            hooks=service.hooks,
        ) as store:
            service._store = store
            yield

    app.cleanup_ctx.append(storage)
    routes.add_routes(app)
    standin.add_routes(app)
    openapi.add_routes(app)
    return app

"""``create_app``: our internal system (contacts, companies, one change feed) as an aiohttp
application.

``clock`` (Unix seconds) stamps rows, so tests fix time by hand; ``sleep`` is what the latency
fault awaits. ``on_write_committed(op, record_id)`` is called right after each write commits,
before it is answered (``op``: POST, PATCH, DELETE or RESTORE, of either object): a test can
SIGKILL a worker at that instant.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from aiohttp import web

from crm_internal import openapi, routes, standin
from crm_internal.middleware import errors_middleware, fault_middleware, stats_middleware
from crm_internal.service import SERVICE, Service
from crm_internal.settings import CrmInternalSettings
from crm_internal.store import CrmStore
from standin_kit.service import Clock, Sleep, WriteHook

__all__ = ["SERVICE", "create_app"]


def create_app(
    settings: CrmInternalSettings,
    clock: Clock = time.time,
    on_write_committed: WriteHook | None = None,
    sleep: Sleep = asyncio.sleep,
) -> web.Application:
    """Our internal system, configured by ``settings``; the database opens when the app
    starts."""
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
        async with CrmStore.open(settings.db, clock=clock, hooks=service.hooks) as store:
            service._store = store
            yield

    app.cleanup_ctx.append(storage)
    routes.add_routes(app)
    standin.add_routes(app)
    openapi.add_routes(app)
    return app

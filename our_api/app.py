"""``create_app``: the OurAPI stand-in as an aiohttp application."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from aiohttp import web

from our_api import openapi, routes, standin
from our_api.faults import FaultInjector
from our_api.keys import FAULTS, INJECTOR, LATE, SETTINGS, STATS, STORE
from our_api.late import LateLandings
from our_api.middleware import errors_middleware, fault_middleware, stats_middleware
from our_api.settings import OurApiSettings
from our_api.store import NullStore, SqliteStore
from standin_kit.faults import FaultLog
from standin_kit.stats import RequestStats

__all__ = ["FAULTS", "INJECTOR", "LATE", "SETTINGS", "STATS", "STORE", "create_app"]


def create_app(settings: OurApiSettings) -> web.Application:
    """The stand-in, configured by ``settings``; the database opens when the app starts."""
    app = web.Application(middlewares=[stats_middleware, fault_middleware, errors_middleware])
    app[SETTINGS] = settings
    app[STATS] = RequestStats()
    app[FAULTS] = FaultLog(time.time)
    app[INJECTOR] = FaultInjector(settings.faults(), settings.seed, app[FAULTS])
    app[LATE] = LateLandings(app[FAULTS])

    async def storage(app: web.Application) -> AsyncIterator[None]:
        # A cleanup context: the database is closed on shutdown, after every pending write
        # has been committed and answered.
        if settings.null_sink:
            app[STORE] = NullStore()
            yield
            return
        async with SqliteStore.open(settings.db) as store:
            app[STORE] = store
            yield

    async def late_landings(app: web.Application) -> AsyncIterator[None]:
        # Registered after storage, so cleaned up before it: held writes land (or are cancelled)
        # while the database is still open.
        yield
        await app[LATE].close()

    app.cleanup_ctx.append(storage)
    app.cleanup_ctx.append(late_landings)
    routes.add_routes(app)
    standin.add_routes(app)
    openapi.add_routes(app)
    return app

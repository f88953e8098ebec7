"""``create_app``: the OurAPI stand-in as an aiohttp application."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from our_api import openapi, routes, standin
from our_api.faults import FaultInjector, FaultLog
from our_api.keys import FAULTS, INJECTOR, SETTINGS, STATS, STORE
from our_api.middleware import errors_middleware, fault_middleware, stats_middleware
from our_api.settings import OurApiSettings
from our_api.stats import RequestStats
from our_api.store import NullStore, SqliteStore

__all__ = ["FAULTS", "INJECTOR", "SETTINGS", "STATS", "STORE", "create_app"]


def create_app(settings: OurApiSettings) -> web.Application:
    """The stand-in, configured by ``settings``; the database opens when the app starts."""
    app = web.Application(middlewares=[stats_middleware, fault_middleware, errors_middleware])
    app[SETTINGS] = settings
    app[STATS] = RequestStats()
    app[FAULTS] = FaultLog()
    app[INJECTOR] = FaultInjector(settings.faults(), settings.seed, app[FAULTS])

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

    app.cleanup_ctx.append(storage)
    routes.add_routes(app)
    standin.add_routes(app)
    openapi.add_routes(app)
    return app

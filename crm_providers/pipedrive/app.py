"""``create_app``: the Pipedrive-like stand-in as an aiohttp application."""

from __future__ import annotations

from aiohttp import web

from crm_providers.core.app import PROVIDER, build_app
from crm_providers.core.clock import Clock, SystemClock
from crm_providers.pipedrive import routes
from crm_providers.pipedrive.provider import PipedriveCore
from crm_providers.pipedrive.settings import PipedriveSettings

PIPEDRIVE: web.AppKey[PipedriveCore] = web.AppKey("pipedrive", PipedriveCore)


def create_app(settings: PipedriveSettings, clock: Clock | None = None) -> web.Application:
    """The stand-in configured by ``settings``; ``app[PIPEDRIVE]`` is its state, for tests."""
    core = PipedriveCore(settings, clock or SystemClock())
    app = build_app(core, routes.OPERATIONS, "Pipedrive-like CRM stand-in")
    app[PIPEDRIVE] = core
    routes.add_routes(app, core)
    return app


__all__ = ["PIPEDRIVE", "PROVIDER", "create_app"]

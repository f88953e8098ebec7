"""``create_app``: the HubSpot-like stand-in as an aiohttp application."""

from __future__ import annotations

from aiohttp import web

from crm_providers.core.app import PROVIDER, build_app
from crm_providers.core.clock import Clock, SystemClock
from crm_providers.hubspot import routes
from crm_providers.hubspot.provider import HubSpotCore
from crm_providers.hubspot.settings import HubSpotSettings

HUBSPOT: web.AppKey[HubSpotCore] = web.AppKey("hubspot", HubSpotCore)


def create_app(settings: HubSpotSettings, clock: Clock | None = None) -> web.Application:
    """The stand-in configured by ``settings``; ``app[HUBSPOT]`` is its state, for tests."""
    core = HubSpotCore(settings, clock or SystemClock())
    app = build_app(core, routes.OPERATIONS, "HubSpot-like CRM stand-in")
    app[HUBSPOT] = core
    routes.add_routes(app, core)
    return app


__all__ = ["HUBSPOT", "PROVIDER", "create_app"]

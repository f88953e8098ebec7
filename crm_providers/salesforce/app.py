"""``create_app``: the Salesforce-like stand-in as an aiohttp application."""

from __future__ import annotations

from aiohttp import web

from crm_providers.core.app import PROVIDER, build_app
from crm_providers.core.clock import Clock, SystemClock
from crm_providers.salesforce import routes
from crm_providers.salesforce.provider import SalesforceCore
from crm_providers.salesforce.settings import SalesforceSettings

SALESFORCE: web.AppKey[SalesforceCore] = web.AppKey("salesforce", SalesforceCore)


def create_app(settings: SalesforceSettings, clock: Clock | None = None) -> web.Application:
    """The stand-in configured by ``settings``; ``app[SALESFORCE]`` is its state, for tests."""
    core = SalesforceCore(settings, clock or SystemClock())
    app = build_app(core, routes.OPERATIONS, "Salesforce-like CRM stand-in")
    app[SALESFORCE] = core
    routes.add_routes(app, core)
    return app


__all__ = ["PROVIDER", "SALESFORCE", "create_app"]

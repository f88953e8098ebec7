"""Typed keys under which the application keeps its parts (no module-level mutable state)."""

from __future__ import annotations

from aiohttp import web

from our_api.faults import FaultInjector, FaultLog
from our_api.settings import OurApiSettings
from our_api.stats import RequestStats
from our_api.store import Store

SETTINGS = web.AppKey("our_api_settings", OurApiSettings)
STATS = web.AppKey("our_api_stats", RequestStats)
FAULTS = web.AppKey("our_api_faults", FaultLog)
INJECTOR = web.AppKey("our_api_injector", FaultInjector)
STORE = web.AppKey("our_api_store", Store)

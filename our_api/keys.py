"""Typed keys under which the application keeps its parts (no module-level mutable state)."""

from __future__ import annotations

from aiohttp import web

from our_api.faults import FaultInjector
from our_api.late import LateLandings
from our_api.settings import OurApiSettings
from our_api.store import Store
from standin_kit.faults import FaultLog
from standin_kit.stats import RequestStats

SETTINGS = web.AppKey("our_api_settings", OurApiSettings)
STATS = web.AppKey("our_api_stats", RequestStats)
FAULTS = web.AppKey("our_api_faults", FaultLog)
INJECTOR = web.AppKey("our_api_injector", FaultInjector)
STORE = web.AppKey("our_api_store", Store)
LATE = web.AppKey("our_api_late_landings", LateLandings)

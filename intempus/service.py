"""Everything one running stand-in holds, in one object under one application key."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from aiohttp import web

from intempus.listing import OffsetSnapshots
from intempus.ratelimit import RateLimiter
from intempus.settings import IntempusSettings, Switches
from intempus.store import CaseStore
from intempus.world import World
from standin_kit.service import ServiceCore


@dataclass(kw_only=True)
class Service(ServiceCore[CaseStore]):
    settings: IntempusSettings
    switches: Switches
    world: World
    limiter: RateLimiter
    snapshots: OffsetSnapshots

    def today(self) -> date:
        """The server's local date (creation_date is set to it on every save)."""
        return datetime.fromtimestamp(self.clock()).date()


SERVICE = web.AppKey("intempus_service", Service)

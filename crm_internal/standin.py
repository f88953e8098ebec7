"""Our internal system's own routes under ``/_standin/`` (never counted or faulted).

- ``GET /_standin/stats``; ``POST /_standin/stats/reset`` (counts and fault log).
- ``GET /_standin/faults``; ``PATCH /_standin/faults`` merges ``error_rate``, ``ambiguous_rate``,
  ``latency_ms``.
- ``GET /_standin/records``: the truth, every row of both objects, tombstones included, and the
  high water.
- ``POST /_standin/hooks/kill-after?op=POST`` ``{"pid": n, "signal": "SIGKILL"}``: signal that
  process right after the next committed write of that kind (POST, PATCH, DELETE, RESTORE, of
  either object); ``GET`` shows it, ``DELETE`` disarms it.

Users edit records through the normal API without ``X-Sync-Origin`` (their origin is "user").
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from crm_internal.service import SERVICE
from crm_internal.settings import FaultSettings
from standin_kit.admin import admin_routes


async def _truth(service: Any) -> Any:
    return await service.store.records()


def add_routes(app: web.Application) -> None:
    app.router.add_routes(admin_routes(SERVICE, FaultSettings, "records", _truth))

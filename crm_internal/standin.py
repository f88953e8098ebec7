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

import json
import signal
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from crm_internal.models import KillAfter
from crm_internal.service import SERVICE
from crm_internal.settings import FaultSettings

OPS = ("POST", "PATCH", "DELETE", "RESTORE")


def _invalid(error: ValidationError) -> web.Response:
    return web.json_response({"error": json.loads(error.json(include_url=False))}, status=422)


async def _object(request: web.Request) -> dict[str, Any] | None:
    try:
        body = json.loads(await request.read())
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


async def get_stats(request: web.Request) -> web.Response:
    return web.json_response(request.app[SERVICE].stats.snapshot())


async def reset_stats(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    service.stats.reset()
    service.faults.reset()
    return web.Response(status=204)


def _faults_view(request: web.Request) -> dict[str, Any]:
    service = request.app[SERVICE]
    return {"settings": service.faults_settings.model_dump(), **service.faults.snapshot()}


async def get_faults(request: web.Request) -> web.Response:
    return web.json_response(_faults_view(request))


async def patch_faults(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    changes = await _object(request)
    if changes is None:
        return web.json_response({"error": "the body must be a JSON object"}, status=422)
    try:
        merged = {**service.faults_settings.model_dump(), **changes}
        service.faults_settings = FaultSettings.model_validate(merged)
    except ValidationError as error:
        return _invalid(error)
    return web.json_response(_faults_view(request))


async def records(request: web.Request) -> web.Response:
    return web.json_response(await request.app[SERVICE].store.records())


async def arm_kill(request: web.Request) -> web.Response:
    kill = request.app[SERVICE].kill
    op = request.query.get("op", "POST")
    if op not in OPS:
        return web.json_response({"error": f"op must be one of {list(OPS)}"}, status=422)
    try:
        body = KillAfter.model_validate_json(await request.read())
    except ValidationError as error:
        return _invalid(error)
    kill.arm(op, body.pid, int(getattr(signal, body.signal)))
    return await show_kill(request)


async def show_kill(request: web.Request) -> web.Response:
    return web.json_response(request.app[SERVICE].kill.state())


async def disarm_kill(request: web.Request) -> web.Response:
    request.app[SERVICE].kill.disarm()
    return web.Response(status=204)


def add_routes(app: web.Application) -> None:
    p = "/_standin"
    app.router.add_routes(
        [
            web.get(f"{p}/stats", get_stats, allow_head=False),
            web.post(f"{p}/stats/reset", reset_stats),
            web.get(f"{p}/faults", get_faults, allow_head=False),
            web.patch(f"{p}/faults", patch_faults),
            web.get(f"{p}/records", records, allow_head=False),
            web.post(f"{p}/hooks/kill-after", arm_kill),
            web.get(f"{p}/hooks/kill-after", show_kill, allow_head=False),
            web.delete(f"{p}/hooks/kill-after", disarm_kill),
        ]
    )

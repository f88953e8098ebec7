"""A stand-in's own routes under ``/_standin/`` (never counted or faulted), for a service that
keeps its counts, fault log, fault settings, truth and kill hook the way the case store and our
CRM system do:

- ``GET /_standin/stats``; ``POST /_standin/stats/reset`` (counts and fault log);
- ``GET /_standin/faults``; ``PATCH /_standin/faults`` merges the fault settings given;
- ``GET /_standin/<truth>``: the service's truth (every row, tombstones included);
- ``POST /_standin/hooks/kill-after?op=POST`` ``{"pid": n, "signal": "SIGKILL"}``: signal that
  process right after the next committed write of that kind (POST, PATCH, DELETE, RESTORE);
  ``GET`` shows it, ``DELETE`` disarms it.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

OPS = ("POST", "PATCH", "DELETE", "RESTORE")


class KillAfter(BaseModel):
    """Body of ``POST /_standin/hooks/kill-after?op=...``."""

    model_config = ConfigDict(extra="forbid")

    pid: int = Field(gt=1)
    signal: str = Field("SIGKILL", pattern="^(SIGKILL|SIGTERM|SIGINT)$")


def _invalid(error: ValidationError) -> web.Response:
    return web.json_response({"error": json.loads(error.json(include_url=False))}, status=422)


async def _object(request: web.Request) -> dict[str, Any] | None:
    try:
        body = json.loads(await request.read())
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def admin_routes(
    key: web.AppKey[Any],
    fault_settings: type[BaseModel],
    truth_path: str,
    truth: Callable[[Any], Awaitable[Any]],
) -> list[web.RouteDef]:
    """The routes for the service at ``app[key]`` (with ``stats``, ``faults``,
    ``faults_settings`` and ``kill``); ``truth(service)`` answers ``GET /_standin/<truth_path>``."""

    def _faults_view(request: web.Request) -> dict[str, Any]:
        service = request.app[key]
        return {"settings": service.faults_settings.model_dump(), **service.faults.snapshot()}

    async def get_stats(request: web.Request) -> web.Response:
        return web.json_response(request.app[key].stats.snapshot())

    async def reset_stats(request: web.Request) -> web.Response:
        service = request.app[key]
        service.stats.reset()
        service.faults.reset()
        return web.Response(status=204)

    async def get_faults(request: web.Request) -> web.Response:
        return web.json_response(_faults_view(request))

    async def patch_faults(request: web.Request) -> web.Response:
        service = request.app[key]
        changes = await _object(request)
        if changes is None:
            return web.json_response({"error": "the body must be a JSON object"}, status=422)
        try:
            merged = {**service.faults_settings.model_dump(), **changes}
            service.faults_settings = fault_settings.model_validate(merged)
        except ValidationError as error:
            return _invalid(error)
        return web.json_response(_faults_view(request))

    async def get_truth(request: web.Request) -> web.Response:
        return web.json_response(await truth(request.app[key]))

    async def show_kill(request: web.Request) -> web.Response:
        return web.json_response(request.app[key].kill.state())

    async def arm_kill(request: web.Request) -> web.Response:
        op = request.query.get("op", "POST")
        if op not in OPS:
            return web.json_response({"error": f"op must be one of {list(OPS)}"}, status=422)
        try:
            body = KillAfter.model_validate_json(await request.read())
        except ValidationError as error:
            return _invalid(error)
        request.app[key].kill.arm(op, body.pid, int(getattr(signal, body.signal)))
        return await show_kill(request)

    async def disarm_kill(request: web.Request) -> web.Response:
        request.app[key].kill.disarm()
        return web.Response(status=204)

    p = "/_standin"
    return [
        web.get(f"{p}/stats", get_stats, allow_head=False),
        web.post(f"{p}/stats/reset", reset_stats),
        web.get(f"{p}/faults", get_faults, allow_head=False),
        web.patch(f"{p}/faults", patch_faults),
        web.get(f"{p}/{truth_path}", get_truth, allow_head=False),
        web.post(f"{p}/hooks/kill-after", arm_kill),
        web.get(f"{p}/hooks/kill-after", show_kill, allow_head=False),
        web.delete(f"{p}/hooks/kill-after", disarm_kill),
    ]

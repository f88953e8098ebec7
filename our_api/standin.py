"""The stand-in's own endpoints, outside the contract, under ``/_standin/``.

- ``GET /_standin/stats``: request counts (``RequestStats.snapshot()``).
- ``POST /_standin/stats/reset``: zero them (204).
- ``GET /_standin/faults``: the fault settings in force, counts per kind and the fault log.
- ``PATCH /_standin/faults``: change fault settings at run time; fields left out are kept.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from our_api.errors import json_detail, validation_422
from our_api.keys import FAULTS, INJECTOR, STATS
from our_api.settings import FaultSettings


async def get_stats(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATS].snapshot())


async def reset_stats(request: web.Request) -> web.Response:
    request.app[STATS].reset()
    return web.Response(status=204)


def _faults_view(app: web.Application) -> dict[str, Any]:
    return {"settings": app[INJECTOR].settings.model_dump(), **app[FAULTS].snapshot()}


async def get_faults(request: web.Request) -> web.Response:
    return web.json_response(_faults_view(request.app))


async def patch_faults(request: web.Request) -> web.Response:
    injector = request.app[INJECTOR]
    try:
        changes = json.loads(await request.read())
    except ValueError:
        return json_detail(422, "the body must be a JSON object")
    if not isinstance(changes, dict):
        return json_detail(422, "the body must be a JSON object")
    try:
        # Validate the merged whole, so ranges are checked and unknown names refused.
        settings = FaultSettings.model_validate({**injector.settings.model_dump(), **changes})
    except ValidationError as error:
        return validation_422(error, "body")
    injector.update(settings)
    return web.json_response(_faults_view(request.app))


def add_routes(app: web.Application) -> None:
    """Register the ``/_standin/`` routes on ``app``."""
    app.router.add_routes(
        [
            web.get("/_standin/stats", get_stats, allow_head=False),
            web.post("/_standin/stats/reset", reset_stats),
            web.get("/_standin/faults", get_faults, allow_head=False),
            web.patch("/_standin/faults", patch_faults),
        ]
    )

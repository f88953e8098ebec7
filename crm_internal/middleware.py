"""What wraps every contract request (outermost first): statistics, then the faults (500 before
anything, latency), then refusals as JSON answers and the ambiguous fault (committed, then 500).
``/_standin/``, ``/openapi.json`` and ``/docs`` are neither counted nor faulted."""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.typedefs import Handler

from crm_internal.models import OBJECTS, ROUTES
from crm_internal.service import SERVICE
from crm_internal.store import Refused
from standin_kit import middleware as kit

log = logging.getLogger(__name__)

_CONTRACT = ("/changes", *(f"/{ROUTES[o]}" for o in OBJECTS))


def _is_contract(request: web.Request) -> bool:
    return any(request.path == p or request.path.startswith(p + "/") for p in _CONTRACT)


def internal_error() -> web.Response:
    return web.json_response({"error": "internal server error"}, status=500)


stats_middleware = kit.stats_middleware(_is_contract, lambda app: app[SERVICE].stats)


@web.middleware
async def fault_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not _is_contract(request):
        return await handler(request)
    service = request.app[SERVICE]
    rates, faults = service.faults_settings, service.draws()
    if faults.error(rates, request.method, request.path):
        return internal_error()
    await faults.delay(rates, request.method, request.path)
    response = await handler(request)
    if faults.ambiguous(rates, request.method, request.path, response.status):
        return internal_error()
    return response


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except Refused as refused:
        return web.json_response(refused.body, status=refused.status)
    except web.HTTPNotFound:
        return web.json_response({"error": "not found"}, status=404)
    except web.HTTPMethodNotAllowed as not_allowed:
        allow = ", ".join(sorted(not_allowed.allowed_methods))
        return web.json_response(
            {"error": "method not allowed"}, status=405, headers={"Allow": allow}
        )
    except web.HTTPException:
        raise
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return internal_error()

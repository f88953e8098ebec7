"""What wraps every contract request: statistics, fault injection, and the error answers.

Order (outermost first): stats, then faults, then errors. Stats see the final status, faults
included; faults wrap the handler so an ambiguous write is decided after the write committed.
A late-landing write is held, then handed to the rest of the chain in a task of its own
(``late.py``), so that it lands even if its client left and its handler was cancelled.
``/_standin/`` requests are neither counted nor faulted: they are the test harness's back door.
"""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.typedefs import Handler

from our_api.errors import StoreError, json_detail, plain_500
from our_api.keys import INJECTOR, LATE, STATS
from our_api.routes import Invalid

log = logging.getLogger(__name__)

STANDIN_PREFIX = "/_standin/"


def _route_template(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return "<unmatched>" if resource is None else resource.canonical


@web.middleware
async def stats_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith(STANDIN_PREFIX):
        return await handler(request)
    stats = request.app[STATS]
    try:
        response = await handler(request)
    except web.HTTPException as http_error:
        stats.record(request.method, _route_template(request), http_error.status)
        raise
    stats.record(request.method, _route_template(request), response.status)
    return response


@web.middleware
async def fault_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith(STANDIN_PREFIX):
        return await handler(request)
    faults = request.app[INJECTOR]
    method, path = request.method, request.path
    retry_after = faults.retry_after(method, path)
    if retry_after is not None:
        limited = json_detail(429, "Too Many Requests")
        limited.headers["Retry-After"] = str(retry_after)
        return limited
    if faults.error(method, path):
        return plain_500()
    await faults.delay(method, path)
    hold_s = faults.late_landing(method, path)
    if hold_s is None:
        response = await handler(request)
    else:
        response = await request.app[LATE].hold_then_apply(request, handler, hold_s)
    # Only a write that succeeded was committed; answering it 500 is the ambiguous failure.
    if faults.ambiguous(method, path, response.status):
        return plain_500()
    return response


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except Invalid as invalid:
        return invalid.response
    except StoreError as refused:
        return refused.response()
    except web.HTTPNotFound:
        # No such route: FastAPI's JSON answer rather than aiohttp's plain text.
        return json_detail(404, "Not Found")
    except web.HTTPMethodNotAllowed as not_allowed:
        response = json_detail(405, "Method Not Allowed")
        response.headers["Allow"] = ", ".join(sorted(not_allowed.allowed_methods))
        return response
    except web.HTTPException:
        raise
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return plain_500()

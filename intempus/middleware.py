"""What wraps every contract request, outermost first:

1. statistics (every contract request, with its final status);
2. the rate limits (every request counts, refused ones too);
3. the 500-before-commit fault and the latency;
4. routing answers in tastypie's shape (404 empty, 405 empty with ``Allow``), strict slashes;
5. authentication (bare 401 with ``WWW-Authenticate``);
6. the ``Logical-Timestamp`` header on ``/web/v1/case/`` answers, ``ApiError`` answers, and the
   ambiguous fault (a write that committed, answered 500).

``/_standin/``, ``/openapi.json`` and ``/docs`` are never counted, limited, faulted or checked.
"""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.typedefs import Handler

from intempus.auth import authenticate, claimed_user
from intempus.errors import ApiError, empty, json_response, server_error, unauthorized
from intempus.service import SERVICE
from standin_kit import middleware as kit

log = logging.getLogger(__name__)

CONTRACT_PREFIX = "/web/v1/"
CASE_PREFIX = "/web/v1/case"
ALLOW_ORDER = ("GET", "POST", "PUT", "PATCH", "DELETE")


def _is_contract(request: web.Request) -> bool:
    return request.path.startswith(CONTRACT_PREFIX) or request.path == CONTRACT_PREFIX[:-1]


def _route(request: web.Request) -> str:
    # Served with or without the trailing slash (unless strict), counted as the contract's form.
    template = kit.route_template(request)
    if template == "<unmatched>":
        return template
    return template if template.endswith("/") else template + "/"


stats_middleware = kit.stats_middleware(_is_contract, lambda app: app[SERVICE].stats, _route)


@web.middleware
async def limits_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not _is_contract(request):
        return await handler(request)
    service = request.app[SERVICE]
    switches = service.switches
    user = claimed_user(request.headers.get("Authorization"))
    wait = service.limiter.check(user, switches.rate_per_minute, switches.rate_per_day)
    if wait is not None:
        service.faults.add("rate_limit", request.method, request.path)
        return json_response({"error": "Too many requests"}, 429, {"Retry-After": str(wait)})
    faults = service.draws()
    if faults.error(switches, request.method, request.path):
        return server_error(switches.html_500)
    await faults.delay(switches, request.method, request.path)
    return await handler(request)


@web.middleware
async def tastypie_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not _is_contract(request):
        return await handler(request)
    service = request.app[SERVICE]
    switches = service.switches
    problem = request.match_info.http_exception
    if isinstance(problem, web.HTTPMethodNotAllowed):
        allowed = ",".join(m for m in ALLOW_ORDER if m in problem.allowed_methods)
        return empty(405, {"Allow": allowed})
    if problem is not None or (switches.strict_slash and not request.path.endswith("/")):
        return empty(404)
    user = authenticate(
        request.headers.get("Authorization"), service.settings.users, basic=switches.basic_auth
    )
    if user is None:
        return unauthorized().response()
    try:
        response = await handler(request)
    except ApiError as refused:
        response = refused.response()
    except web.HTTPException:
        raise
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        response = server_error(switches.html_500)
    if service.draws().ambiguous(switches, request.method, request.path, response.status):
        response = server_error(switches.html_500)
    # List handlers set it from the same instant as their rows; everything else gets the
    # highest LT committed by now (after this request's own write, if it wrote).
    if request.path.startswith(CASE_PREFIX) and "Logical-Timestamp" not in response.headers:
        response.headers["Logical-Timestamp"] = str(service.store.served())
    response.headers["x-django-user"] = user
    response.headers["x-django-role"] = "admin"
    return response

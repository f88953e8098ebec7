"""The statistics middleware: every contract request counted once, with its final status.

Routes are counted by template (``/cases/{case_id}``), not raw path; requests outside the
contract (``/_standin/``, ``/openapi.json``, ``/docs``) are not counted at all, so a test's own
back-door calls never show up in what it asserts about a client.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from standin_kit.stats import RequestStats


def route_template(request: web.Request) -> str:
    """The template of the route that matched, or ``<unmatched>``."""
    resource = request.match_info.route.resource
    return "<unmatched>" if resource is None else resource.canonical


def stats_middleware(
    is_contract: Callable[[web.Request], bool],
    stats_of: Callable[[web.Application], RequestStats],
    route_of: Callable[[web.Request], str] = route_template,
) -> Middleware:
    """Count each request ``is_contract`` accepts in ``stats_of(app)``, under ``route_of``."""

    @web.middleware
    async def count(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not is_contract(request):
            return await handler(request)
        response = await handler(request)
        stats_of(request.app).record(request.method, route_of(request), response.status)
        return response

    return count

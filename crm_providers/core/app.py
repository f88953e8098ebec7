"""The shared aiohttp application around a ``ProviderCore``: middleware, lifecycle, and the
``/_standin/`` and documentation routes. Each provider adds its API routes to it.

Middleware order for an API request: count it (final status, faults and refusals included), ask
the budgets (a refused request is answered at once and takes nothing), draw a 500-before-commit,
add latency, run the handler, draw a 500-after-commit for a successful write, then add the budget
headers to whatever is answered. ``/_standin/``, ``/openapi.json`` and ``/docs`` skip all of it.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Handler

from crm_providers.core import openapi, standin
from crm_providers.core.provider import ApiError, ProviderCore

log = logging.getLogger(__name__)

PROVIDER: web.AppKey[ProviderCore] = web.AppKey("provider", ProviderCore)
UNCOUNTED_PREFIXES = ("/_standin/", "/openapi.json", "/docs")


def route_template(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return "<unmatched>" if resource is None else resource.canonical


@web.middleware
async def provider_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith(UNCOUNTED_PREFIXES):
        return await handler(request)
    provider = request.app[PROVIDER]
    route = route_template(request)
    where = f"{request.method} {request.path}"
    response: web.StreamResponse
    refusal = provider.refuse(request, route)
    if refusal is not None:
        provider.stats.record_limited(refusal.policy)
        response = refusal.response
    elif provider.faults.error(where):
        response = provider.error_500()
    else:
        await provider.faults.delay(where)
        try:
            response = await handler(request)
        except ApiError as refused:
            response = refused.response
        except web.HTTPException as http_error:
            response = provider.http_error(http_error)
        except Exception:
            log.exception("unhandled error on %s", where)
            response = provider.error_500()
        # Only a successful write committed anything; answering it 500 is the ambiguous failure.
        if 200 <= response.status < 300 and provider.faults.ambiguous(request.method, where):
            response = provider.error_500()
    provider.decorate(request, response)
    provider.stats.record(request.method, route, response.status)
    return response


def build_app(
    provider: ProviderCore, operations: list[openapi.Operation], title: str
) -> web.Application:
    """The application serving ``provider``; the caller adds the API routes."""
    app = web.Application(middlewares=[provider_middleware])
    app[PROVIDER] = provider

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        snapshot = Path(provider.settings.snapshot) if provider.settings.snapshot else None
        if snapshot is not None and snapshot.exists():
            provider.store.load(snapshot)
        elif provider.settings.records:
            provider.seed_records()
        provider.start_notifying()
        await provider.emitter.start()
        yield
        await provider.emitter.stop()
        if snapshot is not None:
            provider.store.save(snapshot)

    app.cleanup_ctx.append(lifecycle)
    standin.add_routes(app, PROVIDER)
    openapi.add_routes(app, title, operations)
    return app

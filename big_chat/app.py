"""The BigChat stand-in's HTTP server: the contract's three calls, faults, and ``/_standin/``.

The clock is injected (``clock() -> Unix seconds``) so tests can freeze or advance time; nothing
else here reads it. Request-level faults (rate limit, latency, 500s) live in one middleware so
that handlers only deal with the contract. ``/_standin/`` routes are additions for tests and
tooling: never faulted, never counted.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from big_chat.faults import FaultInjector, FaultLog, Window
from big_chat.models import EventsPage
from big_chat.settings import BigChatSettings
from big_chat.stats import RequestStats
from big_chat.world import World

Clock = Callable[[], float]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

WORLD = web.AppKey("world", World)  # ground truth for tests
FAULTS = web.AppKey("faults", FaultInjector)  # current fault settings and their state
FAULT_LOG = web.AppKey("fault_log", FaultLog)  # every injected fault
STATS = web.AppKey("stats", RequestStats)  # contract requests by route and status
SETTINGS = web.AppKey("settings", BigChatSettings)  # as started (faults may have changed since)
CLOCK: web.AppKey[Clock] = web.AppKey("clock")

STANDIN_PREFIX = "/_standin/"
_INT = TypeAdapter(int)


class EventsQuery(BaseModel):
    """Query of ``GET /events``; unknown parameters are ignored, as by the real service."""

    model_config = ConfigDict(extra="ignore")

    start_at: datetime
    end_at: datetime | None = None
    page: int = Field(0, ge=0)


def _timestamp(value: datetime) -> float:
    """Unix seconds; a datetime without an offset is taken as UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


def _validation_error(error: ValidationError, *where: str) -> web.Response:
    """422 in the pydantic/FastAPI shape the contract describes; ``where`` prefixes ``loc``."""
    detail = [
        {"loc": [*where, *map(str, e["loc"])], "msg": e["msg"], "type": e["type"]}
        for e in error.errors(include_url=False)
    ]
    return web.json_response({"detail": detail}, status=422)


def _not_found(what: str) -> web.Response:
    return web.json_response({"detail": f"{what} not found"}, status=404)


def _json(model: BaseModel) -> web.Response:
    return web.Response(
        text=model.model_dump_json(), content_type="application/json", charset="utf-8"
    )


def _route_name(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def _faults_and_stats(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Counts contract requests and applies request-level faults to them."""
    if request.path.startswith(STANDIN_PREFIX):
        return await handler(request)
    app = request.app
    route = _route_name(request)
    status = 500
    try:
        response = await _faulted(request, handler, app[FAULTS], route)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        # Like the real service (FastAPI), unknown paths and methods answer JSON details.
        return web.json_response({"detail": exc.reason}, status=exc.status)
    finally:
        app[STATS].record(route, status)


async def _faulted(
    request: web.Request, handler: Handler, faults: FaultInjector, route: str
) -> web.StreamResponse:
    retry_after = faults.retry_after(route)
    if retry_after is not None:
        return web.json_response(
            {"detail": "Too Many Requests"},
            status=429,
            headers={"Retry-After": str(retry_after)},
        )
    if faults.settings.latency_ms:
        await asyncio.sleep(faults.settings.latency_ms / 1000)
    if faults.should_fail(route, request.query):
        # The real service answers plain text and drops the connection after it.
        response = web.Response(
            status=500, text="Internal Server Error", headers={"Connection": "close"}
        )
        response.force_close()
        return response
    return await handler(request)


async def get_events(request: web.Request) -> web.Response:
    try:
        query = EventsQuery.model_validate(dict(request.query))
    except ValidationError as exc:
        return _validation_error(exc, "query")
    app = request.app
    now = app[CLOCK]()
    window = Window(_timestamp(query.start_at), _timestamp(query.end_at) if query.end_at else None)
    faults = app[FAULTS]
    snap = faults.snapshot(app[WORLD], window, query.page, now)
    events, more = faults.serve_page(snap, query.page)
    # Absolute, same parameters, page + 1; built from the request's own scheme, host and port.
    next_url = str(request.url.update_query(page=query.page + 1)) if more else None
    return _json(EventsPage(nextPageUrl=next_url, events=[e.to_model() for e in events]))


async def get_conversation(request: web.Request) -> web.Response:
    try:
        conversation_id = _INT.validate_python(request.match_info["conversation_id"])
    except ValidationError as exc:
        return _validation_error(exc, "path", "conversation_id")
    app = request.app
    conversation = app[WORLD].conversation(conversation_id, app[CLOCK]())
    return _not_found("Conversation") if conversation is None else _json(conversation)


async def get_advisor(request: web.Request) -> web.Response:
    try:
        advisor_id = _INT.validate_python(request.match_info["advisor_id"])
    except ValidationError as exc:
        return _validation_error(exc, "path", "advisor_id")
    advisor = request.app[WORLD].advisor(advisor_id)
    return _not_found("Advisor") if advisor is None else _json(advisor)


# -- /_standin/ ---------------------------------------------------------------------------------


async def standin_faults(request: web.Request) -> web.Response:
    app = request.app
    faults = app[FAULTS]
    return web.json_response(
        {
            "settings": faults.settings.model_dump(mode="json"),
            "faults": faults.log.as_json(),
            "quirks": [q.as_json() for q in app[WORLD].quirks(app[CLOCK]())],
        }
    )


async def standin_patch_faults(request: web.Request) -> web.Response:
    try:
        body: Any = await request.json()
    except json.JSONDecodeError:
        return web.json_response({"detail": "Body must be JSON"}, status=400)
    if not isinstance(body, dict):
        return web.json_response({"detail": "Body must be a JSON object"}, status=400)
    try:
        updated = request.app[FAULTS].update(body)
    except ValidationError as exc:
        return _validation_error(exc, "body")
    return web.json_response(updated.model_dump(mode="json"))


async def standin_conversations(request: web.Request) -> web.Response:
    app = request.app
    ids = app[WORLD].conversation_ids(app[CLOCK]())
    return web.json_response({"conversation_ids": list(ids)})


async def standin_clock(request: web.Request) -> web.Response:
    app = request.app
    return web.json_response({"now": app[CLOCK](), "epoch": app[WORLD].epoch})


async def standin_stats(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATS].as_json())


def create_app(settings: BigChatSettings, clock: Clock = time.time) -> web.Application:
    """The stand-in as an aiohttp application; nothing is generated until asked for."""
    epoch = settings.epoch if settings.epoch is not None else clock() - settings.history
    app = web.Application(middlewares=[_faults_and_stats])
    app[SETTINGS] = settings
    app[CLOCK] = clock
    app[WORLD] = World(settings.world_settings(), epoch)
    faults = FaultInjector(
        settings.fault_settings(), seed=settings.seed, page_size=settings.page_size
    )
    app[FAULTS] = faults
    app[FAULT_LOG] = faults.log
    app[STATS] = RequestStats()
    app.router.add_get("/events", get_events)
    app.router.add_get("/conversations/{conversation_id}", get_conversation)
    app.router.add_get("/advisors/{advisor_id}", get_advisor)
    app.router.add_get("/_standin/faults", standin_faults)
    app.router.add_patch("/_standin/faults", standin_patch_faults)
    app.router.add_get("/_standin/conversations", standin_conversations)
    app.router.add_get("/_standin/clock", standin_clock)
    app.router.add_get("/_standin/stats", standin_stats)
    return app

"""The BigChat stand-in's HTTP server: the contract's three calls, faults, and ``/_standin/``.

The clock is injected (``clock() -> Unix seconds``) so tests can freeze or advance time; nothing
else here reads it. Request-level faults (rate limit, latency, 500s) live in one middleware so
that handlers only deal with the contract. ``/_standin/`` routes are additions for tests and
tooling: never faulted, never counted.

Python API for tests::

    app = create_app(settings, clock=time.time, world=ScriptedWorld.from_model(script),
                     on_page_served=hook, before_page_sent=hook)

- ``world``: serve this world (a ``ScriptedWorld``) instead of generating one from the settings;
  ``PUT /_standin/world`` replaces it at run time. ``current_world(app)`` is what is served.
- ``before_page_sent(window, page, events, now)``: called for each 200 ``/events`` page once it is
  recorded as served (an unreplayable feed will not serve its events again) but BEFORE the answer
  is written: kill the client there for "served, never received".
- ``on_page_served(window, page, events, now)``: called once the answer is fully written.
  ``events`` is the number of events in the page, ``now`` the app's clock. A hook may be a plain
  function or a coroutine function; both can also be set later on ``app[PAGE_HOOKS]``.
- Live mode (``settings.live``): each event is served once by ``/events`` (``unreplayable`` is
  forced on, whatever is PATCHed); meant for the real clock (the default ``time.time``).

``/_standin/`` routes: ``GET``/``PATCH faults``, ``GET conversations``, ``GET clock``,
``GET stats``, ``GET truth`` (the full history and the expected chat of every conversation that
exists, see ``truth.py``) and ``PUT world`` (a ``WorldScript`` body: serve that world from now on;
what was served of the previous one is forgotten).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from big_chat.faults import FaultInjector, FaultLog, Window
from big_chat.models import EventsPage
from big_chat.scripted import ScriptedWorld, WorldScript
from big_chat.settings import BigChatSettings
from big_chat.stats import RequestStats
from big_chat.truth import world_truth
from big_chat.view import WorldView
from big_chat.world import World

Clock = Callable[[], float]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PageHook = Callable[[Window, int, int, float], Awaitable[None] | None]
"""``hook(window, page, events_in_page, now)``; may be a plain or a coroutine function."""


@dataclass
class PageHooks:
    """Called around each 200 ``/events`` page (see the module docstring); settable at run time."""

    before_page_sent: PageHook | None = None
    on_page_served: PageHook | None = None


@dataclass
class WorldSlot:
    """The world being served: a slot, because ``PUT /_standin/world`` swaps it on a running
    app (whose keys can no longer be set)."""

    current: WorldView


WORLD = web.AppKey("world", World)  # the generated world, when the app was created with one
WORLD_SLOT = web.AppKey("world_slot", WorldSlot)  # what is served (see current_world)
PAGE_HOOKS = web.AppKey("page_hooks", PageHooks)
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


def current_world(app: web.Application) -> WorldView:
    """The world the app serves now (generated, scripted, or PUT since)."""
    return app[WORLD_SLOT].current


async def _call_hook(hook: PageHook | None, window: Window, page: int, n: int, now: float) -> None:
    if hook is None:
        return
    result = hook(window, page, n, now)
    if inspect.isawaitable(result):
        await result


async def get_events(request: web.Request) -> web.StreamResponse:
    try:
        query = EventsQuery.model_validate(dict(request.query))
    except ValidationError as exc:
        return _validation_error(exc, "query")
    app = request.app
    now = app[CLOCK]()
    window = Window(_timestamp(query.start_at), _timestamp(query.end_at) if query.end_at else None)
    faults = app[FAULTS]
    snap = faults.snapshot(current_world(app), window, query.page, now)
    events, more = faults.serve_page(snap, query.page)
    next_url: str | None = None
    if more:
        # Absolute, same parameters, page + 1; built from the request's own scheme, host and
        # port (or the malformed link a test asked for).
        override = faults.settings.next_page_url_override
        next_url = override or str(request.url.update_query(page=query.page + 1))
    response = _json(EventsPage(nextPageUrl=next_url, events=[e.to_model() for e in events]))
    hooks = app[PAGE_HOOKS]
    await _call_hook(hooks.before_page_sent, window, query.page, len(events), now)
    if hooks.on_page_served is None:
        return response
    await response.prepare(request)
    await response.write_eof()
    await _call_hook(hooks.on_page_served, window, query.page, len(events), app[CLOCK]())
    return response


async def get_conversation(request: web.Request) -> web.Response:
    try:
        conversation_id = _INT.validate_python(request.match_info["conversation_id"])
    except ValidationError as exc:
        return _validation_error(exc, "path", "conversation_id")
    app = request.app
    conversation = current_world(app).conversation(conversation_id, app[CLOCK]())
    if conversation is None:
        return _not_found("Conversation")
    if app[FAULTS].settings.history_mode == "start_only":
        # The real service stores no later events: its history is the START alone.
        starts = [e for e in conversation.events if e.event_name == "START"]
        conversation = conversation.model_copy(update={"events": starts})
    return _json(conversation)


async def get_advisor(request: web.Request) -> web.Response:
    try:
        advisor_id = _INT.validate_python(request.match_info["advisor_id"])
    except ValidationError as exc:
        return _validation_error(exc, "path", "advisor_id")
    advisor = current_world(request.app).advisor(advisor_id)
    return _not_found("Advisor") if advisor is None else _json(advisor)


# -- /_standin/ ---------------------------------------------------------------------------------


async def standin_faults(request: web.Request) -> web.Response:
    app = request.app
    faults = app[FAULTS]
    return web.json_response(
        {
            "settings": faults.settings.model_dump(mode="json"),
            "faults": faults.log.as_json(),
            "quirks": [q.as_json() for q in current_world(app).quirks(app[CLOCK]())],
        }
    )


async def _json_object(request: web.Request) -> dict[str, Any] | web.Response:
    try:
        body: Any = await request.json()
    except json.JSONDecodeError:
        return web.json_response({"detail": "Body must be JSON"}, status=400)
    if not isinstance(body, dict):
        return web.json_response({"detail": "Body must be a JSON object"}, status=400)
    return body


async def standin_patch_faults(request: web.Request) -> web.Response:
    body = await _json_object(request)
    if isinstance(body, web.Response):
        return body
    try:
        updated = request.app[FAULTS].update(body)
    except ValidationError as exc:
        return _validation_error(exc, "body")
    return web.json_response(updated.model_dump(mode="json"))


async def standin_conversations(request: web.Request) -> web.Response:
    app = request.app
    ids = current_world(app).conversation_ids(app[CLOCK]())
    return web.json_response({"conversation_ids": list(ids)})


async def standin_clock(request: web.Request) -> web.Response:
    app = request.app
    return web.json_response({"now": app[CLOCK](), "epoch": current_world(app).epoch})


async def standin_truth(request: web.Request) -> web.Response:
    app = request.app
    return _json(world_truth(current_world(app), app[CLOCK]()))


async def standin_put_world(request: web.Request) -> web.Response:
    body = await _json_object(request)
    if isinstance(body, web.Response):
        return body
    try:
        script = WorldScript.model_validate(body)
    except ValidationError as exc:
        return _validation_error(exc, "body")
    app = request.app
    app[WORLD_SLOT].current = ScriptedWorld.from_model(script)
    app[FAULTS].reset(visible_since=app[CLOCK]())
    return web.json_response(
        {"advisors": len(script.advisors), "conversations": len(script.conversations)}
    )


async def standin_stats(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATS].as_json())


def create_app(
    settings: BigChatSettings,
    clock: Clock = time.time,
    *,
    world: WorldView | None = None,
    on_page_served: PageHook | None = None,
    before_page_sent: PageHook | None = None,
) -> web.Application:
    """The stand-in as an aiohttp application; nothing is generated until asked for.

    ``world`` (e.g. a ``ScriptedWorld``) replaces the world the settings would generate; the
    hooks are described in the module docstring.
    """
    app = web.Application(middlewares=[_faults_and_stats])
    app[SETTINGS] = settings
    app[CLOCK] = clock
    if world is None:
        epoch = settings.epoch if settings.epoch is not None else clock() - settings.history
        generated = World(settings.world_settings(), epoch)
        app[WORLD] = generated
        world = generated
    app[WORLD_SLOT] = WorldSlot(world)
    app[PAGE_HOOKS] = PageHooks(before_page_sent, on_page_served)
    faults = FaultInjector(
        settings.fault_settings(),
        seed=settings.seed,
        page_size=settings.page_size,
        force_unreplayable=settings.live,
        visible_since=clock(),
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
    app.router.add_get("/_standin/truth", standin_truth)
    app.router.add_put("/_standin/world", standin_put_world)
    return app

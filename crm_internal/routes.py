"""The API of our internal system: ``/contacts/`` and ``/companies/`` CRUD with restore, and
one change feed for both (``/changes``).

Headers: ``X-Sync-Origin`` on a write is stored as the version's ``origin`` (absent: "user");
``If-Match: <version>`` on PATCH, DELETE and restore refuses with 412 when the row has moved;
``Idempotency-Key`` on POST returns the first result on a repeat. Every row answer carries
``ETag: "<version>"``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from crm_internal.models import OBJECTS, ROUTES, ObjectName, Row
from crm_internal.service import SERVICE
from crm_internal.store import Refused, not_found

USER_ORIGIN = "user"
MAX_LIMIT = 5_000
_ORIGIN = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _bad(message: str) -> Refused:
    return Refused(400, {"error": message})


def origin(request: web.Request) -> str:
    value = request.headers.get("X-Sync-Origin")
    if value is None:
        return USER_ORIGIN
    if not _ORIGIN.match(value):
        raise _bad("X-Sync-Origin must be 1 to 64 letters, digits or . _ : -")
    return value


def if_match(request: web.Request) -> int | None:
    value = request.headers.get("If-Match")
    if value is None:
        return None
    text = value.strip().removeprefix("W/").strip('"')
    if not text.isdigit():
        raise _bad("If-Match must be a version number")
    return int(text)


def _int_query(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _bad(f"{name} must be an integer") from None
    if not low <= value <= high:
        raise _bad(f"{name} must be between {low} and {high}")
    return value


async def _body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    try:
        body = json.loads(raw) if raw.strip() else {}
    except ValueError:
        raise _bad("the body must be a JSON object") from None
    if not isinstance(body, dict):
        raise _bad("the body must be a JSON object")
    return body


def _row_answer(row: Row, status: int = 200, **headers: str) -> web.Response:
    return web.Response(
        body=row.model_dump_json().encode(),
        status=status,
        content_type="application/json",
        headers={"ETag": f'"{row.version}"', **headers},
    )


def _row_id(request: web.Request) -> int:
    return int(request.match_info["record_id"])


def _handlers(object: ObjectName) -> dict[str, Handler]:
    """The five handlers of one object's routes."""

    async def create(request: web.Request) -> web.Response:
        body = await _body(request)
        key = request.headers.get("Idempotency-Key")
        if key is not None and not 1 <= len(key) <= 255:
            raise _bad("Idempotency-Key must be 1 to 255 characters")
        row, new = await request.app[SERVICE].store.create(object, body, origin(request), key)
        extra = {} if new else {"Idempotent-Replayed": "true"}
        return _row_answer(row, 201, Location=f"/{ROUTES[object]}/{row.id}", **extra)

    async def get_one(request: web.Request) -> web.Response:
        row = await request.app[SERVICE].store.get(object, _row_id(request))
        include_deleted = request.query.get("include_deleted") == "true"
        if row is None or (row.deleted and not include_deleted):
            raise not_found(object)
        return _row_answer(row)

    async def patch(request: web.Request) -> web.Response:
        body = await _body(request)
        row = await request.app[SERVICE].store.update(
            object, _row_id(request), body, origin(request), if_match(request)
        )
        return _row_answer(row)

    async def restore(request: web.Request) -> web.Response:
        body = await _body(request)
        row = await request.app[SERVICE].store.update(
            object, _row_id(request), body, origin(request), if_match(request), restore=True
        )
        return _row_answer(row)

    async def delete(request: web.Request) -> web.Response:
        row = await request.app[SERVICE].store.delete(
            object, _row_id(request), origin(request), if_match(request)
        )
        return _row_answer(row)

    async def list_rows(request: web.Request) -> web.Response:
        after_id = _int_query(request, "after_id", 0, 0, 2**62)
        limit = _int_query(request, "limit", 500, 1, MAX_LIMIT)
        include_deleted = request.query.get("include_deleted") == "true"
        items, next_after_id, high_water = await request.app[SERVICE].store.list(
            object, after_id, limit, include_deleted
        )
        return web.json_response(
            {
                "items": [i.model_dump(mode="json") for i in items],
                "next_after_id": next_after_id,
                "high_water": high_water,
            }
        )

    return {"create": create, "get": get_one, "patch": patch, "restore": restore,
            "delete": delete, "list": list_rows}  # fmt: skip


async def changes(request: web.Request) -> web.Response:
    after = _int_query(request, "after", 0, 0, 2**62)
    limit = _int_query(request, "limit", 500, 1, MAX_LIMIT)
    items, next_after, high_water = await request.app[SERVICE].store.changes(after, limit)
    return web.json_response(
        {
            "items": [i.model_dump(mode="json") for i in items],
            "next_after": next_after,
            "high_water": high_water,
        }
    )


def add_routes(app: web.Application) -> None:
    routes = [web.get("/changes", changes, allow_head=False)]
    for object in OBJECTS:
        h = _handlers(object)
        base = f"/{ROUTES[object]}"
        detail = base + "/{record_id:\\d+}"
        routes += [
            web.get(base + "/", h["list"], allow_head=False),
            web.post(base + "/", h["create"]),
            web.get(base, h["list"], allow_head=False),
            web.post(base, h["create"]),
            web.get(detail, h["get"], allow_head=False),
            web.patch(detail, h["patch"]),
            web.delete(detail, h["delete"]),
            web.post(detail + "/restore", h["restore"]),
        ]
    app.router.add_routes(routes)

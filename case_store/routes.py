"""The case store's API: ``/cases/`` CRUD, the change feed, and restoring a tombstone.

Headers: ``X-Sync-Origin`` on a write is stored as the version's ``origin`` (absent: "user");
``If-Match: <version>`` on PATCH, DELETE and restore refuses with 412 when the row has moved;
``Idempotency-Key`` on POST returns the first result on a repeat. Every row answer carries
``ETag: "<version>"``.
"""

from __future__ import annotations

import json
import re
from typing import Any

from aiohttp import web

from case_store.models import READ_ONLY, CaseRow
from case_store.service import SERVICE
from case_store.store import Refused, not_found, validate_fields

USER_ORIGIN = "user"
MAX_FEED_LIMIT = 5_000
_ORIGIN = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


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


async def _changes(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    try:
        body = json.loads(raw) if raw.strip() else {}
    except ValueError:
        raise _bad("the body must be a JSON object") from None
    if not isinstance(body, dict):
        raise _bad("the body must be a JSON object")
    # Read-only keys are ignored, so a client may send a row back as it read it.
    return {k: v for k, v in body.items() if k not in READ_ONLY}


def _row_answer(row: CaseRow, status: int = 200, **headers: str) -> web.Response:
    return web.Response(
        body=row.model_dump_json().encode(),
        status=status,
        content_type="application/json",
        headers={"ETag": f'"{row.version}"', **headers},
    )


def _case_id(request: web.Request) -> int:
    return int(request.match_info["case_id"])


async def create(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    fields = validate_fields(await _changes(request))
    key = request.headers.get("Idempotency-Key")
    if key is not None and not 1 <= len(key) <= 255:
        raise _bad("Idempotency-Key must be 1 to 255 characters")
    row, new = await service.store.create(fields, origin(request), key)
    extra = {} if new else {"Idempotent-Replayed": "true"}
    return _row_answer(row, 201, Location=f"/cases/{row.id}", **extra)


async def get_one(request: web.Request) -> web.Response:
    row = await request.app[SERVICE].store.get(_case_id(request))
    include_deleted = request.query.get("include_deleted") == "true"
    if row is None or (row.deleted and not include_deleted):
        raise not_found()
    return _row_answer(row)


async def patch(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    changes = await _changes(request)
    row = await service.store.update(_case_id(request), changes, origin(request), if_match(request))
    return _row_answer(row)


async def restore(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    changes = await _changes(request)
    row = await service.store.update(
        _case_id(request), changes, origin(request), if_match(request), restore=True
    )
    return _row_answer(row)


async def delete(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    row = await service.store.delete(_case_id(request), origin(request), if_match(request))
    return _row_answer(row)


async def list_cases(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    after_id = _int_query(request, "after_id", 0, 0, 2**62)
    limit = _int_query(request, "limit", 500, 1, MAX_FEED_LIMIT)
    raw_link = request.query.get("intempus_id")
    intempus_id = None if raw_link is None else _int_query(request, "intempus_id", 0, 1, 2**62)
    include_deleted = request.query.get("include_deleted") == "true"
    items, next_after_id, high_water = await service.store.list(
        after_id, limit, intempus_id, include_deleted
    )
    return web.json_response(
        {
            "items": [i.model_dump(mode="json") for i in items],
            "next_after_id": next_after_id,
            "high_water": high_water,
        }
    )


async def changes(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    after = _int_query(request, "after", 0, 0, 2**62)
    limit = _int_query(request, "limit", 500, 1, MAX_FEED_LIMIT)
    items, next_after, high_water = await service.store.changes(after, limit)
    return web.json_response(
        {
            "items": [i.model_dump(mode="json") for i in items],
            "next_after": next_after,
            "high_water": high_water,
        }
    )


def add_routes(app: web.Application) -> None:
    detail = "/cases/{case_id:\\d+}"
    app.router.add_routes(
        [
            web.get("/cases/", list_cases, allow_head=False),
            web.post("/cases/", create),
            web.get("/cases", list_cases, allow_head=False),
            web.post("/cases", create),
            web.get("/cases/changes", changes, allow_head=False),
            web.get(detail, get_one, allow_head=False),
            web.patch(detail, patch),
            web.delete(detail, delete),
            web.post(detail + "/restore", restore),
        ]
    )

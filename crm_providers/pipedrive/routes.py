"""The Pipedrive-like API v2 for persons and organizations.

- ``GET /api/v2/{persons|organizations}``: ``limit`` <= 500 (default 100), ``cursor`` ->
  ``additional_data.next_cursor``, ``updated_since``/``updated_until`` (RFC 3339), ``sort_by``
  (id, update_time, add_time), ``sort_direction``, ``ids``, ``org_id`` (persons). Deleted
  records are not listed. Sorted by id the cursor is the last id (stable); sorted by a time it
  is an offset into the live result (it drifts).
- ``GET|PATCH|DELETE /api/v2/{object}/{id}``: read (deleted ones too, ``is_deleted`` true),
  update, delete (soft: marked deleted).
- ``POST /api/v2/{object}``: create.
- ``GET /api/v2/{object}/search?term=&fields=&exact_match=``: search by name, email, phone or
  custom fields (where our id lives: there is no native external-id upsert).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

from aiohttp import web

from crm_providers.core.clock import parse_instant
from crm_providers.core.openapi import Operation
from crm_providers.core.paging import Token
from crm_providers.core.provider import ApiError, FieldProblem
from crm_providers.core.store import NotFound, Record
from crm_providers.pipedrive import schema
from crm_providers.pipedrive.provider import COSTS, PipedriveCore, failure

MAX_LIMIT = 500
PREFIX = "/api/v2/{object}"
SEARCH_FIELDS = {
    "persons": ("name", "email", "phone", "custom_fields", "notes"),
    "organizations": ("name", "address", "custom_fields", "notes"),
}


def _encode(payload: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


def _decode(cursor: str) -> dict[str, Any]:
    padded = cursor + "=" * (-len(cursor) % 4)
    value = json.loads(base64.urlsafe_b64decode(padded.encode()))
    if not isinstance(value, dict):
        raise ValueError(cursor)
    return value


def ok(data: Any, next_cursor: str | None = None, *, listing: bool = False) -> web.Response:
    body: dict[str, Any] = {"success": True, "data": data}
    if listing:
        body["additional_data"] = {"next_cursor": next_cursor}
    return web.json_response(body)


class Handlers:
    def __init__(self, core: PipedriveCore) -> None:
        self.core = core

    def _obj(self, request: web.Request) -> str:
        obj = request.match_info["object"]
        if obj not in self.core.objects:
            raise ApiError(failure(404, "Unknown method ."))
        return obj

    def _record(self, obj: str, raw_id: str, *, include_deleted: bool) -> Record:
        if not raw_id.isdigit():
            raise ApiError(failure(400, "id must be an integer"))
        try:
            return self.core.store.get(obj, raw_id, include_deleted=include_deleted)
        except NotFound:
            raise ApiError(failure(404, f"{schema.ENTITY[obj].capitalize()} not found")) from None

    async def _fields(self, request: web.Request, obj: str, *, creating: bool) -> dict[str, Any]:
        try:
            body = json.loads(await request.read())
        except ValueError:
            raise ApiError(failure(400, "Invalid JSON body")) from None
        if not isinstance(body, dict):
            raise ApiError(failure(400, "The body must be a JSON object"))
        try:
            fields = self.core.validate(obj, body, creating=creating)
        except FieldProblem as problem:
            raise ApiError(failure(400, "; ".join(problem.problems))) from None
        org = fields.get("org_id")
        if org is not None:
            try:
                self.core.store.get("organizations", str(org))
            except NotFound:
                raise ApiError(failure(400, f"Organization with id {org} does not exist")) from None
        return fields

    # -- records -------------------------------------------------------------------------------

    async def list_records(self, request: web.Request) -> web.Response:
        obj = self._obj(request)
        q = request.query
        try:
            limit = int(q.get("limit", "100"))
            since = parse_instant(q["updated_since"]) if "updated_since" in q else None
            until = parse_instant(q["updated_until"]) if "updated_until" in q else None
            cursor = _decode(q["cursor"]) if q.get("cursor") else None
            ids = {i for i in q.get("ids", "").split(",") if i}
            org_id = int(q["org_id"]) if "org_id" in q else None
        except (ValueError, KeyError):
            return failure(400, "Invalid query parameters")
        if not 1 <= limit <= MAX_LIMIT:
            return failure(400, f"limit must be between 1 and {MAX_LIMIT}")
        sort_by = q.get("sort_by", "id")
        if sort_by not in ("id", "update_time", "add_time"):
            return failure(400, "sort_by must be one of id, update_time, add_time")
        descending = q.get("sort_direction", "asc") == "desc"

        def wanted(r: Record) -> bool:
            return (
                (since is None or r.updated_at >= since)
                and (until is None or r.updated_at < until)
                and (not ids or r.id in ids)
                and (org_id is None or r.fields.get("org_id") == org_id)
            )

        key: Callable[[Record], Any] = {
            "id": lambda r: int(r.id),
            "update_time": lambda r: (int(r.updated_at), int(r.id)),
            "add_time": lambda r: (int(r.created_at), int(r.id)),
        }[sort_by]
        if sort_by == "id":
            # Keyset on the id: stable whatever changes meanwhile.
            after = int(cursor["last_id"]) if cursor else None
            rows = sorted(
                (r for r in self.core.store.find(obj) if wanted(r)), key=key, reverse=descending
            )
            if after is not None:
                rows = [r for r in rows if (int(r.id) < after if descending else int(r.id) > after)]
            page = rows[:limit]
            more = len(rows) > limit
            next_cursor = _encode({"last_id": page[-1].id}) if more else None
            return ok([self.core.render(r) for r in page], next_cursor, listing=True)

        def ids_now() -> list[str]:
            rows = sorted(
                (r for r in self.core.store.find(obj) if wanted(r)), key=key, reverse=descending
            )
            return [r.id for r in rows]

        token = None if cursor is None else Token(int(cursor["offset"]), cursor.get("snapshot"))
        drift = self.core.faults.settings.cursor_drift
        try:
            paged = self.core.pager.page(ids_now, token, limit, drift=drift)
        except KeyError:
            return failure(400, "The cursor has expired")
        table = self.core.store.table(obj)
        data = [self.core.render(table[i]) for i in paged.ids if i in table]
        next_cursor = None
        if paged.next is not None:
            next_cursor = _encode({"offset": paged.next.offset, "snapshot": paged.next.snapshot})
        return ok(data, next_cursor, listing=True)

    async def get(self, request: web.Request) -> web.Response:
        obj = self._obj(request)
        record = self._record(obj, request.match_info["id"], include_deleted=True)
        return ok(self.core.render(record))

    async def create(self, request: web.Request) -> web.Response:
        obj = self._obj(request)
        fields = await self._fields(request, obj, creating=True)
        record = self.core.store.create(obj, self.core.new_id(obj), fields, self.core.api_origin())
        return ok(self.core.render(record))

    async def update(self, request: web.Request) -> web.Response:
        obj = self._obj(request)
        record = self._record(obj, request.match_info["id"], include_deleted=False)
        fields = await self._fields(request, obj, creating=False)
        if "custom_fields" in fields:
            # Custom fields are patched key by key: the ones not sent keep their values.
            fields["custom_fields"] = {
                **record.fields.get("custom_fields", {}),
                **fields["custom_fields"],
            }
        record = self.core.store.update(obj, record.id, fields, self.core.api_origin())
        return ok(self.core.render(record))

    async def delete(self, request: web.Request) -> web.Response:
        obj = self._obj(request)
        record = self._record(obj, request.match_info["id"], include_deleted=False)
        self.core.store.delete(obj, record.id, self.core.api_origin())
        return ok({"id": int(record.id)})

    # -- search --------------------------------------------------------------------------------

    def _texts(self, record: Record, fields: tuple[str, ...]) -> list[str]:
        f = record.fields
        out: list[str] = []
        for name in fields:
            if name in ("name", "address"):
                out.append(str(f.get(name) or ""))
            elif name == "email":
                out += [e["value"] for e in f.get("emails", [])]
            elif name == "phone":
                out += [p["value"] for p in f.get("phones", [])]
            elif name == "custom_fields":
                out += [str(v) for v in f.get("custom_fields", {}).values() if v is not None]
        return [t for t in out if t]

    async def search(self, request: web.Request) -> web.Response:
        obj = self._obj(request)
        q = request.query
        term = q.get("term", "")
        exact = q.get("exact_match", "false").lower() == "true"
        if len(term) < (1 if exact else 2):
            return failure(400, "term must be at least 2 characters long (1 with exact_match)")
        allowed = SEARCH_FIELDS[obj]
        fields = tuple(f for f in q.get("fields", ",".join(allowed)).split(",") if f)
        if any(f not in allowed for f in fields):
            return failure(400, f"fields must be among {', '.join(allowed)}")
        try:
            limit = int(q.get("limit", "100"))
            offset = int(_decode(q["cursor"])["offset"]) if q.get("cursor") else 0
        except (ValueError, KeyError):
            return failure(400, "Invalid query parameters")
        if not 1 <= limit <= MAX_LIMIT:
            return failure(400, f"limit must be between 1 and {MAX_LIMIT}")
        needle = term.lower()
        hits = []
        for record in sorted(self.core.store.find(obj), key=lambda r: int(r.id)):
            texts = [t.lower() for t in self._texts(record, fields)]
            if any(t == needle for t in texts):
                hits.append((1.0, record))
            elif not exact and any(needle in t for t in texts):
                hits.append((0.5, record))
        hits.sort(key=lambda h: -h[0])
        page = hits[offset : offset + limit]
        items = [
            {"result_score": score, "item": self._search_item(record)} for score, record in page
        ]
        more = offset + limit < len(hits)
        cursor = _encode({"offset": offset + limit}) if more else None
        return web.json_response(
            {"success": True, "data": {"items": items}, "additional_data": {"next_cursor": cursor}}
        )

    def _search_item(self, record: Record) -> dict[str, Any]:
        f = record.fields
        item: dict[str, Any] = {
            "id": int(record.id),
            "type": schema.ENTITY[record.object],
            "name": f.get("name"),
            "custom_fields": [v for v in f.get("custom_fields", {}).values() if v is not None],
        }
        if record.object == "persons":
            item["emails"] = [e["value"] for e in f.get("emails", [])]
            item["phones"] = [p["value"] for p in f.get("phones", [])]
            item["organization"] = None if f.get("org_id") is None else {"id": f["org_id"]}
        return item


def add_routes(app: web.Application, core: PipedriveCore) -> None:
    h = Handlers(core)
    app.router.add_routes(
        [
            web.get(PREFIX, h.list_records, allow_head=False),
            web.post(PREFIX, h.create),
            web.get(PREFIX + "/search", h.search, allow_head=False),
            web.get(PREFIX + "/{id}", h.get, allow_head=False),
            web.patch(PREFIX + "/{id}", h.update),
            web.delete(PREFIX + "/{id}", h.delete),
        ]
    )


_LIMITED = {429: "token budget or burst spent", 403: "persistent abuse (when switched on)"}
OPERATIONS = [
    Operation(
        "GET",
        PREFIX,
        f"List (limit <= 500; cursor; costs {COSTS['list']} tokens)",
        query=(
            "cursor",
            "limit",
            "updated_since",
            "updated_until",
            "sort_by",
            "sort_direction",
            "ids",
            "org_id",
        ),
        errors=dict(_LIMITED),
    ),
    Operation(
        "POST", PREFIX, f"Create ({COSTS['create']} tokens)", errors={400: "invalid", **_LIMITED}
    ),
    Operation(
        "GET",
        PREFIX + "/search",
        f"Search ({COSTS['search']} tokens)",
        query=("term", "fields", "exact_match", "limit", "cursor"),
        errors=dict(_LIMITED),
    ),
    Operation(
        "GET",
        PREFIX + "/{id}",
        f"Read ({COSTS['get']} token)",
        errors={404: "not found", **_LIMITED},
    ),
    Operation(
        "PATCH",
        PREFIX + "/{id}",
        f"Update ({COSTS['update']} tokens)",
        errors={404: "not found", **_LIMITED},
    ),
    Operation(
        "DELETE",
        PREFIX + "/{id}",
        f"Delete, soft ({COSTS['delete']} tokens)",
        errors=dict(_LIMITED),
    ),
]

"""The HubSpot-like CRM v3 objects API for contacts and companies.

- ``GET /crm/v3/objects/{object}``: list by id, ``limit`` <= 100, ``after`` (id cursor: stable),
  ``properties``, ``archived=true`` lists only archived records.
- ``POST /crm/v3/objects/{object}``: create (201). Unique properties (email, our_id) answer 409.
- ``GET|PATCH|DELETE /crm/v3/objects/{object}/{id}`` (``idProperty`` to address by a unique
  property): read, update, archive (soft delete, 204).
- ``POST /crm/v3/objects/{object}/batch/{read|create|update|upsert|archive}``: up to 100
  inputs, each with its own result; 207 with ``results`` and ``errors`` when some fail.
- ``POST /crm/v3/objects/contacts/gdpr-delete``: permanent (hard) deletion of a contact.
- ``POST /crm/v3/objects/{object}/search``: filters, sorts, ``after`` as an offset into the live
  result (it drifts), at most 10,000 results per query (400 past it).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from crm_providers.core.clock import parse_instant
from crm_providers.core.openapi import Operation
from crm_providers.core.provider import ApiError, FieldProblem
from crm_providers.core.store import NotFound, Record
from crm_providers.hubspot import models, schema
from crm_providers.hubspot.provider import HubSpotCore

SEARCH_CAP = 10_000
PREFIX = "/crm/v3/objects/{object}"
M = TypeVar("M", bound=BaseModel)


class Handlers:
    def __init__(self, core: HubSpotCore) -> None:
        self.core = core

    # -- helpers -------------------------------------------------------------------------------

    def _obj(self, request: web.Request) -> str:
        obj = request.match_info["object"]
        if obj not in schema.WRITABLE:
            raise ApiError(
                self.core.error(404, "OBJECT_NOT_FOUND", f"Unable to infer object type from: {obj}")
            )
        return obj

    async def _body(self, request: web.Request, model: type[M]) -> M:
        try:
            return model.model_validate_json(await request.read())
        except ValidationError as error:
            first = error.errors(include_url=False)[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ApiError(
                self.core.error(
                    400, "VALIDATION_ERROR", f"Invalid input JSON: {where}: {first['msg']}"
                )
            ) from None

    def _now_iso(self) -> str:
        return datetime.fromtimestamp(self.core.clock.now(), UTC).isoformat().replace("+00:00", "Z")

    @staticmethod
    def _properties(request: web.Request) -> list[str] | None:
        raw = request.query.getall("properties", [])
        names = [p for item in raw for p in item.split(",") if p]
        return names or None

    def _unique_property(self, obj: str, id_property: str | None) -> str | None:
        """None for the record id, else a unique property; anything else is refused."""
        if id_property in (None, "", "hs_object_id"):
            return None
        if id_property not in schema.UNIQUE[obj]:
            raise ApiError(
                self.core.error(
                    400, "VALIDATION_ERROR", f"Property {id_property} is not a unique identifier"
                )
            )
        return id_property

    def _lookup(
        self, obj: str, value: str, id_property: str | None, *, archived: bool = False
    ) -> Record | None:
        prop = self._unique_property(obj, id_property)
        store = self.core.store
        if prop is None:
            try:
                record = store.get(obj, value, include_deleted=True)
            except NotFound:
                return None
            return record if record.deleted == archived else None
        found = store.matching(obj, prop, value)
        return found[0] if found else None

    def _conflict(self, obj: str, fields: dict[str, Any], exclude: str | None) -> str | None:
        """The message of a unique-property clash, or None."""
        for prop in schema.UNIQUE[obj]:
            value = fields.get(prop)
            if not value:
                continue
            for other in self.core.store.matching(obj, prop, value):
                if other.id != exclude:
                    label = schema.SINGULAR[obj].capitalize()
                    return f"{label} already exists. Existing ID: {other.id}"
        return None

    def _write_error(self, category: str, message: str, **context: list[str]) -> dict[str, Any]:
        out: dict[str, Any] = {"status": "error", "category": category, "message": message}
        if context:
            out["context"] = context
        return out

    def _create(self, obj: str, properties: dict[str, Any]) -> Record:
        """Create or raise ``FieldProblem`` (validation) / ``_Conflict``."""
        fields = schema.check(obj, properties)
        clash = self._conflict(obj, fields, None)
        if clash:
            raise _Conflict(clash)
        return self.core.store.create(obj, self.core.new_id(obj), fields, self.core.api_origin())

    def _update(self, record: Record, properties: dict[str, Any]) -> Record:
        fields = schema.check(record.object, properties)
        clash = self._conflict(record.object, fields, record.id)
        if clash:
            raise _Conflict(clash)
        return self.core.store.update(record.object, record.id, fields, self.core.api_origin())

    def _batch_answer(
        self, results: list[dict[str, Any]], errors: list[dict[str, Any]], started: str, ok: int
    ) -> web.Response:
        body: dict[str, Any] = {"status": "COMPLETE", "results": results}
        status = ok
        if errors:
            body["numErrors"] = len(errors)
            body["errors"] = errors
            status = 207
        body["startedAt"], body["completedAt"] = started, self._now_iso()
        return web.json_response(body, status=status)

    def _check_batch_size(self, inputs: list[Any]) -> None:
        if len(inputs) > models.MAX_BATCH:
            raise ApiError(
                self.core.error(
                    400,
                    "VALIDATION_ERROR",
                    f"Batch input limit exceeded: {len(inputs)} > {models.MAX_BATCH}",
                )
            )

    # -- single records ------------------------------------------------------------------------

    async def list_records(self, request: web.Request) -> web.Response:
        obj = self._obj(request)
        try:
            limit = int(request.query.get("limit", "10"))
        except ValueError:
            limit = -1
        if not 1 <= limit <= 100:
            return self.core.error(400, "VALIDATION_ERROR", "limit must be between 1 and 100")
        archived = request.query.get("archived", "false").lower() == "true"
        after = request.query.get("after")
        records = sorted(
            (r for r in self.core.store.find(obj, include_deleted=True) if r.deleted == archived),
            key=lambda r: int(r.id),
        )
        if after:
            try:
                after_id = int(after)
            except ValueError:
                return self.core.error(400, "VALIDATION_ERROR", f"invalid after: {after}")
            records = [r for r in records if int(r.id) > after_id]
        page = records[:limit]
        props = self._properties(request)
        body: dict[str, Any] = {"results": [self.core.render(r, props) for r in page]}
        if len(records) > limit:
            last = page[-1].id
            body["paging"] = {
                "next": {
                    "after": last,
                    "link": f"{request.path}?after={last}&limit={limit}",
                }
            }
        return web.json_response(body)

    async def get(self, request: web.Request) -> web.Response:
        obj = self._obj(request)
        archived = request.query.get("archived", "false").lower() == "true"
        record = self._lookup(
            obj, request.match_info["id"], request.query.get("idProperty"), archived=archived
        )
        if record is None:
            return self.core.error(404, "OBJECT_NOT_FOUND", "Object not found")
        return web.json_response(self.core.render(record, self._properties(request)))

    async def create(self, request: web.Request) -> web.Response:
        obj = self._obj(request)
        body = await self._body(request, models.PropertiesBody)
        try:
            record = self._create(obj, body.properties)
        except FieldProblem as problem:
            return self.core.error(
                400,
                "VALIDATION_ERROR",
                "Property values were not valid: " + "; ".join(problem.problems),
            )
        except _Conflict as clash:
            return self.core.error(409, "CONFLICT", str(clash))
        return web.json_response(self.core.render(record, None), status=201)

    async def update(self, request: web.Request) -> web.Response:
        obj = self._obj(request)
        body = await self._body(request, models.PropertiesBody)
        record = self._lookup(obj, request.match_info["id"], request.query.get("idProperty"))
        if record is None:
            return self.core.error(404, "OBJECT_NOT_FOUND", "Object not found")
        try:
            record = self._update(record, body.properties)
        except FieldProblem as problem:
            return self.core.error(
                400,
                "VALIDATION_ERROR",
                "Property values were not valid: " + "; ".join(problem.problems),
            )
        except _Conflict as clash:
            return self.core.error(409, "CONFLICT", str(clash))
        return web.json_response(self.core.render(record, None))

    async def archive(self, request: web.Request) -> web.Response:
        obj = self._obj(request)
        record = self._lookup(obj, request.match_info["id"], None)
        if record is not None:
            self.core.store.delete(obj, record.id, self.core.api_origin())
        # HubSpot answers 204 whether or not there was a live record to archive.
        return web.Response(status=204)

    async def gdpr_delete(self, request: web.Request) -> web.Response:
        """Permanent deletion (contacts only, as in HubSpot): the record leaves the table."""
        obj = self._obj(request)
        if obj != "contacts":
            return self.core.error(400, "VALIDATION_ERROR", "GDPR delete is for contacts only")
        body = await self._body(request, models.GdprDeleteBody)
        record = self._lookup(obj, body.objectId, body.idProperty)
        if record is None:
            record = self._lookup(obj, body.objectId, body.idProperty, archived=True)
        if record is None:
            return self.core.error(404, "OBJECT_NOT_FOUND", "Object not found")
        self.core.store.purge(obj, record.id, self.core.api_origin())
        return web.Response(status=204)

    # -- batches -------------------------------------------------------------------------------

    async def batch_read(self, request: web.Request) -> web.Response:
        obj, started = self._obj(request), self._now_iso()
        body = await self._body(request, models.BatchReadBody)
        self._check_batch_size(body.inputs)
        props = body.properties or None
        results, missing = [], []
        for item in body.inputs:
            record = self._lookup(obj, item.id, body.idProperty)
            if record is None:
                missing.append(item.id)
            else:
                results.append(self.core.render(record, props))
        errors = []
        if missing:
            errors.append(
                self._write_error(
                    "OBJECT_NOT_FOUND",
                    f"Could not get some {schema.OBJECT_TYPE[obj]} objects, they may be deleted "
                    "or not exist. Check that ids are valid.",
                    ids=missing,
                )
            )
        return self._batch_answer(results, errors, started, 200)

    def _traced(self, rendered: dict[str, Any], trace: str | None) -> dict[str, Any]:
        if trace is not None:
            rendered["objectWriteTraceId"] = trace
        return rendered

    def _failure(
        self, error: Exception, trace: str | None, ids: list[str] | None = None
    ) -> dict[str, Any]:
        context: dict[str, list[str]] = {}
        if trace is not None:
            context["objectWriteTraceId"] = [trace]
        if ids is not None:
            context["ids"] = ids
        if isinstance(error, FieldProblem):
            message = "Property values were not valid: " + "; ".join(error.problems)
            return self._write_error("VALIDATION_ERROR", message, **context)
        if isinstance(error, _Conflict):
            return self._write_error("CONFLICT", str(error), **context)
        return self._write_error("OBJECT_NOT_FOUND", str(error), **context)

    async def batch_create(self, request: web.Request) -> web.Response:
        obj, started = self._obj(request), self._now_iso()
        body = await self._body(request, models.BatchCreateBody)
        self._check_batch_size(body.inputs)
        results, errors = [], []
        for item in body.inputs:
            try:
                record = self._create(obj, item.properties)
            except (FieldProblem, _Conflict) as error:
                errors.append(self._failure(error, item.objectWriteTraceId))
                continue
            results.append(self._traced(self.core.render(record, None), item.objectWriteTraceId))
        return self._batch_answer(results, errors, started, 201)

    async def batch_update(self, request: web.Request) -> web.Response:
        obj, started = self._obj(request), self._now_iso()
        body = await self._body(request, models.BatchUpdateBody)
        self._check_batch_size(body.inputs)
        results, errors = [], []
        for item in body.inputs:
            record = self._lookup(obj, item.id, item.idProperty)
            try:
                if record is None:
                    raise NotFound(f"Object {item.id} not found")
                record = self._update(record, item.properties)
            except (FieldProblem, _Conflict, NotFound) as error:
                errors.append(self._failure(error, item.objectWriteTraceId, [item.id]))
                continue
            results.append(self._traced(self.core.render(record, None), item.objectWriteTraceId))
        return self._batch_answer(results, errors, started, 200)

    async def batch_upsert(self, request: web.Request) -> web.Response:
        obj, started = self._obj(request), self._now_iso()
        body = await self._body(request, models.BatchUpsertBody)
        self._check_batch_size(body.inputs)
        results, errors = [], []
        for item in body.inputs:
            try:
                prop = self._unique_property(obj, item.idProperty)
            except ApiError:
                message = f"Property {item.idProperty} is not a unique identifier"
                errors.append(self._write_error("VALIDATION_ERROR", message, ids=[item.id]))
                continue
            record = self._lookup(obj, item.id, item.idProperty)
            try:
                if record is None:
                    if prop is None:
                        raise NotFound(f"Object {item.id} not found (upsert by id cannot create)")
                    record = self._create(obj, {**item.properties, prop: item.id})
                    new = True
                else:
                    record = self._update(record, item.properties)
                    new = False
            except (FieldProblem, _Conflict, NotFound) as error:
                errors.append(self._failure(error, item.objectWriteTraceId, [item.id]))
                continue
            rendered = self._traced(self.core.render(record, None), item.objectWriteTraceId)
            rendered["new"] = new
            results.append(rendered)
        return self._batch_answer(results, errors, started, 200)

    async def batch_archive(self, request: web.Request) -> web.Response:
        obj = self._obj(request)
        body = await self._body(request, models.BatchArchiveBody)
        self._check_batch_size(body.inputs)
        for item in body.inputs:
            record = self._lookup(obj, item.id, None)
            if record is not None:
                self.core.store.delete(obj, record.id, self.core.api_origin())
        return web.Response(status=204)

    # -- search --------------------------------------------------------------------------------

    async def search(self, request: web.Request) -> web.Response:
        obj = self._obj(request)
        body = await self._body(request, models.SearchBody)
        try:
            offset = int(body.after or "0")
        except ValueError:
            return self.core.error(400, "VALIDATION_ERROR", f"invalid after: {body.after}")
        if offset >= SEARCH_CAP:
            return self.core.error(
                400,
                "VALIDATION_ERROR",
                f"There was a problem with the request: paging past {SEARCH_CAP} results is not "
                "supported; narrow the filter instead",
            )
        try:
            predicate = _filters(obj, body.filterGroups)
        except ValueError as bad:
            return self.core.error(400, "VALIDATION_ERROR", str(bad))
        matches = [r for r in self.core.store.find(obj) if predicate(r)]
        key, descending = _sort_key(obj, body.sorts)
        matches.sort(key=key, reverse=descending)
        total = len(matches)
        reachable = matches[:SEARCH_CAP]
        page = reachable[offset : offset + body.limit]
        following = offset + len(page)
        out: dict[str, Any] = {
            "total": total,
            "results": [self.core.render(r, body.properties) for r in page],
        }
        if following < total:
            out["paging"] = {"next": {"after": str(following)}}
        return web.json_response(out)


class _Conflict(Exception):
    """A unique property already used by another record."""


def _value(record: Record, obj: str, name: str) -> str | None:
    if name == "hs_object_id":
        return record.id
    if name == schema.MODIFIED[obj]:
        return str(int(record.updated_at * 1000))
    if name == "createdate":
        return str(int(record.created_at * 1000))
    value = record.fields.get(name)
    return None if value in (None, "") else str(value)


def _comparable(obj: str, name: str, value: Any) -> Any:
    """Dates compare as epoch milliseconds (given as ms or ISO text), numbers as numbers."""
    text = str(value)
    if name in (schema.MODIFIED[obj], "createdate"):
        if text.lstrip("-").isdigit():
            return int(text)
        return int(parse_instant(text) * 1000)
    try:
        return float(text)
    except ValueError:
        return text.lower()


def _filters(obj: str, groups: list[models.FilterGroup]) -> Callable[[Record], bool]:
    """OR of groups, AND of filters in a group: EQ NEQ GT GTE LT LTE IN NOT_IN HAS_PROPERTY
    NOT_HAS_PROPERTY CONTAINS_TOKEN."""
    known = set(schema.readable(obj))
    for group in groups:
        for f in group.filters:
            if f.propertyName not in known:
                raise ValueError(f"Property {f.propertyName} does not exist")

    def one(record: Record, f: models.Filter) -> bool:
        have = _value(record, obj, f.propertyName)
        op = f.operator.upper()
        if op == "HAS_PROPERTY":
            return have is not None
        if op == "NOT_HAS_PROPERTY":
            return have is None
        if have is None:
            return op in ("NEQ", "NOT_IN")
        left = _comparable(obj, f.propertyName, have)
        if op in ("IN", "NOT_IN"):
            values = {_comparable(obj, f.propertyName, v) for v in f.values or []}
            return (left in values) == (op == "IN")
        if op == "CONTAINS_TOKEN":
            return str(f.value).lower().strip("*") in str(have).lower()
        right = _comparable(obj, f.propertyName, f.value)
        if type(left) is not type(right):
            left, right = str(left), str(right)
        compare = {
            "EQ": lambda a, b: a == b,
            "NEQ": lambda a, b: a != b,
            "GT": lambda a, b: a > b,
            "GTE": lambda a, b: a >= b,
            "LT": lambda a, b: a < b,
            "LTE": lambda a, b: a <= b,
        }.get(op)
        if compare is None:
            raise ValueError(f"Unknown operator {f.operator}")
        return bool(compare(left, right))

    for group in groups:
        for f in group.filters:
            if f.operator.upper() not in {
                "EQ", "NEQ", "GT", "GTE", "LT", "LTE", "IN", "NOT_IN", "HAS_PROPERTY",
                "NOT_HAS_PROPERTY", "CONTAINS_TOKEN",
            }:  # fmt: skip
                raise ValueError(f"Unknown operator {f.operator}")
    if not groups:
        return lambda record: True
    return lambda record: any(all(one(record, f) for f in g.filters) for g in groups)


def _sort_key(obj: str, sorts: list[models.Sort | str]) -> tuple[Callable[[Record], Any], bool]:
    """The key and direction of the first sort (ascending by default; ties by id). No sort: by
    id. Numbers and dates sort as numbers, text as lower-case text, missing values first."""
    if not sorts:
        return (lambda r: int(r.id)), False
    first = sorts[0]
    if isinstance(first, str):
        name, direction = first, "ASCENDING"
    else:
        name, direction = first.propertyName, first.direction
    if name.startswith("-"):
        name, direction = name[1:], "DESCENDING"

    def key(record: Record) -> Any:
        value = _value(record, obj, name)
        if value is None:
            return (0, 0, "", int(record.id))
        comparable = _comparable(obj, name, value)
        if isinstance(comparable, int | float):
            return (1, comparable, "", int(record.id))
        return (2, 0, comparable, int(record.id))

    return key, direction.upper() == "DESCENDING"


def add_routes(app: web.Application, core: HubSpotCore) -> None:
    h = Handlers(core)
    app.router.add_routes(
        [
            web.get(PREFIX, h.list_records, allow_head=False),
            web.post(PREFIX, h.create),
            web.post(PREFIX + "/search", h.search),
            web.post(PREFIX + "/batch/read", h.batch_read),
            web.post(PREFIX + "/batch/create", h.batch_create),
            web.post(PREFIX + "/batch/update", h.batch_update),
            web.post(PREFIX + "/batch/upsert", h.batch_upsert),
            web.post(PREFIX + "/batch/archive", h.batch_archive),
            web.post(PREFIX + "/gdpr-delete", h.gdpr_delete),
            web.get(PREFIX + "/{id}", h.get, allow_head=False),
            web.patch(PREFIX + "/{id}", h.update),
            web.delete(PREFIX + "/{id}", h.archive),
        ]
    )


OPERATIONS = [
    Operation(
        "GET",
        PREFIX,
        "List records by id (limit <= 100; after; archived=true for archived)",
        query=("limit", "after", "properties", "archived"),
    ),
    Operation(
        "POST",
        PREFIX,
        "Create a record",
        201,
        models.PropertiesBody,
        errors={400: "VALIDATION_ERROR", 409: "CONFLICT (a unique property is taken)"},
    ),
    Operation(
        "GET",
        PREFIX + "/{id}",
        "Read a record",
        query=("properties", "idProperty", "archived"),
        errors={404: "OBJECT_NOT_FOUND"},
    ),
    Operation(
        "PATCH",
        PREFIX + "/{id}",
        "Update a record's properties",
        body=models.PropertiesBody,
        query=("idProperty",),
        errors={400: "VALIDATION_ERROR", 404: "OBJECT_NOT_FOUND", 409: "CONFLICT"},
    ),
    Operation("DELETE", PREFIX + "/{id}", "Archive a record (soft delete)", 204),
    Operation(
        "POST",
        PREFIX + "/batch/read",
        "Read up to 100 records",
        body=models.BatchReadBody,
        errors={207: "some not found", 400: "more than 100 inputs"},
    ),
    Operation(
        "POST",
        PREFIX + "/batch/create",
        "Create up to 100 records",
        201,
        models.BatchCreateBody,
        errors={207: "per-record results and errors", 400: "more than 100 inputs"},
    ),
    Operation(
        "POST",
        PREFIX + "/batch/update",
        "Update up to 100 records",
        body=models.BatchUpdateBody,
        errors={207: "per-record results and errors", 400: "more than 100 inputs"},
    ),
    Operation(
        "POST",
        PREFIX + "/batch/upsert",
        "Create or update up to 100 records by a unique property",
        body=models.BatchUpsertBody,
        errors={207: "per-record results and errors"},
    ),
    Operation(
        "POST", PREFIX + "/batch/archive", "Archive up to 100 records", 204, models.BatchArchiveBody
    ),
    Operation(
        "POST",
        PREFIX + "/gdpr-delete",
        "Delete a contact permanently (hard delete)",
        204,
        models.GdprDeleteBody,
        errors={404: "OBJECT_NOT_FOUND"},
    ),
    Operation(
        "POST",
        PREFIX + "/search",
        "Search (4/s; at most 10,000 results per query)",
        body=models.SearchBody,
        errors={400: "past 10,000 results, or a bad filter", 429: "SECONDLY"},
    ),
]

"""The Salesforce-like REST API (v60.0) for Contact and Account.

- ``GET /limits``: ``DailyApiRequests`` {Max, Remaining}.
- ``POST /sobjects/{Object}``: create (201 ``{id, success, errors}``).
- ``GET|PATCH|DELETE /sobjects/{Object}/{Id}``: read, update (204), delete (204: recycle bin,
  ``IsDeleted`` true, still seen by ``queryAll``). 15- or 18-character ids.
- ``GET|PATCH /sobjects/{Object}/{ExtIdField}/{value}``: read or upsert by external id: 201
  created, 200 updated, **300** when the value matches several records, 404 with
  ``?updateOnly=true`` and no match.
- ``/composite/sobjects``: POST create, PATCH update, DELETE ``?ids=``, GET
  ``/{Object}?ids=&fields=``, PATCH ``/{Object}/{ExtIdField}`` upsert; up to 200 records, one
  SaveResult each; ``allOrNone`` true rolls every record back if one fails.
- ``GET /query?q=`` and ``/queryAll?q=`` (deleted records too); batches of up to 2,000 with
  ``done`` and ``nextRecordsUrl``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from crm_providers.core.openapi import Operation
from crm_providers.core.paging import Token
from crm_providers.core.provider import ApiError, FieldProblem
from crm_providers.core.store import NotFound, Origin, Record
from crm_providers.salesforce import schema, soql
from crm_providers.salesforce.provider import BASE, SalesforceCore, errors

MAX_COLLECTION = 200
LOCATORS_KEPT = 10_000
ROLLED_BACK = {
    "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
    "message": "Record rolled back because not all records were valid and the request was using "
    "AllOrNone header",
    "fields": [],
}


@dataclass(frozen=True)
class QueryState:
    query: soql.Query
    include_deleted: bool
    batch: int


class _Refused(Exception):
    """One record of a request refused: its error code, message and fields."""

    def __init__(self, code: str, message: str, fields: list[str] | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.fields = code, message, fields or []

    def save_error(self) -> dict[str, Any]:
        return {"statusCode": self.code, "message": self.message, "fields": self.fields}


class Handlers:
    def __init__(self, core: SalesforceCore) -> None:
        self.core = core
        self.locators: dict[str, QueryState] = {}
        self._queries = 0

    # -- helpers -------------------------------------------------------------------------------

    def _obj(self, name: str) -> str:
        if name not in self.core.objects:
            raise ApiError(
                errors(404, "NOT_FOUND", f"The requested resource does not exist: {name}")
            )
        return name

    async def _json(self, request: web.Request) -> Any:
        try:
            return json.loads(await request.read())
        except ValueError:
            raise ApiError(
                errors(400, "JSON_PARSER_ERROR", "The request body is not JSON")
            ) from None

    async def _fields(self, request: web.Request) -> dict[str, Any]:
        body = await self._json(request)
        if not isinstance(body, dict):
            raise ApiError(errors(400, "JSON_PARSER_ERROR", "Expected a JSON object"))
        return body

    def _live(self, obj: str, raw_id: str) -> Record:
        record_id = schema.normalise_id(raw_id)
        if record_id is None:
            raise _Refused("MALFORMED_ID", f"{obj} ID: id value of incorrect type: {raw_id}")
        try:
            record = self.core.store.get(obj, record_id, include_deleted=True)
        except NotFound:
            raise _Refused("NOT_FOUND", "The requested resource does not exist") from None
        if record.deleted:
            raise _Refused("ENTITY_IS_DELETED", "entity is deleted")
        return record

    def _checked(self, obj: str, fields: dict[str, Any], *, creating: bool) -> dict[str, Any]:
        try:
            out = schema.check(obj, fields, creating=creating)
        except FieldProblem as problem:
            raise _Refused(problem.code, "; ".join(problem.problems), problem.fields) from None
        account = out.get("AccountId")
        if account:
            try:
                self.core.store.get("Account", account)
            except NotFound:
                raise _Refused(
                    "INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", ["AccountId"]
                ) from None
        return out

    @staticmethod
    def _single(refused: _Refused) -> web.Response:
        status = 404 if refused.code in ("NOT_FOUND", "ENTITY_IS_DELETED") else 400
        return errors(status, refused.code, refused.message, refused.fields or None)

    def _ext_field(self, obj: str, field: str) -> str:
        if field not in schema.EXTERNAL_IDS[obj] and field != "Id":
            raise ApiError(
                errors(
                    404,
                    "NOT_FOUND",
                    f"Provided external ID field does not exist or is not accessible: {field}",
                )
            )
        return field

    def _by_ext(self, obj: str, field: str, value: str) -> list[Record]:
        if field == "Id":
            normal = schema.normalise_id(value)
            try:
                return [self.core.store.get(obj, normal)] if normal else []
            except NotFound:
                return []
        return self.core.store.matching(obj, field, value)

    # -- single records ------------------------------------------------------------------------

    async def limits(self, request: web.Request) -> web.Response:
        window = self.core.allocation
        return web.json_response(
            {"DailyApiRequests": {"Max": window.limit, "Remaining": window.remaining()}}
        )

    async def create(self, request: web.Request) -> web.Response:
        obj = self._obj(request.match_info["object"])
        try:
            fields = self._checked(obj, await self._fields(request), creating=True)
        except _Refused as refused:
            return self._single(refused)
        record = self.core.store.create(
            obj, self.core.new_id(obj), fields, self.core.api_origin(request)
        )
        return web.json_response({"id": record.id, "success": True, "errors": []}, status=201)

    async def get(self, request: web.Request) -> web.Response:
        obj = self._obj(request.match_info["object"])
        try:
            record = self._live(obj, request.match_info["id"])
        except _Refused:
            return errors(404, "NOT_FOUND", "The requested resource does not exist")
        wanted = request.query.get("fields")
        names = tuple(f.strip() for f in wanted.split(",")) if wanted else None
        if names and any(n not in schema.fields_of(obj) for n in names):
            bad = next(n for n in names if n not in schema.fields_of(obj))
            return errors(400, "INVALID_FIELD", f"No such column '{bad}' on entity '{obj}'")
        return web.json_response(self.core.render(record, names))

    async def update(self, request: web.Request) -> web.Response:
        obj = self._obj(request.match_info["object"])
        try:
            record = self._live(obj, request.match_info["id"])
            fields = self._checked(obj, await self._fields(request), creating=False)
        except _Refused as refused:
            return self._single(refused)
        self.core.store.update(obj, record.id, fields, self.core.api_origin(request))
        return web.Response(status=204)

    async def delete(self, request: web.Request) -> web.Response:
        obj = self._obj(request.match_info["object"])
        try:
            record = self._live(obj, request.match_info["id"])
        except _Refused as refused:
            return self._single(refused)
        self.core.store.delete(obj, record.id, self.core.api_origin(request))
        return web.Response(status=204)

    async def get_by_ext(self, request: web.Request) -> web.Response:
        obj = self._obj(request.match_info["object"])
        field = self._ext_field(obj, request.match_info["field"])
        found = self._by_ext(obj, field, request.match_info["value"])
        if not found:
            return errors(404, "NOT_FOUND", "The requested resource does not exist")
        if len(found) > 1:
            return web.json_response([self.core.url_of(obj, r.id) for r in found], status=300)
        return web.json_response(self.core.render(found[0]))

    async def upsert(self, request: web.Request) -> web.Response:
        obj = self._obj(request.match_info["object"])
        field = self._ext_field(obj, request.match_info["field"])
        value = request.match_info["value"]
        body = await self._fields(request)
        found = self._by_ext(obj, field, value)
        if len(found) > 1:
            # Several records hold this external id: Salesforce answers 300 with their URLs.
            return web.json_response([self.core.url_of(obj, r.id) for r in found], status=300)
        update_only = request.query.get("updateOnly", "false").lower() == "true"
        origin = self.core.api_origin(request)
        try:
            if found:
                fields = self._checked(obj, body, creating=False)
                self.core.store.update(obj, found[0].id, fields, origin)
                return web.json_response(
                    {"id": found[0].id, "success": True, "errors": [], "created": False}
                )
            if update_only or field == "Id":
                return errors(404, "NOT_FOUND", "The requested resource does not exist")
            fields = self._checked(obj, {**body, field: value}, creating=True)
        except _Refused as refused:
            return self._single(refused)
        record = self.core.store.create(obj, self.core.new_id(obj), fields, origin)
        return web.json_response(
            {"id": record.id, "success": True, "errors": [], "created": True}, status=201
        )

    # -- collections ---------------------------------------------------------------------------

    async def _collection(self, request: web.Request) -> tuple[list[dict[str, Any]], bool]:
        body = await self._fields(request)
        records = body.get("records")
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise ApiError(errors(400, "JSON_PARSER_ERROR", "records must be a list of objects"))
        if len(records) > MAX_COLLECTION:
            raise ApiError(
                errors(400, "EXCEEDED_ID_LIMIT", f"Record limit exceeded: {MAX_COLLECTION}")
            )
        return records, bool(body.get("allOrNone", False))

    def _run(
        self, prepared: list[Callable[[], dict[str, Any]] | _Refused], all_or_none: bool
    ) -> web.Response:
        """Commit the prepared writes (or none if ``all_or_none`` and one was refused)."""
        if all_or_none and any(isinstance(p, _Refused) for p in prepared):
            results = [
                {"id": None, "success": False,
                 "errors": [p.save_error() if isinstance(p, _Refused) else ROLLED_BACK]}
                for p in prepared
            ]  # fmt: skip
            return web.json_response(results)
        results = []
        for p in prepared:
            if isinstance(p, _Refused):
                results.append({"id": None, "success": False, "errors": [p.save_error()]})
            else:
                results.append(p())
        return web.json_response(results)

    def _type_of(self, item: dict[str, Any], default: str | None = None) -> str:
        attributes = item.get("attributes")
        obj = attributes.get("type") if isinstance(attributes, dict) else default
        if obj not in self.core.objects:
            raise _Refused("INVALID_TYPE", f"sObject type '{obj}' is not supported.")
        return str(obj)

    async def collection_create(self, request: web.Request) -> web.Response:
        records, all_or_none = await self._collection(request)
        origin, tx = self.core.api_origin(request), self.core.store.new_transaction()
        prepared: list[Callable[[], dict[str, Any]] | _Refused] = []
        for item in records:
            try:
                obj = self._type_of(item)
                fields = self._checked(obj, item, creating=True)
            except _Refused as refused:
                prepared.append(refused)
                continue
            prepared.append(self._creator(obj, fields, origin, tx))
        return self._run(prepared, all_or_none)

    def _creator(
        self, obj: str, fields: dict[str, Any], origin: Origin, tx: str, *, upsert: bool = False
    ) -> Callable[[], dict[str, Any]]:
        def create() -> dict[str, Any]:
            record = self.core.store.create(obj, self.core.new_id(obj), fields, origin, tx)
            out: dict[str, Any] = {"id": record.id, "success": True, "errors": []}
            if upsert:
                out["created"] = True
            return out

        return create

    def _updater(
        self,
        record: Record,
        fields: dict[str, Any],
        origin: Origin,
        tx: str,
        *,
        upsert: bool = False,
    ) -> Callable[[], dict[str, Any]]:
        def update() -> dict[str, Any]:
            self.core.store.update(record.object, record.id, fields, origin, tx)
            out: dict[str, Any] = {"id": record.id, "success": True, "errors": []}
            if upsert:
                out["created"] = False
            return out

        return update

    async def collection_update(self, request: web.Request) -> web.Response:
        records, all_or_none = await self._collection(request)
        origin, tx = self.core.api_origin(request), self.core.store.new_transaction()
        prepared: list[Callable[[], dict[str, Any]] | _Refused] = []
        for item in records:
            try:
                obj = self._type_of(item)
                raw_id = item.get("id", item.get("Id"))
                if not isinstance(raw_id, str):
                    raise _Refused("MISSING_ARGUMENT", "Id not specified in an update call", ["Id"])
                record = self._live(obj, raw_id)
                rest = {k: v for k, v in item.items() if k not in ("id", "Id")}
                fields = self._checked(obj, rest, creating=False)
            except _Refused as refused:
                prepared.append(refused)
                continue
            prepared.append(self._updater(record, fields, origin, tx))
        return self._run(prepared, all_or_none)

    async def collection_upsert(self, request: web.Request) -> web.Response:
        obj = self._obj(request.match_info["object"])
        field = self._ext_field(obj, request.match_info["field"])
        records, all_or_none = await self._collection(request)
        origin, tx = self.core.api_origin(request), self.core.store.new_transaction()
        prepared: list[Callable[[], dict[str, Any]] | _Refused] = []
        for item in records:
            try:
                self._type_of(item, obj)
                value = item.get(field)
                if not isinstance(value, str) or not value:
                    raise _Refused("MISSING_ARGUMENT", f"{field} not specified", [field])
                found = self._by_ext(obj, field, value)
                if len(found) > 1:
                    ids = ", ".join(r.id for r in found)
                    raise _Refused(
                        "DUPLICATE_EXTERNAL_ID",
                        f"{field}: more than one record found for external id field: [{ids}]",
                        [field],
                    )
                if found:
                    fields = self._checked(obj, item, creating=False)
                    prepared.append(self._updater(found[0], fields, origin, tx, upsert=True))
                else:
                    fields = self._checked(obj, item, creating=True)
                    prepared.append(self._creator(obj, fields, origin, tx, upsert=True))
            except _Refused as refused:
                prepared.append(refused)
        return self._run(prepared, all_or_none)

    async def collection_delete(self, request: web.Request) -> web.Response:
        ids = [i for i in request.query.get("ids", "").split(",") if i]
        if len(ids) > MAX_COLLECTION:
            return errors(400, "EXCEEDED_ID_LIMIT", f"Record limit exceeded: {MAX_COLLECTION}")
        all_or_none = request.query.get("allOrNone", "false").lower() == "true"
        origin, tx = self.core.api_origin(request), self.core.store.new_transaction()
        prepared: list[Callable[[], dict[str, Any]] | _Refused] = []
        for raw_id in ids:
            try:
                record = self._find_any(raw_id)
            except _Refused as refused:
                prepared.append(refused)
                continue

            def delete(record: Record = record) -> dict[str, Any]:
                self.core.store.delete(record.object, record.id, origin, tx)
                return {"id": record.id, "success": True, "errors": []}

            prepared.append(delete)
        return self._run(prepared, all_or_none)

    def _find_any(self, raw_id: str) -> Record:
        for obj, prefix in schema.KEY_PREFIX.items():
            if raw_id.startswith(prefix):
                return self._live(obj, raw_id)
        raise _Refused("MALFORMED_ID", f"malformed id {raw_id}")

    async def collection_get(self, request: web.Request) -> web.Response:
        obj = self._obj(request.match_info["object"])
        ids = [i for i in request.query.get("ids", "").split(",") if i]
        if len(ids) > 2000:
            return errors(400, "EXCEEDED_ID_LIMIT", "Record limit exceeded: 2000")
        wanted = request.query.get("fields")
        names = tuple(f.strip() for f in wanted.split(",")) if wanted else None
        out: list[dict[str, Any] | None] = []
        for raw_id in ids:
            try:
                out.append(self.core.render(self._live(obj, raw_id), names))
            except _Refused:
                out.append(None)
        return web.json_response(out)

    # -- queries -------------------------------------------------------------------------------

    def _batch_size(self, request: web.Request) -> int:
        size = self.core.settings.query_batch_size
        for part in request.headers.get("Sforce-Query-Options", "").split(","):
            name, _, value = part.strip().partition("=")
            if name == "batchSize" and value.isdigit():
                size = max(200, min(2000, int(value)))
        return size

    def _fields_of(self, obj: str) -> tuple[str, ...] | None:
        return schema.fields_of(obj) if obj in self.core.objects else None

    def _ids(self, state: QueryState) -> list[str]:
        q = state.query
        rows = [
            r
            for r in self.core.store.find(q.object, include_deleted=state.include_deleted)
            if all(soql.matches(c, self.core.value(r, c.field)) for c in q.where)
        ]
        if q.order_by is not None:
            field = q.order_by

            def key(record: Record) -> tuple[int, Any, str]:
                value = self.core.value(record, field)
                return (0, "", record.id) if value is None else (1, value, record.id)

            rows.sort(key=key, reverse=q.descending)
        ids = [r.id for r in rows]
        return ids if q.limit is None else ids[: q.limit]

    def _answer(self, key: str, state: QueryState, token: Token | None) -> web.Response:
        drift = self.core.faults.settings.cursor_drift
        try:
            page = self.core.pager.page(lambda: self._ids(state), token, state.batch, drift=drift)
        except KeyError:
            return errors(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        table = self.core.store.table(state.query.object)
        records = [self.core.render(table[i], state.query.fields) for i in page.ids if i in table]
        body: dict[str, Any] = {
            "totalSize": page.total,
            "done": page.next is None,
            "records": records,
        }
        if page.next is not None:
            self.locators[key] = state
            while len(self.locators) > LOCATORS_KEPT:
                # The oldest cursors expire, as Salesforce's do (it keeps a bounded number).
                self.locators.pop(next(iter(self.locators)))
            snap = "" if page.next.snapshot is None else f"s{page.next.snapshot}"
            kind = "queryAll" if state.include_deleted else "query"
            body["nextRecordsUrl"] = f"{BASE}/{kind}/{key}{snap}-{page.next.offset}"
        return web.json_response(body)

    async def _query(self, request: web.Request, include_deleted: bool) -> web.Response:
        text = request.query.get("q")
        if not text:
            return errors(400, "MALFORMED_QUERY", "A query string is required (q=)")
        try:
            query = soql.parse(text, self._fields_of)
        except soql.Malformed as bad:
            return errors(400, bad.code, str(bad))
        self._queries += 1
        key = f"01gSTANDIN{self._queries:08d}"
        return self._answer(
            key, QueryState(query, include_deleted, self._batch_size(request)), None
        )

    async def query(self, request: web.Request) -> web.Response:
        return await self._query(request, False)

    async def query_all(self, request: web.Request) -> web.Response:
        return await self._query(request, True)

    async def query_more(self, request: web.Request) -> web.Response:
        locator = request.match_info["locator"]
        key, _, offset = locator.rpartition("-")
        snapshot = None
        if len(key) > 18 and key[18:].startswith("s"):
            key, snapshot = key[:18], int(key[19:])
        state = self.locators.get(key)
        if state is None or not offset.isdigit():
            return errors(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        return self._answer(key, state, Token(int(offset), snapshot))


def add_routes(app: web.Application, core: SalesforceCore) -> None:
    h = Handlers(core)
    s = BASE + "/sobjects/{object}"
    c = BASE + "/composite/sobjects"
    app.router.add_routes(
        [
            web.get(BASE + "/limits", h.limits, allow_head=False),
            web.post(s, h.create),
            web.get(s + "/{id}", h.get, allow_head=False),
            web.patch(s + "/{id}", h.update),
            web.delete(s + "/{id}", h.delete),
            web.get(s + "/{field}/{value}", h.get_by_ext, allow_head=False),
            web.patch(s + "/{field}/{value}", h.upsert),
            web.post(c, h.collection_create),
            web.patch(c, h.collection_update),
            web.delete(c, h.collection_delete),
            web.get(c + "/{object}", h.collection_get, allow_head=False),
            web.patch(c + "/{object}/{field}", h.collection_upsert),
            web.get(BASE + "/query", h.query, allow_head=False),
            web.get(BASE + "/queryAll", h.query_all, allow_head=False),
            web.get(BASE + "/query/{locator}", h.query_more, allow_head=False),
            web.get(BASE + "/queryAll/{locator}", h.query_more, allow_head=False),
        ]
    )


_S = BASE + "/sobjects/{object}"
_C = BASE + "/composite/sobjects"
OPERATIONS = [
    Operation("GET", BASE + "/limits", "DailyApiRequests: Max and Remaining"),
    Operation(
        "POST",
        _S,
        "Create a Contact or Account",
        201,
        errors={400: "REQUIRED_FIELD_MISSING, INVALID_FIELD, ..."},
    ),
    Operation("GET", _S + "/{id}", "Read a record", query=("fields",), errors={404: "NOT_FOUND"}),
    Operation(
        "PATCH", _S + "/{id}", "Update a record", 204, errors={404: "NOT_FOUND, ENTITY_IS_DELETED"}
    ),
    Operation("DELETE", _S + "/{id}", "Delete to the recycle bin (soft)", 204),
    Operation("GET", _S + "/{field}/{value}", "Read by external id", errors={300: "several match"}),
    Operation(
        "PATCH",
        _S + "/{field}/{value}",
        "Upsert by external id",
        200,
        query=("updateOnly",),
        errors={201: "created", 300: "several records match", 404: "updateOnly and none"},
    ),
    Operation("POST", _C, "Create up to 200 records (SaveResult each)"),
    Operation("PATCH", _C, "Update up to 200 records (SaveResult each)"),
    Operation("DELETE", _C, "Delete up to 200 records", query=("ids", "allOrNone")),
    Operation("GET", _C + "/{object}", "Read up to 2000 records", query=("ids", "fields")),
    Operation("PATCH", _C + "/{object}/{field}", "Upsert up to 200 records by external id"),
    Operation(
        "GET",
        BASE + "/query",
        "SOQL (subset): batches of up to 2000",
        query=("q",),
        errors={400: "MALFORMED_QUERY, INVALID_FIELD"},
    ),
    Operation("GET", BASE + "/queryAll", "SOQL including deleted records", query=("q",)),
    Operation("GET", BASE + "/query/{locator}", "The next batch (nextRecordsUrl)"),
    Operation("GET", BASE + "/queryAll/{locator}", "The next batch (nextRecordsUrl)"),
]
for _op in OPERATIONS:
    _op.errors.setdefault(403, "REQUEST_LIMIT_EXCEEDED (rolling 24 h allocation spent)")

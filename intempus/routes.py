"""The contract's handlers: ``/web/v1/case/`` and the read-only resources it points at.

Each handler describes the successful path; refusals are ``ApiError``s answered by the
middleware. Both path forms (with and without the trailing slash) are routed; the
``strict_slash`` switch refuses the second in the middleware.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from intempus.case import Hydrator, Renderer, StoredCase
from intempus.errors import ApiError, bad_request, empty, form_error, json_response, not_found
from intempus.listing import get_limit, get_offset, list_page, page_uri
from intempus.service import SERVICE, Service
from intempus.world import BASE, uri

PLACEHOLDER_LT = 42  # what a POST answer shows as logical_timestamp (contract section 6)


async def read_body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    try:
        body = json.loads(raw) if raw.strip() else {}
    except ValueError:
        raise bad_request("Request is not valid JSON.") from None
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object.")
    return body


def _case_id(request: web.Request) -> int:
    return int(request.match_info["case_id"])


def check_unique_number(service: Service, values: Mapping[str, Any], self_id: int | None) -> None:
    if not service.switches.unique_number or not values["number"]:
        return
    for other in service.store.cases.values():
        if (
            other.id != self_id
            and other.fields["number"] == values["number"]
            and other.fields["customer"] == values["customer"]
        ):
            raise form_error("__all__", "Sag with this Kunde and Nummer already exists.")


async def create_case(
    service: Service, body: dict[str, Any], op: str, *, case_id: int | None = None,
    dedupe: bool = True,
) -> tuple[StoredCase, bool]:  # fmt: skip
    """Create a case from ``body``; returns it and whether it is new (False: a repeat of a
    known ``creation_id``, nothing written)."""

    def compute(cases: Mapping[int, StoredCase]) -> dict[str, Any]:
        values = Hydrator(service.world, cases).create(body)
        check_unique_number(service, values, None)
        return values

    raw_creation_id = body.get("creation_id")
    creation_id = None if raw_creation_id is None or not dedupe else str(raw_creation_id)
    written = await service.store.write(
        op,
        case_id,
        compute,
        today=service.today(),
        late_rate=service.switches.lt_late_commit,
        creation_id=creation_id,
    )
    _note_late(service, op, written.case)
    return written.case, written.wrote


async def update_case(
    service: Service, case_id: int, body: dict[str, Any], op: str
) -> tuple[StoredCase, StoredCase]:
    """Update a case with the keys of ``body``; 404 (empty) if it does not exist."""
    stored = service.store.cases.get(case_id)
    if stored is None:
        raise not_found()

    def compute(cases: Mapping[int, StoredCase]) -> dict[str, Any]:
        current = cases.get(case_id)
        if current is None:  # deleted while this request waited for the lock
            raise not_found()
        values = Hydrator(service.world, cases).update(body, current)
        check_unique_number(service, values, case_id)
        return values

    written = await service.store.write(
        op, case_id, compute, today=service.today(), late_rate=service.switches.lt_late_commit
    )
    _note_late(service, op, written.case)
    assert written.before is not None
    return written.case, written.before


def _note_late(service: Service, op: str, case: StoredCase) -> None:
    # A write that took a logical timestamp below the highest committed one is a late commit.
    if case.lt < service.store.lt.last:
        service.faults.add("late_lt", op, uri("case", case.id))


def render(service: Service, case: StoredCase, *, full: bool, lt: int | None = None) -> Any:
    return Renderer(service.world, service.store.cases, service.store.children).render(
        case, full=full, lt=lt
    )


async def list_cases(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    store = service.store
    switches = service.switches
    page = list_page(
        request.path,
        request.query,
        store.sorted_cases(),
        filters=switches.filters,
        drift=switches.offset_drift,
        snapshots=service.snapshots,
        cursor_meta_full=switches.cursor_meta_full,
        by_id=store.cases,
    )
    header = store.served()  # same synchronous step as the rows: no write in between
    renderer = Renderer(service.world, store.cases, store.children)
    objects = [renderer.render(case, full=False) for case in page.cases]
    return json_response(
        {"meta": page.meta, "objects": objects}, headers={"Logical-Timestamp": str(header)}
    )


async def get_case(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    case = service.store.cases.get(_case_id(request))
    if case is None:
        raise not_found()
    return json_response(render(service, case, full=True))


async def post_case(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    body = await read_body(request)
    case, new = await create_case(service, body, "POST")
    stale = service.switches.stale_write_lt and new
    answer = render(service, case, full=True, lt=PLACEHOLDER_LT if stale else None)
    return json_response(answer, 201, {"Location": uri("case", case.id)})


async def put_case(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    case_id = _case_id(request)
    body = await read_body(request)
    if case_id not in service.store.cases:
        if not service.switches.put_creates:
            raise not_found()
        case, _ = await create_case(service, body, "PUT", case_id=case_id, dedupe=False)
        stale = service.switches.stale_write_lt
        answer = render(service, case, full=True, lt=PLACEHOLDER_LT if stale else None)
        return json_response(answer, 201, {"Location": uri("case", case.id)})
    case, before = await update_case(service, case_id, body, "PUT")
    lt = before.lt if service.switches.stale_write_lt else None
    return json_response(render(service, case, full=True, lt=lt))


async def patch_case(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    case_id = _case_id(request)
    if case_id not in service.store.cases:
        raise not_found()
    case, before = await update_case(service, case_id, await read_body(request), "PATCH")
    lt = before.lt if service.switches.stale_write_lt else None
    return json_response(render(service, case, full=True, lt=lt), 202)


async def delete_case(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    await service.store.delete(
        "DELETE", _case_id(request), ignore_work_reports=service.switches.delete_cascade
    )
    return empty(204)


def _resource_handlers(name: str) -> tuple[Any, Any]:
    async def list_rows(request: web.Request) -> web.Response:
        service = request.app[SERVICE]
        rows = [r for _, r in sorted(service.world.resources[name].rows.items())]
        limit = get_limit(request.query)
        offset = get_offset(request.query)
        meta = {
            "limit": limit,
            "next": page_uri(
                request.path, request.query, limit=str(limit), offset=str(offset + limit)
            )
            if offset + limit < len(rows)
            else None,
            "offset": offset,
            "previous": page_uri(
                request.path, request.query, limit=str(limit), offset=str(offset - limit)
            )
            if offset - limit >= 0
            else None,
            "total_count": len(rows),
        }
        return json_response({"meta": meta, "objects": rows[offset : offset + limit]})

    async def get_row(request: web.Request) -> web.Response:
        row = request.app[SERVICE].world.row(name, int(request.match_info["row_id"]))
        if row is None:
            raise ApiError(404)
        return json_response(row)

    return list_rows, get_row


READ_ONLY = ("customer", "case_group", "case_state", "department", "employee", "company")


def add_routes(app: web.Application) -> None:
    """Register the contract's routes (each with and without its trailing slash)."""
    routes: list[web.RouteDef] = []
    for slash in ("/", ""):
        case_list = f"{BASE}case{slash}"
        case_detail = f"{BASE}case/{{case_id:\\d+}}{slash}"
        routes += [
            web.get(case_list, list_cases, allow_head=False),
            web.post(case_list, post_case),
            web.get(case_detail, get_case, allow_head=False),
            web.put(case_detail, put_case),
            web.patch(case_detail, patch_case),
            web.delete(case_detail, delete_case),
        ]
        for name in READ_ONLY:
            list_rows, get_row = _resource_handlers(name)
            routes += [
                web.get(f"{BASE}{name}{slash}", list_rows, allow_head=False),
                web.get(f"{BASE}{name}/{{row_id:\\d+}}{slash}", get_row, allow_head=False),
            ]
    app.router.add_routes(routes)

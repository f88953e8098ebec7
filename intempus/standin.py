"""The stand-in's own routes under ``/_standin/`` (outside the contract; never counted, limited,
faulted or authenticated).

- ``GET /_standin/stats``, ``POST /_standin/stats/reset`` (zeroes request counts, the fault log
  and the rate-limit counters).
- ``GET /_standin/faults``; ``PATCH /_standin/faults`` merges switches (see ``Switches``).
- ``GET /_standin/truth``: every case in full, with its hidden work-report count.
- ``POST /_standin/cases``: a user creates a case in the UI (real LT in the answer).
- ``POST /_standin/cases/{id}/touch``: a third-party edit (body: keys to change, may be empty);
  always a committed write with a new LT.
- ``DELETE /_standin/cases/{id}``: a deletion outside the API (work reports ignored).
- ``PUT /_standin/cases/{id}/work_reports`` ``{"count": n}``: what blocks a DELETE.
- ``POST /_standin/hooks/kill-after?op=POST`` ``{"pid": n, "signal": "SIGKILL"}``: signal that
  process right after the next committed write of that kind; ``GET``/``DELETE`` show/disarm.
"""

from __future__ import annotations

import json
import signal
from typing import Any, TypeVar, get_args

from aiohttp import web
from pydantic import BaseModel, TypeAdapter, ValidationError

from intempus.errors import ApiError, empty, json_response
from intempus.models import KillAfter, WorkReports, WriteOp
from intempus.routes import create_case, read_body, render, update_case
from intempus.service import SERVICE
from intempus.settings import Switches

M = TypeVar("M", bound=BaseModel)


def _invalid(error: ValidationError) -> web.Response:
    return json_response({"error": json.loads(error.json(include_url=False))}, 422)


async def _model(request: web.Request, model: type[M]) -> M:
    try:
        return model.model_validate_json(await request.read())
    except ValidationError as error:
        raise ApiError(422, {"error": json.loads(error.json(include_url=False))}) from None


async def get_stats(request: web.Request) -> web.Response:
    return json_response(request.app[SERVICE].stats.snapshot())


async def reset_stats(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    service.stats.reset()
    service.faults.reset()
    service.limiter.reset()
    return empty(204)


def _faults_view(request: web.Request) -> dict[str, Any]:
    service = request.app[SERVICE]
    return {"settings": service.switches.model_dump(), **service.faults.snapshot()}


async def get_faults(request: web.Request) -> web.Response:
    return json_response(_faults_view(request))


async def patch_faults(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    changes = await read_body(request)
    try:
        service.switches = Switches.model_validate({**service.switches.model_dump(), **changes})
    except ValidationError as error:
        return _invalid(error)
    return json_response(_faults_view(request))


async def truth(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    store = service.store
    cases = []
    for case in store.sorted_cases():
        cases.append({**render(service, case, full=True), "work_reports": case.work_reports})
    return json_response(
        {"logical_timestamp": store.header, "next_id": store.next_id, "cases": cases}
    )


async def user_create(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    case, _ = await create_case(service, await read_body(request), "STANDIN_POST")
    return json_response(render(service, case, full=True), 201)


async def touch(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    case_id = int(request.match_info["case_id"])
    case, _ = await update_case(service, case_id, await read_body(request), "TOUCH")
    return json_response(render(service, case, full=True))


async def outside_delete(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    case_id = int(request.match_info["case_id"])
    await service.store.delete(
        "STANDIN_DELETE", case_id, ignore_work_reports=True, ignore_children=True
    )
    return empty(204)


async def set_work_reports(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    body = await _model(request, WorkReports)
    case = await service.store.set_work_reports(int(request.match_info["case_id"]), body.count)
    return json_response({"id": case.id, "work_reports": case.work_reports})


_OP = TypeAdapter(WriteOp)


async def arm_kill(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    try:
        op = _OP.validate_python(request.query.get("op", "POST"))
    except ValidationError:
        return json_response({"error": f"op must be one of {list(get_args(WriteOp))}"}, 422)
    body = await _model(request, KillAfter)
    service.kill.arm(op, body.pid, int(getattr(signal, body.signal)))
    return await show_kill(request)


async def show_kill(request: web.Request) -> web.Response:
    return json_response(request.app[SERVICE].kill.state())


async def disarm_kill(request: web.Request) -> web.Response:
    request.app[SERVICE].kill.disarm()
    return empty(204)


@web.middleware
async def standin_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except ApiError as refused:
        if request.path.startswith("/_standin/"):
            return refused.response()
        raise


def add_routes(app: web.Application) -> None:
    p = "/_standin"
    app.router.add_routes(
        [
            web.get(f"{p}/stats", get_stats, allow_head=False),
            web.post(f"{p}/stats/reset", reset_stats),
            web.get(f"{p}/faults", get_faults, allow_head=False),
            web.patch(f"{p}/faults", patch_faults),
            web.get(f"{p}/truth", truth, allow_head=False),
            web.post(f"{p}/cases", user_create),
            web.post(f"{p}/cases/{{case_id:\\d+}}/touch", touch),
            web.delete(f"{p}/cases/{{case_id:\\d+}}", outside_delete),
            web.put(f"{p}/cases/{{case_id:\\d+}}/work_reports", set_work_reports),
            web.post(f"{p}/hooks/kill-after", arm_kill),
            web.get(f"{p}/hooks/kill-after", show_kill, allow_head=False),
            web.delete(f"{p}/hooks/kill-after", disarm_kill),
        ]
    )

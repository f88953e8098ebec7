"""The stand-in's own routes under ``/_standin/``: never faulted, never counted, never budgeted.

- ``GET  /_standin/stats``, ``POST /_standin/stats/reset``: request counts, refusals by budget.
- ``GET  /_standin/faults``, ``PATCH /_standin/faults``: fault settings (merged, re-validated).
- ``GET  /_standin/records[?object=]``: the truth: every record, deleted and purged ones too.
- ``GET  /_standin/changes[?after=SEQ]``: the change log with each change's origin.
- ``POST /_standin/users/{object}``, ``PATCH|DELETE /_standin/users/{object}/{id}``,
  ``POST /_standin/users/{object}/{id}/restore``: edits made as a CRM user (user marker).
  ``DELETE ...?hard=true`` purges (hard delete).
- ``GET  /_standin/budget``, ``POST /_standin/budget/reset``: budgets spent and remaining.
- ``GET  /_standin/limits``, ``PATCH /_standin/limits``: the limits in force.
- ``GET  /_standin/webhooks``, ``PATCH /_standin/webhooks``: target, retries, pause, delivery log.
- ``GET  /_standin/clock``: the stand-in's time.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from crm_providers.core.provider import FieldProblem, ProviderCore
from crm_providers.core.settings import FaultSettings, WebhookSettings
from crm_providers.core.store import NotFound, Record


class UserEdit(BaseModel):
    """A change made as a CRM user: fields in the provider's own names, and who made it."""

    model_config = ConfigDict(extra="forbid")

    fields: dict[str, Any] = Field(default_factory=dict)
    user_id: str | None = Field(None, description="the CRM user; a default user when left out")


def _detail(status: int, detail: Any) -> web.Response:
    return web.json_response({"detail": detail}, status=status)


async def _json_object(request: web.Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.read() or b"{}")
    except ValueError:
        raise web.HTTPBadRequest(
            text='{"detail": "the body must be JSON"}', content_type="application/json"
        ) from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(
            text='{"detail": "the body must be a JSON object"}', content_type="application/json"
        )
    return body


def _record_json(record: Record) -> dict[str, Any]:
    return {
        "object": record.object,
        "id": record.id,
        "fields": record.fields,
        "version": record.version,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
        "deleted": record.deleted,
        "deleted_at": record.deleted_at,
    }


def add_routes(app: web.Application, key: web.AppKey[ProviderCore]) -> None:
    """Register the ``/_standin/`` routes, reading the provider from ``app[key]``."""

    def provider(request: web.Request) -> ProviderCore:
        return request.app[key]

    def obj_of(request: web.Request) -> str:
        obj = request.match_info["object"]
        if obj not in provider(request).objects:
            raise web.HTTPNotFound(
                text=json.dumps(
                    {"detail": f"no object {obj!r}; one of {provider(request).objects}"}
                ),
                content_type="application/json",
            )
        return obj

    async def get_stats(request: web.Request) -> web.Response:
        return web.json_response(provider(request).stats.snapshot())

    async def reset_stats(request: web.Request) -> web.Response:
        provider(request).stats.reset()
        return web.Response(status=204)

    async def get_faults(request: web.Request) -> web.Response:
        return web.json_response(provider(request).faults.snapshot())

    async def patch_faults(request: web.Request) -> web.Response:
        faults = provider(request).faults
        changes = await _json_object(request)
        try:
            settings = FaultSettings.model_validate({**faults.settings.model_dump(), **changes})
        except ValidationError as error:
            return _detail(422, error.errors(include_url=False, include_context=False))
        faults.update(settings)
        return web.json_response(faults.snapshot())

    async def get_records(request: web.Request) -> web.Response:
        dump = provider(request).store.dump()
        wanted = request.query.get("object")
        if wanted is not None:
            dump["objects"] = {k: v for k, v in dump["objects"].items() if k == wanted}
            dump["purged"] = [r for r in dump["purged"] if r["object"] == wanted]
        return web.json_response(dump)

    async def get_changes(request: web.Request) -> web.Response:
        after = int(request.query.get("after", "0"))
        changes = [c.as_json() for c in provider(request).store.changes if c.seq > after]
        return web.json_response({"changes": changes})

    async def _edit(request: web.Request) -> UserEdit:
        try:
            return UserEdit.model_validate(await _json_object(request))
        except ValidationError as error:
            raise web.HTTPUnprocessableEntity(
                text=json.dumps({"detail": error.errors(include_url=False, include_context=False)}),
                content_type="application/json",
            ) from None

    async def user_create(request: web.Request) -> web.Response:
        p, obj = provider(request), obj_of(request)
        edit = await _edit(request)
        try:
            fields = p.validate(obj, edit.fields, creating=True)
        except FieldProblem as problem:
            return _detail(400, problem.problems)
        record = p.store.create(obj, p.new_id(obj), fields, p.user_origin(edit.user_id))
        return web.json_response(_record_json(record), status=201)

    async def user_update(request: web.Request) -> web.Response:
        p, obj = provider(request), obj_of(request)
        edit = await _edit(request)
        try:
            p.store.get(obj, request.match_info["id"])
            fields = p.validate(obj, edit.fields, creating=False)
            record = p.store.update(
                obj, request.match_info["id"], fields, p.user_origin(edit.user_id)
            )
        except FieldProblem as problem:
            return _detail(400, problem.problems)
        except NotFound:
            return _detail(404, "no such live record")
        return web.json_response(_record_json(record))

    async def user_delete(request: web.Request) -> web.Response:
        p, obj = provider(request), obj_of(request)
        origin = p.user_origin(request.query.get("user_id"))
        hard = request.query.get("hard", "false").lower() in ("1", "true", "yes")
        try:
            if hard:
                record = p.store.purge(obj, request.match_info["id"], origin)
            else:
                record = p.store.delete(obj, request.match_info["id"], origin)
        except NotFound:
            return _detail(404, "no such record")
        return web.json_response(_record_json(record))

    async def user_restore(request: web.Request) -> web.Response:
        p, obj = provider(request), obj_of(request)
        origin = p.user_origin(request.query.get("user_id"))
        try:
            record = p.store.undelete(obj, request.match_info["id"], origin)
        except NotFound:
            return _detail(404, "no such record (purged records cannot be restored)")
        return web.json_response(_record_json(record))

    async def get_budget(request: web.Request) -> web.Response:
        return web.json_response(provider(request).budget_state())

    async def reset_budget(request: web.Request) -> web.Response:
        provider(request).reset_budgets()
        return web.json_response(provider(request).budget_state())

    async def get_limits(request: web.Request) -> web.Response:
        return web.json_response(provider(request).limits().model_dump())

    async def patch_limits(request: web.Request) -> web.Response:
        p = provider(request)
        changes = await _json_object(request)
        try:
            limits = p.limits_model.model_validate({**p.limits().model_dump(), **changes})
        except ValidationError as error:
            return _detail(422, error.errors(include_url=False, include_context=False))
        p.set_limits(limits)
        return web.json_response(limits.model_dump())

    async def get_webhooks(request: web.Request) -> web.Response:
        return web.json_response(provider(request).emitter.snapshot())

    async def patch_webhooks(request: web.Request) -> web.Response:
        emitter = provider(request).emitter
        changes = await _json_object(request)
        try:
            settings = WebhookSettings.model_validate({**emitter.settings.model_dump(), **changes})
        except ValidationError as error:
            return _detail(422, error.errors(include_url=False, include_context=False))
        emitter.update(settings)
        return web.json_response(emitter.snapshot())

    async def get_clock(request: web.Request) -> web.Response:
        return web.json_response({"now": provider(request).clock.now()})

    app.router.add_routes(
        [
            web.get("/_standin/stats", get_stats, allow_head=False),
            web.post("/_standin/stats/reset", reset_stats),
            web.get("/_standin/faults", get_faults, allow_head=False),
            web.patch("/_standin/faults", patch_faults),
            web.get("/_standin/records", get_records, allow_head=False),
            web.get("/_standin/changes", get_changes, allow_head=False),
            web.post("/_standin/users/{object}", user_create),
            web.patch("/_standin/users/{object}/{id}", user_update),
            web.delete("/_standin/users/{object}/{id}", user_delete),
            web.post("/_standin/users/{object}/{id}/restore", user_restore),
            web.get("/_standin/budget", get_budget, allow_head=False),
            web.post("/_standin/budget/reset", reset_budget),
            web.get("/_standin/limits", get_limits, allow_head=False),
            web.patch("/_standin/limits", patch_limits),
            web.get("/_standin/webhooks", get_webhooks, allow_head=False),
            web.patch("/_standin/webhooks", patch_webhooks),
            web.get("/_standin/clock", get_clock, allow_head=False),
        ]
    )

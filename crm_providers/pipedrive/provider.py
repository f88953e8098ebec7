"""The Pipedrive-like provider: integer ids, v2 error shapes, token costs, and webhooks v2.

Budgets: every call costs tokens from an account-wide daily budget (``COSTS``), and every call
counts against a burst limit per rolling 2-second window. Either one spent: **429**, nothing
taken, with ``Retry-After`` (seconds until the spent budget frees). With ``abuse_after`` set, a
client that keeps hitting 429 is blocked with **403** for a while. Every API response carries
``x-ratelimit-limit``, ``x-ratelimit-remaining``, ``x-ratelimit-reset`` (the burst window) and
``x-daily-requests-left`` (tokens left today).
"""

from __future__ import annotations

import math
import random
import uuid
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from crm_providers.core import sample
from crm_providers.core.clock import Clock
from crm_providers.core.provider import ProviderCore, Refusal
from crm_providers.core.store import Change, ChangeKind, Origin, Record
from crm_providers.core.webhooks import Event
from crm_providers.core.windows import DailyBudget, RollingWindow
from crm_providers.pipedrive import schema
from crm_providers.pipedrive.settings import PipedriveLimits, PipedriveSettings

COSTS = {"get": 1, "list": 10, "search": 20, "create": 10, "update": 10, "delete": 6}
"""Tokens per call. Unknown routes cost like a single read."""

ABUSE_WINDOW_S = 600.0


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def failure(status: int, message: str) -> web.Response:
    """Pipedrive's error answer."""
    body = {"success": False, "error": message, "error_info": "See developers.pipedrive.com",
            "data": None, "additional_data": None}  # fmt: skip
    return web.json_response(body, status=status)


def call_kind(method: str, route: str) -> str:
    """Which row of ``COSTS`` a request is."""
    if method == "GET":
        if route == "<unmatched>":
            return "get"
        if route.endswith("/search"):
            return "search"
        return "get" if route.endswith("/{id}") else "list"
    return {"POST": "create", "PATCH": "update", "DELETE": "delete"}.get(method, "get")


class PipedriveCore(ProviderCore):
    name = "pipedrive"
    objects = ("persons", "organizations")
    limits_model = PipedriveLimits
    settings: PipedriveSettings

    def __init__(self, settings: PipedriveSettings, clock: Clock) -> None:
        # Webhooks v2 send one event per request.
        super().__init__(settings, clock, 1)
        self._limits = settings.limits
        self.tokens = DailyBudget(self._limits.daily_tokens, clock, self._limits.utc_offset_s)
        self.burst = RollingWindow(self._limits.burst_limit, self._limits.burst_window_s, clock)
        self.refusals = RollingWindow(10**9, ABUSE_WINDOW_S, clock)
        self.blocked_until = 0.0
        start = random.Random(f"{settings.seed}:pipedrive-ids").randrange(1, 1000)
        self._next = {obj: start for obj in self.objects}
        self._uuids = random.Random(f"{settings.seed}:pipedrive-events")
        self.spent: dict[str, int] = {}

    # -- ids, fields, markers --------------------------------------------------------------------

    def new_id(self, obj: str) -> str:
        self._next[obj] += 1
        return str(self._next[obj])

    def validate(self, obj: str, fields: dict[str, Any], *, creating: bool) -> dict[str, Any]:
        return schema.check(obj, fields, (self.settings.our_id_key,), creating=creating)

    def sample(self, obj: str, index: int) -> dict[str, Any]:
        if obj == "persons":
            first, last, email = sample.person(self.rng, index)
            return {
                "name": f"{first} {last}",
                "first_name": first,
                "last_name": last,
                "emails": [{"value": email, "primary": True, "label": "work"}],
            }
        name, _ = sample.company(self.rng, index)
        return {"name": name}

    def api_origin(self) -> Origin:
        return Origin("integration", str(self.settings.integration_user_id))

    def user_origin(self, user_id: str | None) -> Origin:
        return Origin("user", user_id or str(self.settings.default_user_id))

    # -- rendering -----------------------------------------------------------------------------

    def render(self, record: Record) -> dict[str, Any]:
        f = record.fields
        out: dict[str, Any] = {"id": int(record.id), "name": f.get("name")}
        if record.object == "persons":
            out.update(
                first_name=f.get("first_name"),
                last_name=f.get("last_name"),
                emails=f.get("emails", []),
                phones=f.get("phones", []),
                org_id=f.get("org_id"),
            )
        else:
            out["address"] = f.get("address")
        out.update(
            owner_id=f.get("owner_id", self.settings.integration_user_id),
            add_time=rfc3339(record.created_at),
            update_time=rfc3339(record.updated_at),
            is_deleted=record.deleted,
            custom_fields={self.settings.our_id_key: None, **f.get("custom_fields", {})},
        )
        return out

    def error_500(self) -> web.Response:
        return failure(500, "Internal server error")

    def http_error(self, error: web.HTTPException) -> web.Response:
        if error.status == 404:
            return failure(404, "Unknown method .")
        return failure(error.status, error.reason)

    # -- budgets -------------------------------------------------------------------------------

    def _too_many(self, message: str, policy: str, retry_after: float) -> Refusal:
        now = self.clock.now()
        self.refusals.take()
        abuse_after = self._limits.abuse_after
        if abuse_after is not None and self.refusals.used() >= abuse_after:
            self.blocked_until = now + self._limits.abuse_block_s
        response = failure(429, message)
        response.headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
        return Refusal(response, policy)

    def refuse(self, request: web.Request, route: str) -> Refusal | None:
        if self.clock.now() < self.blocked_until:
            return Refusal(failure(403, "Forbidden: persistent rate limit abuse"), "ABUSE_403")
        cost = COSTS[call_kind(request.method, route)]
        if not self.tokens.fits(cost):
            return self._too_many(
                "Daily token budget exceeded", "DAILY_TOKENS", self.tokens.reset_in()
            )
        if not self.burst.fits():
            return self._too_many("Request over limit", "BURST", self.burst.reset_in())
        self.tokens.take(cost)
        self.burst.take()
        kind = call_kind(request.method, route)
        self.spent[kind] = self.spent.get(kind, 0) + cost
        return None

    def decorate(self, request: web.Request, response: web.StreamResponse) -> None:
        h = response.headers
        h["x-ratelimit-limit"] = str(self.burst.limit)
        h["x-ratelimit-remaining"] = str(self.burst.remaining())
        h["x-ratelimit-reset"] = str(math.ceil(self.burst.reset_in()))
        h["x-daily-requests-left"] = str(self.tokens.remaining())

    def budget_state(self) -> dict[str, Any]:
        return {
            "DAILY_TOKENS": {**self.tokens.state(), "spent_by_call": dict(self.spent)},
            "BURST": self.burst.state(),
            "abuse": {
                "refusals_in_10_min": self.refusals.used(),
                "blocked_for_s": max(0.0, self.blocked_until - self.clock.now()),
            },
            "costs": COSTS,
        }

    def reset_budgets(self) -> None:
        self.tokens.clear()
        self.burst.clear()
        self.refusals.clear()
        self.blocked_until = 0.0
        self.spent.clear()

    def limits(self) -> BaseModel:
        return self._limits

    def set_limits(self, limits: BaseModel) -> None:
        assert isinstance(limits, PipedriveLimits)
        self._limits = limits
        self.tokens.limit, self.tokens.utc_offset_s = limits.daily_tokens, limits.utc_offset_s
        self.burst.limit, self.burst.window_s = limits.burst_limit, limits.burst_window_s

    # -- webhooks v2 ---------------------------------------------------------------------------

    def events_for(self, change: Change, record: Record) -> list[Event]:
        if change.kind is ChangeKind.PURGE and change.changed.get("was_deleted", [False])[0]:
            return []
        entity = schema.ENTITY[change.object]
        action = {
            ChangeKind.CREATE: "create",
            ChangeKind.UPDATE: "change",
            ChangeKind.UNDELETE: "change",
            ChangeKind.DELETE: "delete",
            ChangeKind.PURGE: "delete",
        }[change.kind]
        event_id = str(uuid.UUID(int=self._uuids.getrandbits(128), version=4))
        current = self.render(record)
        meta = {
            "action": action,
            "entity": entity,
            "entity_id": change.record_id,
            "change_source": "app" if change.origin.is_user else "api",
            "user_id": change.origin.actor,
            "company_id": str(self.settings.company_id),
            "timestamp": rfc3339(change.at),
            "id": event_id,
            "version": "2.0",
            "is_bulk_edit": False,
            "webhook_id": f"{self.settings.company_id}-{entity}",
        }
        previous: dict[str, Any] | None = None
        data: dict[str, Any] | None = current
        if action == "change":
            previous = {k: old for k, (old, _) in change.changed.items()}
            if change.kind is ChangeKind.UNDELETE:
                previous = {"is_deleted": True}
        elif action == "delete":
            previous, data = {**current, "is_deleted": False}, None
        return [Event(event_id, {"meta": meta, "data": data, "previous": previous})]

    def build_delivery(self, events: list[Event], attempt: int) -> tuple[Any, dict[str, str]]:
        (event,) = events
        body = dict(event.body)
        body["meta"] = {**event.body["meta"], "retry": attempt}
        return body, {}

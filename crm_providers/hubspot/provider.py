"""The HubSpot-like provider: ids, errors, budgets and headers, and webhook events.

Budgets: a rolling ten-second burst per app, a daily budget per account (reset at the account's
midnight), and the CRM search API's own per-second limit. A refused request takes nothing from
any budget and is answered 429 with the JSON body HubSpot sends (``policyName`` says which
limit). Every API response carries the ``X-HubSpot-RateLimit-*`` headers.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
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
from crm_providers.hubspot import schema
from crm_providers.hubspot.settings import HubSpotLimits, HubSpotSettings

SEARCH_ROUTE_SUFFIX = "/search"
SUBSCRIPTION_IDS = {
    "creation": 101,
    "propertyChange": 102,
    "deletion": 103,
    "restore": 104,
    "privacyDeletion": 105,
}


def iso_ms(ts: float) -> str:
    """HubSpot's timestamps: ISO 8601 with milliseconds and ``Z``."""
    return (
        datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.")
        + f"{int(ts * 1000) % 1000:03d}Z"
    )


class HubSpotCore(ProviderCore):
    name = "hubspot"
    objects = ("contacts", "companies")
    limits_model = HubSpotLimits
    settings: HubSpotSettings

    def __init__(self, settings: HubSpotSettings, clock: Clock) -> None:
        super().__init__(settings, clock, settings.webhook_batch_size)
        self._limits = settings.limits
        self.burst = RollingWindow(self._limits.burst_limit, self._limits.burst_window_s, clock)
        self.daily = DailyBudget(self._limits.daily_limit, clock, self._limits.utc_offset_s)
        self.search = RollingWindow(self._limits.search_per_second, 1.0, clock)
        self._next_id = random.Random(f"{settings.seed}:hubspot-ids").randrange(10**8, 10**9)
        self._correlation = random.Random(f"{settings.seed}:correlation")
        self._event_ids = 0

    # -- ids, fields, markers --------------------------------------------------------------------

    def new_id(self, obj: str) -> str:
        self._next_id += 1
        return str(self._next_id)

    def correlation_id(self) -> str:
        return str(uuid.UUID(int=self._correlation.getrandbits(128), version=4))

    def validate(self, obj: str, fields: dict[str, Any], *, creating: bool) -> dict[str, Any]:
        return schema.check(obj, fields)

    def sample(self, obj: str, index: int) -> dict[str, Any]:
        if obj == "contacts":
            first, last, email = sample.person(self.rng, index)
            return {"firstname": first, "lastname": last, "email": email}
        name, domain = sample.company(self.rng, index)
        return {"name": name, "domain": domain}

    def api_origin(self) -> Origin:
        """Every API write is our app's (the stand-in serves one app's token)."""
        return Origin("integration", str(self.settings.app_id))

    def user_origin(self, user_id: str | None) -> Origin:
        return Origin("user", user_id or str(self.settings.default_user_id))

    # -- rendering -----------------------------------------------------------------------------

    def render(self, record: Record, properties: list[str] | None) -> dict[str, Any]:
        """A record as the v3 objects API answers it. Without ``properties``: every set property."""
        obj = record.object
        system = {
            "hs_object_id": record.id,
            "createdate": iso_ms(record.created_at),
            schema.MODIFIED[obj]: iso_ms(record.updated_at),
        }
        if properties is None:
            props: dict[str, Any] = dict(record.fields)
        else:
            props = {p: record.fields.get(p) for p in properties if p not in system}
        props.update(system)
        out: dict[str, Any] = {
            "id": record.id,
            "properties": props,
            "createdAt": iso_ms(record.created_at),
            "updatedAt": iso_ms(record.updated_at),
            "archived": record.deleted,
        }
        if record.deleted and record.deleted_at is not None:
            out["archivedAt"] = iso_ms(record.deleted_at)
        return out

    def error(self, status: int, category: str, message: str, **extra: Any) -> web.Response:
        body = {
            "status": "error",
            "message": message,
            "correlationId": self.correlation_id(),
            "category": category,
            **extra,
        }
        return web.json_response(body, status=status)

    def error_500(self) -> web.Response:
        return self.error(500, "INTERNAL_ERROR", "internal error")

    def http_error(self, error: web.HTTPException) -> web.Response:
        if error.status == 404:
            return self.error(404, "OBJECT_NOT_FOUND", "resource not found")
        return self.error(error.status, "VALIDATION_ERROR", error.reason)

    # -- budgets -------------------------------------------------------------------------------

    def _rate_limited(self, policy: str, window: str) -> Refusal:
        body = {
            "status": "error",
            "message": f"You have reached your {window} limit.",
            "errorType": "RATE_LIMIT",
            "correlationId": self.correlation_id(),
            "policyName": policy,
            "groupName": f"publicapi:app-api:{self.settings.app_id}",
        }
        return Refusal(web.json_response(body, status=429), policy)

    def refuse(self, request: web.Request, route: str) -> Refusal | None:
        is_search = request.method == "POST" and route.endswith(SEARCH_ROUTE_SUFFIX)
        if not self.daily.fits():
            return self._rate_limited("DAILY", "daily")
        if not self.burst.fits():
            return self._rate_limited("TEN_SECONDLY_ROLLING", "ten_secondly_rolling")
        if is_search and not self.search.fits():
            return self._rate_limited("SECONDLY", "secondly")
        self.daily.take()
        self.burst.take()
        if is_search:
            self.search.take()
        return None

    def decorate(self, request: web.Request, response: web.StreamResponse) -> None:
        h = response.headers
        h["X-HubSpot-RateLimit-Daily"] = str(self.daily.limit)
        h["X-HubSpot-RateLimit-Daily-Remaining"] = str(self.daily.remaining())
        h["X-HubSpot-RateLimit-Interval-Milliseconds"] = str(int(self.burst.window_s * 1000))
        h["X-HubSpot-RateLimit-Max"] = str(self.burst.limit)
        h["X-HubSpot-RateLimit-Remaining"] = str(self.burst.remaining())

    def budget_state(self) -> dict[str, Any]:
        return {
            "TEN_SECONDLY_ROLLING": self.burst.state(),
            "DAILY": self.daily.state(),
            "SECONDLY": self.search.state(),
        }

    def reset_budgets(self) -> None:
        self.burst.clear()
        self.daily.clear()
        self.search.clear()

    def limits(self) -> BaseModel:
        return self._limits

    def set_limits(self, limits: BaseModel) -> None:
        assert isinstance(limits, HubSpotLimits)
        self._limits = limits
        self.burst.limit, self.burst.window_s = limits.burst_limit, limits.burst_window_s
        self.daily.limit, self.daily.utc_offset_s = limits.daily_limit, limits.utc_offset_s
        self.search.limit = limits.search_per_second

    # -- webhooks ------------------------------------------------------------------------------

    def _marker(self, origin: Origin) -> tuple[str, str]:
        if origin.is_user:
            return "CRM_UI", f"userId:{origin.actor}"
        return "INTEGRATION", origin.actor

    def events_for(self, change: Change, record: Record) -> list[Event]:
        singular = schema.SINGULAR[change.object]
        source, source_id = self._marker(change.origin)
        base = {
            "portalId": self.settings.portal_id,
            "appId": self.settings.app_id,
            "occurredAt": int(change.at * 1000),
            "objectId": int(change.record_id),
            "changeSource": source,
            "sourceId": source_id,
        }
        kinds: list[tuple[str, dict[str, Any]]] = []
        if change.kind is ChangeKind.CREATE:
            kinds.append(("creation", {"changeFlag": "NEW"}))
        elif change.kind is ChangeKind.UPDATE:
            for name, (_, new) in sorted(change.changed.items()):
                kinds.append(("propertyChange", {"propertyName": name, "propertyValue": new}))
        elif change.kind is ChangeKind.DELETE:
            kinds.append(("deletion", {"changeFlag": "DELETED"}))
        elif change.kind is ChangeKind.UNDELETE:
            kinds.append(("restore", {"changeFlag": "RESTORED"}))
        elif change.kind is ChangeKind.PURGE:
            if change.object == "contacts":
                kinds.append(("privacyDeletion", {"changeFlag": "DELETED"}))
            elif not change.changed.get("was_deleted", [False])[0]:
                kinds.append(("deletion", {"changeFlag": "DELETED"}))
        events = []
        for kind, extra in kinds:
            self._event_ids += 1
            body = {
                "eventId": self._event_ids,
                "subscriptionId": SUBSCRIPTION_IDS[kind],
                "subscriptionType": f"{singular}.{kind}",
                **base,
                **extra,
            }
            events.append(Event(str(self._event_ids), body))
        return events

    def build_delivery(self, events: list[Event], attempt: int) -> tuple[Any, dict[str, str]]:
        body = [{**e.body, "attemptNumber": attempt} for e in events]
        timestamp = str(int(self.clock.now() * 1000))
        url = self.emitter.settings.url or ""
        raw = json.dumps(body)
        # Signature v3: HMAC-SHA256 of method + URI + body + timestamp with the app's secret.
        # The emitter serialises with json.dumps too, so the receiver hashes the same bytes.
        message = f"POST{url}{raw}{timestamp}".encode()
        digest = hmac.new(self.settings.client_secret.encode(), message, hashlib.sha256).digest()
        headers = {
            "X-HubSpot-Signature-v3": base64.b64encode(digest).decode(),
            "X-HubSpot-Request-Timestamp": timestamp,
        }
        return body, headers

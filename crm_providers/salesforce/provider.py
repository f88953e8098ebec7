"""The Salesforce-like provider: ids, error shapes, the rolling 24-hour allocation, and Change
Data Capture events pushed to the webhook URL.

Every API request (the ``/limits`` resource included) takes one unit of the allocation; when it
is spent the answer is **403** ``REQUEST_LIMIT_EXCEEDED`` (not 429) and nothing is taken. Every
API response carries ``Sforce-Limit-Info: api-usage=used/max``.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from crm_providers.core import sample
from crm_providers.core.clock import Clock
from crm_providers.core.provider import ProviderCore, Refusal
from crm_providers.core.store import Change, ChangeKind, Origin, Record
from crm_providers.core.webhooks import Event
from crm_providers.core.windows import RollingWindow
from crm_providers.salesforce import schema
from crm_providers.salesforce.settings import SalesforceLimits, SalesforceSettings

VERSION = "60.0"
BASE = f"/services/data/v{VERSION}"
CHANGE_TYPES = {
    ChangeKind.CREATE: "CREATE",
    ChangeKind.UPDATE: "UPDATE",
    ChangeKind.DELETE: "DELETE",
    ChangeKind.UNDELETE: "UNDELETE",
    ChangeKind.PURGE: "DELETE",
}


def sf_time(ts: float) -> str:
    """Salesforce's date-times: ``2026-01-01T00:00:00.000+0000``."""
    moment = datetime.fromtimestamp(ts, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(ts * 1000) % 1000:03d}+0000"


def errors(status: int, code: str, message: str, fields: list[str] | None = None) -> web.Response:
    """Salesforce's error answer: a JSON array of ``{message, errorCode[, fields]}``."""
    item: dict[str, Any] = {"message": message, "errorCode": code}
    if fields is not None:
        item["fields"] = fields
    return web.json_response([item], status=status)


def client_of(request: web.Request) -> str:
    """The ``client=`` value of ``Sforce-Call-Options`` (empty when none was sent)."""
    for part in request.headers.get("Sforce-Call-Options", "").split(","):
        name, _, value = part.strip().partition("=")
        if name.strip() == "client":
            return value.strip()
    return ""


class SalesforceCore(ProviderCore):
    name = "salesforce"
    objects = ("Contact", "Account")
    limits_model = SalesforceLimits
    settings: SalesforceSettings

    def __init__(self, settings: SalesforceSettings, clock: Clock) -> None:
        super().__init__(settings, clock, settings.webhook_batch_size)
        self._limits = settings.limits
        self.allocation = RollingWindow(self._limits.allocation, self._limits.window_s, clock)
        self._numbers = random.Random(f"{settings.seed}:salesforce-ids").randrange(62**6, 62**7)
        self._replay = 0
        self._sequence: dict[str, int] = {}

    # -- ids, fields, markers --------------------------------------------------------------------

    def new_id(self, obj: str) -> str:
        self._numbers += 1
        return schema.make_id(obj, self._numbers)

    def validate(self, obj: str, fields: dict[str, Any], *, creating: bool) -> dict[str, Any]:
        return schema.check(obj, fields, creating=creating)

    def sample(self, obj: str, index: int) -> dict[str, Any]:
        if obj == "Contact":
            first, last, email = sample.person(self.rng, index)
            return {"FirstName": first, "LastName": last, "Email": email}
        name, domain = sample.company(self.rng, index)
        return {"Name": name, "Website": f"https://{domain}"}

    def api_origin(self, request: web.Request) -> Origin:
        return Origin("integration", client_of(request))

    def user_origin(self, user_id: str | None) -> Origin:
        return Origin("user", user_id or self.settings.default_user_id)

    # -- rendering -----------------------------------------------------------------------------

    def url_of(self, obj: str, record_id: str) -> str:
        return f"{BASE}/sobjects/{obj}/{record_id}"

    def value(self, record: Record, name: str) -> Any:
        """A field's value for comparisons: date-times as Unix seconds."""
        if name == "Id":
            return record.id
        if name == "IsDeleted":
            return record.deleted
        if name == "CreatedDate":
            return record.created_at
        if name in ("LastModifiedDate", "SystemModstamp"):
            return record.updated_at
        if name in ("CreatedById", "LastModifiedById"):
            return self.settings.integration_user_id + "AAA"
        return record.fields.get(name)

    def render(self, record: Record, fields: tuple[str, ...] | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "attributes": {"type": record.object, "url": self.url_of(record.object, record.id)}
        }
        for name in fields or schema.fields_of(record.object):
            value = self.value(record, name)
            if name in ("CreatedDate", "LastModifiedDate", "SystemModstamp"):
                value = sf_time(value)
            out[name] = value
        return out

    def error_500(self) -> web.Response:
        return errors(500, "UNKNOWN_EXCEPTION", "An unexpected error occurred. Please try again.")

    def http_error(self, error: web.HTTPException) -> web.Response:
        if error.status == 404:
            return errors(404, "NOT_FOUND", "The requested resource does not exist")
        if error.status == 405:
            return errors(405, "METHOD_NOT_ALLOWED", f"HTTP Method '{error.reason}' not allowed.")
        return errors(error.status, "INVALID_REQUEST", error.reason)

    # -- the allocation ------------------------------------------------------------------------

    def refuse(self, request: web.Request, route: str) -> Refusal | None:
        if self.allocation.take():
            return None
        response = errors(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
        return Refusal(response, "REQUEST_LIMIT_EXCEEDED")

    def decorate(self, request: web.Request, response: web.StreamResponse) -> None:
        used = self.allocation.used()
        response.headers["Sforce-Limit-Info"] = f"api-usage={used}/{self.allocation.limit}"

    def budget_state(self) -> dict[str, Any]:
        return {"DailyApiRequests": self.allocation.state()}

    def reset_budgets(self) -> None:
        self.allocation.clear()

    def limits(self) -> BaseModel:
        return self._limits

    def set_limits(self, limits: BaseModel) -> None:
        assert isinstance(limits, SalesforceLimits)
        self._limits = limits
        self.allocation.limit, self.allocation.window_s = limits.allocation, limits.window_s

    # -- Change Data Capture -------------------------------------------------------------------

    def _change_origin(self, origin: Origin) -> str:
        # Changes made in the UI carry no API origin; API writes name the API and the client id.
        if origin.is_user:
            return ""
        client = f";client={origin.actor}" if origin.actor else ""
        return f"com/salesforce/api/rest/{VERSION}{client}"

    def events_for(self, change: Change, record: Record) -> list[Event]:
        if change.kind is ChangeKind.PURGE and change.changed.get("was_deleted", [False])[0]:
            return []  # emptying the recycle bin: the DELETE event was sent already
        self._replay += 1 + (change.seq % 3)  # opaque and not contiguous, but increasing
        sequence = self._sequence.get(change.transaction, 0) + 1
        self._sequence[change.transaction] = sequence
        if len(self._sequence) > 10_000:
            self._sequence.pop(next(iter(self._sequence)))
        change_type = CHANGE_TYPES[change.kind]
        changed = sorted(change.changed) if change.kind is ChangeKind.UPDATE else []
        if changed:
            changed.append("LastModifiedDate")
        header = {
            "entityName": change.object,
            "recordIds": [change.record_id],
            "changeType": change_type,
            "changeOrigin": self._change_origin(change.origin),
            "transactionKey": change.transaction,
            "sequenceNumber": sequence,
            "commitTimestamp": int(change.at * 1000),
            "commitNumber": change.seq,
            "commitUser": (
                change.origin.actor if change.origin.is_user else self.settings.integration_user_id
            )
            + "AAA",
            "changedFields": changed,
        }
        payload: dict[str, Any] = {"ChangeEventHeader": header}
        if change.kind in (ChangeKind.CREATE, ChangeKind.UNDELETE):
            payload.update({k: v for k, v in record.fields.items() if v is not None})
            payload["CreatedDate"] = sf_time(record.created_at)
        if change.kind is ChangeKind.UPDATE:
            payload.update({k: new for k, (_, new) in change.changed.items()})
        if change.kind in (ChangeKind.CREATE, ChangeKind.UPDATE, ChangeKind.UNDELETE):
            payload["LastModifiedDate"] = sf_time(record.updated_at)
        replay_id = str(self._replay)
        body = {
            "replayId": replay_id,
            "channel": f"/data/{change.object}ChangeEvent",
            "payload": payload,
        }
        return [Event(replay_id, body)]

    def build_delivery(self, events: list[Event], attempt: int) -> tuple[Any, dict[str, str]]:
        return {"events": [e.body for e in events]}, {}

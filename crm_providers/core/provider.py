"""What each provider stand-in plugs into the shared server: its object model, its budgets, its
error shapes and its change notifications.

``ProviderCore`` holds the shared machinery (store, faults, stats, emitter, pager, clock); a
provider subclass fills in the hooks. ``/_standin/`` routes and the middleware only talk to this
class, so they are written once.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

from aiohttp import web
from pydantic import BaseModel

from crm_providers.core.clock import Clock
from crm_providers.core.faults import FaultInjector
from crm_providers.core.paging import Pager
from crm_providers.core.settings import CommonSettings
from crm_providers.core.stats import RequestStats
from crm_providers.core.store import Change, Origin, Record, RecordStore
from crm_providers.core.webhooks import Event, WebhookEmitter


class ApiError(Exception):
    """A request refused in the provider's own error shape; the middleware answers ``response``."""

    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response


class FieldProblem(Exception):
    """Fields a provider refuses (unknown, wrong type, required but missing); one text each."""

    def __init__(
        self, problems: list[str], code: str = "INVALID", fields: list[str] | None = None
    ) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems
        self.code = code
        self.fields = fields or []


@dataclass(frozen=True)
class Refusal:
    """A request a budget refused: the answer and the budget's name (for the stats)."""

    response: web.Response
    policy: str


class ProviderCore(ABC):
    """The shared state of one running provider stand-in."""

    name: ClassVar[str]
    objects: ClassVar[tuple[str, ...]]
    limits_model: ClassVar[type[BaseModel]]

    def __init__(
        self, settings: CommonSettings, clock: Clock, webhook_batch_size: int = 100
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.rng = random.Random(f"{settings.seed}:ids")
        self.store = RecordStore(self.objects, clock)
        self.faults = FaultInjector(settings.faults(), settings.seed, clock)
        self.stats = RequestStats()
        self.pager = Pager()
        self.emitter = WebhookEmitter(
            settings.webhook, self.faults, clock, webhook_batch_size, self.build_delivery
        )

    def start_notifying(self) -> None:
        """Send events for every change from now on (called after the sample records exist)."""
        self.store.subscribe(self._notify)

    def _notify(self, change: Change, record: Record) -> None:
        events = self.events_for(change, record)
        if events:
            self.emitter.enqueue(events)

    # -- hooks every provider fills in ---------------------------------------------------------

    @abstractmethod
    def new_id(self, obj: str) -> str:
        """A fresh record id in the provider's format."""

    @abstractmethod
    def validate(self, obj: str, fields: dict[str, Any], *, creating: bool) -> dict[str, Any]:
        """The fields as stored, or ``FieldProblem``; ``fields`` use the provider's own names."""

    @abstractmethod
    def sample(self, obj: str, index: int) -> dict[str, Any]:
        """Fields of the ``index``-th sample record of ``obj`` (drawn from ``self.rng``)."""

    @abstractmethod
    def user_origin(self, user_id: str | None) -> Origin:
        """The origin of an edit made by a CRM user (``/_standin/users/...``)."""

    @abstractmethod
    def events_for(self, change: Change, record: Record) -> list[Event]:
        """The notifications this change produces (none for objects nobody subscribes to)."""

    @abstractmethod
    def build_delivery(self, events: list[Event], attempt: int) -> tuple[Any, dict[str, str]]:
        """The JSON body and extra headers of one webhook POST carrying ``events``."""

    @abstractmethod
    def refuse(self, request: web.Request, route: str) -> Refusal | None:
        """Take this request from the budgets, or say which budget refuses it."""

    @abstractmethod
    def decorate(self, request: web.Request, response: web.StreamResponse) -> None:
        """Add the budget headers every response carries."""

    @abstractmethod
    def error_500(self) -> web.Response:
        """The provider's answer to an internal error."""

    @abstractmethod
    def http_error(self, error: web.HTTPException) -> web.Response:
        """The provider's answer to an unknown route or method (404, 405)."""

    @abstractmethod
    def budget_state(self) -> dict[str, Any]:
        """Every budget: its limit, what is used, what remains, when it resets."""

    @abstractmethod
    def reset_budgets(self) -> None:
        """Forget what was spent (a new day, a new window)."""

    @abstractmethod
    def limits(self) -> BaseModel:
        """The limits in force (an instance of ``limits_model``)."""

    @abstractmethod
    def set_limits(self, limits: BaseModel) -> None:
        """Switch to new limits; what was spent is kept."""

    # -- helpers -------------------------------------------------------------------------------

    def seed_records(self) -> None:
        """``settings.records`` sample records per object, made by a user before start."""
        origin = self.user_origin(None)
        for obj in self.objects:
            for index in range(self.settings.records):
                fields = self.validate(obj, self.sample(obj, index), creating=True)
                self.store.create(obj, self.new_id(obj), fields, origin)

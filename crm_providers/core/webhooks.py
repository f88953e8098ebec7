"""The webhook emitter: change events queued by the store, delivered in batches to one URL, with
retries (exponential back-off on the injected clock) and the deliberate faults: duplicate
deliveries and neighbouring events swapped.

Deliveries go one at a time, in queue order, so with the faults off a receiver sees events in
commit order; a batch being retried holds back the ones behind it. Each provider supplies how a
batch is written (``build``): HubSpot posts an array of up to 100 events, Salesforce an array of
change events, Pipedrive one event per request. ``build`` is given the attempt number so the
payload can carry it (HubSpot ``attemptNumber``, Pipedrive ``meta.retry``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import aiohttp

from crm_providers.core.clock import Clock
from crm_providers.core.faults import FaultInjector
from crm_providers.core.settings import WebhookSettings

log = logging.getLogger(__name__)

LOG_LIMIT = 10_000
PENDING_LIMIT = 100_000
"""Most events kept waiting (no URL, paused, or a slow receiver); older ones are dropped and
counted, so a long run without a receiver does not grow memory without bound."""


@dataclass(frozen=True)
class Event:
    """One change notification: ``id`` is what a receiver dedups on (eventId, replayId, ...)."""

    id: str
    body: dict[str, Any]


@dataclass(frozen=True)
class Attempt:
    """One POST to the receiver, as logged under ``/_standin/webhooks``."""

    delivery: int
    attempt: int
    event_ids: list[str]
    status: int | None
    error: str | None
    at: float
    duplicate: bool
    outcome: str  # delivered | failed | gave_up


Build = Callable[[list[Event], int], tuple[Any, dict[str, str]]]


class WebhookEmitter:
    def __init__(
        self,
        settings: WebhookSettings,
        faults: FaultInjector,
        clock: Clock,
        batch_size: int,
        build: Build,
    ) -> None:
        self.settings = settings
        self._faults = faults
        self._clock = clock
        self.batch_size = batch_size
        self._build = build
        self.pending: deque[Event] = deque()
        self._log: deque[Attempt] = deque(maxlen=LOG_LIMIT)
        self.counts: Counter[str] = Counter()
        self._deliveries = 0
        self._busy = False
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None

    # -- control -------------------------------------------------------------------------------

    def enqueue(self, events: list[Event]) -> None:
        self.pending.extend(events)
        self.counts["events"] += len(events)
        overflow = len(self.pending) - PENDING_LIMIT
        if overflow > 0:
            for _ in range(overflow):
                self.pending.popleft()
            self.counts["dropped"] += overflow
        self._wake.set()

    def update(self, settings: WebhookSettings) -> None:
        self.settings = settings
        self._wake.set()

    async def start(self) -> None:
        self._session = aiohttp.ClientSession()
        self._task = asyncio.create_task(self._run(), name="webhook-emitter")
        self._wake.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._session is not None:
            await self._session.close()

    @property
    def idle(self) -> bool:
        """Nothing being delivered and nothing deliverable waiting."""
        deliverable = self.settings.url is not None and not self.settings.paused
        return not self._busy and not (self.pending and deliverable)

    async def drain(self, within: float = 5.0) -> bool:
        """Wait (real time, at most ``within`` seconds) until ``idle``; whether it got there."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        await asyncio.sleep(0)
        while not self.idle:
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(0.005)
        return True

    def snapshot(self) -> dict[str, Any]:
        return {
            "settings": self.settings.model_dump(),
            "pending": len(self.pending),
            "busy": self._busy,
            "counts": dict(self.counts),
            "attempts": [asdict(a) for a in self._log],
        }

    def attempts(self) -> list[Attempt]:
        return list(self._log)

    # -- delivery ------------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self.pending and self.settings.url is not None and not self.settings.paused:
                self._busy = True
                try:
                    events = self._reordered(list(self.pending))
                    self.pending.clear()
                    for start in range(0, len(events), self.batch_size):
                        await self._deliver(events[start : start + self.batch_size])
                finally:
                    self._busy = False

    def _reordered(self, events: list[Event]) -> list[Event]:
        # One pass of neighbour swaps: an event can be overtaken by the one behind it.
        i = 1
        while i < len(events):
            if self._faults.reorder(f"webhook event {events[i].id}"):
                events[i - 1], events[i] = events[i], events[i - 1]
                i += 2
            else:
                i += 1
        return events

    async def _deliver(self, events: list[Event]) -> None:
        self._deliveries += 1
        delivery = self._deliveries
        settings = self.settings
        for attempt in range(settings.max_attempts):
            if await self._post(delivery, events, attempt, duplicate=False):
                self.counts["delivered"] += 1
                if self._faults.duplicate(f"webhook delivery {delivery}"):
                    # The same payload again, as a provider that lost the receiver's 2xx would.
                    await self._post(delivery, events, attempt, duplicate=True)
                return
            if attempt + 1 < settings.max_attempts:
                wait = settings.backoff_s * settings.backoff_factor**attempt
                await self._clock.sleep(min(wait, settings.backoff_max_s))
        self.counts["gave_up"] += 1
        self._log.append(
            Attempt(
                delivery,
                settings.max_attempts,
                [e.id for e in events],
                None,
                "gave up after the last attempt",
                self._clock.now(),
                False,
                "gave_up",
            )
        )

    async def _post(
        self, delivery: int, events: list[Event], attempt: int, *, duplicate: bool
    ) -> bool:
        url = self.settings.url
        assert self._session is not None
        body, headers = self._build(events, attempt)
        status: int | None = None
        error: str | None = None
        if url is None:
            error = "no webhook url"
        else:
            try:
                timeout = aiohttp.ClientTimeout(total=self.settings.timeout_s)
                async with self._session.post(
                    url,
                    data=json.dumps(body),
                    headers={"Content-Type": "application/json", **headers},
                    timeout=timeout,
                ) as response:
                    status = response.status
                    await response.read()
            except (aiohttp.ClientError, TimeoutError) as failure:
                error = f"{type(failure).__name__}: {failure}"
        ok = status is not None and 200 <= status < 300
        self.counts["attempts"] += 1
        if duplicate:
            self.counts["duplicates"] += 1
        if not ok:
            self.counts["failed_attempts"] += 1
        self._log.append(
            Attempt(
                delivery,
                attempt,
                [e.id for e in events],
                status,
                error,
                self._clock.now(),
                duplicate,
                "delivered" if ok else "failed",
            )
        )
        return ok

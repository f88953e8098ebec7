"""Serving faults of the BigChat stand-in, and the log that records every one injected.

``/events`` answers are built in two steps. A request for page 0 takes a *snapshot* of its
window: the world's events for it, minus what the faults withhold (late events, events already
served when ``unreplayable``), plus what they inject (late events released, duplicates), in the
default order or shuffled. Later pages of the same ``(start_at, end_at)`` page through that
snapshot, so that paging stays consistent while faults, the clock or the served set move on;
a new page-0 request takes a new snapshot. Serving a page then records what was served (for
``unreplayable`` and duplicates) and logs every injected event that went out.

Events the world makes visible only after their own time (``WorldView.late_visible``: a scripted
``visible_at``, a TRANSFER dated before its START) are served by the next window that contains
them, or, when their time is already before a window's start, released into the first snapshot
taken after they became visible (logged as ``late_visible``). Only events that become visible
while the stand-in serves count: what was visible when it started (or when its world was
replaced) is plain history, served when a window containing it is asked for.

Decisions about single events (is it late? is it duplicated?) are hashed from the seed and the
event, so they do not depend on the order of requests; decisions about requests (500 or not,
shuffle order) come from seeded streams consumed in request order.
"""

from __future__ import annotations

import math
import random
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from big_chat.settings import FaultSettings
from big_chat.view import WorldView
from big_chat.world import ScriptEvent

FaultKind = Literal[
    "error",
    "rate_limit",
    "duplicate",
    "late_withheld",
    "late",
    "late_visible",
    "shuffle",
    "ignore_end_at",
    "unreplayable",
]
Injected = Literal["duplicate", "late", "late_visible", "ignore_end_at"]

_SNAPSHOTS_KEPT = 1_024  # windows whose later pages can still be asked for
_LOG_MAX = 500_000  # keeps a long soak from growing without bound


@dataclass(frozen=True, slots=True)
class Window:
    """An /events window as asked for: Unix seconds, ``end_at`` None when it was left out."""

    start_at: float
    end_at: float | None

    def as_json(self) -> dict[str, float | None]:
        return {"start_at": self.start_at, "end_at": self.end_at}


@dataclass(frozen=True, slots=True)
class FaultRecord:
    """One injected fault: enough for a test to account for every oddity a client saw."""

    kind: FaultKind
    conversation_id: int | None = None
    event: ScriptEvent | None = None
    window: Window | None = None
    page: int | None = None
    origin: Window | None = None  # duplicate: where first served; late: where withheld
    detail: Mapping[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "conversation_id": self.conversation_id,
            "event": self.event.as_json() if self.event else None,
            "window": self.window.as_json() if self.window else None,
            "page": self.page,
            "origin": self.origin.as_json() if self.origin else None,
            "detail": dict(self.detail),
        }


class FaultLog:
    """Append-only record of injected faults, oldest dropped beyond a large bound."""

    def __init__(self) -> None:
        self._records: deque[FaultRecord] = deque(maxlen=_LOG_MAX)

    def add(self, record: FaultRecord) -> None:
        self._records.append(record)

    def __iter__(self) -> Iterator[FaultRecord]:
        return iter(self._records)

    def __len__(self) -> int:
        return len(self._records)

    def of_kind(self, kind: FaultKind) -> list[FaultRecord]:
        return [r for r in self._records if r.kind == kind]

    def as_json(self) -> list[dict[str, Any]]:
        return [r.as_json() for r in self._records]


class RateLimiter:
    """Token bucket on the monotonic clock (not the world clock, which tests may freeze)."""

    def __init__(self, rps: float, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.rps = rps
        self._monotonic = monotonic
        self._capacity = max(1.0, rps)
        self._tokens = self._capacity
        self._last = monotonic()

    def acquire(self) -> float | None:
        """Take a token; None if allowed, else the seconds to wait before one is available."""
        now = self._monotonic()
        self._tokens = min(self._capacity, self._tokens + (now - self._last) * self.rps)
        self._last = now
        if self._tokens >= 1:
            self._tokens -= 1
            return None
        return (1 - self._tokens) / self.rps


@dataclass(frozen=True, slots=True)
class Entry:
    """An event in a snapshot, and which fault put it there (None: it belongs there)."""

    event: ScriptEvent
    injected: Injected | None = None
    origin: Window | None = None


@dataclass(slots=True)
class Snapshot:
    window: Window
    entries: list[Entry]


def _chance(seed: int, what: str, event: ScriptEvent) -> float:
    """A uniform draw in [0, 1) fixed by the seed and the event (request order plays no part)."""
    return random.Random(f"{seed}:{what}:{event.conversation_id}:{event.position}").random()


class FaultInjector:
    """Current fault settings and the state the stateful faults need."""

    def __init__(
        self,
        settings: FaultSettings,
        *,
        seed: int,
        page_size: int,
        force_unreplayable: bool = False,
        visible_since: float = -math.inf,
    ) -> None:
        self.seed = seed
        self.page_size = page_size
        self.log = FaultLog()
        # Live mode: like the real service, an event is served once, whatever is PATCHed.
        self._force_unreplayable = force_unreplayable
        if force_unreplayable:
            settings = settings.model_copy(update={"unreplayable": True})
        self._settings = settings
        self._errors = random.Random(f"{seed}:errors")
        self._shuffles = random.Random(f"{seed}:shuffle")
        self._limiter = RateLimiter(settings.rate_limit) if settings.rate_limit else None
        self.reset(visible_since)

    def reset(self, visible_since: float = -math.inf) -> None:
        """Forget every event served or pending (the world was replaced); keep settings and log.

        Events that became visible late before ``visible_since`` are not served as late.
        """
        self._served: set[tuple[int, int]] = set()  # events served in a 200 answer, ever
        self._pending_late: dict[tuple[int, int], tuple[ScriptEvent, Window]] = {}
        self._released_late: set[tuple[int, int]] = set()
        self._pending_duplicates: dict[tuple[int, int], tuple[ScriptEvent, Window]] = {}
        self._pending_visible: dict[tuple[int, int], ScriptEvent] = {}
        self._visible_scanned_to = visible_since  # late_visible asked up to here
        self._snapshots: OrderedDict[Window, Snapshot] = OrderedDict()

    # -- settings ---------------------------------------------------------------------------

    @property
    def settings(self) -> FaultSettings:
        return self._settings

    def update(self, changes: Mapping[str, Any]) -> FaultSettings:
        """Apply a partial update (raises pydantic.ValidationError on bad values)."""
        merged = FaultSettings.model_validate({**self._settings.model_dump(), **changes})
        if self._force_unreplayable:
            merged = merged.model_copy(update={"unreplayable": True})
        if merged.rate_limit != self._settings.rate_limit:
            self._limiter = RateLimiter(merged.rate_limit) if merged.rate_limit else None
        self._settings = merged
        return merged

    # -- request-level faults ---------------------------------------------------------------

    def retry_after(self, route: str) -> int | None:
        """Whole seconds to advertise in ``Retry-After`` when rate-limited, else None."""
        if self._limiter is None:
            return None
        wait = self._limiter.acquire()
        if wait is None:
            return None
        seconds = max(1, math.ceil(wait))
        self.log.add(FaultRecord("rate_limit", detail={"route": route, "retry_after": seconds}))
        return seconds

    def should_fail(self, route: str, query: Mapping[str, str]) -> bool:
        """Whether to answer this request with a 500 (``/events`` only unless all routes)."""
        s = self._settings
        if s.error_rate <= 0 or (route != "/events" and not s.error_all_routes):
            return False
        if self._errors.random() >= s.error_rate:
            return False
        self.log.add(FaultRecord("error", detail={"route": route, "query": dict(query)}))
        return True

    # -- /events ----------------------------------------------------------------------------

    def snapshot(self, world: WorldView, window: Window, page: int, now: float) -> Snapshot:
        """The snapshot a request pages through: a new one for page 0, else the window's last."""
        if page > 0:
            existing = self._snapshots.get(window)
            if existing is not None:
                self._snapshots.move_to_end(window)
                return existing
        snap = self._take_snapshot(world, window, page, now)
        self._snapshots[window] = snap
        self._snapshots.move_to_end(window)
        while len(self._snapshots) > _SNAPSHOTS_KEPT:
            self._snapshots.popitem(last=False)
        return snap

    def _take_snapshot(self, world: WorldView, window: Window, page: int, now: float) -> Snapshot:
        s = self._settings
        if now > self._visible_scanned_to:
            for event in world.late_visible(self._visible_scanned_to, now):
                if event.key not in self._served:
                    self._pending_visible[event.key] = event
            self._visible_scanned_to = now
        asked_end = window.end_at if window.end_at is not None else now
        # The real service may serve everything up to the moment of the call.
        end = math.inf if s.ignore_end_at else asked_end
        entries: list[Entry] = []
        withheld_unreplayable = 0
        for event in world.events_between(window.start_at, end, now):
            key = event.key
            if s.unreplayable and key in self._served:
                withheld_unreplayable += 1
                continue
            if (
                s.late_rate > 0
                and key not in self._released_late
                and _chance(self.seed, "late", event) < s.late_rate
            ):
                if key not in self._pending_late:
                    self._pending_late[key] = (event, window)
                    self.log.add(
                        FaultRecord("late_withheld", event.conversation_id, event, window, page)
                    )
                continue
            beyond = event.event_at >= asked_end
            entries.append(Entry(event, "ignore_end_at" if beyond else None))
        if withheld_unreplayable:
            self.log.add(
                FaultRecord(
                    "unreplayable", window=window, page=page,
                    detail={"withheld": withheld_unreplayable},
                )
            )  # fmt: skip
        # Late events come out in the first window that starts after them: "a later window".
        for event, where in self._pending_late.values():
            if event.event_at < window.start_at:
                entries.append(Entry(event, "late", where))
        for event in self._pending_visible.values():
            if event.event_at < window.start_at:
                entries.append(Entry(event, "late_visible"))
        for event, where in self._pending_duplicates.values():
            if where != window:
                entries.append(Entry(event, "duplicate", where))
        entries.sort(key=lambda entry: entry.event.sort_key)
        if s.shuffle and len(entries) > 1:
            self._shuffles.shuffle(entries)
            self.log.add(
                FaultRecord("shuffle", window=window, page=page, detail={"events": len(entries)})
            )
        return Snapshot(window, entries)

    def serve_page(self, snap: Snapshot, page: int) -> tuple[list[ScriptEvent], bool]:
        """The events of ``page`` and whether more pages follow; records them as served."""
        size = self.page_size
        chosen = snap.entries[page * size : (page + 1) * size]
        more = len(snap.entries) > (page + 1) * size
        for entry in chosen:
            self._record_served(entry, snap.window, page)
        return [entry.event for entry in chosen], more

    def _record_served(self, entry: Entry, window: Window, page: int) -> None:
        event, key = entry.event, entry.event.key
        if entry.injected is not None:
            self.log.add(
                FaultRecord(
                    entry.injected, event.conversation_id, event, window, page, entry.origin
                )
            )
        if entry.injected == "late":
            self._pending_late.pop(key, None)
            self._released_late.add(key)
        elif entry.injected == "duplicate":
            self._pending_duplicates.pop(key, None)
        self._pending_visible.pop(key, None)  # served, in its window or after it
        if key not in self._served:
            self._served.add(key)
            rate = self._settings.duplicate_rate
            if rate > 0 and _chance(self.seed, "duplicate", event) < rate:
                self._pending_duplicates[key] = (event, window)

    def served_count(self) -> int:
        return len(self._served)

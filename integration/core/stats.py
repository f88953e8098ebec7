"""Counters the engine keeps while it runs: read by the demo's progress line, the health check
and the metrics endpoint."""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field


@dataclass
class Gauge:
    """A sync's own labelled gauge (a CRM connection's budget left), set by the sync."""

    help: str
    labels: tuple[str, ...]
    values: dict[tuple[str, ...], float] = field(default_factory=dict)


@dataclass
class Stats:
    windows: int = 0
    pages: int = 0
    fetched_new: int = 0
    fetched_duplicate: int = 0
    rejected: int = 0
    applied: int = 0
    dead_lettered: int = 0
    retries: int = 0
    poll_failures: int = 0
    last_poll_ok_at: float | None = None
    last_poll_error: str | None = None
    last_poll_seconds: float = 0.0
    cursor: float | None = None
    dead_by_reason: Counter[str] = field(default_factory=Counter)
    requests: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    partition_lag: dict[int, int] = field(default_factory=dict)
    """Several workers: messages waiting in JetStream per partition this worker owns."""
    polling: bool | None = None
    """Several workers: whether this worker holds the poller role (None: a lone process)."""
    polling_since: float | None = None
    """Several workers: when this worker took the poller role."""

    gauges: dict[str, Gauge] = field(default_factory=dict)
    """A sync's own gauges by metric name, exported as they are."""
    refreshers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    """Called before each scrape: a sync brings its gauges up to date (an async read)."""

    def observe_request(self, service: str, method: str, outcome: str) -> None:
        self.requests[(service, method, outcome)] += 1

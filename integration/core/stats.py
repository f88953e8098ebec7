"""Counters the engine keeps while it runs: read by the demo's progress line, the health check
and the metrics endpoint."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


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

    def observe_request(self, service: str, method: str, outcome: str) -> None:
        self.requests[(service, method, outcome)] += 1

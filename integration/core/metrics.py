"""Prometheus metrics of one engine, read from its ``Stats`` and its store at scrape time.

A custom collector instead of instrumented ``Counter`` objects: the engine already keeps every
count in ``Stats``, so reading them when Prometheus asks keeps the engine free of any metrics
library and cannot drift from what ``status`` and the demo's progress line show. Each collector
sits in a registry of its own (never the process-global one), so two engines in one process, or
two tests, never share or clash over a metric.

The store's figures (backlog, lag, dead letters, entries kept) need an async query, and a
collector's ``collect`` is synchronous: ``render`` refreshes them first, and the collector reports
the last status it was given. That query reads counters and one index entry
(``SQLiteStore.status``), so a scrape costs the same at a million stored events as at ten, and
never holds up the worker's reads.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator, Sequence

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import CollectorRegistry

from .clock import Clock
from .stats import Stats
from .store import StateStore, Status

log = logging.getLogger("integration.metrics")

CONTENT_TYPE = CONTENT_TYPE_LATEST
"""The content type that goes with ``generate_latest``'s output."""


class EngineCollector:
    """Reports one engine's ``Stats`` and its store's last known ``Status`` as metrics."""

    def __init__(self, stats: Stats, clock: Clock) -> None:
        self.stats = stats
        self.clock = clock
        self.status: Status | None = None
        """The store's status as of the last refresh; None until the first one."""
        self.by_source: dict[str, Status] = {}

    def collect(self) -> Iterator[Metric]:
        s = self.stats
        yield _counter(
            "integration_events_fetched",
            "Events fetched from the source and stored in the inbox for the first time.",
            s.fetched_new,
        )
        yield _counter(
            "integration_events_duplicate",
            "Events fetched again that were already in the inbox (ignored: de-duplicated).",
            s.fetched_duplicate,
        )
        yield _counter(
            "integration_events_rejected",
            "Events that failed validation when fetched (dead-lettered, never applied).",
            s.rejected,
        )
        yield _counter(
            "integration_events_applied",
            "Events applied to the target successfully.",
            s.applied,
        )
        dead = CounterMetricFamily(
            "integration_events_dead_lettered",
            "Events dead-lettered while being applied, by the start of the reason "
            "(see `python run.py dead-letters` for the full reasons).",
            labels=["reason"],
        )
        for reason, count in sorted(s.dead_by_reason.items()):
            dead.add_metric([reason], count)
        yield dead
        requests = CounterMetricFamily(
            "integration_http_requests",
            "HTTP requests made, by target service, method and outcome: the status code, or "
            "connect-error, timeout or connection-error when no answer came.",
            labels=["target", "method", "status"],
        )
        for (service, method, outcome), count in sorted(s.requests.items()):
            requests.add_metric([service, method, outcome], count)
        yield requests
        yield _counter(
            "integration_retries",
            "Retries of events whose application failed transiently (timeout, 5xx, 429).",
            s.retries,
        )
        yield _counter(
            "integration_polls",
            "Poll windows fetched and stored completely.",
            s.windows,
        )
        yield _counter(
            "integration_poll_failures",
            "Polls that failed (after the client's own retries); retried at the next interval.",
            s.poll_failures,
        )
        yield GaugeMetricFamily(
            "integration_last_poll_duration_seconds",
            "How long the last successful poll took to fetch and store its window.",
            value=s.last_poll_seconds,
        )
        if s.last_poll_ok_at is not None:
            # Absent until the first success, so "no poll yet" is not mistaken for 1970.
            yield GaugeMetricFamily(
                "integration_last_successful_poll_timestamp_seconds",
                "Unix time at which the last successful poll finished.",
                value=s.last_poll_ok_at,
            )
        if s.cursor is not None:
            yield GaugeMetricFamily(
                "integration_cursor_timestamp_seconds",
                "The source cursor: every event that occurred before this Unix time is fetched.",
                value=s.cursor,
            )
        if s.polling is not None:
            yield GaugeMetricFamily(
                "integration_poller_role",
                "Several workers: 1 on the worker that polls the sources, 0 on the others.",
                value=int(s.polling),
            )
            lag = GaugeMetricFamily(
                "integration_partition_lag_messages",
                "Several workers: messages of each partition this worker owns still in "
                "JetStream, not yet stored in the inbox (absent: not owned here).",
                labels=["partition"],
            )
            for part, waiting in sorted(s.partition_lag.items()):
                lag.add_metric([str(part)], waiting)
            yield lag
        for name, gauge in sorted(s.gauges.items()):
            family = GaugeMetricFamily(name, gauge.help, labels=list(gauge.labels))
            for labels, value in sorted(gauge.values.items()):
                family.add_metric(list(labels), value)
            yield family
        yield from self._store_metrics()
        yield from self._source_lags()

    def _source_lags(self) -> Iterator[Metric]:
        if len(self.by_source) < 2:
            return  # one source: integration_lag_seconds says it all
        lags = GaugeMetricFamily(
            "integration_source_lag_seconds",
            "Per source (a CRM connection's object or our system's feed for it): now minus "
            "the time the source's oldest pending entry occurred; 0 when nothing is pending.",
            labels=["source"],
        )
        now = self.clock.now()
        for source, status in sorted(self.by_source.items()):
            oldest = status.oldest_pending_at
            lags.add_metric([source], max(0.0, now - oldest) if oldest is not None else 0.0)
        yield lags

    def _store_metrics(self) -> Iterator[Metric]:
        status = self.status
        if status is None:
            return  # the store has not been read yet: report nothing rather than zeros
        oldest = status.oldest_pending_at
        lag = max(0.0, self.clock.now() - oldest) if oldest is not None else 0.0
        yield GaugeMetricFamily(
            "integration_lag_seconds",
            "Now minus the time the oldest pending (fetched, not yet applied) event occurred; "
            "0 when nothing is pending.",
            value=lag,
        )
        yield GaugeMetricFamily(
            "integration_backlog_events",
            "Events fetched and waiting to be applied (including those waiting behind a "
            "dead letter of their conversation).",
            value=status.inbox["pending"],
        )
        yield GaugeMetricFamily(
            "integration_dead_letters",
            "Dead letters not yet put back with `python run.py dead-letters --retry`.",
            value=status.dead_letters,
        )
        yield GaugeMetricFamily(
            "integration_blocked_keys",
            "Conversations whose later events wait behind a dead letter.",
            value=status.blocked_keys,
        )
        # What the state file holds: with pruning working, "done" levels off at about
        # RETENTION's worth of events instead of growing for ever.
        entries = GaugeMetricFamily(
            "integration_inbox_entries",
            "Inbox entries kept in the state file, by state: pending (not yet applied), done "
            "(applied; pruned once older than RETENTION), dead (dead-lettered).",
            labels=["state"],
        )
        for state, count in sorted(status.inbox.items()):
            entries.add_metric([state], count)
        yield entries
        maps = GaugeMetricFamily(
            "integration_map_entries",
            "Entries of the state file's maps (ids and per-conversation states), by map.",
            labels=["map"],
        )
        for name, count in sorted(status.maps.items()):
            maps.add_metric([name], count)
        yield maps


def combined(statuses: Sequence[Status]) -> Status:
    """One sync's sources as one: counts added, the oldest pending of all."""
    first, *rest = statuses
    if not rest:
        return first
    inbox: Counter[str] = Counter()
    for status in statuses:
        inbox.update(status.inbox)
    oldest = [s.oldest_pending_at for s in statuses if s.oldest_pending_at is not None]
    return Status(
        cursors={name: at for s in statuses for name, at in s.cursors.items()},
        inbox=dict(inbox),
        dead_letters=sum(s.dead_letters for s in statuses),
        blocked_keys=sum(s.blocked_keys for s in statuses),
        # Maps are the state file's, not a source's: every status lists them all.
        maps=dict(first.maps),
        oldest_pending_at=min(oldest) if oldest else None,
    )


def _counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
    # The family adds the "_total" suffix to the sample's name.
    return CounterMetricFamily(name, documentation, value=value)


class EngineMetrics:
    """One engine's registry and collector, and the refresh that precedes each scrape."""

    def __init__(
        self, stats: Stats, store: StateStore, clock: Clock, sources: str | Sequence[str]
    ) -> None:
        self.store = store
        self.sources = [sources] if isinstance(sources, str) else list(sources)
        self.collector = EngineCollector(stats, clock)
        self.registry = CollectorRegistry()
        self.registry.register(self.collector)

    async def refresh(self) -> None:
        """Read the store's status for the collector; on failure keep the last one (the health
        check reports a broken store, the metrics should still show the counters)."""
        for refresher in self.collector.stats.refreshers:
            try:
                await refresher()
            except Exception as exc:
                log.warning("metrics: a sync's gauges could not be read: %s", exc)
        try:
            statuses = [await self.store.status(source) for source in self.sources]
            self.collector.status = combined(statuses)
            self.collector.by_source = dict(zip(self.sources, statuses, strict=True))
        except Exception as exc:
            log.warning("metrics: cannot read the state store's status: %s", exc)

    async def render(self) -> bytes:
        """The Prometheus text exposition, store figures refreshed."""
        await self.refresh()
        return generate_latest(self.registry)

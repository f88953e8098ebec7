"""The worker's HTTP endpoint for its supervisor and monitoring: ``/healthz`` and ``/metrics``.

Healthy means the worker is doing its job, not merely that the process is up: the last poll
succeeded within three poll intervals (several workers: only the one holding the poller role is
judged by its polls) (one failed poll is normal, a source down for longer is
not) and the state database takes a write (a full disk or a lost file stops everything). Before
the first poll the three intervals count from the endpoint's start.

It listens on 127.0.0.1 unless told otherwise: the metrics name the systems the worker talks to,
and nothing here is meant for the open network.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from .clock import Clock, iso
from .engine import Engine
from .metrics import CONTENT_TYPE, EngineMetrics
from .serving import Served, serve_app
from .stats import Stats
from .store import StateStore

HEALTH_MARK = "health"
"""The meta row ``/healthz`` writes to prove the state database takes writes."""

STALE_AFTER_INTERVALS = 3


@dataclass(frozen=True)
class Probe:
    """What ``/healthz`` looks at."""

    stats: Stats
    store: StateStore
    clock: Clock
    poll_interval: float
    started_at: float
    write_timeout: float = 5.0
    """A write that has not committed by then counts as failed (a locked or hung database)."""


@dataclass(frozen=True)
class Health:
    ok: bool
    reasons: list[str]
    details: dict[str, Any]

    def body(self) -> dict[str, Any]:
        if self.ok:
            return {"status": "ok", **self.details}
        return {"status": "unhealthy", "reasons": self.reasons, **self.details}


PROBE: web.AppKey[Probe] = web.AppKey("probe", Probe)
METRICS: web.AppKey[EngineMetrics] = web.AppKey("metrics", EngineMetrics)


def _secs(value: float) -> str:
    return f"{value:.0f}" if value >= 10 else f"{value:.1f}"


def poll_reason(probe: Probe, now: float) -> str | None:
    """Why the polling is unhealthy, or None."""
    if probe.stats.polling is False:
        return None  # several workers: another one polls; this one applies
    limit = STALE_AFTER_INTERVALS * probe.poll_interval
    last = probe.stats.last_poll_ok_at
    start = max(probe.started_at, probe.stats.polling_since or probe.started_at)
    age = now - (last if last is not None else start)
    if age <= limit:
        return None
    what = "no successful poll" if last is not None else "no successful poll since start"
    reason = f"{what} for {_secs(age)} s (limit {_secs(limit)} s)"
    if probe.stats.last_poll_error:
        reason += f": {probe.stats.last_poll_error}"
    return reason


async def store_reason(probe: Probe, now: float) -> str | None:
    """Why the state database is unhealthy (it does not take a small write), or None."""
    try:
        await asyncio.wait_for(probe.store.meta_put(HEALTH_MARK, iso(now)), probe.write_timeout)
    except TimeoutError:
        return f"state database not writable: no commit within {_secs(probe.write_timeout)} s"
    except Exception as exc:
        return f"state database not writable: {exc.__class__.__name__}: {exc}"
    return None


async def check(probe: Probe) -> Health:
    now = probe.clock.now()
    reasons = [r for r in (poll_reason(probe, now), await store_reason(probe, now)) if r]
    stats = probe.stats
    details: dict[str, Any] = {
        "last_poll_ok_at": iso(stats.last_poll_ok_at) if stats.last_poll_ok_at else None,
        "last_poll_error": stats.last_poll_error,
        "cursor": iso(stats.cursor) if stats.cursor is not None else None,
        "poll_limit_seconds": round(STALE_AFTER_INTERVALS * probe.poll_interval, 3),
    }
    if stats.polling is not None:
        details["poller_role"] = stats.polling
    return Health(not reasons, reasons, details)


async def healthz(request: web.Request) -> web.Response:
    health = await check(request.app[PROBE])
    return web.json_response(health.body(), status=200 if health.ok else 503)


async def metrics(request: web.Request) -> web.Response:
    body = await request.app[METRICS].render()
    # Set as a header: aiohttp's content_type= refuses a value with parameters in it.
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


def create_app(probe: Probe, engine_metrics: EngineMetrics) -> web.Application:
    app = web.Application()
    app[PROBE] = probe
    app[METRICS] = engine_metrics
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    return app


def engine_app(engine: Engine, *, write_timeout: float = 5.0) -> web.Application:
    """The endpoint for ``engine``, counting the first poll's deadline from now."""
    probe = Probe(
        stats=engine.stats,
        store=engine.store,
        clock=engine.clock,
        poll_interval=engine.settings.poll_interval,
        started_at=engine.clock.now(),
        write_timeout=write_timeout,
    )
    engine_metrics = EngineMetrics(engine.stats, engine.store, engine.clock, engine.sources)
    return create_app(probe, engine_metrics)


@asynccontextmanager
async def serve_health(
    engine: Engine, host: str = "127.0.0.1", port: int = 0, *, write_timeout: float = 5.0
) -> AsyncIterator[Served]:
    """Serve ``/healthz`` and ``/metrics`` for ``engine`` until the block exits."""
    async with serve_app(engine_app(engine, write_timeout=write_timeout), host, port) as served:
        yield served

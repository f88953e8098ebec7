"""The process shell every sync runs in: its state store and engine, the state lock, stop signals
and shutdown grace, health and metrics, and exit statuses a supervisor can act on (0 clean stop
or complete drain, 1 failure, 2 bad configuration)."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from .backends import require_nats, run_lock, state_store
from .clock import Clock, SystemClock
from .engine import Engine, EngineFailed, as_flows
from .flow import Flow
from .health import serve_health
from .http import mask_url
from .lock import AlreadyRunning
from .retry import RetryPolicy
from .state import StateError, StateStore
from .stats import Stats
from .sync import Runtime, Sync, SyncSettings

if TYPE_CHECKING:
    from .distributed.coordinator import Coordinator

log = logging.getLogger("integration")

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIG = 2

S = TypeVar("S", bound=SyncSettings)


@asynccontextmanager
async def open_engine(
    sync: Sync[S],
    settings: S,
    *,
    clock: Clock | None = None,
    stats: Stats | None = None,
    retry: RetryPolicy | None = None,
) -> AsyncIterator[Engine]:
    """The sync's engine on its state store (SQLite's file, or PostgreSQL with ``state_url``),
    its flows assembled from ``settings``; everything closed at the end of the block."""
    runtime = Runtime(
        store=state_store(settings, clock),
        clock=clock or SystemClock(),
        stats=stats or Stats(),
        retry=retry,
    )
    store = runtime.store
    await store.open()
    try:
        async with sync.assemble(settings, runtime) as flows:
            yield Engine(
                flows,
                store,
                runtime.clock,
                settings.engine_settings(retry),
                runtime.stats,
                name=sync.name,
                coordinator=coordinator(sync.name, settings, store, as_flows(flows)),
            )
    finally:
        await store.close()


def coordinator(
    name: str, settings: SyncSettings, store: StateStore, flows: list[Flow]
) -> Coordinator | None:
    """Several workers (``INBOX_URL``): this worker's part in the run; None for a lone one."""
    if settings.inbox_url is None:
        return None
    require_nats()
    from .distributed.coordinator import Coordinator, DistributedSettings
    from .distributed.jetstream import JetStreamInbox
    from .distributed.roles import new_worker_id
    from .state.postgres import PostgresStore

    assert isinstance(store, PostgresStore)  # the settings require STATE_URL with INBOX_URL
    return Coordinator(
        store,
        JetStreamInbox(
            settings.inbox_url,
            settings.inbox_name or name,
            settings.partitions,
            # Kept as long as the inbox table keeps what it de-duplicates against.
            max_age=settings.retention,
        ),
        name,
        new_worker_id(),
        {flow.name: flow.keyspace for flow in flows},
        DistributedSettings(partitions=settings.partitions, worker_ttl=settings.worker_ttl),
    )


def install_stop_signals(stopping: asyncio.Event, task: asyncio.Task[Any] | None = None) -> None:
    """First SIGINT/SIGTERM: stop cleanly. A second one: stop now."""
    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        if not stopping.is_set():
            log.info("%s received: stopping (again to stop at once)", signal.Signals(signum).name)
            stopping.set()
        elif task is not None:
            log.warning("second signal: stopping at once")
            task.cancel()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal, signum)


async def run_engine(
    engine: Engine,
    stopping: asyncio.Event,
    *,
    once: bool = False,
    alongside: Callable[[], Coroutine[Any, Any, None]] | None = None,
) -> bool:
    """Run ``engine`` (and ``alongside``, e.g. a progress line) until ``stopping`` is set, or
    in drain mode until it is drained."""
    extra = asyncio.create_task(alongside()) if alongside else None
    try:
        return await engine.run(stopping, once=once)
    finally:
        if extra is not None:
            extra.cancel()
            await asyncio.gather(extra, return_exceptions=True)


async def run_sync(sync: Sync[S], settings: S, *, once: bool = False) -> int:
    """``python run.py [sync] run [--once]``: the sync until SIGINT/SIGTERM, or (``once``) until
    everything its sources hold now is applied or set aside as a dead letter. The exit status."""
    if once and settings.inbox_url is not None:
        print(
            f"{sync.name}: --once drains with one process; unset INBOX_URL (the state in "
            "STATE_URL can be drained by one worker)",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    lock = run_lock(sync.name, settings)
    try:
        await lock.acquire()
    except AlreadyRunning as exc:
        log.error("%s", exc)
        return EXIT_FAILURE
    except StateError as exc:
        log.error("cannot run: %s", exc)
        return EXIT_FAILURE
    try:
        stopping = asyncio.Event()
        install_stop_signals(stopping, asyncio.current_task())
        problem = await sync.preflight(settings) if once and sync.preflight else None
        if problem is not None:
            # A one-shot run with a service down would only wait for it: one line, exit 1.
            print(f"{sync.name}: {problem}", file=sys.stderr)
            return EXIT_FAILURE
        details = f"{sync.describe(settings)}, " if sync.describe else ""
        log.info(
            "%s worker starting: %sstate %s, %s",
            sync.name,
            details,
            settings.state_location(),
            "draining once" if once else f"poll every {settings.poll_interval:g}s",
        )
        if settings.inbox_url is not None:
            log.info(
                "several workers: inbox %s, %d partition(s); one of the workers polls",
                mask_url(settings.inbox_url),
                settings.partitions,
            )
        if sync.preflight is not None and not once:
            problem = await sync.preflight(settings)
            if problem is not None:
                logging.getLogger(f"integration.{sync.name}").warning(
                    "%s; the sync starts anyway and keeps trying", problem
                )
        async with AsyncExitStack() as stack:
            engine = await stack.enter_async_context(open_engine(sync, settings))
            if settings.metrics_port is not None:
                served = await stack.enter_async_context(
                    serve_health(engine, settings.metrics_host, settings.metrics_port)
                )
                log.info("health on %s/healthz, metrics on %s/metrics", served.url, served.url)
            clean = await run_engine(engine, stopping, once=once)
        if once:
            return _drained(sync, engine, clean)
        log.info(
            "%s worker stopped%s",
            sync.name,
            "" if clean else " (a poll was cut short; will reconcile)",
        )
        return EXIT_OK
    except EngineFailed as exc:
        # The supervisor restarts the process; its recovery picks up where this one stopped.
        log.error("%s worker failed, stopping: %s", sync.name, exc)
        return EXIT_FAILURE
    except (OSError, StateError) as exc:
        log.error("cannot run: %s", exc)
        return EXIT_FAILURE
    finally:
        await lock.release()


def _drained(sync: Sync[Any], engine: Engine, clean: bool) -> int:
    stats = engine.stats
    summary = (
        f"{stats.fetched_new} new, {stats.applied} applied, {stats.dead_lettered} dead-lettered"
    )
    if engine.drain_problems or not clean or not engine.drained:
        problems = "; ".join(engine.drain_problems) or "stopped before everything was applied"
        log.warning("%s: drain incomplete (%s): %s", sync.name, summary, problems)
        return EXIT_FAILURE
    log.info("%s: drained (%s)", sync.name, summary)
    return EXIT_OK

"""``python run.py demo``: both stand-ins in this process on their default ports, the worker
against them, a live progress line, and on Ctrl-C a clean stop and a verified summary."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from contextlib import AsyncExitStack

from big_chat.app import WORLD
from big_chat.app import create_app as create_bigchat
from big_chat.settings import BigChatSettings
from big_chat.world import World
from our_api.app import create_app as create_ourapi
from our_api.settings import OurApiSettings

from .config import Settings
from .core.clock import utc
from .core.engine import Engine
from .core.health import serve_health
from .core.lock import AlreadyRunning, StateLock
from .core.serving import serve_app
from .core.stats import Stats
from .runner import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK, install_stop_signals, run_engine
from .worker import bigchat_worker

log = logging.getLogger("integration.demo")

# How the real BigChat is known to misbehave (api-contract.md), so the demo shows the worker
# coping with it. --no-faults turns it all off.
REAL_BIGCHAT = {
    "error_rate": 0.05,
    "duplicate_rate": 0.02,
    "late_rate": 0.02,
    "repeat_end_rate": 0.1,
    "missing_start_rate": 0.05,
    "after_end_rate": 0.02,
    "wrong_old_advisor_rate": 0.1,
    "shuffle": True,
    "ignore_end_at": True,
    "unreplayable": True,
}


def progress_line(stats: Stats, backlog: int, started: float) -> str:
    return (
        f"{int(time.monotonic() - started):>5}s  windows {stats.windows:>4}  "
        f"events new {stats.fetched_new:>6} dup {stats.fetched_duplicate:>4}  "
        f"applied {stats.applied:>6}  backlog {backlog:>5}  "
        f"dead letters {stats.dead_lettered:>3}  retries {stats.retries:>4}"
    )


async def show_progress(engine: Engine, started: float) -> None:
    tty = sys.stdout.isatty()
    every = 1.0 if tty else 10.0
    while True:
        await asyncio.sleep(every)
        status = await engine.store.status(engine.pipeline.name)
        line = progress_line(engine.stats, status.inbox["pending"], started)
        if tty:
            print(f"\r{line}", end="", flush=True)
        else:
            print(line, flush=True)


async def run_demo(settings: Settings, args: argparse.Namespace) -> int:
    demo_dir = args.dir
    demo_dir.mkdir(parents=True, exist_ok=True)
    lock = StateLock(settings.state_db)
    try:
        lock.acquire()
    except AlreadyRunning as exc:
        log.error("%s", exc)
        return EXIT_FAILURE
    bigchat_settings = BigChatSettings(
        seed=args.seed,
        history=args.history,
        conversation_rate=args.rate,
        **({} if args.no_faults else REAL_BIGCHAT),
    )
    bigchat_app = create_bigchat(bigchat_settings)
    ourapi_app = create_ourapi(OurApiSettings(db=str(demo_dir / "ourapi.db"), latency_ms=10))
    started = time.monotonic()
    stats = Stats()
    try:
        async with AsyncExitStack() as stack:
            try:
                bigchat = await stack.enter_async_context(
                    serve_app(bigchat_app, port=args.bigchat_port)
                )
                ourapi = await stack.enter_async_context(
                    serve_app(ourapi_app, port=args.ourapi_port)
                )
            except OSError as exc:
                print(
                    f"demo: cannot listen ({exc.strerror}); is another demo or stand-in running? "
                    "Choose other ports with --bigchat-port / --ourapi-port",
                    file=sys.stderr,
                )
                return EXIT_CONFIG
            world = bigchat_app[WORLD]
            settings = settings.model_copy(
                update={
                    "bigchat_url": bigchat.url,
                    "ourapi_url": ourapi.url,
                    "start_at": settings.start_at or utc(world.epoch),
                }
            )
            print(
                f"demo: BigChat stand-in on {bigchat.url} ({args.history:g} s of history, "
                f"{args.rate:g} conversations/s, "
                f"{'no faults' if args.no_faults else 'misbehaving like the real one'}), "
                f"OurAPI stand-in on {ourapi.url}, files in {demo_dir}/. Ctrl-C stops."
            )
            stopping = asyncio.Event()
            install_stop_signals(stopping)
            async with bigchat_worker(settings, stats=stats) as engine:
                if settings.metrics_port is not None:
                    try:
                        health = await stack.enter_async_context(
                            serve_health(engine, settings.metrics_host, settings.metrics_port)
                        )
                    except OSError as exc:
                        print(
                            f"demo: no /healthz or /metrics: port {settings.metrics_port} "
                            f"({exc.strerror}); choose another with --metrics-port"
                        )
                    else:
                        print(
                            f"demo: health on {health.url}/healthz, metrics on {health.url}/metrics"
                        )
                await run_engine(engine, stopping, alongside=lambda: show_progress(engine, started))
                status = await engine.store.status(engine.pipeline.name)
                cursor = status.cursors.get(engine.pipeline.name, 0.0)
            print()
            print("demo stopped cleanly.")
            print(progress_line(stats, status.inbox["pending"], started))
            await _verify_finished(settings, world, cursor)
    finally:
        lock.release()
    return EXIT_OK


async def _verify_finished(settings: Settings, world: World, cursor: float) -> None:
    """Verify the conversations whose whole life (last event included) lies before the cursor:
    those the worker has had every chance to fetch."""
    from .cli import print_report, verify_services

    ids = [
        cid
        for cid in world.conversation_ids(time.time())
        if world.script(cid).times[-1] < cursor - 1
    ]
    print(f"verifying the {len(ids)} conversation(s) that finished before the cursor:")
    report, _ = await verify_services(settings, ids)
    print_report(report)

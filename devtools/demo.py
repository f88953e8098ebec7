"""``python run.py demo``: both stand-ins in this process on their default ports, the worker
against them, a live progress line, and on Ctrl-C a clean stop and a verified summary."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from collections.abc import Iterator
from contextlib import AsyncExitStack, ExitStack, contextmanager
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.live import Live
from rich.text import Text

from big_chat.app import WORLD
from big_chat.app import create_app as create_bigchat
from big_chat.settings import BigChatSettings
from big_chat.world import World
from integration.core.clock import utc
from integration.core.commands import (
    SETTING,
    load_settings,
    run_async,
    settings_options,
    start_logging,
)
from integration.core.durations import parse_duration
from integration.core.engine import Engine
from integration.core.health import serve_health
from integration.core.lock import AlreadyRunning, StateLock
from integration.core.logs import logs_through
from integration.core.serving import serve_app
from integration.core.shell import (
    EXIT_CONFIG,
    EXIT_FAILURE,
    EXIT_OK,
    install_stop_signals,
    open_engine,
    run_engine,
)
from integration.core.stats import Stats
from integration.pipelines.bigchat_ourapi import SYNC as BIGCHAT
from integration.pipelines.bigchat_ourapi.settings import BigChatOurApiSettings as Settings
from our_api.app import create_app as create_ourapi
from our_api.settings import OurApiSettings

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


LEGEND = (
    "status line: events new/dup = served by /events for the first time/again; applied also "
    "counts events taken from conversation histories and recovery (so it is neither new nor "
    "new + dup); python run.py demo --help explains each counter"
)

PLAIN_EVERY = 5.0
"""Seconds between two progress lines when stdout is not a terminal (a pipe, a file, CI)."""

LIVE_EVERY = 1.0
"""Seconds between two redraws of the live status line on a terminal."""


def progress_line(stats: Stats, backlog: int, started: float) -> str:
    return (
        f"{int(time.monotonic() - started):>5}s  windows {stats.windows:>4}  "
        f"events new {stats.fetched_new:>6} dup {stats.fetched_duplicate:>4}  "
        f"applied {stats.applied:>6}  backlog {backlog:>5}  "
        f"dead letters {stats.dead_lettered:>3}  retries {stats.retries:>4}"
    )


async def _line(engine: Engine, started: float) -> str:
    status = await engine.store.status(engine.pipeline.name)
    return progress_line(engine.stats, status.inbox["pending"], started)


async def show_progress(engine: Engine, started: float, live: Live | None) -> None:
    """On a terminal (``live``), a status line kept at the bottom, log lines above it; else a
    plain line every few seconds, so a log file or CI output is whole lines only."""
    while True:
        await asyncio.sleep(LIVE_EVERY if live is not None else PLAIN_EVERY)
        line = await _line(engine, started)
        if live is not None:
            live.update(Text(line), refresh=True)
        else:
            print(line, flush=True)


@contextmanager
def status_display() -> Iterator[Live | None]:
    """A rich ``Live`` line when stdout is a terminal (None otherwise). Log records go through
    its console while it shows, so they print above it instead of into it; when stderr is not
    the terminal (``2>demo.log``) they stay where they were sent."""
    if not sys.stdout.isatty():
        yield None
        return
    console = Console()
    with ExitStack() as stack:
        live = stack.enter_context(
            Live(
                Text(f"{0:>5}s  starting..."),
                console=console,
                auto_refresh=False,
                transient=True,
                redirect_stdout=True,
                redirect_stderr=False,
            )
        )
        if sys.stderr.isatty():
            stack.enter_context(logs_through(console))
        yield live


async def run_demo(settings: Settings, args: argparse.Namespace) -> int:
    from integration.core.sync import seconds_text as duration_text

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
                f"demo: BigChat stand-in on {bigchat.url} "
                f"({duration_text(args.history)} of history, "
                f"{args.rate:g} conversations/s, "
                f"{'no faults' if args.no_faults else 'misbehaving like the real one'}), "
                f"OurAPI stand-in on {ourapi.url}, files in {demo_dir}/. Ctrl-C stops."
            )
            stopping = asyncio.Event()
            install_stop_signals(stopping)
            async with open_engine(BIGCHAT, settings, stats=stats) as engine:
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
                print(LEGEND)
                with status_display() as live:
                    await run_engine(
                        engine, stopping, alongside=lambda: show_progress(engine, started, live)
                    )
                status = await engine.store.status(engine.pipeline.name)
                cursor = status.cursors.get(engine.pipeline.name, 0.0)
            print("demo stopped cleanly.")
            print(progress_line(stats, status.inbox["pending"], started))
            await _verify_finished(settings, world, cursor)
    finally:
        lock.release()
    return EXIT_OK


async def _verify_finished(settings: Settings, world: World, cursor: float) -> None:
    """Verify the conversations whose whole life (last event included) lies before the cursor:
    those the worker has had every chance to fetch."""
    from integration.pipelines.bigchat_ourapi.commands import print_report, verify_services

    ids = [
        cid
        for cid in world.conversation_ids(time.time())
        if world.script(cid).times[-1] < cursor - 1
    ]
    print(f"verifying the {len(ids)} conversation(s) that finished before the cursor:")
    report, _ = await verify_services(settings, ids)
    print_report(report)


# -- the command ---------------------------------------------------------------------------

DEMO_EPILOG = (
    "The status line, counted since the demo started: windows = /events time windows fetched "
    "to their last page; events new = events /events served that the inbox did not have; dup "
    "= events /events served again (already in the inbox, not applied twice); applied = inbox "
    "entries applied to OurAPI, including events taken from a conversation's history when the "
    "worker first meets it and events found by recovery, which /events never served: so it is "
    "neither new nor new + dup; backlog = inbox entries waiting to be applied; dead letters = "
    "entries set aside (see the dead-letters command); retries = attempts to apply an entry "
    "that failed for a passing reason and were retried. Every other worker setting is read "
    "from the environment or .env as for run."
)
FOR_DEMO = (
    "poll_interval",
    "concurrency",
    "metrics_port",
    "metrics_host",
    "log_level",
    "log_format",
)
DEMO_DEFAULTS: dict[str, Any] = {"poll_interval": 2.0, "metrics_port": 8268}
"""The demo's own defaults; its state is in --dir."""


def _duration(ctx: click.Context, param: click.Parameter, value: str) -> float:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@click.command(
    "demo",
    short_help="start both stand-ins in this process and run the worker against them",
    help="Start the BigChat and OurAPI stand-ins in this process, run the worker against them "
    "with a live status line, and on Ctrl-C stop cleanly and verify.",
    epilog=DEMO_EPILOG,
)
@click.option(
    "--bigchat-port", type=int, default=8267, help="BigChat stand-in's port (default: 8267)"
)
@click.option(
    "--ourapi-port", type=int, default=8266, help="OurAPI stand-in's port (default: 8266)"
)
@click.option("--seed", type=int, default=1, help="BigChat's world follows from it (default: 1)")
@click.option(
    "--history",
    default="10m",
    metavar="DURATION",
    callback=_duration,
    help="conversations BigChat already has at start: 90, 90s, 10m, 1h30m, 2d (default: 10m)",
)
@click.option("--rate", type=float, default=0.5, help="new conversations per second (default: 0.5)")
@click.option(
    "--no-faults",
    is_flag=True,
    help="a well-behaved BigChat (default: off, BigChat misbehaves like the real one)",
)
@click.option(
    "--dir",
    type=click.Path(path_type=Path),
    default=None,
    help="where the demo keeps its files (default: demo-YYYYMMDD-HHMMSS)",
)
@settings_options(Settings, FOR_DEMO, DEMO_DEFAULTS)
def command(**options: Any) -> None:
    demo_dir = options["dir"] or Path(f"demo-{time.strftime('%Y%m%d-%H%M%S')}")
    options["dir"] = demo_dir
    settings = load_settings(Settings, options, state_db=demo_dir / "state.db", **DEMO_DEFAULTS)
    start_logging(settings)
    args = argparse.Namespace(**{k: v for k, v in options.items() if not k.startswith(SETTING)})
    sys.exit(run_async(run_demo(settings, args)))

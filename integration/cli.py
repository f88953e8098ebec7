"""``python run.py [command]``: run the worker, a self-contained demo, and look at its state."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import aiohttp
from pydantic import ValidationError

from .config import Settings, explain
from .connectors.bigchat.client import BigChatClient
from .connectors.ourapi.client import OurApiClient
from .core.clock import iso
from .core.health import serve_health
from .core.http import HttpService
from .core.lock import AlreadyRunning, StateLock
from .core.store import SQLiteStore, StateError
from .logs import setup_logging
from .pipelines.bigchat_ourapi.pipeline import STATES
from .pipelines.bigchat_ourapi.verify import Repairs, Report, repair, verify
from .runner import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK, install_stop_signals, run_engine
from .worker import bigchat_worker

log = logging.getLogger("integration")

SOURCE = "bigchat"

PLUGINS = (
    "integration.pipelines.tracos_erp.cli",
    "integration.bench.cli",
)
"""Modules adding commands of their own: each has ``register(commands)``, which adds its
sub-parsers and sets ``entry=`` (a function of the parsed arguments returning the exit status)
with ``set_defaults``. Such a command reads its own settings; nothing here needs to change."""


# -- arguments -----------------------------------------------------------------------------


def _add_setting_flags(parser: argparse.ArgumentParser) -> None:
    """Every setting as a flag (``STATE_DB`` as ``--state-db``); a flag wins over the
    environment and ``.env``."""
    group = parser.add_argument_group("settings (also from the environment or .env)")
    for name, field in Settings.model_fields.items():
        group.add_argument(
            f"--{name.replace('_', '-')}",
            dest=f"setting_{name}",
            metavar=name.upper(),
            default=None,
            help=field.description or f"default: {field.default}",
        )


def _settings(args: argparse.Namespace, **defaults: Any) -> Settings:
    overrides = {
        key.removeprefix("setting_"): value
        for key, value in vars(args).items()
        if key.startswith("setting_") and value is not None
    }
    return Settings(**{**defaults, **overrides})


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python run.py",
        description="Integration worker: keeps OurAPI's chats, agents and messages in step with "
        "BigChat.",
    )
    commands = parser.add_subparsers(dest="command", metavar="command")
    run = commands.add_parser("run", help="run the worker (the default)")
    _add_setting_flags(run)
    demo = commands.add_parser(
        "demo", help="start both stand-ins in this process and run the worker against them"
    )
    demo.add_argument("--bigchat-port", type=int, default=8267)
    demo.add_argument("--ourapi-port", type=int, default=8266)
    demo.add_argument("--seed", type=int, default=1)
    demo.add_argument("--history", type=float, default=600, help="seconds of past conversations")
    demo.add_argument("--rate", type=float, default=0.5, help="new conversations per second")
    demo.add_argument(
        "--no-faults", action="store_true", help="a well-behaved BigChat (default: the real one's)"
    )
    demo.add_argument("--dir", type=Path, default=None, help="where the demo keeps its files")
    _add_setting_flags(demo)
    status = commands.add_parser("status", help="cursor, backlog, dead letters, id maps")
    _add_setting_flags(status)
    dead = commands.add_parser("dead-letters", help="list dead letters, or put them back")
    dead.add_argument(
        "--retry", metavar="ID|all", action="append", help="put back one (repeatable) or all"
    )
    _add_setting_flags(dead)
    check = commands.add_parser("verify", help="compare BigChat with OurAPI")
    check.add_argument(
        "--conversations", metavar="A-B", help="a range of conversation ids (default: those seen)"
    )
    check.add_argument(
        "--repair",
        action="store_true",
        help="fix what can be fixed idempotently (missing chats, fields, messages); "
        "best with the worker stopped",
    )
    _add_setting_flags(check)
    for module in PLUGINS:
        importlib.import_module(module).register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        argv.insert(0, "run")
    args = build_parser().parse_args(argv)
    entry: Callable[[argparse.Namespace], int] | None = getattr(args, "entry", None)
    if entry is not None:
        return entry(args)
    defaults: dict[str, Any] = {}
    if args.command == "demo":
        demo_dir = args.dir or Path(f"demo-{time.strftime('%Y%m%d-%H%M%S')}")
        args.dir = demo_dir
        defaults = {"state_db": demo_dir / "state.db", "poll_interval": 2.0, "metrics_port": 8268}
    try:
        settings = _settings(args, **defaults)
    except ValidationError as exc:
        print(f"configuration error: {explain(exc)}", file=sys.stderr)
        return EXIT_CONFIG
    setup_logging(settings.log_level, settings.log_format)
    command = {
        "run": cmd_run,
        "demo": cmd_demo,
        "status": cmd_status,
        "dead-letters": cmd_dead_letters,
        "verify": cmd_verify,
    }[args.command]
    try:
        return asyncio.run(command(settings, args))
    except KeyboardInterrupt:
        return EXIT_FAILURE


# -- run -----------------------------------------------------------------------------------


async def cmd_run(settings: Settings, args: argparse.Namespace) -> int:
    lock = StateLock(settings.state_db)
    try:
        lock.acquire()
    except AlreadyRunning as exc:
        log.error("%s", exc)
        return EXIT_FAILURE
    try:
        stopping = asyncio.Event()
        install_stop_signals(stopping, asyncio.current_task())
        log.info(
            "worker starting: BigChat %s, OurAPI %s, state %s, poll every %gs",
            settings.bigchat_url,
            settings.ourapi_url,
            settings.state_db,
            settings.poll_interval,
        )
        async with AsyncExitStack() as stack:
            engine = await stack.enter_async_context(bigchat_worker(settings))
            if settings.metrics_port is not None:
                served = await stack.enter_async_context(
                    serve_health(engine, settings.metrics_host, settings.metrics_port)
                )
                log.info("health on %s/healthz, metrics on %s/metrics", served.url, served.url)
            clean = await run_engine(engine, stopping)
        log.info("worker stopped%s", "" if clean else " (a poll was cut short; will reconcile)")
        return EXIT_OK
    except (OSError, StateError) as exc:
        log.error("cannot run: %s", exc)
        return EXIT_FAILURE
    finally:
        lock.release()


# -- status and dead letters ---------------------------------------------------------------


async def _open_existing(settings: Settings) -> SQLiteStore | None:
    if not settings.state_db.exists():
        print(f"no state at {settings.state_db} (the worker has not run with this STATE_DB)")
        return None
    store = SQLiteStore(settings.state_db)
    await store.open()
    return store


def _ago(ts: float) -> str:
    seconds = max(0, int(time.time() - ts))
    if seconds < 120:
        return f"{seconds} s ago"
    if seconds < 7200:
        return f"{seconds // 60} min ago"
    return f"{seconds // 3600} h ago"


async def cmd_status(settings: Settings, args: argparse.Namespace) -> int:
    store = await _open_existing(settings)
    if store is None:
        return EXIT_FAILURE
    try:
        status = await store.status(SOURCE)
        running = await store.meta_get(f"running:{SOURCE}")
    finally:
        await store.close()
    cursor = status.cursors.get(SOURCE)
    print(f"state            {settings.state_db}")
    print(f"worker           {'running, or stopped uncleanly' if running else 'stopped cleanly'}")
    if cursor is not None:
        print(f"cursor           {iso(cursor)} ({_ago(cursor)})")
    else:
        print("cursor           not set yet")
    inbox = status.inbox
    print(
        f"inbox            {inbox['pending']} pending, {inbox['done']} done, {inbox['dead']} dead"
    )
    if status.oldest_pending_at is not None:
        print(f"oldest pending   event of {iso(status.oldest_pending_at)}")
    print(
        f"dead letters     {status.dead_letters} "
        f"({status.blocked_keys} conversation(s) waiting behind one)"
    )
    maps = ", ".join(f"{name} {count}" for name, count in sorted(status.maps.items())) or "empty"
    print(f"id maps          {maps}")
    return EXIT_OK


async def cmd_dead_letters(settings: Settings, args: argparse.Namespace) -> int:
    store = await _open_existing(settings)
    if store is None:
        return EXIT_FAILURE
    try:
        if args.retry:
            if "all" in args.retry:
                ids: list[int] | None = None
            else:
                try:
                    ids = [int(value) for value in args.retry]
                except ValueError:
                    print("--retry takes a dead letter's id, or 'all'", file=sys.stderr)
                    return EXIT_CONFIG
            count = await store.retry_dead_letters(ids)
            print(f"put back {count} dead letter(s); the worker applies them on its next pass")
            return EXIT_OK
        letters = await store.dead_letters(SOURCE)
    finally:
        await store.close()
    if not letters:
        print("no dead letters")
        return EXIT_OK
    print(f"{'id':>5}  {'conversation':>12}  {'kind':<9} {'when':<20} reason")
    for d in letters:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(d.created_at))
        blocks = " [blocks its conversation]" if d.blocking else ""
        print(f"{d.id:>5}  {d.key:>12}  {d.kind:<9} {when:<20} {d.reason}{blocks}")
    print(f"{len(letters)} dead letter(s); put back with --retry ID or --retry all")
    return EXIT_OK


# -- verify --------------------------------------------------------------------------------


def _range(text: str) -> list[int]:
    low, _, high = text.partition("-")
    first, last = int(low), int(high or low)
    if first < 1 or last < first:
        raise ValueError(text)
    return list(range(first, last + 1))


async def verify_services(
    settings: Settings, ids: list[int], *, fix: bool = False
) -> tuple[Report, Repairs | None]:
    """Verify ``ids``; with ``fix``, repair what can be repaired and verify again."""
    async with aiohttp.ClientSession() as session:
        bigchat = BigChatClient(
            HttpService(
                "bigchat",
                str(settings.bigchat_url),
                session,
                max_in_flight=settings.bigchat_max_in_flight,
                timeout=settings.http_timeout,
            )
        )
        ourapi = OurApiClient(
            HttpService(
                "ourapi",
                str(settings.ourapi_url),
                session,
                max_in_flight=settings.ourapi_max_in_flight,
                timeout=settings.http_timeout,
            )
        )
        report = await verify(bigchat, ourapi, ids)
        if not fix or report.ok:
            return report, None
        print_report(report)
        repairs = await repair(bigchat, ourapi, report)
        for line in repairs.done:
            print(f"repaired: {line}")
        for line in repairs.impossible:
            print(f"cannot repair: {line}")
        return await verify(bigchat, ourapi, ids), repairs


def print_report(report: Report) -> None:
    if report.findings:
        print(f"{'conversation':>12}  {'problem':<22} detail")
        for f in report.findings:
            print(f"{f.conversation_id:>12}  {f.problem:<22} {f.detail}")
    for email, count in sorted(report.duplicated_agents.items()):
        print(f"{'':>12}  {'duplicated agent':<22} {count} agents with e-mail {email}")
    problems = {f.problem for f in report.findings}
    counts = ", ".join(f"{report.count(p)} {p}" for p in sorted(problems)) or "no differences"
    print(
        f"verify: {report.conversations} conversation(s), {report.chats} chat(s), "
        f"{report.messages_held}/{report.messages_expected} message(s): "
        f"{'OK' if report.ok else 'DIFFERENT'}, {counts}"
    )


async def cmd_verify(settings: Settings, args: argparse.Namespace) -> int:
    if args.conversations:
        try:
            ids = _range(args.conversations)
        except ValueError:
            print("--conversations takes a range like 1-500", file=sys.stderr)
            return EXIT_CONFIG
    else:
        store = await _open_existing(settings)
        if store is None:
            return EXIT_FAILURE
        try:
            ids = sorted(int(k) for k in await store.map_keys(STATES))
        finally:
            await store.close()
    report, _ = await verify_services(settings, ids, fix=args.repair)
    print_report(report)
    return EXIT_OK if report.ok else EXIT_FAILURE


# -- demo ----------------------------------------------------------------------------------


async def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    from .demo import run_demo  # the stand-ins are imported only for the demo

    return await run_demo(settings, args)

"""``python run.py tracos [--once]`` and ``python run.py tracos sample --orders N``.

Registered by ``integration/cli.py``'s plug-in hook; each command reads its own settings, sets
up logging and returns its exit status (0 done, 1 something failed, 2 bad configuration).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import sys
from typing import Any

from pydantic import ValidationError

from ...config import explain
from ...connectors.erp_files.files import write_atomic
from ...core.clock import SystemClock, utc
from ...core.errors import IntegrationError
from ...logs import setup_logging
from ...runner import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK, install_stop_signals
from .sample import file_bytes, sample_documents, sample_files
from .settings import TracosSettings
from .sync import run_forever, run_pass, tracos_sync

log = logging.getLogger("integration.tracos")


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 (got {value})")
    return value


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "tracos",
        help="TracOS work orders (MongoDB) <-> ERP JSON files",
        description="Sync work orders between TracOS (MongoDB) and the ERP's JSON files: "
        "inbound then outbound, every POLL_INTERVAL seconds. Settings come from the "
        "environment or .env (MONGO_URI, MONGO_DATABASE, MONGO_COLLECTION, DATA_INBOUND_DIR, "
        "DATA_OUTBOUND_DIR, POLL_INTERVAL, MONGO_TIMEOUT, MONGO_MAX_TRIES, MAX_FILE_BYTES, "
        "LOG_LEVEL, LOG_FORMAT).",
    )
    parser.add_argument(
        "--once",
        action="store_true",
        help="one pass, then exit: 0 when every file and document was handled or set aside, "
        "1 when anything failed",
    )
    sub = parser.add_subparsers(dest="tracos_command", metavar="command")
    sample = sub.add_parser(
        "sample", help="write N sample ERP files into the inbound folder and N work orders"
    )
    sample.add_argument("--orders", type=_positive, required=True, metavar="N")
    sample.add_argument("--first", type=int, default=1, help="first order number (default 1)")
    sample.add_argument("--seed", type=int, default=None, help="for a repeatable sample")
    parser.set_defaults(entry=main)


def main(args: argparse.Namespace) -> int:
    try:
        settings = TracosSettings()
    except ValidationError as exc:
        print(f"configuration error: {explain(exc)}", file=sys.stderr)
        return EXIT_CONFIG
    setup_logging(settings.log_level, settings.log_format)
    if args.tracos_command == "sample":
        command = write_sample(settings, args.orders, args.first, args.seed)
    elif args.once:
        command = once(settings)
    else:
        command = forever(settings)
    try:
        return asyncio.run(command)
    except KeyboardInterrupt:
        return EXIT_FAILURE


async def once(settings: TracosSettings) -> int:
    try:
        async with tracos_sync(settings) as sync:
            report = await run_pass(sync)
    except OSError as exc:
        log.error("cannot run: %s", exc)
        return EXIT_FAILURE
    return EXIT_OK if report.ok else EXIT_FAILURE


async def forever(settings: TracosSettings) -> int:
    stopping = asyncio.Event()
    install_stop_signals(stopping, asyncio.current_task())
    log.info(
        "tracos sync starting: MongoDB %s.%s, inbound %s, outbound %s, every %gs",
        settings.mongo_database,
        settings.mongo_collection,
        settings.data_inbound_dir,
        settings.data_outbound_dir,
        settings.poll_interval,
    )
    try:
        async with tracos_sync(settings) as sync:
            await run_forever(sync, settings.poll_interval, stopping)
    except asyncio.CancelledError:
        log.warning("stopped at once; unfinished work is picked up by the next run")
        return EXIT_FAILURE
    except OSError as exc:
        log.error("cannot run: %s", exc)
        return EXIT_FAILURE
    log.info("tracos sync stopped")
    return EXIT_OK


async def write_sample(settings: TracosSettings, count: int, first: int, seed: int | None) -> int:
    rng = random.Random(seed)
    clock = SystemClock()
    now = utc(clock.now())
    inbound = settings.data_inbound_dir
    try:
        inbound.mkdir(parents=True, exist_ok=True)
        for order in sample_files(count, first, now, rng):
            # Atomically, as a well-behaved ERP would, so a running sync never reads half a file.
            await asyncio.to_thread(
                write_atomic, inbound, f"{order['orderNo']}.json", file_bytes(order)
            )
    except OSError as exc:
        log.error("cannot write sample files: %s", exc)
        return EXIT_FAILURE
    # Documents overlap half the files' numbers, so both directions and newer-wins show.
    docs = sample_documents(count, first + count // 2, now, rng)
    try:
        async with tracos_sync(settings, clock=clock) as sync:
            for doc in docs:
                await sync.store.put(doc)
    except IntegrationError as exc:
        log.error("sample work orders not written: %s", exc)
        return EXIT_FAILURE
    log.info(
        "sample: %d ERP files in %s (orders %d-%d), %d work orders in %s.%s (orders %d-%d)",
        count,
        inbound,
        first,
        first + count - 1,
        count,
        settings.mongo_database,
        settings.mongo_collection,
        first + count // 2,
        first + count // 2 + count - 1,
    )
    return EXIT_OK

"""TracOS's own command, besides the ones every sync has (run, status, dead-letters):
``python run.py tracos sample --orders N``, sample data to try the sync out.

Exit status: 0 the whole sample was written, 1 MongoDB could not be reached, a write failed or
it was interrupted (it then says how far it got), 2 bad configuration.
"""

from __future__ import annotations

import asyncio
import logging
import random
import signal
import sys
from dataclasses import dataclass
from typing import Any

import click

from ...connectors.erp_files.files import write_atomic
from ...core.clock import SystemClock, utc
from ...core.commands import load_settings, run_async, settings_options, start_logging
from ...core.errors import IntegrationError
from ...core.shell import EXIT_FAILURE, EXIT_OK
from .sample import file_bytes, sample_documents, sample_files
from .settings import TracosSettings, unanswered, work_orders

log = logging.getLogger("integration.tracos")

SAMPLE_SETTINGS = (
    "mongo_uri",
    "mongo_database",
    "mongo_collection",
    "mongo_timeout",
    "mongo_max_tries",
    "data_inbound_dir",
    "log_level",
    "log_format",
)
"""The settings the sample uses, and so the only ones it takes as flags."""


@dataclass
class SampleProgress:
    """How far ``sample`` got, for the line an interrupted one ends with."""

    settings: TracosSettings
    count: int
    files: int = 0
    orders: int = 0

    def summary(self) -> str:
        s = self.settings
        return (
            f"{self.files} of {self.count} ERP files written to {s.data_inbound_dir}, "
            f"{self.orders} of {self.count} work orders stored in "
            f"{s.mongo_database}.{s.mongo_collection}"
        )


@click.command(
    "sample",
    short_help="write sample ERP files and work orders, to try the sync out",
    epilog="Exit status: 0 the whole sample was written, 1 MongoDB could not be reached, a "
    "write failed or it was interrupted (it then says how far it got), 2 bad configuration.",
)
@click.option(
    "--orders",
    type=click.IntRange(min=1),
    required=True,
    metavar="N",
    help="how many ERP files, and how many work orders, to write (required, at least 1)",
)
@click.option(
    "--first",
    type=int,
    default=1,
    metavar="NUMBER",
    help="number of the first ERP order; the work orders start half-way through (default: 1)",
)
@click.option(
    "--seed",
    type=int,
    default=None,
    help="random seed, for a repeatable sample (default: none, a different sample each run)",
)
@settings_options(TracosSettings, SAMPLE_SETTINGS)
def sample(orders: int, first: int, seed: int | None, **params: Any) -> None:
    """Write N sample ERP files into DATA_INBOUND_DIR and N work orders into MongoDB (half of
    their numbers overlap), to try the sync out. Running it again with the same numbers
    overwrites them."""
    settings = load_settings(TracosSettings, params)  # exits 2 on a bad setting, said in a line
    start_logging(settings)
    sys.exit(run_async(write_sample(settings, orders, first, seed)))


def _stop_on_signals(stopping: asyncio.Event) -> list[str]:
    """SIGINT/SIGTERM set ``stopping``; the names of the signals received, for the log."""
    received: list[str] = []
    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        received.append(signal.Signals(signum).name)
        stopping.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal, signum)
    return received


async def write_sample(settings: TracosSettings, count: int, first: int, seed: int | None) -> int:
    """Write the sample; a signal stops it at once (every write in it is safe to redo), and it
    then says how far it got and exits 1: an interrupted sample is not a sample."""
    stopping = asyncio.Event()
    received = _stop_on_signals(stopping)
    progress = SampleProgress(settings, count)
    work = asyncio.ensure_future(_write_sample(settings, first, seed, progress))
    stop = asyncio.ensure_future(stopping.wait())
    try:
        await asyncio.wait({work, stop}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (work, stop):
            task.cancel()
        await asyncio.gather(work, stop, return_exceptions=True)
    if not work.cancelled():
        return work.result()
    log.error(
        "sample interrupted (%s): %s; run it again to finish",
        received[0] if received else "stopped",
        progress.summary(),
    )
    return EXIT_FAILURE


async def _write_sample(
    settings: TracosSettings, first: int, seed: int | None, progress: SampleProgress
) -> int:
    count = progress.count
    rng = random.Random(seed)
    now = utc(SystemClock().now())
    inbound = settings.data_inbound_dir
    async with work_orders(settings) as store:
        # First, so an unreachable MongoDB leaves no half-written sample behind.
        if (problem := await unanswered(store)) is not None:
            print(f"tracos: {problem}", file=sys.stderr)
            return EXIT_FAILURE
        try:
            inbound.mkdir(parents=True, exist_ok=True)
            for order in sample_files(count, first, now, rng):
                # Atomically, as a well-behaved ERP would, so a running sync never reads half
                # a file.
                await asyncio.to_thread(
                    write_atomic, inbound, f"{order['orderNo']}.json", file_bytes(order)
                )
                progress.files += 1
        except OSError as exc:
            log.error("cannot write sample files: %s", exc)
            return EXIT_FAILURE
        # Documents overlap half the files' numbers, so both directions and newer-wins show.
        docs = sample_documents(count, first + count // 2, now, rng)
        try:
            for doc in docs:
                await store.put(doc)
                progress.orders += 1
        except IntegrationError as exc:
            log.error("sample incomplete: %s (%s)", exc, progress.summary())
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

"""``python run.py intempus demo``: the Intempus and case store stand-ins in this process on their
default ports, sample cases on both sides, a simulated user editing both, the sync against them
with a live status line, and on Ctrl-C a settled, verified finish."""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import sys
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import aiohttp
import click
from pydantic import SecretStr
from rich.live import Live
from rich.text import Text

from case_store import CaseStoreSettings
from case_store import create_app as create_case_store
from devtools.demo import LIVE_EVERY, PLAIN_EVERY, status_display
from integration.core.commands import (
    SETTING,
    load_settings,
    run_async,
    settings_options,
    start_logging,
)
from integration.core.engine import Engine, EngineFailed
from integration.core.lock import AlreadyRunning, StateLock
from integration.core.serving import serve_app
from integration.core.shell import (
    EXIT_CONFIG,
    EXIT_FAILURE,
    install_stop_signals,
    open_engine,
    run_engine,
)
from integration.core.stats import Stats
from integration.pipelines.intempus_cases import SYNC
from integration.pipelines.intempus_cases.commands import run_verify
from integration.pipelines.intempus_cases.links import CONFLICTS
from integration.pipelines.intempus_cases.settings import IntempusSettings as Settings
from integration.pipelines.intempus_cases.source import SCAN_DUE
from intempus import IntempusSettings as IntempusStandIn
from intempus import create_app as create_intempus
from intempus.settings import DEFAULT_API_KEY, DEFAULT_USER

from .edits import case_fields, edit_fields, for_intempus

log = logging.getLogger("integration.demo")

MILD_FAULTS: dict[str, Any] = {"error_rate": 0.02, "ambiguous_rate": 0.01, "latency_ms": 5.0}
"""Both stand-ins, unless --no-faults: a few 500s, a few writes committed and then answered 500,
a little latency. Enough to see retries and idempotent creates at work, not enough to hide the
sync's progress."""

SETTLE_DRAINS = 2
"""Drains after the user stops: the first with a full scan of Intempus (the only way to see the
user's Intempus deletes), the second to apply what the first one's writes made visible."""

CREATE_SHARE = 0.2
DELETE_SHARE = 0.04
"""Of the simulated user's edits: creates, deletes (the odd one); the rest edit fields."""


class User:
    """A person editing both sides through the stand-ins' user routes: Intempus's ``/_standin/``
    UI routes, the case store's API without ``X-Sync-Origin``. A write a fault refuses is simply
    lost, as it would be for a person who gives up."""

    def __init__(self, http: aiohttp.ClientSession, intempus: str, local: str, seed: int) -> None:
        self.http = http
        self.intempus = intempus
        self.local = local
        self.rng = random.Random(seed)
        self.edits = 0
        self.refused = 0
        self._number = 10_000

    def _next_number(self) -> str:
        self._number += 1
        return str(self._number)

    async def intempus_ids(self) -> list[int]:
        async with self.http.get(f"{self.intempus}/_standin/truth") as response:
            doc = await response.json()
        return [int(case["id"]) for case in doc["cases"]]

    async def local_ids(self) -> list[int]:
        async with self.http.get(f"{self.local}/_standin/truth") as response:
            doc = await response.json()
        return [int(case["id"]) for case in doc["cases"] if not case["deleted"]]

    async def _write(self, method: str, url: str, body: dict[str, Any] | None = None) -> bool:
        try:
            async with self.http.request(method, url, json=body) as response:
                ok = response.status < 400
        except aiohttp.ClientError:
            ok = False
        self.edits += ok
        self.refused += not ok
        return ok

    async def create_local(self) -> bool:
        return await self._write(
            "POST", f"{self.local}/cases/", case_fields(self.rng, self._next_number())
        )

    async def create_intempus(self) -> bool:
        body = for_intempus(case_fields(self.rng, self._next_number()))
        return await self._write("POST", f"{self.intempus}/_standin/cases", body)

    async def act(self) -> None:
        """One edit: a create, an edit of one or two fields, or the odd delete, on either side."""
        on_intempus = self.rng.random() < 0.5
        draw = self.rng.random()
        if draw < CREATE_SHARE:
            await (self.create_intempus() if on_intempus else self.create_local())
            return
        ids = await (self.intempus_ids() if on_intempus else self.local_ids())
        if not ids:
            return
        case = self.rng.choice(ids)
        if draw < CREATE_SHARE + DELETE_SHARE:
            base = f"{self.intempus}/_standin/cases" if on_intempus else f"{self.local}/cases"
            await self._write("DELETE", f"{base}/{case}")
        elif on_intempus:
            edit = for_intempus(edit_fields(self.rng))
            await self._write("POST", f"{self.intempus}/_standin/cases/{case}/touch", edit)
        else:
            await self._write("PATCH", f"{self.local}/cases/{case}", edit_fields(self.rng))

    async def run(self, rate: float) -> None:
        while True:
            await asyncio.sleep(self.rng.expovariate(rate))
            await self.act()


async def _count(http: aiohttp.ClientSession, url: str, live_only: bool) -> int:
    async with http.get(f"{url}/_standin/truth") as response:
        doc = await response.json()
    return sum(1 for case in doc["cases"] if not (live_only and case["deleted"]))


async def status_line(
    engine: Engine, http: aiohttp.ClientSession, urls: tuple[str, str], user: User, started: float
) -> str:
    intempus, local = urls
    async with http.get(f"{intempus}/_standin/stats") as response:
        requests = (await response.json())["total"]
    conflicts = sum([1 async for _ in engine.store.map_iter(CONFLICTS)])
    stats = engine.stats
    return (
        f"{int(time.monotonic() - started):>5}s  cases Intempus "
        f"{await _count(http, intempus, False):>4} local {await _count(http, local, True):>4}  "
        f"user edits {user.edits:>4}  applied {stats.applied:>5}  conflicts {conflicts:>3}  "
        f"dead letters {stats.dead_lettered:>3}  requests to Intempus {requests:>5}"
    )


async def show_status(
    engine: Engine,
    http: aiohttp.ClientSession,
    urls: tuple[str, str],
    user: User,
    started: float,
    live: Live | None,
) -> None:
    """The live line on a terminal, a plain line every few seconds otherwise (see
    ``devtools.demo.status_display``)."""
    while True:
        await asyncio.sleep(LIVE_EVERY if live is not None else PLAIN_EVERY)
        line = await status_line(engine, http, urls, user, started)
        if live is not None:
            live.update(Text(line), refresh=True)
        else:
            print(line, flush=True)


async def _set_faults(http: aiohttp.ClientSession, url: str, faults: dict[str, Any]) -> None:
    async with http.patch(f"{url}/_standin/faults", json=faults) as response:
        response.raise_for_status()


async def _seed_local(user: User, cases: int) -> None:
    """Sample cases in the case store, written while it has no faults (so all of them land)."""
    for _ in range(cases):
        if not await user.create_local():
            raise RuntimeError("the case store refused a sample case")


async def run_demo(settings: Settings, args: argparse.Namespace) -> int:
    args.dir.mkdir(parents=True, exist_ok=True)
    lock = StateLock(settings.state_db)
    try:
        lock.acquire()
    except AlreadyRunning as exc:
        log.error("%s", exc)
        return EXIT_FAILURE
    try:
        return await _demo(settings, args)
    finally:
        lock.release()


async def _demo(settings: Settings, args: argparse.Namespace) -> int:
    intempus_app = create_intempus(
        IntempusStandIn(db=str(args.dir / "intempus.db"), seed=args.seed, cases=args.cases)
    )
    local_app = create_case_store(CaseStoreSettings(db=str(args.dir / "case_store.db")))
    stats = Stats()
    async with AsyncExitStack() as stack:
        try:
            intempus = await stack.enter_async_context(
                serve_app(intempus_app, port=args.intempus_port)
            )
            local = await stack.enter_async_context(serve_app(local_app, port=args.case_store_port))
        except OSError as exc:
            print(
                f"demo: cannot listen ({exc.strerror}); is another demo or stand-in running? "
                "Choose other ports with --intempus-port / --case-store-port",
                file=sys.stderr,
            )
            return EXIT_CONFIG
        http = await stack.enter_async_context(aiohttp.ClientSession())
        settings = settings.model_copy(
            update={
                "intempus_url": intempus.url,
                "case_store_url": local.url,
                "intempus_user": DEFAULT_USER,
                "intempus_api_key": SecretStr(DEFAULT_API_KEY),
            }
        )
        user = User(http, intempus.url, local.url, args.seed)
        await _seed_local(user, args.cases)
        user.edits = 0
        if not args.no_faults:
            for url in (intempus.url, local.url):
                await _set_faults(http, url, MILD_FAULTS)
        print(
            f"demo: Intempus stand-in on {intempus.url}, case store on {local.url}, "
            f"{args.cases} sample case(s) on each; a user edits both at {args.rate:g}/s; "
            f"{'no faults' if args.no_faults else 'mild faults on both'}; "
            f"files in {args.dir}/. Ctrl-C stops.",
            flush=True,
        )
        started = time.monotonic()
        stopping = asyncio.Event()
        install_stop_signals(stopping)
        urls = (intempus.url, local.url)
        async with open_engine(SYNC, settings, stats=stats) as engine:
            user_task = asyncio.create_task(user.run(args.rate))
            try:
                with status_display() as live:
                    await run_engine(
                        engine,
                        stopping,
                        alongside=lambda: show_status(engine, http, urls, user, started, live),
                    )
            finally:
                user_task.cancel()
                await asyncio.gather(user_task, return_exceptions=True)
            print(await status_line(engine, http, urls, user, started), flush=True)
        print(
            f"demo: the user stopped ({user.edits} edit(s) made, {user.refused} refused); "
            f"faults off; settling ({SETTLE_DRAINS} drains, the first with a full scan)",
            flush=True,
        )
        for url in urls:
            await _set_faults(http, url, {"error_rate": 0.0, "ambiguous_rate": 0.0})
        try:
            for drain in range(SETTLE_DRAINS):
                async with open_engine(SYNC, settings, stats=stats) as engine:
                    if drain == 0:
                        await engine.store.meta_put(SCAN_DUE, "demo: settling")
                    await run_engine(engine, asyncio.Event(), once=True)
        except EngineFailed as exc:
            print(f"demo: the sync failed while settling: {exc}", file=sys.stderr)
            return EXIT_FAILURE
        # The same comparison as ``python run.py intempus verify``, and its summary line.
        return await run_verify(settings, repair=False)


DEMO_EPILOG = (
    "The status line, counted since the demo started: cases = cases in Intempus, live cases in "
    "the case store; user edits = the simulated user's writes that went through (creates, field "
    "edits, deletes, on either side); applied = changes the sync applied (either way); "
    "conflicts = fields both sides changed, resolved by INTEMPUS_CONFLICT_POLICY (see the "
    "conflicts command); dead letters = changes set aside; requests to Intempus = every request "
    "the stand-in served under /web/v1/ (its rate limit counts the same ones). On Ctrl-C the "
    "user stops, faults are switched off, the sync drains twice (the first time with a full "
    "scan of Intempus), and both sides are compared as by the verify command: exit 0 when they "
    "agree. Every other sync setting is read from the environment or .env as for run."
)
FOR_DEMO = (
    "poll_interval",
    "full_scan_interval",
    "conflict_policy",
    "log_level",
    "log_format",
)
DEMO_DEFAULTS: dict[str, Any] = {"poll_interval": 2.0, "full_scan_interval": 30.0}
"""The demo's own defaults: a full scan often enough to see the user's Intempus deletes within
the demo; its state is in --dir."""


@click.command(
    "demo",
    short_help="both stand-ins in this process, a user editing both, and the sync",
    help="Start the Intempus and case store stand-ins in this process with sample cases on "
    "both sides, let a simulated user edit both, run the sync against them with a live status "
    "line, and on Ctrl-C stop the user, let the sync settle and verify.",
    epilog=DEMO_EPILOG,
)
@click.option(
    "--intempus-port", type=int, default=8270, help="Intempus stand-in's port (default: 8270)"
)
@click.option("--case-store-port", type=int, default=8269, help="case store's port (default: 8269)")
@click.option(
    "--cases", type=int, default=10, help="sample cases seeded on each side (default: 10)"
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0.01),
    default=1.0,
    help="the simulated user's edits per second, over both sides: creates, field edits, the "
    "odd delete (default: 1)",
)
@click.option(
    "--seed",
    type=int,
    default=1,
    help="the sample cases and the user's edits follow from it (default: 1)",
)
@click.option(
    "--no-faults",
    is_flag=True,
    help="well-behaved stand-ins (default: off: mild faults on both, a few 500s, a few writes "
    "committed then answered 500, 5 ms latency)",
)
@click.option(
    "--dir",
    type=click.Path(path_type=Path),
    default=None,
    help="where the demo keeps its files: both stand-ins' databases and the sync's state "
    "(default: intempus-demo-YYYYMMDD-HHMMSS)",
)
@settings_options(Settings, FOR_DEMO, DEMO_DEFAULTS)
def command(**options: Any) -> None:
    demo_dir = options["dir"] or Path(f"intempus-demo-{time.strftime('%Y%m%d-%H%M%S')}")
    options["dir"] = demo_dir
    settings = load_settings(Settings, options, state_db=demo_dir / "state.db", **DEMO_DEFAULTS)
    start_logging(settings)
    args = argparse.Namespace(**{k: v for k, v in options.items() if not k.startswith(SETTING)})
    sys.exit(run_async(run_demo(settings, args)))

"""``python run.py crm demo``: our internal system and the three CRM provider stand-ins in this
process, a few records seeded on every side, simulated people creating, editing and deleting on
every side, the sync against them with a live status line, and on Ctrl-C (or after ``--seconds``)
a settled, verified finish per connection."""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import sys
import tempfile
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import aiohttp
import click
from aiohttp import web
from rich.live import Live
from rich.text import Text

from crm_internal import CrmInternalSettings
from crm_internal import create_app as create_internal
from crm_providers.hubspot import HubSpotSettings
from crm_providers.hubspot import create_app as create_hubspot
from crm_providers.pipedrive import PipedriveSettings
from crm_providers.pipedrive import create_app as create_pipedrive
from crm_providers.salesforce import SalesforceSettings
from crm_providers.salesforce import create_app as create_salesforce
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
from integration.core.serving import Served, serve_app
from integration.core.shell import (
    EXIT_CONFIG,
    EXIT_FAILURE,
    install_stop_signals,
    open_engine,
    run_engine,
)
from integration.core.stats import Stats
from integration.pipelines.crm import SYNC
from integration.pipelines.crm.canonical import Canonical
from integration.pipelines.crm.commands import run_verify
from integration.pipelines.crm.mapping import DEFAULTS, to_provider
from integration.pipelines.crm.settings import CrmSettings as Settings

log = logging.getLogger("integration.demo")

PROVIDERS = ("hubspot", "salesforce", "pipedrive")
SIDES = ("ours", *PROVIDERS)
NATIVE = {
    "hubspot": {"contact": "contacts", "company": "companies"},
    "salesforce": {"contact": "Contact", "company": "Account"},
    "pipedrive": {"contact": "persons", "company": "organizations"},
}
ROUTES = {"contact": "contacts", "company": "companies"}
OBJECTS = ("contact", "company")

CREATE_SHARE = 0.25
DELETE_SHARE = 0.04
"""Of the people's edits: creates, deletes (the odd one); the rest change a field or two."""

SETTLE_MIN, SETTLE_MAX = 2, 8
"""Drains after the people stop: at least two (a change made at one provider reaches the others
through our system on the next pass), until one applies nothing, at most eight."""

PAST_MODIFIED = 1.05
"""Seconds waited before each settling drain: past the providers' one-second modified times, so
a pass sees every write made before it."""

FIRST = ("Ann", "Bo", "Carl", "Dorte", "Eva", "Finn", "Gitte", "Hans", "Ida", "Jens")
LAST = ("Berg", "Holm", "Lind", "Dahl", "Moe", "Vik", "Lund", "Juhl", "Krog", "Nørgaard")
CITIES = ("Aarhus", "Odense", "Aalborg", "Vejle", "Esbjerg")
INDUSTRIES = ("Food", "Shipping", "Software", "Energy", "Retail")
STAGES = ("lead", "customer", "subscriber")


class People:
    """People editing every side: our system through its API (no ``X-Sync-Origin``: a user),
    each provider through its stand-in's user routes. Data is always valid for every mapping
    (a last name and a company name on every record, unique e-mails and domains)."""

    def __init__(self, http: aiohttp.ClientSession, urls: dict[str, str], seed: int) -> None:
        self.http = http
        self.urls = urls
        self.rng = random.Random(seed)
        self.edits = 0
        self.refused = 0
        self._serial = 0

    def _unique(self) -> int:
        self._serial += 1
        return self._serial

    def record(self, obj: str) -> Canonical:
        n, rng = self._unique(), self.rng
        if obj == "contact":
            first, last = rng.choice(FIRST), rng.choice(LAST)
            return {
                "first_name": first,
                "last_name": last,
                "email": f"{first.lower()}.{n}@demo.example",
                "phone": f"+45 {rng.randrange(10**7, 10**8)}",
                "lifecycle_stage": rng.choice(STAGES),
            }
        return {
            "name": f"{rng.choice(LAST)} {rng.choice(INDUSTRIES)} {n}",
            "domain": f"firm{n}.example",
            "phone": f"+45 {rng.randrange(10**7, 10**8)}",
            "city": rng.choice(CITIES),
            "industry": rng.choice(INDUSTRIES),
        }

    def change(self, obj: str) -> Canonical:
        """One or two fields changed (never the names every provider requires)."""
        fresh = self.record(obj)
        names = ["email", "phone", "lifecycle_stage"] if obj == "contact" else list(fresh)[1:]
        picked = self.rng.sample(names, k=self.rng.choice((1, 2)))
        return {name: fresh[name] for name in picked}

    @staticmethod
    def for_provider(provider: str, obj: str, fields: Canonical, *, create: bool) -> Any:
        """The fields as the provider's user routes take them: its own names through the
        sync's default mapping, and Pipedrive's e-mail and phone as its lists of entries."""
        mapping = DEFAULTS[provider][obj]
        only = None if create else list(fields)
        out = to_provider(obj, mapping, fields, only=only, create=create, where="demo")
        if provider == "pipedrive":
            for name in ("email", "phone"):
                if name in out:
                    value = out.pop(name)
                    out[f"{name}s"] = [{"value": value, "primary": True}] if value else []
        return out

    async def _write(self, method: str, url: str, body: Any = None) -> bool:
        try:
            async with self.http.request(method, url, json=body) as response:
                ok = response.status < 400
        except aiohttp.ClientError:
            ok = False
        self.edits += ok
        self.refused += not ok
        return ok

    async def ids(self, side: str, obj: str) -> list[str]:
        """The live records of ``obj`` on ``side``."""
        if side == "ours":
            url = f"{self.urls['ours']}/{ROUTES[obj]}/?limit=500"
            async with self.http.get(url) as response:
                return [str(row["id"]) for row in (await response.json())["items"]]
        native = NATIVE[side][obj]
        url = f"{self.urls[side]}/_standin/records?object={native}"
        async with self.http.get(url) as response:
            rows = (await response.json())["objects"][native]
        return [str(row["id"]) for row in rows if not row["deleted"]]

    async def create(self, side: str, obj: str) -> bool:
        record = self.record(obj)
        if side == "ours":
            return await self._write("POST", f"{self.urls['ours']}/{ROUTES[obj]}/", record)
        fields = self.for_provider(side, obj, record, create=True)
        url = f"{self.urls[side]}/_standin/users/{NATIVE[side][obj]}"
        return await self._write("POST", url, {"fields": fields})

    async def act(self) -> None:
        """One edit on a side chosen at random: a create, a change of a field or two, or the
        odd delete."""
        side, obj, draw = self.rng.choice(SIDES), self.rng.choice(OBJECTS), self.rng.random()
        if draw < CREATE_SHARE:
            await self.create(side, obj)
            return
        ids = await self.ids(side, obj)
        if not ids:
            return
        record_id = self.rng.choice(ids)
        if side == "ours":
            url = f"{self.urls['ours']}/{ROUTES[obj]}/{record_id}"
            if draw < CREATE_SHARE + DELETE_SHARE:
                await self._write("DELETE", url)
            else:
                await self._write("PATCH", url, self.change(obj))
            return
        url = f"{self.urls[side]}/_standin/users/{NATIVE[side][obj]}/{record_id}"
        if draw < CREATE_SHARE + DELETE_SHARE:
            await self._write("DELETE", url)
            return
        fields = self.for_provider(side, obj, self.change(obj), create=False)
        if fields:
            await self._write("PATCH", url, {"fields": fields})

    async def seed(self, records: int) -> None:
        """``records`` of each object on every side, before the sync starts."""
        for side in SIDES:
            for obj in OBJECTS:
                for _ in range(records):
                    if not await self.create(side, obj):
                        raise RuntimeError(f"{side} refused a sample {obj}")

    async def run(self, rate: float) -> None:
        while True:
            await asyncio.sleep(self.rng.expovariate(rate))
            await self.act()


def connections_text(urls: dict[str, str]) -> str:
    """The connections file: our system, and one connection per provider on its defaults."""
    lines = [f'internal_url = "{urls["ours"]}"', ""]
    for provider in PROVIDERS:
        lines += [
            "[[connections]]",
            f'name = "{provider}"',
            f'provider = "{provider}"',
            f'url = "{urls[provider]}"',
            "",
        ]
    return "\n".join(lines)


async def _live(people: People, side: str) -> int:
    return sum([len(await people.ids(side, obj)) for obj in OBJECTS])


async def status_line(engine: Engine, people: People, started: float) -> str:
    counts = "  ".join([f"{side} {await _live(people, side):>3}" for side in SIDES])
    requests = 0
    for provider in PROVIDERS:
        async with people.http.get(f"{people.urls[provider]}/_standin/stats") as response:
            requests += int((await response.json())["total"])
    stats = engine.stats
    return (
        f"{int(time.monotonic() - started):>5}s  records {counts}  "
        f"people's edits {people.edits:>4}  applied {stats.applied:>5}  "
        f"dead letters {stats.dead_lettered:>3}  requests to providers {requests:>5}"
    )


async def show_status(engine: Engine, people: People, started: float, live: Live | None) -> None:
    """The live line on a terminal, a plain line every few seconds otherwise (see
    ``devtools.demo.status_display``)."""
    while True:
        await asyncio.sleep(LIVE_EVERY if live is not None else PLAIN_EVERY)
        line = await status_line(engine, people, started)
        if live is not None:
            live.update(Text(line), refresh=True)
        else:
            print(line, flush=True)


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


def _apps(args: argparse.Namespace) -> dict[str, tuple[web.Application, int]]:
    return {
        "ours": (
            create_internal(CrmInternalSettings(db=str(args.dir / "ours.db"))),
            args.internal_port,
        ),
        "hubspot": (create_hubspot(HubSpotSettings(seed=args.seed)), args.hubspot_port),
        "salesforce": (
            create_salesforce(SalesforceSettings(seed=args.seed)),
            args.salesforce_port,
        ),
        "pipedrive": (create_pipedrive(PipedriveSettings(seed=args.seed)), args.pipedrive_port),
    }


async def _settle(settings: Settings, stats: Stats) -> bool:
    """Drain until a drain applies nothing (each one a full scan: the only way to see a
    delete at HubSpot or Pipedrive); False if the sync failed."""
    scanning = settings.model_copy(update={"full_scan_interval": 0.001})
    for drain in range(SETTLE_MAX):
        await asyncio.sleep(PAST_MODIFIED)
        before = (stats.applied, stats.dead_lettered)
        try:
            async with open_engine(SYNC, scanning, stats=stats) as engine:
                await run_engine(engine, asyncio.Event(), once=True)
        except EngineFailed as exc:
            print(f"demo: the sync failed while settling: {exc}", file=sys.stderr)
            return False
        if drain + 1 >= SETTLE_MIN and (stats.applied, stats.dead_lettered) == before:
            break
    return True


async def _demo(settings: Settings, args: argparse.Namespace) -> int:
    stats = Stats()
    async with AsyncExitStack() as stack:
        served: dict[str, Served] = {}
        for side, (app, port) in _apps(args).items():
            try:
                served[side] = await stack.enter_async_context(serve_app(app, port=port))
            except OSError as exc:
                flag = "--internal-port" if side == "ours" else f"--{side}-port"
                print(
                    f"demo: cannot listen on port {port} for {side} ({exc.strerror}); is "
                    f"another demo or stand-in running? Choose another with {flag} (0: any "
                    "free port)",
                    file=sys.stderr,
                )
                return EXIT_CONFIG
        urls = {side: s.url for side, s in served.items()}
        settings.connections.write_text(connections_text(urls), encoding="utf-8")
        http = await stack.enter_async_context(aiohttp.ClientSession())
        people = People(http, urls, args.seed)
        await people.seed(args.records)
        people.edits = 0
        print(
            f"demo: our system on {urls['ours']}, "
            + ", ".join(f"{p} on {urls[p]}" for p in PROVIDERS)
            + f"; {args.records} sample record(s) of each object on every side; people edit "
            f"every side at {args.rate:g}/s; files in {args.dir}/. "
            + (
                f"Stops after {args.seconds:g} s or on Ctrl-C." if args.seconds else "Ctrl-C stops."
            ),
            flush=True,
        )
        started = time.monotonic()
        stopping = asyncio.Event()
        install_stop_signals(stopping)
        if args.seconds:
            asyncio.get_running_loop().call_later(args.seconds, stopping.set)
        async with open_engine(SYNC, settings, stats=stats) as engine:
            people_task = asyncio.create_task(people.run(args.rate))
            try:
                with status_display() as live:
                    await run_engine(
                        engine,
                        stopping,
                        alongside=lambda: show_status(engine, people, started, live),
                    )
            finally:
                people_task.cancel()
                await asyncio.gather(people_task, return_exceptions=True)
            print(await status_line(engine, people, started), flush=True)
        print(
            f"demo: the people stopped ({people.edits} edit(s) made, {people.refused} refused); "
            "settling (drains with a full scan, until one applies nothing)",
            flush=True,
        )
        if not await _settle(settings, stats):
            return EXIT_FAILURE
        # The same comparison as ``python run.py crm verify``, per connection and its summary.
        return await run_verify(settings)


DEMO_EPILOG = (
    "The status line, counted since the demo started: records = live contacts and companies "
    "in our system and at each provider; people's edits = the simulated people's writes that "
    "went through (creates, field changes, deletes, on any side); applied = changes the sync "
    "applied (any way); dead letters = changes set aside; requests to providers = every API "
    "request the three stand-ins served. On Ctrl-C (or after --seconds) the people stop, the "
    "sync drains with full scans until a drain applies nothing, and every connection is "
    "compared as by the verify command: exit 0 when all agree. Every other sync setting is "
    "read from the environment or .env as for run."
)
FOR_DEMO = ("poll_interval", "full_scan_interval", "log_level", "log_format")
DEMO_DEFAULTS: dict[str, Any] = {"poll_interval": 2.0, "full_scan_interval": 10.0}
"""The demo's own defaults: a full scan often enough to see deletes at HubSpot and Pipedrive
(which list none) within the demo; its state and connections file are in --dir."""


@click.command(
    "demo",
    short_help="our system and three CRM stand-ins in this process, people editing, the sync",
    help="Start our internal system and the HubSpot, Salesforce and Pipedrive stand-ins in this "
    "process with sample records on every side, let simulated people create, edit and delete "
    "on every side, run the sync against them with a live status line, and on Ctrl-C (or after "
    "--seconds) stop the people, let the sync settle and verify every connection.",
    epilog=DEMO_EPILOG,
)
@click.option(
    "--internal-port", type=int, default=8290, help="our system's port; 0: any (default: 8290)"
)
@click.option("--hubspot-port", type=int, default=8281, help="HubSpot's port (default: 8281)")
@click.option("--salesforce-port", type=int, default=8282, help="Salesforce's port (default: 8282)")
@click.option("--pipedrive-port", type=int, default=8283, help="Pipedrive's port (default: 8283)")
@click.option(
    "--records",
    type=click.IntRange(min=0),
    default=3,
    help="sample records of each object seeded on every side (default: 3)",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0.01),
    default=1.0,
    help="the people's edits per second, over every side: creates, field changes, the odd "
    "delete (default: 1)",
)
@click.option(
    "--seconds",
    type=click.FloatRange(min=0),
    default=0.0,
    help="stop the people after this many seconds, as Ctrl-C would (default: 0, run until Ctrl-C)",
)
@click.option(
    "--seed", type=int, default=1, help="the sample records and edits follow from it (default: 1)"
)
@click.option(
    "--dir",
    type=click.Path(path_type=Path),
    default=None,
    help="where the demo keeps its files: our system's database, the connections file, the "
    "sync's state (default: a new temporary directory)",
)
@settings_options(Settings, FOR_DEMO, DEMO_DEFAULTS)
def command(**options: Any) -> None:
    demo_dir = options["dir"] or Path(tempfile.mkdtemp(prefix="crm-demo-"))
    options["dir"] = demo_dir
    # The settings check the connections file; the real one (with the stand-ins' ports) replaces
    # this one once they listen.
    demo_dir.mkdir(parents=True, exist_ok=True)
    placeholder = {name: "http://127.0.0.1:1" for name in ("ours", *PROVIDERS)}
    (demo_dir / "crm-connections.toml").write_text(connections_text(placeholder), "utf-8")
    settings = load_settings(
        Settings,
        options,
        state_db=demo_dir / "crm-state.db",
        connections=demo_dir / "crm-connections.toml",
        **DEMO_DEFAULTS,
    )
    start_logging(settings)
    args = argparse.Namespace(**{k: v for k, v in options.items() if not k.startswith(SETTING)})
    sys.exit(run_async(run_demo(settings, args)))

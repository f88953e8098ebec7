"""The CRM bench's scaling row: 1, then 2, ``python run.py crm`` worker processes in the
several-workers mode, each run on fresh stand-ins, a fresh database and a stream of its own.

A run, in order (as ``devtools/bench/distributed.py`` does it for BigChat):

1. our system and HubSpot (50 ms latency, limits out of reach) as child processes; N contacts
   made in ours;
2. our system closed (every call answered 500), a fresh database ``crm_bench_<hex>`` and the
   inbox name the same, so no run shares a stream with another;
3. the workers started, waited for until every one is live, every partition owned, none owning
   more than its share and the poller role held;
4. our system opened: the clock starts when it first serves ``/changes`` and stops when HubSpot
   holds all N contacts (polled from ``/_standin/records``); then every contact is checked;
5. the workers stopped (SIGTERM), the stream deleted, the database dropped.

CPU is the workers' user + system time (``/proc``) between 4's start and its end; the machine's
busy share (every core, ``/proc/stat``) over the same time says whether the machine, rather
than the sync, was the limit.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import signal
import time
import urllib.request
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp

from devtools.bench.distributed import cpu_seconds, database_url, machine_busy, stream_of
from devtools.bench.processes import REPO, STOP_TIMEOUT, Child

from . import world
from .bench import Row

if TYPE_CHECKING:
    import asyncpg

SYNC = "crm"
WORKERS = (1, 2)
PARTITIONS = 16
LATENCY_MS = 50.0
SETTLE_TIMEOUT = 60.0
POLL_EVERY = 0.1


def _patch_faults(url: str, body: dict[str, Any]) -> None:
    request = urllib.request.Request(
        f"{url}/_standin/faults",
        data=json.dumps(body).encode(),
        method="PATCH",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10.0):
        pass


def _changes_served(stats: dict[str, Any]) -> int:
    return sum(
        int(r["count"])
        for r in stats["requests"]
        if r["route"] == "/changes" and int(r["status"]) == 200
    )


class Run:
    def __init__(
        self, workers: int, records: int, directory: Path, postgres_url: str, nats_url: str
    ) -> None:
        self.workers = workers
        self.records = records
        self.directory = directory
        self.postgres_url = postgres_url
        self.nats_url = nats_url
        self.children: list[Child] = []
        self.problems: list[str] = []
        self.wall = 0.0
        self.cpu = 0.0
        self.settle_s = 0.0
        self.machine_busy: float | None = None
        """Share of the machine's CPU (every core) busy while measured: near 1, the row
        measured the machine, not the sync."""
        self.hubspot_requests: dict[str, int] = {}
        self.timeout = 120.0 + records / 10

    async def measure(self) -> None:
        import asyncpg

        self.directory.mkdir(parents=True, exist_ok=True)
        ours = world.internal(self.directory)
        hub = world.hubspot(self.directory, latency_ms=LATENCY_MS)
        database = f"crm_bench_{uuid.uuid4().hex[:12]}"
        admin = await asyncpg.connect(self.postgres_url, timeout=10.0)
        try:
            async with aiohttp.ClientSession() as session:
                await world.create_contacts(session, ours.url, self.records)
                await admin.execute(f'CREATE DATABASE "{database}"')
                db = await asyncpg.connect(database_url(self.postgres_url, database), timeout=10.0)
                try:
                    await self._at_work(session, db, database, ours, hub)
                finally:
                    self._stop_workers()
                    await db.close()
                    await _delete_stream(self.nats_url, stream_of(database))
                    await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
                if not self.problems:
                    self.problems += await world.agree(session, ours.url, hub.url)
            for child in self.children:
                if child.usage is not None and child.usage.exit_code != 0:
                    self.problems.append(
                        f"{child.name}: exit status {child.usage.exit_code}:\n{child.tail()}"
                    )
            hub_stats = hub.stats()
            self.hubspot_requests = world.requests_by_route(hub_stats)
            limited = hub_stats.get("limited")
            if limited:
                self.problems.append(f"HubSpot refused {limited} request(s) for a limit")
        finally:
            await admin.close()
            ours.stop()
            hub.stop()

    async def _at_work(
        self,
        session: aiohttp.ClientSession,
        db: asyncpg.Connection,
        database: str,
        ours: world.Served,
        hub: world.Served,
    ) -> None:
        _patch_faults(ours.url, {"error_rate": 1.0})
        connections = world.connections_file(
            self.directory / "crm-connections.toml", ours.url, hub.url
        )
        env = {
            **os.environ,
            "CRM_STATE_URL": database_url(self.postgres_url, database),
            "CRM_INBOX_URL": self.nats_url,
            "CRM_INBOX_NAME": database,
            "CRM_PARTITIONS": str(PARTITIONS),
            "CRM_CONNECTIONS": str(connections),
            "CRM_POLL_INTERVAL": "0.5",
            "LOG_LEVEL": "WARNING",
        }
        started = time.monotonic()
        for i in range(1, self.workers + 1):
            cwd = self.directory / f"worker-{i}"
            cwd.mkdir(parents=True, exist_ok=True)
            self.children.append(
                Child(
                    f"crm-worker-{i}",
                    [str(REPO / "run.py"), SYNC],
                    log_path=self.directory / f"worker-{i}.log",
                    env=env,
                    cwd=cwd,
                )
            )
        if not await self._settle(db, started + SETTLE_TIMEOUT):
            return
        self.settle_s = time.monotonic() - started
        cpu_before = self._cpu()
        machine_before = machine_busy()
        served = _changes_served(ours.stats())
        _patch_faults(ours.url, {"error_rate": 0.0})
        # The clock starts when our system first serves the feed (the poller may be in a
        # retry's backoff when it opens), bounded.
        first = time.monotonic() + 15.0
        while time.monotonic() < first:
            if _changes_served(ours.stats()) > served:
                break
            await asyncio.sleep(0.02)
        begun = time.monotonic()
        deadline = begun + self.timeout
        while True:
            if len(await world.hubspot_contacts(session, hub.url)) >= self.records:
                break
            if self._exited():
                return
            if time.monotonic() > deadline:
                self.problems.append(f"not every contact at HubSpot within {self.timeout:g} s")
                return
            await asyncio.sleep(0.05)
        self.wall = time.monotonic() - begun
        self.cpu = self._cpu() - cpu_before
        machine_after = machine_busy()
        spent = machine_after[1] - machine_before[1]
        if spent > 0:
            self.machine_busy = round((machine_after[0] - machine_before[0]) / spent, 3)

    async def _settle(self, db: asyncpg.Connection, deadline: float) -> bool:
        share = math.ceil(PARTITIONS / self.workers)
        while time.monotonic() < deadline:
            if self._exited():
                return False
            if await _settled(db, self.workers, share):
                return True
            await asyncio.sleep(POLL_EVERY)
        self.problems.append(
            f"the {self.workers} worker(s) did not settle within {SETTLE_TIMEOUT:g} s:\n"
            + "\n".join(c.tail(5) for c in self.children)
        )
        return False

    def _exited(self) -> bool:
        gone = [c for c in self.children if c.poll() is not None]
        for child in gone:
            self.problems.append(f"{child.name} exited during the run:\n{child.tail()}")
        return bool(gone)

    def _cpu(self) -> float:
        return sum(cpu_seconds(c.pid) or 0.0 for c in self.children if c.usage is None)

    def _stop_workers(self) -> None:
        for child in self.children:
            if child.poll() is None:
                os.kill(child.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for child in self.children:
            if child.wait(max(0.0, deadline - time.monotonic())) is None:
                os.kill(child.pid, signal.SIGKILL)
                child.wait(10.0)


async def _settled(db: asyncpg.Connection, workers: int, share: int) -> bool:
    """Every worker live, every partition owned by a live one, none owning more than its
    share, the poller role held (the workers' own clock and TTL)."""
    import asyncpg

    live_sql = (
        "SELECT worker FROM integration.workers WHERE sync = $1"
        " AND heartbeat_at > extract(epoch from clock_timestamp()) - 5"
    )
    try:
        live = {r["worker"] for r in await db.fetch(live_sql, SYNC)}
        owners = [
            r["owner"]
            for r in await db.fetch(
                "SELECT owner FROM integration.partitions WHERE sync = $1", SYNC
            )
        ]
        poller = await db.fetchval(
            "SELECT holder FROM integration.fences WHERE name = $1", f"poller:{SYNC}"
        )
    except (asyncpg.UndefinedTableError, asyncpg.InvalidSchemaNameError):
        return False
    if len(live) != workers or len(owners) != PARTITIONS or poller not in live:
        return False
    if any(owner not in live for owner in owners):
        return False
    return len(set(owners)) == workers and max(owners.count(w) for w in live) <= share


async def _delete_stream(nats_url: str, stream: str) -> None:
    import nats
    import nats.js.errors

    nc = await nats.connect(nats_url, connect_timeout=2, max_reconnect_attempts=1)
    try:
        try:
            await nc.jetstream(timeout=5.0).delete_stream(stream)
        except nats.js.errors.NotFoundError:
            return
    finally:
        await nc.close()


def scaling(records: int, directory: Path, postgres_url: str, nats_url: str) -> Row:
    runs = []
    for workers in WORKERS:
        run = Run(workers, records, directory / f"workers-{workers}", postgres_url, nats_url)
        asyncio.run(run.measure())
        runs.append(run)
    problems = [f"{r.workers} worker(s): {p}" for r in runs for p in r.problems]
    figures: dict[str, float | int | str | None] = {"records": records}
    for run in runs:
        rate = records / run.wall if run.wall > 0 else 0.0
        figures[f"workers_{run.workers}_wall_s"] = round(run.wall, 3)
        figures[f"workers_{run.workers}_records_per_s"] = round(rate, 1)
        figures[f"workers_{run.workers}_cpu_s_per_1000_records"] = round(
            run.cpu / records * 1000, 3
        )
        figures[f"workers_{run.workers}_settle_s"] = round(run.settle_s, 2)
        figures[f"workers_{run.workers}_machine_cpu_busy"] = run.machine_busy
        writes = sum(n for route, n in run.hubspot_requests.items() if "/batch/" in route)
        figures[f"workers_{run.workers}_hubspot_write_calls"] = writes
    one, two = runs[0], runs[-1]
    figures["factor_2_over_1"] = round(one.wall / two.wall, 2) if two.wall > 0 else None
    return Row(
        name="scaling",
        verified=not problems,
        findings=problems,
        figures=figures,
        by_route={f"{r.workers}_workers_hubspot": r.hubspot_requests for r in runs},
        notes=f"HubSpot latency {LATENCY_MS:g} ms, limits out of reach; {PARTITIONS} partitions; "
        "wall from our system's first /changes served to every contact at HubSpot; CPU is the "
        "workers' over that time (not PostgreSQL's, NATS's or the stand-ins')",
    )

"""The distributed row set: the same workload applied by 1, 2 and 3 worker processes in the
several-workers mode (PostgreSQL state, JetStream inbox), each run on a database of its own.

A run, in order:

1. a fresh database (``CREATE DATABASE`` with a unique name), and a stream of the run's own
   (``INBOX_NAME`` is the database's name), so runs never share one with each other or with
   anything else on the NATS server;
2. BigChat's ``/events`` closed (every call answered 500), so no worker polls yet;
3. N plain ``python run.py`` processes with ``STATE_URL`` and ``INBOX_URL``, waited for until all
   N are live, every partition is owned by one of them, none owns more than its share and one
   holds the poller role: the measured work starts from a settled split, not from one worker
   that owns everything until the others have joined;
4. ``/events`` open again: the clock starts when BigChat serves the first page; the run ends
   when the cursor is past the workload and every entry is applied (``done`` or ``dead``) in
   PostgreSQL, read from outside;
5. the workers stopped (SIGTERM), the stream deleted, the database dropped.

CPU is the workers' user + system time from ``/proc/<pid>/stat`` between 4's start and its end:
the work, not the imports and the wait for the split. Each worker's peak RSS comes from
``wait4`` when it is reaped.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import math
import os
import signal
import socket
import time
import urllib.request
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from .measure import AGENTS, CHATS, MESSAGES, by_route, throughput
from .models import Applied, BigChatStats, OurApiStats, RunResult, Workload
from .processes import REPO, STOP_TIMEOUT, Child, StandIn

if TYPE_CHECKING:
    import asyncpg

DISTRIBUTED = "distributed"
"""The row set's name for ``--only`` (every row), and its rows' prefix (``distributed-2``)."""
WORKER_COUNTS = (1, 2, 3)
SYNC = "bigchat"
STREAM_PREFIX = "IW_IW_BENCH_"
"""Streams of bench runs: ``IW_`` and the run's ``INBOX_NAME`` (its database's name), so that
runs, and anything else on the same NATS server, never share one."""


def stream_of(inbox_name: str) -> str:
    """``jetstream.stream_name(inbox_name)``, spelled out: importing it would import nats-py."""
    return "IW_" + inbox_name.upper()


PARTITIONS = 16
WORKER_TTL = 5.0
SETTLE_TIMEOUT = 60.0
"""Seconds the workers may take to start and settle the split (bounded: they may not)."""
POLL_EVERY = 0.1
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_NATS_URL = "nats://127.0.0.1:4222"
_CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Services:
    postgres_url: str
    """A database on the server the runs create their own databases on (``postgres``)."""
    nats_url: str


def unavailable(services: Services) -> str | None:
    """Why the distributed rows cannot run here (one line), or None when they can."""
    for module, extra in (("asyncpg", "asyncpg"), ("nats", "nats-py")):
        if importlib.util.find_spec(module) is None:
            return f"{extra} is not installed (pip install -e '.[distributed]')"
    for name, url, port in (
        ("PostgreSQL", services.postgres_url, 5432),
        ("NATS", services.nats_url, 4222),
    ):
        parts = urlsplit(url)
        host = parts.hostname or "127.0.0.1"
        try:
            with socket.create_connection((host, parts.port or port), timeout=2):
                pass
        except OSError as exc:
            return f"{name} is not reachable at {host}:{parts.port or port} ({exc})"
    return None


def database_url(server_url: str, database: str) -> str:
    """``server_url`` with its database replaced by ``database``."""
    parts = urlsplit(server_url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, ""))


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU of ``pid`` so far (Linux /proc), None where it cannot be read."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces: count the fields after its ")".
    fields = text.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, every core summed (/proc/stat)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    total = sum(values[:8])  # guest time is already in user
    return (total - idle) / _CLK_TCK, total / _CLK_TCK


def exactly_once_findings(stats: OurApiStats, workload: Workload) -> list[str]:
    """What OurAPI's request counts say against "every event applied exactly once": a chat per
    conversation, a message per MESSAGE and an agent per advisor, each created exactly once (a
    second worker repeating an event shows here even where the end state looks right).

    ``POST /agents`` answered 500 is not a finding: two workers applying conversations of one
    advisor may both try to create its agent, and OurAPI answers the second with the bare 500
    of a name already taken (its contract); the sink reads the agent back. Any other 5xx is."""
    findings = []
    for route, want, what in (
        (CHATS, workload.conversations, "chats created"),
        (MESSAGES, workload.messages, "messages posted"),
        (AGENTS, workload.advisors, "agents created"),
    ):
        got = stats.count("POST", route)
        if got != want:
            findings.append(f"{what}: {got} != {want}")
    failed = sum(
        r.count
        for r in stats.requests
        if r.status >= 500 and (r.method, r.route) != ("POST", AGENTS)
    )
    if failed:
        findings.append(f"{failed} OurAPI request(s) answered >= 500")
    return findings


@dataclass
class _Progress:
    cursor: float | None
    pending: int
    done: int
    dead: int

    def drained(self, workload: Workload) -> bool:
        return (
            self.cursor is not None
            and self.cursor >= workload.end
            and self.pending == 0
            and self.done + self.dead >= workload.events
        )


@dataclass
class _Outcome:
    applied: list[Applied] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    started_at: float = 0.0
    """When ``/events`` opened: the run's start for lag."""
    settle_s: float = 0.0
    cpu_s: float = 0.0
    startup_cpu_s: float = 0.0
    machine_busy: float | None = None
    standins_cpu_s: float | None = None
    postgres_cpu_s: float | None = None
    nats_cpu_s: float | None = None
    other_cpu_s: float | None = None
    published_per_s: float | None = None
    dead: int = 0
    bigchat_requests: int = 0
    timed_out: bool = False


def _http(method: str, url: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method=method,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10.0) as response:
        return json.loads(response.read())


class DistributedRun:
    """One row: ``workers`` processes on a fresh database and stream."""

    def __init__(
        self,
        *,
        name: str,
        workers: int,
        workload: Workload,
        bigchat: StandIn,
        ourapi: StandIn,
        where: Path,
        services: Services,
        timeout: float,
        worker_env: dict[str, str],
        settings: dict[str, str],
    ) -> None:
        self.name = name
        self.stream = ""
        """The run's own JetStream stream, named once its database is."""
        self.workers = workers
        self.workload = workload
        self.bigchat = bigchat
        self.ourapi = ourapi
        self.where = where
        self.services = services
        self.timeout = timeout
        self.worker_env = worker_env
        """The environment the workers inherit (the bench's, without the worker's settings)."""
        self.settings = settings
        """The workers' settings (BIGCHAT_URL...), without the state's and the inbox's."""
        self.children: list[Child] = []

    def measure(self) -> RunResult:
        outcome = asyncio.run(self._run())
        stats = OurApiStats.model_validate(self.ourapi.stats())
        errors = outcome.errors
        exits = [c.usage.exit_code if c.usage else None for c in self.children]
        for child, code in zip(self.children, exits, strict=True):
            if code != 0:
                errors.append(f"{child.name}: exit status {code}:\n{child.tail()}")
        if outcome.timed_out:
            errors.append(f"did not drain within {self.timeout:g} s")
        if len(outcome.applied) != self.workload.events:
            errors.append(f"applied {len(outcome.applied)} of {self.workload.events} events")
        if not errors:
            errors.extend(exactly_once_findings(stats, self.workload))
            # The bench's own check against BigChat's ground truth, as for every real run.
            from . import verification

            errors.extend(
                verification.findings(
                    self.bigchat.url, self.ourapi.url, self.workload.conversation_ids
                )
            )
        t = throughput(outcome.applied, outcome.started_at)
        n = max(1, t.events)
        peak = max((c.usage.peak_rss_mb for c in self.children if c.usage), default=0.0)
        wall = (
            max(a.finished_at for a in outcome.applied) - outcome.started_at
            if outcome.applied
            else 0.0
        )
        return RunResult(
            name=self.name,
            events=t.events,
            events_per_s=round(t.events_per_s, 1),
            requests_per_event=round(stats.total / n, 3),
            lag_p50_s=round(t.lag_p50_s, 3),
            lag_p99_s=round(t.lag_p99_s, 3),
            cpu_s_per_1000_events=round(outcome.cpu_s / n * 1000, 3),
            peak_rss_mb=round(peak, 1),
            verified=not errors,
            expected_events=self.workload.events,
            wall_s=round(wall, 2),
            ourapi_requests=stats.total,
            bigchat_requests=outcome.bigchat_requests,
            bigchat_requests_per_event=round(outcome.bigchat_requests / n, 3),
            cpu_s=round(outcome.cpu_s, 2),
            concurrency=int(self.settings.get("CONCURRENCY", 0)) or _worker_default("concurrency"),
            ourapi_max_in_flight=int(self.settings.get("OURAPI_MAX_IN_FLIGHT", 0))
            or _worker_default("ourapi_max_in_flight"),
            dead=outcome.dead,
            exit_code=max((c for c in exits if c is not None), default=None, key=abs),
            verify_detail="; ".join(errors)[:2000],
            requests_by_route=by_route(stats),
            workers=self.workers,
            partitions=PARTITIONS,
            settle_s=round(outcome.settle_s, 2),
            startup_cpu_s=round(outcome.startup_cpu_s, 2),
            machine_cpu_busy=outcome.machine_busy,
            standins_cpu_s=outcome.standins_cpu_s,
            postgres_cpu_s=outcome.postgres_cpu_s,
            nats_cpu_s=outcome.nats_cpu_s,
            other_cpu_s=outcome.other_cpu_s,
            published_per_s=outcome.published_per_s,
        )

    # -- the run, against PostgreSQL and NATS ----------------------------------------------

    async def _run(self) -> _Outcome:
        import asyncpg

        outcome = _Outcome()
        database = f"iw_bench_{uuid.uuid4().hex[:12]}"
        admin = await asyncpg.connect(self.services.postgres_url, timeout=10.0)
        try:
            await admin.execute(f'CREATE DATABASE "{database}"')
            try:
                self.stream = stream_of(database)
                db = None
                try:
                    db = await asyncpg.connect(
                        database_url(self.services.postgres_url, database), timeout=10.0
                    )
                    await self._workers_at_work(db, database, outcome)
                finally:
                    self._stop_workers()
                    self._open_events()  # whatever happened: the next run needs /events
                    if db is not None:
                        await db.close()
                    await _delete_stream(self.services.nats_url, self.stream)
            finally:
                # FORCE: a worker killed mid-run may leave a session behind for a moment.
                await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        finally:
            await admin.close()
        return outcome

    async def _workers_at_work(
        self, db: asyncpg.Connection, database: str, outcome: _Outcome
    ) -> None:
        _http("PATCH", f"{self.bigchat.url}/_standin/faults", {"error_rate": 1.0})
        env = {
            **self.worker_env,
            **self.settings,
            "STATE_URL": database_url(self.services.postgres_url, database),
            "INBOX_URL": self.services.nats_url,
            "INBOX_NAME": database,
            "PARTITIONS": str(PARTITIONS),
            "WORKER_TTL": f"{WORKER_TTL:g}",
        }
        started = time.monotonic()
        for i in range(1, self.workers + 1):
            # A folder each: the page journal lives beside STATE_DB, relative to the cwd.
            cwd = self.where / f"worker-{i}"
            cwd.mkdir(parents=True, exist_ok=True)
            self.children.append(
                Child(
                    f"{self.name}-worker-{i}",
                    [str(REPO / "run.py")],
                    log_path=self.where / f"worker-{i}.log",
                    env=env,
                    cwd=cwd,
                )
            )
        settled = await self._settle(db, started + SETTLE_TIMEOUT, outcome)
        if not settled:
            return
        outcome.settle_s = time.monotonic() - started
        outcome.startup_cpu_s = self._cpu()
        machine_before = machine_busy()
        standins_before = self._standins_cpu()
        postgres_before = await _backends_cpu(db, database)
        nats_before = _nats_cpu()
        bigchat_before = BigChatStats.model_validate(self.bigchat.stats()).total
        self._open_events()
        outcome.started_at = await self._first_page_served(deadline=time.monotonic() + 15.0)
        deadline = time.monotonic() + self.timeout
        now: _Progress | None = None
        while time.monotonic() < deadline:
            now = await _progress(db)
            if now is not None and now.drained(self.workload):
                break
            if self._exited(outcome):
                return
            await asyncio.sleep(POLL_EVERY)
        else:
            outcome.timed_out = True
        outcome.cpu_s = self._cpu() - outcome.startup_cpu_s
        standins_after = self._standins_cpu()
        if standins_before is not None and standins_after is not None:
            outcome.standins_cpu_s = round(standins_after - standins_before, 2)
        postgres_after = await _backends_cpu(db, database)
        if postgres_after:
            outcome.postgres_cpu_s = round(
                sum(cpu - postgres_before.get(pid, 0.0) for pid, cpu in postgres_after.items()), 2
            )
        nats_after = _nats_cpu()
        if nats_before is not None and nats_after is not None:
            outcome.nats_cpu_s = round(nats_after - nats_before, 2)
        busy_after = machine_busy()
        spent = busy_after[1] - machine_before[1]
        if spent > 0:
            outcome.machine_busy = round((busy_after[0] - machine_before[0]) / spent, 3)
        # The machine's busy time that none of the above accounts for: anything else running
        # (a row it is large for was measured on a shared machine), the kernel, PostgreSQL's
        # background processes.
        known = [outcome.standins_cpu_s, outcome.postgres_cpu_s, outcome.nats_cpu_s]
        if None not in known:
            explained = outcome.cpu_s + sum(k or 0.0 for k in known)
            outcome.other_cpu_s = round(busy_after[0] - machine_before[0] - explained, 2)
        outcome.bigchat_requests = (
            BigChatStats.model_validate(self.bigchat.stats()).total - bigchat_before
        )
        outcome.dead = now.dead if now else 0
        outcome.published_per_s = await _published_per_s(self.services.nats_url, self.stream)
        rows = await db.fetch(
            "SELECT occurred_at, finished_at FROM integration.inbox"
            " WHERE source = $1 AND state = 'done' ORDER BY finished_at",
            SYNC,
        )
        outcome.applied = [
            Applied(event_at=float(r["occurred_at"]), finished_at=float(r["finished_at"]))
            for r in rows
        ]

    async def _settle(self, db: asyncpg.Connection, deadline: float, outcome: _Outcome) -> bool:
        """Wait (until ``deadline``) for every worker live, every partition owned by a live
        worker, none owning more than its share, and the poller role held."""
        share = math.ceil(PARTITIONS / self.workers)
        while time.monotonic() < deadline:
            if self._exited(outcome):
                return False
            if await _settled(db, self.workers, share):
                return True
            await asyncio.sleep(POLL_EVERY)
        outcome.errors.append(
            f"the {self.workers} worker(s) did not settle the partitions within "
            f"{SETTLE_TIMEOUT:g} s:\n" + "\n".join(c.tail(5) for c in self.children)
        )
        return False

    def _exited(self, outcome: _Outcome) -> bool:
        """Whether a worker stopped by itself (it should not: it is stopped from here)."""
        gone = [c for c in self.children if c.poll() is not None]
        for child in gone:
            outcome.errors.append(f"{child.name} exited during the run:\n{child.tail()}")
        return bool(gone)

    def _cpu(self) -> float:
        return sum(cpu_seconds(c.pid) or 0.0 for c in self.children if c.usage is None)

    def _standins_cpu(self) -> float | None:
        """BigChat's and OurAPI's CPU so far: the rest of the machine's budget they take."""
        both = [cpu_seconds(self.bigchat.child.pid), cpu_seconds(self.ourapi.child.pid)]
        return sum(c for c in both if c is not None) if None not in both else None

    async def _first_page_served(self, deadline: float) -> float:
        """When BigChat first answered ``/events`` 200 after opening (the poller may be in its
        page retry's backoff, up to seconds, when it opens): the run's start, for lag. Bounded:
        a poller that has not fetched by ``deadline`` starts the run there."""
        served = _events_served(self.bigchat.stats())
        while time.monotonic() < deadline:
            if _events_served(self.bigchat.stats()) > served:
                break
            await asyncio.sleep(0.02)
        return time.time()

    def _open_events(self) -> None:
        _http("PATCH", f"{self.bigchat.url}/_standin/faults", {"error_rate": 0.0})

    def _stop_workers(self) -> None:
        """SIGTERM to every worker at once (each one's clean stop), then reap them."""
        for child in self.children:
            if child.poll() is None:
                os.kill(child.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for child in self.children:
            # Not ``Child.stop`` at once: a second SIGTERM is the worker's "stop at once".
            if child.wait(max(0.0, deadline - time.monotonic())) is None:
                os.kill(child.pid, signal.SIGKILL)
                child.wait(10.0)


async def _backends_cpu(db: asyncpg.Connection, database: str) -> dict[int, float]:
    """CPU so far of each PostgreSQL backend connected to ``database``, where the server runs
    here (empty where its processes cannot be read). A backend that ends meanwhile takes its
    CPU with it: an undercount, small since the workers keep their connections."""
    rows = await db.fetch("SELECT pid FROM pg_stat_activity WHERE datname = $1", database)
    found = {int(r["pid"]): cpu_seconds(int(r["pid"])) for r in rows}
    return {pid: cpu for pid, cpu in found.items() if cpu is not None}


def _nats_cpu() -> float | None:
    """The local nats-server's CPU so far (every client's, not only this run's), or None."""
    for stat in Path("/proc").glob("[0-9]*/comm"):
        try:
            if stat.read_text().strip() == "nats-server":
                return cpu_seconds(int(stat.parent.name))
        except OSError:
            continue
    return None


def _events_served(stats: Any) -> int:
    """``/events`` calls BigChat has answered 200, from its ``/_standin/stats``."""
    return sum(
        int(r["count"])
        for r in stats.get("by_route", [])
        if r["route"] == "/events" and r["status"] == 200
    )


async def _progress(db: asyncpg.Connection) -> _Progress | None:
    import asyncpg

    try:
        cursor = await db.fetchval("SELECT position FROM integration.cursors WHERE name = $1", SYNC)
        rows = await db.fetch(
            "SELECT state, count(*) AS n FROM integration.inbox WHERE source = $1 GROUP BY state",
            SYNC,
        )
    except (asyncpg.UndefinedTableError, asyncpg.InvalidSchemaNameError):
        return None  # no worker has created the state yet
    counts: dict[str, int] = {str(r["state"]): int(r["n"]) for r in rows}
    return _Progress(
        cursor=float(cursor) if cursor is not None else None,
        pending=int(counts.get("pending", 0)),
        done=int(counts.get("done", 0)),
        dead=int(counts.get("dead", 0)),
    )


async def _settled(db: asyncpg.Connection, workers: int, share: int) -> bool:
    import asyncpg

    # The same clock and TTL as the workers' own ``Membership.live``.
    live_sql = (
        "SELECT worker FROM integration.workers WHERE sync = $1"
        " AND heartbeat_at > extract(epoch from clock_timestamp()) - $2"
    )
    try:
        live = {r["worker"] for r in await db.fetch(live_sql, SYNC, WORKER_TTL)}
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


async def _published_per_s(nats_url: str, stream: str) -> float | None:
    """Entries the poller published per second: the stream's messages over the time between its
    first and its last (JetStream's own timestamps), None if fewer than two."""
    import nats

    nc = await nats.connect(nats_url, connect_timeout=2, max_reconnect_attempts=1)
    try:
        js = nc.jetstream(timeout=5.0)
        state = (await js.stream_info(stream)).state
        if state.messages < 2:
            return None
        first = (await js.get_msg(stream, state.first_seq)).time
        last = (await js.get_msg(stream, state.last_seq)).time
    finally:
        await nc.close()
    if first is None or last is None or last <= first:
        return None
    return round((state.messages - 1) / (last - first).total_seconds(), 1)


async def _delete_stream(nats_url: str, stream: str) -> None:
    """Delete the run's own stream, if it was created."""
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


def _worker_default(setting: str) -> int:
    from integration.pipelines.bigchat_ourapi.settings import BigChatOurApiSettings

    return int(BigChatOurApiSettings.model_fields[setting].default)


def ratios(runs: Sequence[RunResult]) -> list[tuple[RunResult, float | None, float | None]]:
    """The distributed rows with their events/s and CPU per 1,000 events as a ratio to the
    1-process row's (None where there is no such row, or it measured 0)."""
    rows = sorted((r for r in runs if r.workers is not None), key=lambda r: r.workers or 0)
    one = next((r for r in rows if r.workers == 1), None)
    out: list[tuple[RunResult, float | None, float | None]] = []
    for r in rows:
        speed = r.events_per_s / one.events_per_s if one and one.events_per_s > 0 else None
        cpu = (
            r.cpu_s_per_1000_events / one.cpu_s_per_1000_events
            if one and one.cpu_s_per_1000_events > 0
            else None
        )
        out.append((r, speed, cpu))
    return out

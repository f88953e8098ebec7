"""``python run.py crm bench``: the CRM sync measured, each figure against a baseline of the same
run, each run checked.

Rows (``--only`` takes a comma list of their names):

- ``null-providers``: the sync's own speed and CPU. Our system (the ``crm_internal`` stand-in, a
  child process) holds N contacts made up front; the sync runs in this process against a NULL
  provider (answers every write at once, reads nothing, no limit), one drain measured: wall
  time, this process's CPU time (the sync, its SQLite state and its HTTP client; not our
  system's stand-in, whose CPU is given apart), records/s and CPU s per 1,000 records.
- ``requests-per-record``: HubSpot requests the sync sends against a naive sync (one call per
  change in our feed: no batching, no coalescing), the same workload for both, each on fresh
  stand-ins: N contacts made in our system, then, while the integration runs, each one edited K
  times in a row; counted by HubSpot's own ``/_standin/stats`` until both sides agree.
- ``scaling``: 1 and then 2 ``python run.py crm`` worker processes in the several-workers mode
  (PostgreSQL and NATS JetStream, a fresh database and stream per run) against HubSpot with
  50 ms latency; N contacts made up front; records/s until every one is at HubSpot.

Every row is checked: each of our contacts at the provider exactly once, with our values.
Exit status 1 if any row failed its check.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sqlite3
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager, closing
from pathlib import Path
from typing import Any

import aiohttp
import click
from pydantic import BaseModel, Field

from . import world

DEFAULT_RECORDS = 2000
DEFAULT_EDITS = 3
ROWS = ("null-providers", "requests-per-record", "scaling")
DESCRIPTION = "The CRM sync measured, each figure against a baseline of the same run.\n\n" + (
    (__doc__ or "").split("\n\n", 1)[1].replace("``", "").replace("\n- ", "\n\n\b\n- ")
)
"""The help: the module docstring after its first paragraph (which names the command in docstring
markup); each row's paragraph kept as written (click's ``\\b``)."""


class Row(BaseModel):
    name: str
    verified: bool
    findings: list[str] = Field(default_factory=list)
    figures: dict[str, float | int | str | None] = Field(default_factory=dict)
    by_route: dict[str, dict[str, int]] = Field(default_factory=dict)
    """Requests by ``METHOD route status``, per integration measured."""
    notes: str = ""


class Report(BaseModel):
    command: str
    records: int
    edits: int
    rows: list[Row]


@click.command(
    "bench", help=DESCRIPTION, short_help="benchmark the CRM sync against null and naive baselines"
)
@click.option(
    "--records",
    type=click.IntRange(1),
    default=DEFAULT_RECORDS,
    help=f"contacts made in our system (default {DEFAULT_RECORDS:,})",
)
@click.option(
    "--edits",
    type=click.IntRange(0),
    default=DEFAULT_EDITS,
    help=f"edits per contact, requests-per-record row (default {DEFAULT_EDITS})",
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(path_type=Path),
    default=None,
    metavar="PATH",
    help="write the results as JSON (default: not written)",
)
@click.option(
    "--only",
    default=None,
    help=f"comma-separated rows to run (default: all of {', '.join(ROWS)})",
)
@click.option(
    "--dir",
    "directory",
    type=click.Path(path_type=Path),
    default=None,
    help="keep the runs' files (logs, databases) here (default: a temporary directory)",
)
@click.option(
    "--postgres-url",
    default="postgresql://postgres@127.0.0.1:5432/postgres",
    help="scaling row: the PostgreSQL server each run creates (and drops) a database on",
)
@click.option(
    "--nats-url", default="nats://127.0.0.1:4222", help="scaling row: NATS with JetStream"
)
def command(**options: Any) -> None:
    sys.exit(main(argparse.Namespace(**options)))


def main(args: argparse.Namespace) -> int:
    names = [n.strip() for n in args.only.split(",")] if args.only else list(ROWS)
    unknown = [n for n in names if n not in ROWS]
    if unknown:
        print(f"crm bench: --only: no such row {', '.join(unknown)}", file=sys.stderr)
        return 2
    if "scaling" in names:
        from devtools.bench.distributed import Services, unavailable

        reason = unavailable(Services(args.postgres_url, args.nats_url))
        if reason is not None:
            print(
                f"crm bench: the scaling row needs PostgreSQL and NATS: {reason}", file=sys.stderr
            )
            return 2
    if args.directory is not None:
        args.directory.mkdir(parents=True, exist_ok=True)
        return _bench(args, names, args.directory)
    with tempfile.TemporaryDirectory(prefix="crm-bench-") as tmp:
        return _bench(args, names, Path(tmp))


def _bench(args: argparse.Namespace, names: Sequence[str], directory: Path) -> int:
    rows: list[Row] = []
    runs: dict[str, Callable[[], Row]] = {
        "null-providers": lambda: asyncio.run(null_providers(args.records, directory / "null")),
        "requests-per-record": lambda: asyncio.run(
            requests_per_record(args.records, args.edits, directory / "requests")
        ),
        "scaling": lambda: _scaling(args, directory / "scaling"),
    }
    print(f"crm bench: {args.records} contacts, {args.edits} edits each", flush=True)
    for name in names:
        for folder in FOLDERS[name]:
            (directory / folder).mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        print(f"  {name}: running...", end="", flush=True)
        try:
            row = runs[name]()
        except Exception as exc:  # a run that breaks is a failed row, not a lost report
            row = Row(name=name, verified=False, findings=[f"{type(exc).__name__}: {exc}"])
        rows.append(row)
        state = "verified" if row.verified else "FAILED: " + "; ".join(row.findings)[:600]
        print(f" {state} ({time.monotonic() - started:.1f} s)", flush=True)
    report = Report(
        command=" ".join(["python run.py crm bench", *sys.argv[3:]])
        if sys.argv[1:3] == ["crm", "bench"]
        else f"python run.py crm bench --records {args.records} --edits {args.edits}",
        records=args.records,
        edits=args.edits,
        rows=rows,
    )
    print()
    print(table(rows))
    if args.json_path is not None:
        args.json_path.write_text(report.model_dump_json(indent=2))
        print(f"wrote {args.json_path}")
    return 0 if all(r.verified for r in rows) else 1


FOLDERS = {
    "null-providers": ("null",),
    "requests-per-record": ("requests/sync", "requests/naive"),
    "scaling": ("scaling",),
}
"""Each row's folders under the bench's directory (made before the row runs)."""


def _scaling(args: argparse.Namespace, directory: Path) -> Row:
    from .scaling import scaling

    return scaling(args.records, directory, args.postgres_url, args.nats_url)


# -- the table ---------------------------------------------------------------------------------


def table(rows: Sequence[Row]) -> str:
    lines = []
    for row in rows:
        lines.append(f"{row.name}: {'verified' if row.verified else 'FAILED'}")
        width = max((len(k) for k in row.figures), default=0)
        for key, value in row.figures.items():
            shown = f"{value:,.3f}".rstrip("0").rstrip(".") if isinstance(value, float) else value
            lines.append(f"  {key:<{width}}  {shown}")
        for finding in row.findings:
            lines.append(f"  ! {finding}")
        if row.notes:
            lines.append(f"  ({row.notes})")
    return "\n".join(lines)


def _round(value: float, places: int = 3) -> float:
    return round(value, places)


# -- the sync, in this process -----------------------------------------------------------------


def _settings(directory: Path, connections: Path, **overrides: Any) -> Any:
    from integration.pipelines.crm import CrmSettings

    values: dict[str, Any] = {
        "state_db": directory / "crm-state.db",
        "connections": connections,
        "log_level": "WARNING",
    }
    values.update(overrides)
    # No .env: the bench's settings are its own (CRM_* variables still apply, for experiments).
    return CrmSettings(_env_file=None, **values)


@dataclasses.dataclass
class Wiring:
    """What a sync assembled in this process was wired with (its writers' call counts)."""

    wired: list[Any] = dataclasses.field(default_factory=list)

    def batch_mean(self) -> float | None:
        calls = sum(w.writer.calls for w in self.wired)
        records = sum(w.writer.records for w in self.wired)
        return records / calls if calls else None


def _sync(wiring: Wiring, swap: Callable[[Any, Any, Any], Any] | None = None) -> Any:
    """The CRM sync assembled as ``python run.py crm`` assembles it, its connections' wiring
    kept in ``wiring``; ``swap(wired, settings, runtime)`` replaces each connection's wiring."""
    from integration.pipelines.crm import SYNC, crm_flows
    from integration.pipelines.crm.clients import connect
    from integration.pipelines.crm.connections import load

    @asynccontextmanager
    async def assemble(settings: Any, runtime: Any) -> AsyncIterator[Any]:
        config = load(settings.connections)
        async with connect(settings, config, runtime.clock, runtime.stats, runtime.store) as (
            internal,
            wired,
        ):
            chosen = [swap(w, settings, runtime) for w in wired] if swap else list(wired)
            wiring.wired[:] = chosen
            yield crm_flows(settings, runtime, internal, chosen)

    return dataclasses.replace(SYNC, assemble=assemble)


def _inbox_states(state_db: Path) -> dict[str, int]:
    with closing(sqlite3.connect(f"file:{state_db}?mode=ro", uri=True, timeout=5.0)) as db:
        rows = db.execute("SELECT state, COUNT(*) FROM inbox GROUP BY state").fetchall()
    return {str(state): int(n) for state, n in rows}


def _run_timeout(records: int) -> float:
    return 120.0 + records / 10


# -- row 1: null providers ---------------------------------------------------------------------


async def null_providers(records: int, directory: Path) -> Row:
    from integration.connectors.crm.budget import local_budget
    from integration.core.shell import open_engine
    from integration.pipelines.crm.clients import Wired
    from integration.pipelines.crm.writes import Writer

    from .null import NullConnector

    ours = world.internal(directory)
    nulls: list[NullConnector] = []

    def swap(wired: Any, settings: Any, runtime: Any) -> Any:
        null = NullConnector()
        nulls.append(null)
        writer = Writer(
            null, runtime.clock, linger=settings.batch_linger, batch=wired.connection.batch_writes
        )
        budget = local_budget(null.dimensions(), clock=runtime.clock)
        return Wired(wired.connection, null, budget, writer)

    try:
        async with aiohttp.ClientSession() as session:
            ids = await world.create_contacts(session, ours.url, records)
        # Never contacted: the null connector stands in for it.
        connections = world.connections_file(
            directory / "crm-connections.toml", ours.url, "http://127.0.0.1:9"
        )
        wiring = Wiring()
        settings = _settings(directory, connections)
        async with open_engine(_sync(wiring, swap), settings) as engine:
            standin_before = ours.cpu()
            internal_before = int(ours.stats()["total"])
            cpu_before = time.process_time()
            started = time.perf_counter()
            async with asyncio.timeout(_run_timeout(records)):
                await engine.run(asyncio.Event(), once=True)
            wall = time.perf_counter() - started
            cpu = time.process_time() - cpu_before
            standin_cpu = ours.cpu() - standin_before
            internal_requests = int(ours.stats()["total"]) - internal_before
            problems = list(engine.drain_problems)
    finally:
        ours.stop()
    null = nulls[0]
    wanted = {str(i) for i in ids}
    if set(null.created) != wanted:
        problems.append(
            f"created {len(null.created)} distinct contact(s) for {len(wanted)} of ours"
        )
    twice = sorted(i for i, n in null.created.items() if n > 1)
    if twice:
        problems.append(f"{len(twice)} contact(s) created more than once: {twice[:5]}")
    states = _inbox_states(directory / "crm-state.db")
    if states.get("dead") or states.get("pending"):
        problems.append(f"inbox not drained clean: {states}")
    return Row(
        name="null-providers",
        verified=not problems,
        findings=problems,
        figures={
            "records": records,
            "wall_s": _round(wall),
            "records_per_s": _round(records / wall, 1),
            "cpu_s": _round(cpu),
            "cpu_s_per_1000_records": _round(cpu / records * 1000),
            "internal_standin_cpu_s": _round(standin_cpu),
            "internal_requests_per_record": _round(internal_requests / records, 3),
            "provider_calls": null.upsert_calls,
            "records_per_call": _round(null.records_written / max(1, null.upsert_calls), 1),
        },
        notes="CPU is this process's (the sync, its SQLite state, its HTTP client) during one "
        "drain; our system's stand-in runs in a child process, its CPU given apart",
    )


# -- row 2: requests per record, the sync against a naive sync ---------------------------------


@dataclasses.dataclass
class Counted:
    requests: int
    by_route: dict[str, int]
    problems: list[str]
    batch_mean: float | None = None
    internal_requests: int | None = None
    internal_by_route: dict[str, int] = dataclasses.field(default_factory=dict)
    """Requests to our system (the sync's only: the person's and the bench's are taken off)."""
    feed_entries: int | None = None


async def _sync_run(records: int, edits: int, directory: Path) -> Counted:
    """The sync, running (polling every second) while the edits are made; stopped once HubSpot
    agrees with us, then one drain to read the echoes of its last writes."""
    from integration.core.shell import open_engine

    ours, hub = world.internal(directory), world.hubspot(directory)
    try:
        async with aiohttp.ClientSession() as session:
            ids = await world.create_contacts(session, ours.url, records)
            connections = world.connections_file(
                directory / "crm-connections.toml", ours.url, hub.url
            )
            wiring = Wiring()
            settings = _settings(directory, connections, poll_interval=1.0)
            # Our system's requests from here on are the sync's, and the person's edits.
            before = int(ours.stats()["total"]) + records * edits
            problems: list[str] = []
            deadline = time.monotonic() + _run_timeout(records * (1 + edits))
            async with open_engine(_sync(wiring, None), settings) as engine:
                stopping = asyncio.Event()
                running = asyncio.create_task(engine.run(stopping))
                try:
                    await world.edit_contacts(session, ours.url, ids, edits)
                    problems = await _until_agreed(session, ours.url, hub.url, deadline)
                finally:
                    stopping.set()
                    await asyncio.wait_for(running, 60.0)
            batch_mean = wiring.batch_mean()
            async with open_engine(_sync(wiring, None), settings) as engine:
                async with asyncio.timeout(60.0):
                    await engine.run(asyncio.Event(), once=True)
                problems += engine.drain_problems
            problems += await world.agree(session, ours.url, hub.url)
            stats = hub.stats()
            internal_stats = ours.stats()
            internal_requests = int(internal_stats["total"]) - before
    except Exception as exc:
        raise RuntimeError(f"sync: {exc} ({ours.state()}; {hub.state()})") from exc
    finally:
        ours.stop()
        hub.stop()
    if stats.get("limited"):
        problems.append(f"HubSpot refused {stats['limited']} request(s) for a limit")
    states = _inbox_states(directory / "crm-state.db")
    if states.get("dead") or states.get("pending"):
        problems.append(f"inbox not drained clean: {states}")
    return Counted(
        int(stats["total"]),
        world.requests_by_route(stats),
        problems,
        batch_mean,
        internal_requests,
        world.requests_by_route(internal_stats),
    )


async def _until_agreed(
    session: aiohttp.ClientSession, internal_url: str, hubspot_url: str, deadline: float
) -> list[str]:
    """Empty once HubSpot agrees with us; the last findings if it does not by ``deadline``."""
    while True:
        problems = await world.agree(session, internal_url, hubspot_url)
        if not problems:
            return []
        if time.monotonic() > deadline:
            return [f"HubSpot did not agree with us in time: {'; '.join(problems)}"]
        await asyncio.sleep(0.5)


async def _naive_run(records: int, edits: int, directory: Path) -> Counted:
    from .naive import NaiveSync

    ours, hub = world.internal(directory), world.hubspot(directory)
    try:
        async with aiohttp.ClientSession() as session:
            ids = await world.create_contacts(session, ours.url, records)
            naive = NaiveSync(session, ours.url, hub.url)
            done = asyncio.Event()

            async def follow() -> None:
                while not done.is_set():
                    await naive.drain()
                    await asyncio.sleep(0.2)
                await naive.drain()

            async with asyncio.timeout(_run_timeout(records * (1 + edits))):
                following = asyncio.create_task(follow())
                try:
                    await world.edit_contacts(session, ours.url, ids, edits)
                finally:
                    done.set()
                await following
            problems = await world.agree(session, ours.url, hub.url)
            stats = hub.stats()
    except Exception as exc:
        raise RuntimeError(f"naive: {exc} ({ours.state()}; {hub.state()})") from exc
    finally:
        ours.stop()
        hub.stop()
    return Counted(
        int(stats["total"]), world.requests_by_route(stats), problems, feed_entries=naive.entries
    )


async def requests_per_record(records: int, edits: int, directory: Path) -> Row:
    sync = await _sync_run(records, edits, directory / "sync")
    naive = await _naive_run(records, edits, directory / "naive")
    changes = records * (1 + edits)
    problems = [f"sync: {p}" for p in sync.problems] + [f"naive: {p}" for p in naive.problems]
    return Row(
        name="requests-per-record",
        verified=not problems,
        findings=problems,
        figures={
            "records": records,
            "changes": changes,
            "sync_requests": sync.requests,
            "naive_requests": naive.requests,
            "sync_requests_per_record": _round(sync.requests / records, 4),
            "naive_requests_per_record": _round(naive.requests / records, 4),
            "sync_requests_per_change": _round(sync.requests / changes, 4),
            "naive_requests_per_change": _round(naive.requests / changes, 4),
            "naive_over_sync": _round(naive.requests / sync.requests, 2) if sync.requests else None,
            "naive_feed_entries": naive.feed_entries,
            "sync_internal_requests_per_record": _round((sync.internal_requests or 0) / records, 3),
            "sync_records_per_write_call": _round(sync.batch_mean, 1) if sync.batch_mean else None,
        },
        by_route={
            "sync": sync.by_route,
            "naive": naive.by_route,
            "sync_internal (the person's creates and edits included)": sync.internal_by_route,
        },
        notes="changes = creates + edits in our feed; HubSpot requests counted by its "
        "/_standin/stats (reads included: the sync's searches and the echoes of its writes); "
        "each contact's edits are made back to back while the integration runs; our feed shows a "
        "record once at its newest version, so the naive sync sees fewer entries than changes "
        "made (naive_feed_entries)",
    )

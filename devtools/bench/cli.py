"""``python run.py bench``: the worker against a naive integration, measured in one run.

Starts BigChat (a frozen, seeded world) and, per run, a fresh OurAPI as child processes on free
127.0.0.1 ports; measures OurAPI's real single-connection limit (one client, one request at a
time: the yardstick for the one-in-flight target), runs the naive baseline, the worker with one
request in flight, with its defaults, over a concurrency sweep and against a null sink; prints a
table and the targets.
--only distributed runs the distributed rows instead: 1, 2 and 3 worker processes in the
several-workers mode (PostgreSQL and NATS JetStream, see --postgres-url); they are not in the
default set.
Exit status 1 if any run failed its check.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import click

from .distributed import DEFAULT_NATS_URL, DEFAULT_POSTGRES_URL, Services, unavailable
from .models import BenchReport, RunResult
from .processes import StandIn
from .report import (
    PlotUnavailable,
    distributed_table,
    plot,
    require_matplotlib,
    table,
    targets,
    targets_table,
    to_json,
)
from .runs import Bench, plan

DESCRIPTION = "The worker against a naive integration, measured in one run.\n\n" + (
    __doc__.split("\n", 1)[1].lstrip() if __doc__ else ""
)
"""The help's description: the module docstring, its first line (which names the command in
docstring markup) said plainly."""

DEFAULT_EVENTS = 10_000
QUICK_EVENTS = 400
QUICK_LIMIT_REQUESTS = 150
"""--quick's single-connection measurement: half the requests, so the whole stays under a minute."""
SEED = 1
HISTORY = 3600.0


@click.command(
    "bench", help=DESCRIPTION, short_help="benchmark the worker against a naive integration"
)
@click.option(
    "--events", type=int, default=None, help=f"workload size (default {DEFAULT_EVENTS:,})"
)
@click.option(
    "--quick",
    is_flag=True,
    help=f"a small workload ({QUICK_EVENTS} events) of every kind (the single-connection "
    f"baseline with {QUICK_LIMIT_REQUESTS} requests) (default: off, {DEFAULT_EVENTS:,} events)",
)
@click.option(
    "--latency-ms", type=float, default=10.0, help="OurAPI's latency per call (default 10)"
)
@click.option(
    "--json",
    type=click.Path(path_type=Path),
    default=None,
    metavar="PATH",
    help="write the results as JSON (default: not written)",
)
@click.option(
    "--plot",
    type=click.Path(path_type=Path),
    default=None,
    metavar="PATH",
    help="write a PNG chart (default: none; needs matplotlib)",
)
@click.option("--page-size", type=int, default=100, help="BigChat's page size (default 100)")
@click.option(
    "--dir",
    type=click.Path(path_type=Path),
    default=None,
    help="keep the runs' files (logs, databases) here (default: a temporary directory, "
    "removed at the end)",
)
@click.option(
    "--timeout",
    type=float,
    default=None,
    help="seconds one run may take (default from the workload size)",
)
@click.option(
    "--postgres-url",
    default=DEFAULT_POSTGRES_URL,
    help="distributed rows: a PostgreSQL server, each run creates and drops a database there "
    f"(default: {DEFAULT_POSTGRES_URL})",
)
@click.option(
    "--nats-url",
    default=DEFAULT_NATS_URL,
    help="distributed rows: NATS with JetStream, each run creates and deletes a stream of its own "
    f"(default: {DEFAULT_NATS_URL})",
)
# For tests and investigations: run only these (comma-separated names; ``distributed``: the
# distributed rows).
@click.option("--only", default=None, hidden=True)
# For profiling: a command line the worker's own is run under, e.g. "py-spy record -o W.raw
# --format raw --" (its CPU figures are then the wrapper's and the worker's together).
@click.option("--wrap-worker", default=None, hidden=True)
def command(**options: Any) -> None:
    sys.exit(main(argparse.Namespace(**options)))


def main(args: argparse.Namespace) -> int:
    if args.plot is not None:
        try:
            require_matplotlib()
        except PlotUnavailable as exc:
            print(f"bench: {exc}", file=sys.stderr)
            return 2
    events = args.events or (QUICK_EVENTS if args.quick else DEFAULT_EVENTS)
    names = [n.strip() for n in args.only.split(",")] if args.only else None
    specs = plan(names)
    if not specs:
        print(f"bench: --only {args.only}: no such run", file=sys.stderr)
        return 2
    services = Services(args.postgres_url, args.nats_url)
    if any(s.kind == "distributed" for s in specs):
        reason = unavailable(services)
        if reason is not None:
            print(
                f"bench: the distributed rows need PostgreSQL and NATS: {reason}", file=sys.stderr
            )
            return 2
    args.services = services
    if args.dir is not None:
        args.dir.mkdir(parents=True, exist_ok=True)
        return _bench(args, events, specs, args.dir)
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        return _bench(args, events, specs, Path(tmp))


def _bench(args: argparse.Namespace, events: int, specs: list[Any], directory: Path) -> int:
    # Here, not at the top: the workload comes from BigChat's simulated world, and ``python run.py``
    # imports this module (for ``register``) whatever the command, the worker's included.
    from .workload import build

    workload = build(events, seed=SEED, history=HISTORY, page_size=args.page_size)
    print(
        f"workload: {workload.events} events in {workload.conversations} conversations "
        f"({workload.messages} messages, {workload.transfers} transfers, {workload.ends} ends, "
        f"{workload.advisors} advisors), seed {workload.seed}, epoch {workload.epoch:.0f}, "
        f"BigChat frozen at {workload.frozen_at:.0f}; OurAPI latency {args.latency_ms:g} ms",
        flush=True,
    )
    timeout = args.timeout or 60.0 + workload.events / 10
    bigchat = StandIn(
        "bigchat",
        "devtools.bench.bigchat_frozen",
        [
            "--seed",
            str(workload.seed),
            "--conversation-rate",
            repr(workload.conversation_rate),
            "--epoch",
            repr(workload.epoch),
            "--frozen-at",
            repr(workload.frozen_at),
            "--page-size",
            str(workload.page_size),
        ],
        directory,
    )
    runs: list[RunResult] = []
    try:
        bench = Bench(
            workload, bigchat, directory, args.latency_ms, timeout, services=args.services
        )
        if args.wrap_worker:
            bench.worker_prefix = shlex.split(args.wrap_worker)
        if args.quick:
            bench.limit_requests = QUICK_LIMIT_REQUESTS
        for spec in specs:
            started = time.monotonic()
            print(f"  {spec.name}: running...", end="", flush=True)
            result = bench.run(spec)
            runs.append(result)
            if result.requests_per_s is not None:  # the single-connection measurement
                print(
                    f" {result.events} requests one at a time, {result.requests_per_s:.1f} "
                    f"requests/s, {result.ms_per_request or 0:.2f} ms per request, "
                    f"{'ok' if result.verified else 'FAILED: ' + result.verify_detail[:300]} "
                    f"({time.monotonic() - started:.1f} s)",
                    flush=True,
                )
                continue
            workers = f"{result.workers} worker(s), " if result.workers is not None else ""
            print(
                f" {workers}{result.events} events, {result.events_per_s:.1f} events/s, "
                f"{result.requests_per_event:.3f} requests/event, "
                f"{'verified' if result.verified else 'FAILED: ' + result.verify_detail[:300]} "
                f"({time.monotonic() - started:.1f} s)",
                flush=True,
            )
    finally:
        bigchat.stop()
    report = BenchReport(
        workload=workload,
        latency_ms=args.latency_ms,
        runs=runs,
        targets=targets(runs, workload, args.latency_ms),
    )
    print()
    print(table(runs))
    print()
    distributed = distributed_table(runs)
    if distributed:
        print(distributed)
        print()
    print(targets_table(report.targets))
    print(f"lag: {report.lag_definition}")
    if args.json is not None:
        args.json.write_text(to_json(report))
        print(f"wrote {args.json}")
    if args.plot is not None:
        plot(runs, args.plot, latency_ms=args.latency_ms)
        print(f"wrote {args.plot}")
    return 0 if all(r.verified for r in runs) else 1

"""One run of the bench: a fresh OurAPI and fresh state, the program under test in a child
process, stopped once it has drained, then measured and checked against the ground truth."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from integration.pipelines.bigchat_ourapi.settings import BigChatOurApiSettings as Settings

from . import limit, verification
from .distributed import DISTRIBUTED, WORKER_COUNTS, DistributedRun, Services
from .measure import (
    CHATS,
    MESSAGES,
    applied_events,
    by_route,
    null_sink_findings,
    progress,
    throughput,
)
from .models import (
    SINGLE_CONNECTION,
    Applied,
    BigChatStats,
    NaiveOutput,
    OurApiStats,
    RunResult,
    SingleConnection,
    Workload,
)
from .processes import REPO, Child, StandIn, rss_mb

POLL_EVERY = 0.1
"""Seconds between two looks at a running child (its exit, its memory)."""

WORKER_SETTINGS = frozenset(name.upper() for name in Settings.model_fields)
"""Left out of the environment the worker inherits: it runs on its defaults plus the run's own."""


@dataclass(frozen=True)
class RunSpec:
    name: str
    kind: Literal["limit", "naive", "worker", "distributed"]
    settings: dict[str, str] = field(default_factory=dict)
    """The worker's settings beyond the bench's own (env names: ``CONCURRENCY``...)."""
    null_sink: bool = False
    workers: int = 1
    """Distributed rows: worker processes in the several-workers mode."""


def plan(names: list[str] | None = None) -> list[RunSpec]:
    """Every run of the bench, in order; ``names`` keeps only those. The distributed rows need
    PostgreSQL and NATS, so they run only when named: ``distributed`` names all of them."""
    specs = [
        RunSpec(SINGLE_CONNECTION, "limit"),
        RunSpec("naive", "naive"),
        RunSpec("inflight-1", "worker", {"OURAPI_MAX_IN_FLIGHT": "1"}),
        RunSpec("default", "worker"),
        *(
            RunSpec(
                f"concurrency-{n}",
                "worker",
                {"CONCURRENCY": str(n), "OURAPI_MAX_IN_FLIGHT": str(n)},
            )
            for n in (1, 4, 16, 64)
        ),
        RunSpec("null-sink", "worker", null_sink=True),
        *(RunSpec(f"{DISTRIBUTED}-{n}", "distributed", workers=n) for n in WORKER_COUNTS),
    ]
    if names is None:
        return [s for s in specs if s.kind != "distributed"]
    return [
        s for s in specs if s.name in names or (s.kind == "distributed" and DISTRIBUTED in names)
    ]


@dataclass
class Bench:
    """What every run shares: the workload, the BigChat stand-in, where files go."""

    workload: Workload
    bigchat: StandIn
    directory: Path
    latency_ms: float
    timeout: float
    limit_requests: int = limit.REQUESTS
    """The single-connection run's bound: this many requests or ``limit.MAX_SECONDS``."""
    worker_prefix: list[str] = field(default_factory=list)
    """A command the worker runs under (a profiler); empty: the worker alone."""
    services: Services | None = None
    """PostgreSQL and NATS, for the distributed rows."""

    def run(self, spec: RunSpec) -> RunResult:
        where = self.directory / spec.name
        where.mkdir(parents=True, exist_ok=True)
        args = (
            ["--latency-ms", "0", "--null-sink"]
            if spec.null_sink
            else ["--latency-ms", f"{self.latency_ms:g}", "--db", str(where / "ourapi.db")]
        )
        ourapi = StandIn(f"{spec.name}-ourapi", "our_api", args, where)
        try:
            if spec.kind == "limit":
                return self._single_connection(spec, ourapi, where)
            if spec.kind == "distributed":
                return self._distributed(spec, ourapi, where)
            return _Run(self, spec, ourapi, where).measure()
        finally:
            ourapi.stop()

    def _distributed(self, spec: RunSpec, ourapi: StandIn, where: Path) -> RunResult:
        if self.services is None:
            raise ValueError(f"{spec.name} needs PostgreSQL and NATS (Bench.services)")
        return DistributedRun(
            name=spec.name,
            workers=spec.workers,
            workload=self.workload,
            bigchat=self.bigchat,
            ourapi=ourapi,
            where=where,
            services=self.services,
            timeout=self.timeout,
            worker_env={k: v for k, v in os.environ.items() if k.upper() not in WORKER_SETTINGS},
            settings={
                **worker_settings(self.workload, self.bigchat.url, ourapi.url),
                **spec.settings,
            },
        ).measure()

    def _single_connection(self, spec: RunSpec, ourapi: StandIn, where: Path) -> RunResult:
        """``limit.single_connection`` in a child process (its CPU and RSS its own), checked at
        the stand-in: every request counted there and answered 2xx, one chat and
        ``warmup + requests`` messages written. The event figures read one event per request,
        the limit's definition: ``events_per_s`` is requests/s, lag is the time per request."""
        out = where / "single-connection.json"
        child = Child(
            spec.name,
            [
                "-m",
                "devtools.bench.limit",
                "--ourapi-url",
                ourapi.url,
                "--out",
                str(out),
                "--requests",
                str(self.limit_requests),
            ],
            log_path=where / "single-connection.log",
            cwd=REPO,
        )
        try:
            timed_out = child.wait(self.timeout) is None
        finally:
            usage = child.stop()
        stats = OurApiStats.model_validate(ourapi.stats())
        errors = [f"did not finish within {self.timeout:g} s"] if timed_out else []
        if usage.exit_code != 0:
            errors.append(f"exit status {usage.exit_code}:\n{child.tail()}")
        if not out.exists():
            errors.append("the single-connection client wrote no output")
            found = SingleConnection(
                requests=0, warmup=0, seconds=0.0, requests_per_s=0.0, ms_per_request=0.0,
                p50_ms=0.0, p99_ms=0.0,
            )  # fmt: skip
        else:
            found = SingleConnection.model_validate_json(out.read_text())
            errors.extend(found.errors)
        messages = stats.count("POST", MESSAGES)
        if not errors:
            if found.requests == 0:
                errors.append("no request was timed")
            if stats.count("POST", CHATS) != 1 or messages != found.warmup + found.requests:
                errors.append(
                    f"the stand-in counted {stats.count('POST', CHATS)} chat(s) and {messages} "
                    f"message(s), not 1 and {found.warmup + found.requests}"
                )
            if any(r.status >= 300 for r in stats.requests):
                errors.append("a request was answered >= 300")
        n = max(1, found.requests)
        return RunResult(
            name=spec.name,
            events=found.requests,
            events_per_s=found.requests_per_s,
            requests_per_event=round(max(0, messages - found.warmup) / n, 3),
            lag_p50_s=round(found.p50_ms / 1000, 4),
            lag_p99_s=round(found.p99_ms / 1000, 4),
            cpu_s_per_1000_events=round(usage.cpu_s / n * 1000, 3),
            peak_rss_mb=round(usage.peak_rss_mb, 1),
            verified=not errors,
            expected_events=found.requests,
            wall_s=round(found.seconds, 2),
            ourapi_requests=stats.total,
            bigchat_requests=0,
            bigchat_requests_per_event=0.0,
            cpu_s=round(usage.cpu_s, 2),
            concurrency=1,
            ourapi_max_in_flight=1,
            exit_code=usage.exit_code,
            verify_detail="; ".join(errors)[:2000],
            requests_by_route=by_route(stats),
            requests_per_s=found.requests_per_s,
            ms_per_request=found.ms_per_request,
        )


class _Run:
    def __init__(self, bench: Bench, spec: RunSpec, ourapi: StandIn, where: Path) -> None:
        self.bench = bench
        self.workload = bench.workload
        self.spec = spec
        self.ourapi = ourapi
        self.where = where
        self.rss: list[tuple[int, float]] = []  # (events applied, RSS MB) while it ran
        self.timed_out = False
        self.state_db: Path | None = None

    def measure(self) -> RunResult:
        bigchat_before = BigChatStats.model_validate(self.bench.bigchat.stats()).total
        if self.spec.kind == "naive":
            child, applied, errors = self._naive()
        else:
            child, applied, errors = self._worker()
        assert child.usage is not None
        ourapi_stats = OurApiStats.model_validate(self.ourapi.stats())
        bigchat_requests = BigChatStats.model_validate(self.bench.bigchat.stats()).total
        bigchat_requests -= bigchat_before
        if child.usage.exit_code != 0:
            errors.append(f"exit status {child.usage.exit_code}:\n{child.tail()}")
        if self.timed_out:
            errors.append(f"did not drain within {self.bench.timeout:g} s")
        if len(applied) != self.workload.events:
            errors.append(f"applied {len(applied)} of {self.workload.events} events")
        if not errors:
            errors.extend(self._check(ourapi_stats))
        t = throughput(applied, child.started_at)
        n = max(1, t.events)
        return RunResult(
            name=self.spec.name,
            events=t.events,
            events_per_s=round(t.events_per_s, 1),
            requests_per_event=round(ourapi_stats.total / n, 3),
            lag_p50_s=round(t.lag_p50_s, 3),
            lag_p99_s=round(t.lag_p99_s, 3),
            cpu_s_per_1000_events=round(child.usage.cpu_s / n * 1000, 3),
            peak_rss_mb=round(child.usage.peak_rss_mb, 1),
            verified=not errors,
            expected_events=self.workload.events,
            wall_s=round(max(a.finished_at for a in applied) - child.started_at, 2)
            if applied
            else 0.0,
            ourapi_requests=ourapi_stats.total,
            bigchat_requests=bigchat_requests,
            bigchat_requests_per_event=round(bigchat_requests / n, 3),
            cpu_s=round(child.usage.cpu_s, 2),
            rss_growth_mb=self._rss_growth(),
            concurrency=_int(self.spec.settings.get("CONCURRENCY"), _default("concurrency"))
            if self.spec.kind == "worker"
            else 1,
            ourapi_max_in_flight=_int(
                self.spec.settings.get("OURAPI_MAX_IN_FLIGHT"), _default("ourapi_max_in_flight")
            )
            if self.spec.kind == "worker"
            else 1,
            dead=self._dead(),
            exit_code=child.usage.exit_code,
            verify_detail="; ".join(errors)[:2000],
            requests_by_route=by_route(ourapi_stats),
        )

    # -- the two kinds of run --------------------------------------------------------------

    def _naive(self) -> tuple[Child, list[Applied], list[str]]:
        out = self.where / "naive.json"
        child = Child(
            self.spec.name,
            [
                "-m",
                "devtools.bench.naive",
                "--bigchat-url",
                self.bench.bigchat.url,
                "--ourapi-url",
                self.ourapi.url,
                "--start-at",
                f"{self.workload.epoch}",
                "--end-at",
                f"{self.workload.end}",
                "--out",
                str(out),
            ],
            log_path=self.where / "naive.log",
            cwd=REPO,
        )
        try:
            deadline = time.monotonic() + self.bench.timeout
            while time.monotonic() < deadline and child.poll() is None:
                self._sample(child, None)
                time.sleep(POLL_EVERY)
            self.timed_out = child.poll() is None
        finally:
            child.stop()
        if not out.exists():
            return child, [], ["the naive baseline wrote no output"]
        output = NaiveOutput.model_validate_json(out.read_text())
        return child, output.applied, list(output.errors)

    def _worker(self) -> tuple[Child, list[Applied], list[str]]:
        state_db = self.where / "state.db"
        settings = {
            **worker_settings(self.workload, self.bench.bigchat.url, self.ourapi.url),
            "STATE_DB": str(state_db),
            **self.spec.settings,
        }
        # The worker's own defaults, not whatever the shell that runs the bench has set.
        env = {k: v for k, v in os.environ.items() if k.upper() not in WORKER_SETTINGS}
        # Drain mode: the worker reads the whole backlog, applies it, and exits by itself; its
        # exit is the end of the run (no reading of its state file while it works).
        child = Child(
            self.spec.name,
            [str(REPO / "run.py"), "--once"],
            log_path=self.where / "worker.log",
            env={**env, **settings},
            prefix=self.bench.worker_prefix,
            cwd=self.where,  # no .env from the repository: the settings are all given here
        )
        self.state_db = state_db
        try:
            deadline = time.monotonic() + self.bench.timeout
            while time.monotonic() < deadline and child.poll() is None:
                # Read only for the memory curve (RSS against events applied so far).
                now = progress(state_db)
                self._sample(child, now.done if now else None)
                time.sleep(POLL_EVERY)
            self.timed_out = child.poll() is None
        finally:
            child.stop()  # SIGTERM: the worker's clean stop, if it had not finished
        errors = []
        usage = child.poll()
        if not self.timed_out:
            after = progress(state_db)
            if usage is None or usage.exit_code != 0:
                status = usage.exit_code if usage else "unknown"
                errors.append(f"the worker's drain exited with status {status}")
            elif after is None or not after.drained(self.workload):
                errors.append("the worker said it drained, but its state has work left")
        return child, applied_events(state_db) if state_db.exists() else [], errors

    # -- checks and samples ----------------------------------------------------------------

    def _check(self, stats: OurApiStats) -> list[str]:
        if self.spec.null_sink:
            return null_sink_findings(stats, self.workload)
        return verification.findings(
            self.bench.bigchat.url, self.ourapi.url, self.workload.conversation_ids
        )

    def _sample(self, child: Child, applied: int | None) -> None:
        rss = rss_mb(child.pid)
        if rss is not None and applied is not None:
            self.rss.append((applied, rss))

    def _rss_growth(self) -> float | None:
        tenth = [rss for n, rss in self.rss if n >= self.workload.events / 10]
        if len(tenth) < 2:
            return None
        return round(tenth[-1] - tenth[0], 1)

    def _dead(self) -> int:
        if self.state_db is None:
            return 0
        now = progress(self.state_db)
        return now.dead if now else 0


def worker_settings(workload: Workload, bigchat_url: str, ourapi_url: str) -> dict[str, str]:
    """The worker's settings in every run (env names), its state's aside."""
    return {
        "BIGCHAT_URL": bigchat_url,
        "OURAPI_URL": ourapi_url,
        "START_AT": f"{workload.epoch}",
        "POLL_INTERVAL": "0.2",
        "POLL_LAG": "0",
        # Catch-up in one window: from the world's start to now.
        "MAX_WINDOW": f"{time.time() - workload.epoch + 86_400:.0f}",
    }


def _default(setting: str) -> int:
    """The worker's own default for ``setting`` (what a run that does not set it gets)."""
    return int(Settings.model_fields[setting].default)


def _int(value: str | None, default: int) -> int:
    return int(value) if value is not None else default

"""The bench's results for people (a table, the targets) and machines (JSON, a PNG chart)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

from .distributed import ratios
from .models import SINGLE_CONNECTION, BenchReport, RunResult, Target, Workload

DEMO_CONVERSATION_RATE = 0.5
"""``python run.py demo``'s default: the event rate the catch-up target speaks of."""

JSON_FIELDS = (
    "name",
    "events",
    "events_per_s",
    "requests_per_event",
    "lag_p50_s",
    "lag_p99_s",
    "cpu_s_per_1000_events",
    "peak_rss_mb",
    "verified",
)
"""The issue's shape, first in every run; the extras follow."""

SINGLE_CONNECTION_FIELDS = ("requests_per_s", "ms_per_request")
"""Only the single-connection run has these; the other runs' JSON leaves them out."""

DISTRIBUTED_FIELDS = (
    "workers",
    "partitions",
    "settle_s",
    "startup_cpu_s",
    "machine_cpu_busy",
    "standins_cpu_s",
    "postgres_cpu_s",
    "nats_cpu_s",
    "other_cpu_s",
    "published_per_s",
)
"""Only the distributed rows have these; the other runs' JSON leaves them out."""

WORKER_RUNS_REAL = (
    "inflight-1",
    "default",
    "concurrency-1",
    "concurrency-4",
    "concurrency-16",
    "concurrency-64",
)


def _find(runs: Sequence[RunResult], name: str) -> RunResult | None:
    return next((r for r in runs if r.name == name), None)


def _ratio(run: RunResult, naive: RunResult | None) -> str:
    if naive is None or naive.events_per_s <= 0 or run.name == SINGLE_CONNECTION:
        return "-"
    return f"{run.events_per_s / naive.events_per_s:.1f}x"


def table(runs: Sequence[RunResult]) -> str:
    naive = _find(runs, "naive")
    head = (
        f"{'run':<17} {'events':>6} {'ev/s':>8} {'vs naive':>8} {'req/ev':>7} {'BC r/ev':>7} "
        f"{'lag p50':>8} {'lag p99':>8} {'cpu s/1k':>8} {'RSS MB':>7} {'wall s':>7}  verified"
    )
    lines = [head, "-" * len(head)]
    for r in runs:
        lines.append(
            f"{r.name:<17} {r.events:>6} {r.events_per_s:>8.1f} {_ratio(r, naive):>8} "
            f"{r.requests_per_event:>7.3f} {r.bigchat_requests_per_event:>7.3f} "
            f"{r.lag_p50_s:>7.2f}s {r.lag_p99_s:>7.2f}s {r.cpu_s_per_1000_events:>8.3f} "
            f"{r.peak_rss_mb:>7.1f} {r.wall_s:>7.1f}  {'yes' if r.verified else 'NO'}"
        )
    single = _find(runs, SINGLE_CONNECTION)
    if single is not None:
        lines.append(
            f"  {SINGLE_CONNECTION}: OurAPI one request at a time (POST /chats/{{id}}/messages, "
            f"one connection): {single.events} requests, {single.requests_per_s or 0:.1f} "
            f"requests/s,\n    {single.ms_per_request or 0:.2f} ms per request (mean); its ev/s "
            f"is requests/s, its lag p50/p99 the time per request"
        )
    for r in runs:
        if not r.verified:
            lines.append(f"  {r.name}: {r.verify_detail}")
    return "\n".join(lines)


def _times(ratio: float | None) -> str:
    return f"{ratio:.2f}x" if ratio is not None else "-"


def distributed_table(runs: Sequence[RunResult]) -> str:
    """The distributed rows side by side, each against the 1-process row (empty: none ran)."""
    rows = ratios(runs)
    if not rows:
        return ""
    head = (
        f"{'workers':>7} {'events':>6} {'ev/s':>8} {'vs 1':>6} {'pub/s':>6} {'cpu s/1k':>8} "
        f"{'vs 1':>6} {'cpu s':>6} {'BC+OA':>6} {'PG':>6} {'NATS':>6} {'other':>6} {'machine':>7} "
        f"{'RSS MB':>6} {'wall s':>6}  exactly once"
    )
    partitions = rows[0][0].partitions
    lines = [
        f"distributed: the several-workers mode, {partitions} partitions, a fresh PostgreSQL "
        "database and JetStream stream per row",
        head,
        "-" * len(head),
    ]

    def opt(value: float | None, form: str) -> str:
        return format(value, form) if value is not None else "-"

    for r, speed, cpu in rows:
        lines.append(
            f"{r.workers:>7} {r.events:>6} {r.events_per_s:>8.1f} {_times(speed):>6} "
            f"{opt(r.published_per_s, '.0f'):>6} {r.cpu_s_per_1000_events:>8.3f} "
            f"{_times(cpu):>6} {r.cpu_s:>6.2f} {opt(r.standins_cpu_s, '.2f'):>6} "
            f"{opt(r.postgres_cpu_s, '.2f'):>6} {opt(r.nats_cpu_s, '.2f'):>6} "
            f"{opt(r.other_cpu_s, '.2f'):>6} "
            f"{opt(r.machine_cpu_busy, '.0%'):>7} {r.peak_rss_mb:>6.1f} {r.wall_s:>6.1f}  "
            f"{'yes' if r.verified else 'NO'}"
        )
    lines.extend(
        [
            "  ev/s: from the first event applied to the last; pub/s: entries the one poller "
            "published to JetStream per",
            "  second (first to last message), the ceiling of ev/s; cpu: the workers' user+sys "
            "while they worked (startup",
            "  and settling left out), summed; then CPU s meanwhile of BigChat + OurAPI, of the "
            "run database's PostgreSQL",
            "  backends, of nats-server (every client's), and the machine's busy CPU none of "
            "these explain (other programs,",
            "  the kernel, PostgreSQL's background); machine: the share of all cores busy "
            "meanwhile, whatever ran;",
            "  RSS: the largest worker's peak; lag counts from the first page served; exactly "
            "once: each create in OurAPI",
            "  exactly once, and verify against BigChat",
        ]
    )
    return "\n".join(lines)


def _target(
    name: str,
    wanted: str,
    runs: Sequence[RunResult],
    needs: Sequence[str],
    measure: Callable[[dict[str, RunResult]], tuple[str, bool]],
) -> Target:
    found = {n: r for n in needs if (r := _find(runs, n)) is not None}
    if len(found) < len(needs):
        return Target(name=name, wanted=wanted, measured="not run", met=None)
    measured, met = measure(found)
    return Target(name=name, wanted=wanted, measured=measured, met=met)


def targets(runs: Sequence[RunResult], workload: Workload, latency_ms: float) -> list[Target]:
    """The issue's targets, each with what was measured and whether it is met. A run that
    failed verification meets nothing."""
    ceiling = 1000.0 / latency_ms if latency_ms > 0 else float("inf")
    real = [r for r in runs if r.name in WORKER_RUNS_REAL]
    out: list[Target] = []
    if real:
        worst = max(real, key=lambda r: r.requests_per_event)
        out.append(
            Target(
                name="requests per event",
                wanted=f"<= 1.05 (worst worker run, over {workload.events} events)",
                measured=f"{worst.requests_per_event:.3f} ({worst.name})",
                met=worst.requests_per_event <= 1.05 and all(r.verified for r in real),
            )
        )
        fattest = max(
            real + [r for r in runs if r.name == "null-sink"], key=lambda r: r.peak_rss_mb
        )
        out.append(
            Target(
                name="peak RSS",
                wanted="< 150 MB (worst worker run)",
                measured=f"{fattest.peak_rss_mb:.1f} MB ({fattest.name})",
                met=fattest.peak_rss_mb < 150,
            )
        )

    def ok(*rs: RunResult) -> bool:
        return all(r.verified for r in rs)

    single = _find(runs, SINGLE_CONNECTION)
    limit = (single.requests_per_s or 0.0) if single is not None else 0.0
    out.append(
        _target(
            "one in flight vs the single-connection limit (measured)",
            f">= 0.9 x measured single-connection requests/s = 0.9 x {limit:.1f} = "
            f"{0.9 * limit:.1f} events/s"
            if single is not None
            else ">= 0.9 x measured single-connection requests/s",
            runs,
            [SINGLE_CONNECTION, "inflight-1"],
            lambda f: (
                f"{f['inflight-1'].events_per_s:.1f} events/s = "
                f"{f['inflight-1'].events_per_s / max(limit, 1e-9):.2f} x the measured limit",
                ok(f["inflight-1"], f[SINGLE_CONNECTION])
                and limit > 0
                and f["inflight-1"].events_per_s >= 0.9 * limit,
            ),
        )
    )
    out.append(
        _target(
            "one in flight vs the nominal limit (reference only)",
            f">= 0.9 x 1/latency (nominal, {latency_ms:g} ms) = {0.9 * ceiling:.0f} events/s",
            runs,
            ["inflight-1"],
            lambda f: (
                f"{f['inflight-1'].events_per_s:.1f} events/s",
                ok(f["inflight-1"]) and f["inflight-1"].events_per_s >= 0.9 * ceiling,
            ),
        )
    )
    for name, run, factor in (
        ("one in flight vs naive", "inflight-1", 1.4),
        ("default concurrency vs naive", "default", 20.0),
    ):
        out.append(
            _target(
                name,
                f">= {factor:g} x naive",
                runs,
                ["naive", run],
                lambda f, run=run, factor=factor: (  # type: ignore[misc]
                    f"{f[run].events_per_s / max(f['naive'].events_per_s, 1e-9):.1f} x "
                    f"({f[run].events_per_s:.1f} vs {f['naive'].events_per_s:.1f} events/s)",
                    ok(f[run], f["naive"])
                    and f[run].events_per_s >= factor * f["naive"].events_per_s,
                ),
            )
        )
    per_conversation = workload.events / max(1, workload.conversations)
    hour = DEMO_CONVERSATION_RATE * 3600 * per_conversation
    out.append(
        _target(
            "catch-up",
            f"an hour at the demo's rate (~{hour:.0f} events) in < 60 s (at default's events/s)",
            runs,
            ["default"],
            lambda f: (
                f"{hour / max(f['default'].events_per_s, 1e-9):.1f} s",
                ok(f["default"]) and hour / max(f["default"].events_per_s, 1e-9) < 60,
            ),
        )
    )
    out.append(
        _target(
            "null sink",
            ">= 3,500 events/s",
            runs,
            ["null-sink"],
            lambda f: (
                f"{f['null-sink'].events_per_s:.1f} events/s, "
                f"{f['null-sink'].cpu_s_per_1000_events:.3f} CPU s per 1,000 events",
                ok(f["null-sink"]) and f["null-sink"].events_per_s >= 3500,
            ),
        )
    )
    return out


def targets_table(found: Sequence[Target]) -> str:
    lines = ["targets:"]
    for t in found:
        verdict = {True: "MET", False: "NOT MET", None: "n/a"}[t.met]
        lines.append(f"  [{verdict:^7}] {t.name}: {t.measured} (wanted {t.wanted})")
    return "\n".join(lines)


def to_json(report: BenchReport) -> str:
    """``{"runs": [...]}`` in the issue's shape (its fields first), plus the workload, the
    targets and how lag is defined."""
    runs = []
    for run in report.runs:
        data = run.model_dump(mode="json")
        for extra in (*SINGLE_CONNECTION_FIELDS, *DISTRIBUTED_FIELDS):
            if data[extra] is None:
                del data[extra]
        runs.append({**{k: data.pop(k) for k in JSON_FIELDS}, **data})
    distributed = [
        {
            "name": r.name,
            "workers": r.workers,
            "events_per_s": r.events_per_s,
            "events_per_s_vs_1": round(speed, 3) if speed is not None else None,
            "cpu_s_per_1000_events": r.cpu_s_per_1000_events,
            "cpu_s_per_1000_events_vs_1": round(cpu, 3) if cpu is not None else None,
            "exactly_once": r.verified,
        }
        for r, speed, cpu in ratios(report.runs)
    ]
    body = {
        "runs": runs,
        "targets": [t.model_dump(mode="json") for t in report.targets],
        "workload": report.workload.model_dump(mode="json"),
        "latency_ms": report.latency_ms,
        "lag_definition": report.lag_definition,
    }
    if distributed:
        body["distributed"] = distributed
    return json.dumps(body, indent=2, ensure_ascii=False)


class PlotUnavailable(RuntimeError):
    """matplotlib is not installed."""


def require_matplotlib() -> None:
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None:
        raise PlotUnavailable(
            "--plot needs matplotlib, which is not installed (pip install matplotlib)"
        )


def plot(runs: Sequence[RunResult], path: Path, *, latency_ms: float) -> None:
    """Throughput against concurrency (CONCURRENCY = OURAPI_MAX_IN_FLIGHT = N), with the naive
    baseline, the default and the null sink drawn in for scale."""
    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sweep = sorted(
        (r for r in runs if r.name.startswith("concurrency-")), key=lambda r: r.concurrency
    )
    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    if sweep:
        ax.plot(
            [r.concurrency for r in sweep],
            [r.events_per_s for r in sweep],
            marker="o",
            label="worker, concurrency = in flight = N",
        )
        for r in sweep:
            ax.annotate(
                f"{r.events_per_s:.0f}",
                (r.concurrency, r.events_per_s),
                textcoords="offset points",
                xytext=(0, 6),
                ha="center",
                fontsize=8,
            )
    default = _find(runs, "default")
    if default is not None:
        ax.scatter(
            [default.concurrency],
            [default.events_per_s],
            marker="*",
            s=160,
            color="C2",
            zorder=3,
            label=f"default (concurrency {default.concurrency}, "
            f"in flight {default.ourapi_max_in_flight})",
        )
    inflight = _find(runs, "inflight-1")
    if inflight is not None:
        ax.scatter(
            [inflight.concurrency],
            [inflight.events_per_s],
            marker="s",
            color="C4",
            zorder=3,
            label="one request in flight",
        )
    single = _find(runs, SINGLE_CONNECTION)
    if single is not None and single.requests_per_s:
        ax.axhline(
            single.requests_per_s,
            color="C4",
            linestyle="-.",
            label=f"single-connection limit, measured ({single.requests_per_s:.0f} requests/s)",
        )
    naive = _find(runs, "naive")
    if naive is not None:
        ax.axhline(
            naive.events_per_s,
            color="C3",
            linestyle="--",
            label=f"naive ({naive.events_per_s:.0f} events/s)",
        )
    null = _find(runs, "null-sink")
    if null is not None:
        ax.axhline(
            null.events_per_s,
            color="grey",
            linestyle=":",
            label=f"null sink ({null.events_per_s:.0f} events/s)",
        )
    ax.set_xscale("log", base=2)
    ticks = sorted(
        {
            r.concurrency
            for r in runs
            if r.name not in ("naive", SINGLE_CONNECTION) and r.workers is None
        }
    )
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.set_yscale("log")
    ax.set_xlabel("concurrency (conversations and OurAPI requests in flight)")
    ax.set_ylabel("events applied per second")
    ax.set_title(f"BigChat -> OurAPI throughput (OurAPI latency {latency_ms:g} ms)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)

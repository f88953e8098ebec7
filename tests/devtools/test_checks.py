"""The checks that make a fast wrong run a failure, and the figures' definitions."""

from __future__ import annotations

from pathlib import Path

from devtools.bench.measure import null_sink_findings, percentile, throughput
from devtools.bench.models import Applied, OurApiStats, RequestCount, RunResult, Workload
from devtools.bench.report import plot

WORKLOAD = Workload(
    seed=1, epoch=0.0, frozen_at=3600.0, conversation_rate=0.01, page_size=50, events=30,
    conversations=4, starts=4, messages=18, transfers=4, ends=4, advisors=3,
)  # fmt: skip


def stats(chats: int = 4, messages: int = 18, agents: int = 3, patches: int = 4) -> OurApiStats:
    """What OurAPI's ``/_standin/stats`` would say after the given writes (and a few lookups)."""
    counts = [
        ("POST", "/chats", 201, chats),
        ("POST", "/chats/{chat_id}/messages", 200, messages),
        ("POST", "/agents", 201, agents),
        ("PATCH", "/chats/{chat_id}", 204, patches),
        ("GET", "/agents", 200, 3),
    ]
    requests = [RequestCount(method=m, route=r, status=s, count=n) for m, r, s, n in counts]
    return OurApiStats(total=sum(r.count for r in requests), requests=requests)


def test_a_null_sink_that_received_exactly_the_needed_writes_passes() -> None:
    assert null_sink_findings(stats(), WORKLOAD) == []


def test_a_null_sink_missing_a_message_fails() -> None:
    assert null_sink_findings(stats(messages=17), WORKLOAD) == [
        "messages posted: 17 != 18 MESSAGE events"
    ]


def test_a_null_sink_sent_a_duplicate_chat_fails() -> None:
    assert null_sink_findings(stats(chats=5), WORKLOAD)


def test_a_null_sink_sent_more_updates_than_state_changes_fails() -> None:
    assert null_sink_findings(stats(patches=9), WORKLOAD)


def test_a_failed_request_at_the_null_sink_fails_the_run() -> None:
    broken = stats()
    broken.requests.append(RequestCount(method="POST", route="/chats", status=500, count=1))
    assert null_sink_findings(broken, WORKLOAD) == ["1 request(s) answered >= 300"]


def test_lag_counts_from_the_run_start_for_a_backlog_and_from_the_event_if_later() -> None:
    applied = [
        Applied(event_at=10.0, finished_at=101.0),  # backlog: 1 s after the run began at 100
        Applied(event_at=150.0, finished_at=153.0),  # happened during the run: 3 s
    ]
    t = throughput(applied, run_start=100.0)
    assert (t.events, t.lag_p50_s, t.lag_p99_s) == (2, 1.0, 3.0)
    assert t.events_per_s == 1 / 52


def test_percentile_is_nearest_rank() -> None:
    assert percentile([5.0, 1.0, 3.0, 2.0, 4.0], 0.5) == 3.0
    assert percentile(list(map(float, range(1, 101))), 0.99) == 99.0
    assert percentile([], 0.5) == 0.0


def test_plot_writes_a_png(tmp_path: Path) -> None:
    def run(name: str, eps: float, concurrency: int = 1) -> RunResult:
        return RunResult(
            name=name, events=100, events_per_s=eps, requests_per_event=1.0, lag_p50_s=1.0,
            lag_p99_s=2.0, cpu_s_per_1000_events=1.0, peak_rss_mb=50.0, verified=True,
            expected_events=100, wall_s=1.0, ourapi_requests=100, bigchat_requests=10,
            bigchat_requests_per_event=0.1, cpu_s=0.1, concurrency=concurrency,
        )  # fmt: skip

    runs = [run("naive", 40.0), run("default", 700.0, 16), run("null-sink", 900.0, 16)]
    runs += [run(f"concurrency-{n}", 60.0 * n, n) for n in (1, 4, 16, 64)]
    path = tmp_path / "chart.png"

    plot(runs, path, latency_ms=10)

    assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")

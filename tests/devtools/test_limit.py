"""The single-connection baseline: OurAPI's real requests/s one at a time, measured in the same
run, and the one-in-flight target judged against it (the nominal 1/latency kept for reference).
Behaviour only: the figures exist and are positive, not how large they are."""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from devtools.bench.limit import WARMUP, single_connection
from devtools.bench.models import OurApiStats, RunResult, Workload
from devtools.bench.processes import StandIn
from devtools.bench.report import targets
from integration.cli import main

pytestmark = pytest.mark.slow  # stand-ins as child processes

MEASURED = "one in flight vs the single-connection limit (measured)"
NOMINAL = "one in flight vs the nominal limit (reference only)"


def test_the_plain_function_times_sequential_message_posts(tmp_path: Path) -> None:
    ourapi = StandIn(
        "ourapi", "our_api", ["--latency-ms", "1", "--db", str(tmp_path / "o.db")], tmp_path
    )
    try:
        found = single_connection(ourapi.url, requests=20, max_seconds=30.0)
        stats = OurApiStats.model_validate(ourapi.stats())
    finally:
        ourapi.stop()
    assert found.errors == []
    assert found.requests == 20
    assert found.requests_per_s > 0 and found.ms_per_request > 0 and found.p99_ms > 0
    assert stats.count("POST", "/chats") == 1
    assert stats.count("POST", "/chats/{chat_id}/messages") == WARMUP + 20


def test_it_stops_at_its_time_bound(tmp_path: Path) -> None:
    ourapi = StandIn(
        "ourapi", "our_api", ["--latency-ms", "20", "--db", str(tmp_path / "o.db")], tmp_path
    )
    try:
        found = single_connection(ourapi.url, requests=10_000, max_seconds=0.3)
    finally:
        ourapi.stop()
    assert found.errors == []
    assert 0 < found.requests < 100


@dataclass(frozen=True)
class Bench:
    status: int
    body: dict[str, Any]
    out: str

    def run(self, name: str) -> dict[str, Any]:
        return next(r for r in self.body["runs"] if r["name"] == name)


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Bench:
    path = tmp_path_factory.mktemp("limit") / "bench.json"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        status = main(
            [
                "bench",
                "--events", "60",
                "--latency-ms", "2",
                "--only", "single-connection,inflight-1",
                "--json", str(path),
            ]
        )  # fmt: skip
    return Bench(status, json.loads(path.read_text()), printed.getvalue())


def test_the_single_connection_row_is_in_the_json_with_positive_figures(bench: Bench) -> None:
    assert bench.status == 0
    assert [r["name"] for r in bench.body["runs"]] == ["single-connection", "inflight-1"]
    row = bench.run("single-connection")
    assert row["verified"] is True, row["verify_detail"]
    for key in ("events", "events_per_s", "requests_per_s", "ms_per_request", "lag_p50_s"):
        assert row[key] > 0, key
    assert row["events_per_s"] == row["requests_per_s"]
    assert row["requests_per_event"] == 1.0
    assert "requests_per_s" not in bench.run("inflight-1")


def test_the_table_and_both_target_lines_are_printed(bench: Bench) -> None:
    lines = bench.out.splitlines()
    assert any(line.startswith("single-connection ") for line in lines)
    measured = next(line for line in lines if MEASURED in line)
    nominal = next(line for line in lines if NOMINAL in line)
    assert "n/a" not in measured and "measured single-connection requests/s" in measured
    assert "nominal" in nominal
    assert {t["name"] for t in bench.body["targets"]} >= {MEASURED, NOMINAL}


WORKLOAD = Workload(
    seed=1, epoch=0.0, frozen_at=3600.0, conversation_rate=0.01, page_size=50, events=30,
    conversations=4, starts=4, messages=18, transfers=4, ends=4, advisors=3,
)  # fmt: skip


def run(name: str, events_per_s: float, requests_per_s: float | None = None) -> RunResult:
    return RunResult(
        name=name, events=100, events_per_s=events_per_s, requests_per_event=1.0,
        lag_p50_s=0.1, lag_p99_s=0.2, cpu_s_per_1000_events=1.0, peak_rss_mb=50.0,
        verified=True, expected_events=100, wall_s=1.0, ourapi_requests=100,
        bigchat_requests=0, bigchat_requests_per_event=0.0, cpu_s=0.1,
        requests_per_s=requests_per_s,
    )  # fmt: skip


def judged(inflight: float, limit: float) -> dict[str, bool | None]:
    runs = [run("single-connection", limit, limit), run("inflight-1", inflight)]
    return {t.name: t.met for t in targets(runs, WORKLOAD, latency_ms=10)}


def test_one_in_flight_is_judged_against_the_measured_limit() -> None:
    assert judged(inflight=62.0, limit=68.0)[MEASURED] is True  # 0.9 x 68 = 61.2
    assert judged(inflight=60.0, limit=68.0)[MEASURED] is False


def test_the_nominal_limit_is_still_reported_for_reference() -> None:
    assert judged(inflight=62.0, limit=68.0)[NOMINAL] is False  # 0.9 x 1/10 ms = 90
    assert judged(inflight=95.0, limit=100.0)[NOMINAL] is True


def test_without_the_single_connection_run_the_measured_target_is_not_judged() -> None:
    found = {t.name: t.met for t in targets([run("inflight-1", 80.0)], WORKLOAD, latency_ms=10)}
    assert found[MEASURED] is None
    assert found[NOMINAL] is False

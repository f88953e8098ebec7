"""``python run.py bench`` end to end on a tiny workload (one bench, several behaviours): the
JSON has the issue's shape, the null-sink run is checked against the writes the workload needs,
and --plot writes a PNG."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from integration.cli import main

pytestmark = pytest.mark.slow  # whole benchmark runs

RUN_FIELDS = {
    "name": str,
    "events": int,
    "events_per_s": float,
    "requests_per_event": float,
    "lag_p50_s": float,
    "lag_p99_s": float,
    "cpu_s_per_1000_events": float,
    "peak_rss_mb": float,
    "verified": bool,
}


@dataclass(frozen=True)
class Bench:
    status: int
    body: dict[str, Any]
    png: Path

    def run(self, name: str) -> dict[str, Any]:
        return next(r for r in self.body["runs"] if r["name"] == name)


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Bench:
    tmp = tmp_path_factory.mktemp("bench")
    out, png = tmp / "bench.json", tmp / "bench.png"
    status = main(
        [
            "bench",
            "--events", "120",
            "--latency-ms", "2",
            "--only", "naive,default,null-sink",
            "--json", str(out),
            "--plot", str(png),
        ]
    )  # fmt: skip
    return Bench(status, json.loads(out.read_text()), png)


def test_every_run_is_verified_and_the_bench_exits_0(bench: Bench) -> None:
    assert bench.status == 0
    assert [r["name"] for r in bench.body["runs"]] == ["naive", "default", "null-sink"]
    for run in bench.body["runs"]:
        assert run["verified"] is True, run["verify_detail"]
        assert run["events"] == run["expected_events"] == bench.body["workload"]["events"]


def test_the_json_has_the_issues_fields_first_with_their_types(bench: Bench) -> None:
    for run in bench.body["runs"]:
        assert list(run)[: len(RUN_FIELDS)] == list(RUN_FIELDS)
        for key, kind in RUN_FIELDS.items():
            assert isinstance(run[key], kind), (run["name"], key, run[key])


def test_the_null_sink_received_exactly_the_writes_the_workload_needs(bench: Bench) -> None:
    workload, routes = bench.body["workload"], bench.run("null-sink")["requests_by_route"]
    assert routes["POST /chats 201"] == workload["conversations"]
    assert routes["POST /chats/{chat_id}/messages 200"] == workload["messages"]
    assert routes["POST /agents 201"] == workload["advisors"]


def test_plot_writes_a_png(bench: Bench) -> None:
    assert bench.png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")

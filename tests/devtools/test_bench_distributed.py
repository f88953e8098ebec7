"""``python run.py bench --only distributed`` on a tiny workload: 1, 2 and 3 worker processes in
the several-workers mode, each checked for exactly-once application and reported side by side
against the 1-process row.

PostgreSQL and NATS are the ones at ``TEST_POSTGRES_URL`` and ``TEST_NATS_URL`` (default: the
local servers). Where they cannot be reached, the bench's tests skip saying why; with
``CI_REQUIRE_SERVICES=1`` (CI sets it) they fail instead.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
from dataclasses import dataclass
from typing import Any

import pytest

from devtools.bench.distributed import (
    DEFAULT_NATS_URL,
    STREAM_PREFIX,
    Services,
    exactly_once_findings,
    unavailable,
)
from devtools.bench.models import OurApiStats, RequestCount
from devtools.bench.runs import plan
from devtools.bench.workload import build
from integration.cli import main
from tests.helpers.stores import POSTGRES_URL

SERVICES = Services(POSTGRES_URL, os.environ.get("TEST_NATS_URL", DEFAULT_NATS_URL))
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


def services() -> Services:
    """The servers; skips the test where there are none (fails it where CI requires them)."""
    reason = unavailable(SERVICES)
    if reason is not None:
        if os.environ.get("CI_REQUIRE_SERVICES") == "1":
            pytest.fail(f"{reason}, and CI_REQUIRE_SERVICES=1 requires it", pytrace=False)
        pytest.skip(reason)
    return SERVICES


@dataclass(frozen=True)
class Bench:
    status: int
    body: dict[str, Any]

    def run(self, name: str) -> dict[str, Any]:
        return next(r for r in self.body["runs"] if r["name"] == name)


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Bench:
    found = services()
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    status = main(
        [
            "bench",
            "--events", "120",
            "--latency-ms", "2",
            "--only", "distributed",
            "--postgres-url", found.postgres_url,
            "--nats-url", found.nats_url,
            "--timeout", "40",
            "--json", str(out),
        ]
    )  # fmt: skip
    return Bench(status, json.loads(out.read_text()))


# -- which runs --------------------------------------------------------------------------------


def test_the_default_set_leaves_the_distributed_rows_out() -> None:
    assert not [s for s in plan() if s.kind == "distributed"]


def test_only_distributed_names_one_row_per_worker_count() -> None:
    assert [(s.name, s.workers) for s in plan(["distributed"])] == [
        ("distributed-1", 1),
        ("distributed-2", 2),
        ("distributed-3", 3),
    ]


def test_asking_for_the_distributed_rows_without_nats_exits_2_saying_why(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with socket.socket() as probe:  # a port nobody listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    status = main(["bench", "--only", "distributed", "--nats-url", f"nats://127.0.0.1:{port}"])

    assert status == 2
    assert "the distributed rows need PostgreSQL and NATS" in capsys.readouterr().err


# -- the exactly-once check --------------------------------------------------------------------


def _stats(chats: int, messages: int, agents: int) -> OurApiStats:
    rows = [
        RequestCount(method="POST", route="/chats", status=201, count=chats),
        RequestCount(method="POST", route="/chats/{chat_id}/messages", status=200, count=messages),
        RequestCount(method="POST", route="/agents", status=201, count=agents),
    ]
    return OurApiStats(total=chats + messages + agents, requests=rows)


def test_the_exactly_once_check_finds_a_message_posted_twice() -> None:
    workload = build(60)
    twice = _stats(workload.conversations, workload.messages + 1, workload.advisors)

    assert exactly_once_findings(twice, workload) == [
        f"messages posted: {workload.messages + 1} != {workload.messages}"
    ]


def test_the_exactly_once_check_takes_a_second_agent_create_refused_500_as_the_contract() -> None:
    workload = build(60)
    stats = _stats(workload.conversations, workload.messages, workload.advisors)
    refused = RequestCount(method="POST", route="/agents", status=500, count=2)
    raced = OurApiStats(total=stats.total + 2, requests=[*stats.requests, refused])

    assert exactly_once_findings(raced, workload) == []


def test_the_exactly_once_check_finds_any_other_500() -> None:
    workload = build(60)
    stats = _stats(workload.conversations, workload.messages, workload.advisors)
    failed = RequestCount(method="PATCH", route="/chats/{chat_id}", status=500, count=1)
    broken = OurApiStats(total=stats.total + 1, requests=[*stats.requests, failed])

    assert exactly_once_findings(broken, workload) == ["1 OurAPI request(s) answered >= 500"]


def test_the_exactly_once_check_passes_each_create_once() -> None:
    workload = build(60)
    once = _stats(workload.conversations, workload.messages, workload.advisors)

    assert exactly_once_findings(once, workload) == []


# -- the row set, end to end -------------------------------------------------------------------


@pytest.mark.slow
def test_every_row_applied_every_event_exactly_once_and_the_bench_exits_0(bench: Bench) -> None:
    assert bench.status == 0
    runs = bench.body["runs"]
    assert [(r["name"], r["workers"]) for r in runs] == [
        ("distributed-1", 1),
        ("distributed-2", 2),
        ("distributed-3", 3),
    ]
    workload = bench.body["workload"]
    for run in runs:
        assert run["verified"] is True, run["verify_detail"]
        assert run["events"] == run["expected_events"] == workload["events"]
        routes = run["requests_by_route"]
        assert routes["POST /chats 201"] == workload["conversations"]
        assert routes["POST /chats/{chat_id}/messages 200"] == workload["messages"]
        assert routes["POST /agents 201"] == workload["advisors"]


@pytest.mark.slow
def test_each_row_has_the_issues_fields_first_and_its_own_figures(bench: Bench) -> None:
    for run in bench.body["runs"]:
        assert list(run)[: len(RUN_FIELDS)] == list(RUN_FIELDS)
        for key, kind in RUN_FIELDS.items():
            assert isinstance(run[key], kind), (run["name"], key, run[key])
        assert run["events_per_s"] > 0
        assert run["cpu_s_per_1000_events"] > 0
        assert run["partitions"] == 16
        assert run["published_per_s"] > 0
        assert run["standins_cpu_s"] > 0
        assert run["postgres_cpu_s"] > 0


@pytest.mark.slow
def test_the_rows_are_reported_against_the_one_process_row(bench: Bench) -> None:
    rows = bench.body["distributed"]
    assert [r["workers"] for r in rows] == [1, 2, 3]
    one = rows[0]
    assert one["events_per_s_vs_1"] == one["cpu_s_per_1000_events_vs_1"] == 1.0
    for row in rows:
        run = bench.run(row["name"])
        assert row["events_per_s_vs_1"] == round(run["events_per_s"] / one["events_per_s"], 3)
        assert row["cpu_s_per_1000_events_vs_1"] == round(
            run["cpu_s_per_1000_events"] / one["cpu_s_per_1000_events"], 3
        )
        assert row["exactly_once"] is True


@pytest.mark.slow
def test_the_runs_leave_no_stream_and_no_database_behind(bench: Bench) -> None:
    import asyncpg
    import nats

    async def leftovers() -> tuple[bool, list[str]]:
        nc = await nats.connect(SERVICES.nats_url, max_reconnect_attempts=1)
        try:
            names = await nc.jetstream().streams_info()
            stream = any(info.config.name.startswith(STREAM_PREFIX) for info in names)
        finally:
            await nc.close()
        conn = await asyncpg.connect(SERVICES.postgres_url)
        try:
            rows = await conn.fetch(
                "SELECT datname FROM pg_database WHERE datname LIKE 'iw\\_bench\\_%'"
            )
        finally:
            await conn.close()
        return stream, [str(r["datname"]) for r in rows]

    assert asyncio.run(leftovers()) == (False, [])

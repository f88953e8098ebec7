"""``python run.py crm bench`` end to end on a tiny workload: every row measured and checked,
the sync against its baselines in the same run, and the check that decides the exit status."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from devtools.crm.bench import command
from devtools.crm.world import findings
from tests.helpers.nats import nats_url
from tests.helpers.stores import postgres_url


@dataclass(frozen=True)
class Bench:
    status: int
    body: dict[str, Any]
    printed: str

    def row(self, name: str) -> dict[str, Any]:
        return next(r for r in self.body["rows"] if r["name"] == name)


def run_bench(tmp: Path, *args: str) -> Bench:
    out = tmp / "bench.json"
    result = CliRunner().invoke(command, [*args, "--json", str(out)])
    assert out.exists(), result.output
    return Bench(result.exit_code, json.loads(out.read_text()), result.output)


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Bench:
    tmp = tmp_path_factory.mktemp("crm-bench")
    return run_bench(
        tmp, "--records", "30", "--edits", "2", "--only", "null-providers,requests-per-record"
    )


def test_every_row_is_verified_and_the_bench_exits_0(bench: Bench) -> None:
    assert bench.status == 0, bench.printed
    assert [r["name"] for r in bench.body["rows"]] == ["null-providers", "requests-per-record"]
    assert all(r["verified"] and not r["findings"] for r in bench.body["rows"])


def test_the_null_provider_row_gives_speed_and_cpu_per_1000_records(bench: Bench) -> None:
    figures = bench.row("null-providers")["figures"]
    assert figures["records"] == 30
    assert figures["records_per_s"] > 0
    assert figures["cpu_s_per_1000_records"] > 0
    assert figures["cpu_s"] <= figures["wall_s"] * 2  # one process on at most two cores


def test_the_sync_sends_fewer_hubspot_requests_than_the_naive_sync(bench: Bench) -> None:
    figures = bench.row("requests-per-record")["figures"]
    assert figures["changes"] == 30 * 3
    assert 0 < figures["sync_requests"] < figures["naive_requests"]
    assert figures["naive_over_sync"] > 1
    # The naive sync sends one call per feed entry it sees: one create per contact at least.
    assert figures["naive_requests"] == figures["naive_feed_entries"] >= 30


def test_the_table_names_every_row_and_figure(bench: Bench) -> None:
    assert "null-providers: verified" in bench.printed
    assert "naive_over_sync" in bench.printed


def test_a_contact_missing_or_twice_at_the_provider_is_a_finding() -> None:
    ours: list[dict[str, Any]] = [
        {"id": 1, "first_name": "A", "last_name": "B", "email": "a@x.io"},
        {"id": 2},
    ]
    fields = {"our_id": "1", "firstname": "A", "lastname": "B", "email": "a@x.io"}
    theirs = [{"fields": fields}, {"fields": fields}]
    found = findings(ours, theirs)
    assert any("not at HubSpot" in f and "'2'" in f for f in found)
    assert any("more than once" in f for f in found)


def test_a_contact_with_stale_values_at_the_provider_is_a_finding() -> None:
    ours = [{"id": 1, "first_name": "New", "last_name": "B", "email": "a@x.io"}]
    theirs = [{"fields": {"our_id": "1", "firstname": "Old", "lastname": "B", "email": "a@x.io"}}]
    assert findings(ours, theirs) == [
        "1 contact(s) differ from ours: [\"1.first_name: 'Old' != 'New'\"]"
    ]


def test_the_scaling_row_measures_one_and_two_workers(tmp_path: Path) -> None:
    pg, nats = postgres_url(), nats_url()
    done = run_bench(
        tmp_path, "--records", "30", "--only", "scaling", "--postgres-url", pg, "--nats-url", nats
    )
    assert done.status == 0, done.printed
    figures = done.row("scaling")["figures"]
    assert figures["workers_1_records_per_s"] > 0 and figures["workers_2_records_per_s"] > 0
    assert figures["factor_2_over_1"] is not None

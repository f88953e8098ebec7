"""``python run.py intempus bench`` end to end on a tiny workload (one bench, several
behaviours): both runs are measured and their sides agree, the sync keeps every edit of both
sides, an idle pass costs the sync no case read and the naive loop every case; and the check
that decides the exit status tells agreement from disagreement."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout
from dataclasses import dataclass
from typing import Any

import pytest

from devtools.intempus.agreement import disagreements
from integration.cli import main
from integration.pipelines.intempus_cases.mapping import SYNCED_FIELDS, to_intempus, to_local


@dataclass(frozen=True)
class Bench:
    status: int
    body: dict[str, Any]
    printed: str

    def run(self, name: str) -> dict[str, Any]:
        return next(r for r in self.body["runs"] if r["name"] == name)


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Bench:
    tmp = tmp_path_factory.mktemp("intempus-bench")
    out = tmp / "bench.json"
    printed = io.StringIO()
    with redirect_stdout(printed):
        status = main(["intempus", "bench", "--quick", "--changes", "12", "--json", str(out)])
    return Bench(status, json.loads(out.read_text()), printed.getvalue())


@pytest.mark.slow
def test_both_runs_are_measured_agree_and_the_bench_exits_0(bench: Bench) -> None:
    assert bench.status == 0
    assert [r["name"] for r in bench.body["runs"]] == ["sync", "naive"]
    for run in bench.body["runs"]:
        assert run["verified"], run
        assert run["changes"] == 12
        assert run["intempus_requests"] > 0 and run["local_requests"] > 0


@pytest.mark.slow
def test_the_table_shows_both_runs_and_their_ratios(bench: Bench) -> None:
    header = next(line for line in bench.printed.splitlines() if "sync / naive" in line)
    assert header.split() == ["sync", "naive", "sync", "/", "naive"]
    assert "all requests/change" in bench.printed
    assert "idle pass: requests" in bench.printed


@pytest.mark.slow
def test_the_sync_keeps_every_edit_of_both_sides(bench: Bench) -> None:
    kept = bench.run("sync")["edits_kept"]
    assert kept["intempus"] == [3, 3]
    assert kept["local"] == [3, 3]


@pytest.mark.slow
def test_an_idle_pass_reads_no_case_for_the_sync_and_every_case_for_the_naive_loop(
    bench: Bench,
) -> None:
    assert bench.run("sync")["idle_cases_read"] == 0
    # 3 sample cases and 3 created on each side, each copied to the other: 12 a side.
    assert bench.run("naive")["idle_cases_read"] == 24


# -- the agreement check, without stand-ins --------------------------------------------------


def _fields(name: str) -> dict[str, Any]:
    """A case's synced fields, canonical: the defaults both sides give, and a name."""
    return {
        **{field: None for field in SYNCED_FIELDS},
        **{field: "" for field in ("street_address", "zip_code", "city", "country", "notes")},
        **{field: False for field in FALSE_BY_DEFAULT},
        **{field: True for field in TRUE_BY_DEFAULT},
        "number": "1",
        "name": name,
        "customer": 6666940,
    }


FALSE_BY_DEFAULT = ("all_employees_may_add_work_reports", "file_upload_required", "geofence")
TRUE_BY_DEFAULT = ("active", "permit_new_workreports", "all_worktypes_may_used_in_work_reports")


def _intempus(iid: int, name: str, creation_id: str | None = None) -> dict[str, Any]:
    return {"id": iid, "creation_id": creation_id, **to_intempus(_fields(name))}


def _local(lid: int, name: str, intempus_id: int | None, deleted: bool = False) -> dict[str, Any]:
    return {"id": lid, "intempus_id": intempus_id, "deleted": deleted, **to_local(_fields(name))}


def test_sides_paired_by_link_or_creation_id_with_equal_fields_agree() -> None:
    intempus = {"cases": [_intempus(10, "a"), _intempus(11, "b", creation_id="local:2")]}
    local = {"cases": [_local(1, "a", 10), _local(2, "b", None)]}
    assert disagreements(intempus, local) == []


def test_a_differing_field_an_unpaired_case_on_either_side_are_disagreements() -> None:
    intempus = {"cases": [_intempus(10, "a"), _intempus(12, "c")]}
    local = {"cases": [_local(1, "changed", 10), _local(3, "d", None), _local(4, "c", 12, True)]}
    assert disagreements(intempus, local) == [
        "Intempus 10 / local 1: name differ",
        "Intempus case 12: no local case",
        "local case 3: no Intempus case",
    ]


def test_a_case_one_side_cannot_hold_is_a_disagreement_not_a_crash() -> None:
    bad = {**_intempus(10, "a"), "latitude": "91.000000"}
    problems = disagreements({"cases": [bad]}, {"cases": [_local(1, "a", 10)]})
    assert len(problems) == 1 and "latitude" in problems[0]

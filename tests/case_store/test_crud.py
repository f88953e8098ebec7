"""``/cases/``: create, read, change, delete and restore; validation; optimistic locking."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from case_store.models import SYNCED_FIELDS
from tests.case_store.conftest import SYNC, StartStore, Store


async def test_a_create_answers_201_with_the_row_location_and_etag(store: Store) -> None:
    answer = await store.call("POST", "/cases/", {"name": "Tag", "customer": 6666940})
    assert answer.status == 201
    row = answer.body
    assert answer.headers["Location"] == f"/cases/{row['id']}"
    assert answer.headers["ETag"] == f'"{row["version"]}"'
    assert (row["version"], row["origin"], row["deleted"]) == (1, "user", False)
    assert set(SYNCED_FIELDS) <= set(row)


async def test_defaults_match_intempus_for_omitted_fields(store: Store) -> None:
    row = await store.create()
    assert (row["active"], row["permit_new_workreports"]) == (True, True)
    assert row["all_employees_may_add_work_reports"] is False
    assert row["all_worktypes_may_used_in_work_reports"] is True
    assert (row["remarks_required"], row["number"], row["notes"]) == (None, "", "")
    assert row["intempus_id"] is None


async def test_values_come_back_in_canonical_form(store: Store) -> None:
    row = await store.create(hour_budget=155.5, latitude="55.6238", longitude=12, city=None)
    assert (row["hour_budget"], row["latitude"], row["longitude"]) == (
        "155.50",
        "55.623800",
        "12.000000",
    )
    assert row["city"] == ""


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"customer": 1}, "name"),
        ({"name": " ", "customer": 1}, "name"),
        ({"name": "x"}, "customer"),
        ({"name": "x", "customer": "1"}, "customer"),
        ({"name": "x", "customer": 1, "latitude": 90.1}, "latitude"),
        ({"name": "x", "customer": 1, "longitude": "x"}, "longitude"),
        ({"name": "x", "customer": 1, "hour_budget": True}, "hour_budget"),
        ({"name": "x", "customer": 1, "start_date": "2026-02-30"}, "start_date"),
        ({"name": "x", "customer": 1, "end_date": "2026-02-03"}, "end_date"),
        ({"name": "x", "customer": 1, "geofence": True}, "geofence"),
        ({"name": "x", "customer": 1, "active": "yes"}, "active"),
        ({"name": "x", "customer": 1, "colour": "red"}, "colour"),
    ],
)
async def test_invalid_fields_are_refused_with_422_naming_the_field(
    store: Store, body: dict[str, Any], field: str
) -> None:
    answer = await store.call("POST", "/cases/", body)
    assert answer.status == 422
    assert answer.body["error"] == "validation failed"
    assert [e["field"] for e in answer.body["errors"]] == [field]


async def test_a_body_that_is_not_a_json_object_is_a_400(store: Store) -> None:
    answer = await store.call("POST", "/cases/", [1])
    assert answer.status == 400


async def test_a_patch_changes_only_the_fields_sent_and_bumps_the_version(store: Store) -> None:
    row = await store.create(number="7", notes="keep")
    answer = await store.call("PATCH", f"/cases/{row['id']}", {"name": "renamed"})
    assert answer.status == 200
    assert (answer.body["name"], answer.body["number"], answer.body["notes"]) == (
        "renamed",
        "7",
        "keep",
    )
    assert answer.body["version"] == row["version"] + 1


async def test_a_patch_is_validated_as_a_whole_after_merging(store: Store) -> None:
    row = await store.create(start_date="2026-01-01", end_date="2026-02-01")
    answer = await store.call("PATCH", f"/cases/{row['id']}", {"start_date": None})
    assert (answer.status, answer.body["errors"][0]["field"]) == (422, "end_date")


async def test_read_only_keys_in_a_body_are_ignored(store: Store) -> None:
    row = await store.create()
    answer = await store.call(
        "PATCH", f"/cases/{row['id']}", {**row, "version": 99, "origin": "x", "name": "new"}
    )
    assert answer.status == 200
    assert (answer.body["version"], answer.body["origin"]) == (2, "user")


async def test_if_match_with_an_old_version_answers_412_with_the_current_one(
    store: Store,
) -> None:
    row = await store.create()
    await store.call("PATCH", f"/cases/{row['id']}", {"notes": "someone else"})
    stale = {"If-Match": str(row["version"])}
    patch = await store.call("PATCH", f"/cases/{row['id']}", {"notes": "mine"}, stale)
    assert (patch.status, patch.body) == (412, {"error": "version mismatch", "current": 2})
    delete = await store.call("DELETE", f"/cases/{row['id']}", headers=stale)
    assert delete.status == 412
    fresh = await store.call("PATCH", f"/cases/{row['id']}", {"notes": "mine"}, {"If-Match": '"2"'})
    assert fresh.status == 200


async def test_a_delete_leaves_a_tombstone_with_a_new_version(store: Store) -> None:
    row = await store.create(name="Gone soon")
    answer = await store.call("DELETE", f"/cases/{row['id']}", headers=SYNC)
    assert answer.status == 200
    tomb = answer.body
    assert (tomb["deleted"], tomb["version"], tomb["name"]) == (True, 2, "Gone soon")
    assert tomb["origin"] == "intempus-sync"
    assert (await store.call("GET", f"/cases/{row['id']}")).status == 404
    shown = await store.call("GET", f"/cases/{row['id']}?include_deleted=true")
    assert shown.body == tomb
    again = await store.call("DELETE", f"/cases/{row['id']}")
    assert again.status == 404
    patch = await store.call("PATCH", f"/cases/{row['id']}", {"name": "x"})
    assert patch.status == 404


async def test_a_tombstone_can_be_restored_with_fields_and_a_new_version(store: Store) -> None:
    row = await store.create(name="Back")
    await store.call("DELETE", f"/cases/{row['id']}")
    restored = await store.call("POST", f"/cases/{row['id']}/restore", {"notes": "restored"}, SYNC)
    assert restored.status == 200
    assert (restored.body["deleted"], restored.body["version"]) == (False, 3)
    assert (restored.body["name"], restored.body["notes"]) == ("Back", "restored")
    live = await store.call("POST", f"/cases/{row['id']}/restore")
    assert (live.status, live.body["current"]) == (409, 3)


async def test_parent_must_be_a_live_case_and_no_cycle(store: Store) -> None:
    missing = await store.call("POST", "/cases/", {"name": "x", "customer": 1, "parent": 99})
    assert (missing.status, missing.body["errors"][0]["field"]) == (422, "parent")
    top = await store.create()
    child = await store.create(parent=top["id"])
    cycle = await store.call("PATCH", f"/cases/{top['id']}", {"parent": child["id"]})
    assert (cycle.status, cycle.body["errors"][0]["field"]) == (422, "parent")


async def test_the_list_pages_by_id_and_filters_by_intempus_id(store: Store) -> None:
    rows = [await store.create(intempus_id=9584677 + n) for n in range(5)]
    await store.call("DELETE", f"/cases/{rows[0]['id']}")
    first = await store.call("GET", "/cases/?limit=2")
    assert [r["id"] for r in first.body["items"]] == [rows[1]["id"], rows[2]["id"]]
    second = await store.call("GET", f"/cases/?limit=2&after_id={first.body['next_after_id']}")
    assert [r["id"] for r in second.body["items"]] == [rows[3]["id"], rows[4]["id"]]
    assert second.body["next_after_id"] is None
    assert second.body["high_water"] == 6
    linked = await store.call("GET", "/cases/?intempus_id=9584679")
    assert [r["id"] for r in linked.body["items"]] == [rows[2]["id"]]
    every = await store.call("GET", "/cases/?include_deleted=true")
    assert len(every.body["items"]) == 5


async def test_a_bad_query_value_is_a_400(store: Store) -> None:
    assert (await store.call("GET", "/cases/?limit=0")).status == 400
    assert (await store.call("GET", "/cases/changes?after=x")).status == 400


async def test_rows_survive_a_restart(start_store: StartStore, tmp_path: Path) -> None:
    db = str(tmp_path / "restart.db")
    first = await start_store(db=db)
    row = await first.create(name="durable")
    second = await start_store(db=db)
    assert (await second.call("GET", f"/cases/{row['id']}")).body["name"] == "durable"
    assert (await second.create())["version"] == 2

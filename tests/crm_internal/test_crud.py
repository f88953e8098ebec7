"""``/contacts/`` and ``/companies/``: create, read, change, delete and restore; validation;
optimistic locking."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.crm_internal.conftest import SYNC, Internal, StartInternal


async def test_a_create_answers_201_with_the_row_location_and_etag(internal: Internal) -> None:
    answer = await internal.call("POST", "/contacts/", {"email": "ann@example.com"})
    assert answer.status == 201
    row = answer.body
    assert answer.headers["Location"] == f"/contacts/{row['id']}"
    assert answer.headers["ETag"] == f'"{row["version"]}"'
    assert (row["object"], row["version"], row["origin"], row["deleted"]) == (
        "contact", 1, "user", False,
    )  # fmt: skip
    assert (row["archived"], row["links"], row["born"], row["custom"]) == (False, {}, None, {})
    assert (row["first_name"], row["company_id"], row["lifecycle_stage"]) == (None, None, None)


async def test_a_company_is_created_with_its_fields(internal: Internal) -> None:
    row = await internal.company(domain="acme.dk", city="Aarhus", custom={"tier": 2})
    assert (row["object"], row["name"], row["domain"], row["city"]) == (
        "company", "Acme ApS", "acme.dk", "Aarhus",
    )  # fmt: skip
    assert (row["phone"], row["industry"], row["custom"]) == (None, None, {"tier": 2})


@pytest.mark.parametrize(
    ("route", "body", "field"),
    [
        ("/contacts/", {"last_name": "x", "email": "not-an-email"}, "email"),
        ("/contacts/", {"first_name": "Ann"}, "last_name"),
        ("/contacts/", {"last_name": " ", "email": None}, "last_name"),
        ("/contacts/", {"last_name": "x", "lifecycle_stage": "prospect"}, "lifecycle_stage"),
        ("/contacts/", {"last_name": "x", "company_id": "1"}, "company_id"),
        ("/contacts/", {"last_name": "x", "custom": {"a": [1]}}, "custom.a"),
        ("/contacts/", {"last_name": "x", "phone": 4512}, "phone"),
        ("/contacts/", {"last_name": "x", "colour": "red"}, "colour"),
        ("/contacts/", {"last_name": "x", "archived": "yes"}, "archived"),
        ("/companies/", {}, "name"),
        ("/companies/", {"name": "  "}, "name"),
        ("/companies/", {"name": "x" * 256}, "name"),
        ("/companies/", {"name": "x", "domain": 7}, "domain"),
    ],
)
async def test_invalid_fields_are_refused_with_422_naming_the_field(
    internal: Internal, route: str, body: dict[str, Any], field: str
) -> None:
    answer = await internal.call("POST", route, body)
    assert answer.status == 422
    assert answer.body["error"] == "validation failed"
    assert [e["field"] for e in answer.body["errors"]] == [field]


async def test_every_bad_field_is_named_in_one_answer(internal: Internal) -> None:
    answer = await internal.call(
        "POST", "/contacts/", {"last_name": "x", "email": "nope", "links": {"hubspot": 5}}
    )
    assert answer.status == 422
    assert [e["field"] for e in answer.body["errors"]] == ["email", "links.hubspot"]


async def test_company_id_must_name_a_live_company(internal: Internal) -> None:
    missing = await internal.call("POST", "/contacts/", {"last_name": "x", "company_id": 99})
    assert (missing.status, missing.body["errors"][0]["field"]) == (422, "company_id")
    company = await internal.company()
    row = await internal.contact(company_id=company["id"])
    assert row["company_id"] == company["id"]
    await internal.call("DELETE", f"/companies/{company['id']}")
    gone = await internal.call(
        "POST", "/contacts/", {"last_name": "y", "company_id": company["id"]}
    )
    assert (gone.status, gone.body["errors"][0]["field"]) == (422, "company_id")


async def test_a_contact_whose_company_was_deleted_stays_writable(internal: Internal) -> None:
    company = await internal.company()
    row = await internal.contact(company_id=company["id"])
    await internal.call("DELETE", f"/companies/{company['id']}")
    answer = await internal.call("PATCH", f"/contacts/{row['id']}", {"title": "CEO"})
    assert (answer.status, answer.body["company_id"]) == (200, company["id"])


async def test_a_body_that_is_not_a_json_object_is_a_400(internal: Internal) -> None:
    assert (await internal.call("POST", "/contacts/", [1])).status == 400


async def test_a_patch_changes_only_the_fields_sent_and_bumps_the_version(
    internal: Internal,
) -> None:
    row = await internal.contact(first_name="Ann", custom={"vip": True})
    answer = await internal.call("PATCH", f"/contacts/{row['id']}", {"title": "CFO"})
    assert answer.status == 200
    assert (answer.body["title"], answer.body["first_name"], answer.body["custom"]) == (
        "CFO", "Ann", {"vip": True},
    )  # fmt: skip
    assert answer.body["version"] == row["version"] + 1


async def test_a_patch_is_validated_as_a_whole_after_merging(internal: Internal) -> None:
    row = await internal.contact(email="ann@example.com")
    answer = await internal.call("PATCH", f"/contacts/{row['id']}", {"last_name": None})
    assert answer.status == 200
    answer = await internal.call("PATCH", f"/contacts/{row['id']}", {"email": None})
    assert (answer.status, answer.body["errors"][0]["field"]) == (422, "last_name")


async def test_archived_is_a_flag_on_a_live_record(internal: Internal) -> None:
    row = await internal.company()
    answer = await internal.call("PATCH", f"/companies/{row['id']}", {"archived": True})
    assert (answer.body["archived"], answer.body["deleted"]) == (True, False)
    listed = await internal.call("GET", "/companies/")
    assert [r["id"] for r in listed.body["items"]] == [row["id"]]


async def test_read_only_keys_in_a_body_are_ignored(internal: Internal) -> None:
    row = await internal.contact()
    answer = await internal.call(
        "PATCH", f"/contacts/{row['id']}", {**row, "version": 99, "origin": "x", "title": "new"}
    )
    assert answer.status == 200
    assert (answer.body["version"], answer.body["origin"], answer.body["title"]) == (
        2, "user", "new",
    )  # fmt: skip


async def test_if_match_with_an_old_version_answers_412_with_the_current_one(
    internal: Internal,
) -> None:
    row = await internal.contact()
    path = f"/contacts/{row['id']}"
    await internal.call("PATCH", path, {"title": "someone else"})
    stale = {"If-Match": str(row["version"])}
    patch = await internal.call("PATCH", path, {"title": "mine"}, stale)
    assert (patch.status, patch.body) == (412, {"error": "version mismatch", "current": 2})
    assert (await internal.call("DELETE", path, headers=stale)).status == 412
    fresh = await internal.call("PATCH", path, {"title": "mine"}, {"If-Match": '"2"'})
    assert fresh.status == 200


async def test_a_delete_answers_the_tombstone_with_a_new_version(internal: Internal) -> None:
    row = await internal.contact(first_name="Gone")
    path = f"/contacts/{row['id']}"
    answer = await internal.call("DELETE", path, headers=SYNC)
    assert answer.status == 200
    tomb = answer.body
    assert (tomb["deleted"], tomb["version"], tomb["first_name"]) == (True, 2, "Gone")
    assert tomb["origin"] == "crm:hubspot-main" and tomb["deleted_at"] is not None
    assert (await internal.call("GET", path)).status == 404
    assert (await internal.call("GET", path + "?include_deleted=true")).body == tomb
    assert (await internal.call("DELETE", path)).status == 404
    assert (await internal.call("PATCH", path, {"title": "x"})).status == 404


async def test_a_tombstone_can_be_restored_with_fields_and_a_new_version(
    internal: Internal,
) -> None:
    row = await internal.company(name="Back")
    path = f"/companies/{row['id']}"
    await internal.call("DELETE", path)
    restored = await internal.call("POST", path + "/restore", {"city": "Odense"}, SYNC)
    assert restored.status == 200
    assert (restored.body["deleted"], restored.body["version"], restored.body["deleted_at"]) == (
        False, 3, None,
    )  # fmt: skip
    assert (restored.body["name"], restored.body["city"]) == ("Back", "Odense")
    live = await internal.call("POST", path + "/restore")
    assert (live.status, live.body["current"]) == (409, 3)


async def test_the_list_pages_by_id_and_hides_tombstones(internal: Internal) -> None:
    rows = [await internal.contact(first_name=str(n)) for n in range(5)]
    await internal.call("DELETE", f"/contacts/{rows[0]['id']}")
    first = await internal.call("GET", "/contacts/?limit=2")
    assert [r["id"] for r in first.body["items"]] == [rows[1]["id"], rows[2]["id"]]
    second = await internal.call(
        "GET", f"/contacts/?limit=2&after_id={first.body['next_after_id']}"
    )
    assert [r["id"] for r in second.body["items"]] == [rows[3]["id"], rows[4]["id"]]
    assert (second.body["next_after_id"], second.body["high_water"]) == (None, 6)
    every = await internal.call("GET", "/contacts/?include_deleted=true")
    assert len(every.body["items"]) == 5


async def test_a_bad_query_value_is_a_400(internal: Internal) -> None:
    assert (await internal.call("GET", "/contacts/?limit=0")).status == 400
    assert (await internal.call("GET", "/changes?after=x")).status == 400


async def test_rows_survive_a_restart(start_internal: StartInternal, tmp_path: Path) -> None:
    db = str(tmp_path / "restart.db")
    first = await start_internal(db=db)
    row = await first.company(name="durable")
    second = await start_internal(db=db)
    assert (await second.call("GET", f"/companies/{row['id']}")).body["name"] == "durable"
    assert (await second.contact())["version"] == 2

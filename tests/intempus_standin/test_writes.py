"""Writes (contract sections 6 to 8): status codes, logical timestamps, validation, deletes."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.intempus_standin.conftest import CUSTOMER, Intempus, StartIntempus


async def test_a_repeated_creation_id_answers_201_with_the_same_case_and_creates_nothing(
    intempus: Intempus,
) -> None:
    first = await intempus.create(creation_id="local:7")
    again = await intempus.call(
        "POST", "/web/v1/case/", {"name": "other", "customer": CUSTOMER, "creation_id": "local:7"}
    )
    assert again.status == 201
    assert again.body["id"] == first["id"] and again.body["name"] == "A case"
    assert len(await intempus.truth()) == 1
    assert [op for op, _ in intempus.committed] == ["POST"]


async def test_write_answers_show_42_on_post_and_the_old_lt_on_put_and_patch(
    intempus: Intempus,
) -> None:
    created = await intempus.call("POST", "/web/v1/case/", {"name": "x", "customer": CUSTOMER})
    assert created.body["logical_timestamp"] == 42
    real = (await intempus.call("GET", created.body["resource_uri"])).body["logical_timestamp"]
    assert created.lt == real  # the header is the truth, the body is not
    put = await intempus.call("PUT", created.body["resource_uri"], {"notes": "a"})
    assert put.body["logical_timestamp"] == real
    patch = await intempus.call("PATCH", created.body["resource_uri"], {"notes": "b"})
    assert patch.status == 202
    assert patch.body["logical_timestamp"] == real + 2
    assert patch.lt == real + 4


async def test_without_stale_write_lts_the_answers_show_the_new_lt(
    start_intempus: StartIntempus,
) -> None:
    intempus = await start_intempus(stale_write_lt=False)
    created = await intempus.call("POST", "/web/v1/case/", {"name": "x", "customer": CUSTOMER})
    assert created.body["logical_timestamp"] == created.lt == 9_083_590_836
    patch = await intempus.call("PATCH", created.body["resource_uri"], {"notes": "b"})
    assert patch.body["logical_timestamp"] == patch.lt == 9_083_590_838


async def test_ids_and_lts_start_where_the_contract_observed_them(intempus: Intempus) -> None:
    first = await intempus.create()
    second = await intempus.create()
    assert (first["id"], second["id"]) == (9_584_677, 9_584_678)
    truth = await intempus.truth()
    assert [c["logical_timestamp"] for c in truth.values()] == [9_083_590_836, 9_083_590_838]


async def test_a_patch_that_changes_nothing_still_bumps_the_lt(intempus: Intempus) -> None:
    case = await intempus.create()
    before = (await intempus.truth())[case["id"]]["logical_timestamp"]
    await intempus.call("PATCH", case["resource_uri"], {})
    assert (await intempus.truth())[case["id"]]["logical_timestamp"] == before + 2


async def test_creation_date_is_the_local_date_of_the_last_save(intempus: Intempus) -> None:
    case = await intempus.create()
    created_on = case["creation_date"]
    intempus.clock.at += 3 * 86_400
    patched = await intempus.call("PATCH", case["resource_uri"], {"active": False})
    assert patched.body["creation_date"] > created_on


async def test_put_to_a_missing_id_is_404_unless_put_creates(intempus: Intempus) -> None:
    body = {"name": "x", "customer": CUSTOMER}
    missing = await intempus.call("PUT", "/web/v1/case/9600000/", body)
    assert (missing.status, missing.raw) == (404, b"")
    await intempus.switch(put_creates=True)
    created = await intempus.call("PUT", "/web/v1/case/9600000/", body)
    assert (created.status, created.body["id"]) == (201, 9_600_000)
    assert (await intempus.create())["id"] == 9_600_001  # ids are never reused


async def test_a_case_with_work_reports_cannot_be_deleted_unless_cascade(
    intempus: Intempus,
) -> None:
    case = await intempus.create()
    reports = await intempus.call(
        "PUT", f"/_standin/cases/{case['id']}/work_reports", {"count": 2}, headers={}
    )
    assert reports.body == {"id": case["id"], "work_reports": 2}
    blocked = await intempus.call("DELETE", case["resource_uri"])
    assert (blocked.status, blocked.body) == (
        409,
        {"error": "Kan ikke slette Sag da Registreringer er relateret og bør slettes først"},
    )
    await intempus.switch(delete_cascade=True)
    assert (await intempus.call("DELETE", case["resource_uri"])).status == 204


async def test_a_case_with_child_cases_cannot_be_deleted(intempus: Intempus) -> None:
    parent = await intempus.create()
    await intempus.create(parent=parent["resource_uri"])
    blocked = await intempus.call("DELETE", parent["resource_uri"])
    assert blocked.status == 409


async def test_a_relation_uri_of_the_wrong_type_is_a_404_with_the_text(intempus: Intempus) -> None:
    answer = await intempus.call(
        "POST", "/web/v1/case/", {"name": "x", "customer": "/web/v1/employee/401/"}
    )
    assert (answer.status, answer.body) == (
        404,
        {"error": "An incorrect URL was provided '/web/v1/employee/401/' for the "
         "'CustomerResource' resource."},
    )  # fmt: skip


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"latitude": 90.5}, "latitude"),
        ({"longitude": "-180.000001"}, "longitude"),
        ({"end_date": "2026-01-01"}, "end_date"),
        ({"geofence": True}, "geofence"),
        ({"active": "yes"}, "active"),
        ({"name": "  "}, "name"),
    ],
)
async def test_invalid_values_are_refused_naming_the_field(
    intempus: Intempus, change: dict[str, Any], field: str
) -> None:
    case = await intempus.create()
    answer = await intempus.call("PATCH", case["resource_uri"], change)
    assert answer.status == 400
    assert list(answer.body["case"]) == [field]


async def test_a_case_cannot_become_its_own_ancestor(intempus: Intempus) -> None:
    top = await intempus.create()
    child = await intempus.create(parent=top["resource_uri"])
    cycle = await intempus.call("PATCH", top["resource_uri"], {"parent": child["resource_uri"]})
    assert (cycle.status, list(cycle.body["case"])) == (400, ["parent"])


async def test_decimals_are_formatted_and_nulls_clear_them(intempus: Intempus) -> None:
    case = await intempus.create(hour_budget=155.5, latitude="55.6238", longitude=12)
    assert (case["hour_budget"], case["latitude"], case["longitude"]) == (
        "155.50",
        "55.623800",
        "12.000000",
    )
    cleared = await intempus.call("PATCH", case["resource_uri"], {"hour_budget": None})
    assert cleared.body["hour_budget"] is None


async def test_null_on_a_non_nullable_field_is_ignored_on_update(intempus: Intempus) -> None:
    case = await intempus.create(active=False, number="9")
    answer = await intempus.call(
        "PATCH", case["resource_uri"], {"active": None, "number": None, "customer": None}
    )
    assert (answer.body["active"], answer.body["number"], answer.body["customer"]) == (
        False,
        "9",
        CUSTOMER,
    )


async def test_unique_number_refuses_a_duplicate_for_the_same_customer(
    start_intempus: StartIntempus,
) -> None:
    intempus = await start_intempus(unique_number=True)
    await intempus.create(number="4")
    again = await intempus.call(
        "POST", "/web/v1/case/", {"name": "x", "customer": CUSTOMER, "number": "4"}
    )
    assert (again.status, list(again.body["case"])) == (400, ["__all__"])
    other_customer = "/web/v1/customer/6666941/"
    assert (await intempus.create(number="4", customer=other_customer))["number"] == "4"


async def test_case_group_full_is_a_uri_in_lists_and_embedded_in_detail(
    intempus: Intempus,
) -> None:
    case = await intempus.create(case_group="/web/v1/case_group/1001/")
    assert case["case_group_full"]["id"] == 1001
    listed = await intempus.call("GET", "/web/v1/case/")
    assert listed.body["objects"][0]["case_group_full"] == "/web/v1/case_group/1001/"


async def test_a_body_that_is_not_a_json_object_is_a_400(intempus: Intempus) -> None:
    answer = await intempus.call("POST", "/web/v1/case/", [1, 2])
    assert answer.status == 400 and "error" in answer.body


async def test_data_survives_a_restart(start_intempus: StartIntempus, tmp_path: Any) -> None:
    db = str(tmp_path / "restart.db")
    first = await start_intempus(db=db)
    case = await first.create(creation_id="keep")
    second = await start_intempus(db=db)
    assert (await second.call("GET", case["resource_uri"])).body["name"] == "A case"
    assert (await second.create())["id"] == case["id"] + 1
    repeat = await second.call(
        "POST", "/web/v1/case/", {"name": "x", "customer": CUSTOMER, "creation_id": "keep"}
    )
    assert repeat.body["id"] == case["id"]


async def test_a_relation_may_be_an_absolute_url_of_the_right_resource(intempus: Intempus) -> None:
    case = await intempus.create(customer="https://intempus.dk/web/v1/customer/6666941/")
    assert case["customer"] == "/web/v1/customer/6666941/"


async def test_a_relation_uri_without_an_id_is_not_a_link_to_a_valid_resource(
    intempus: Intempus,
) -> None:
    answer = await intempus.call(
        "POST", "/web/v1/case/", {"name": "x", "customer": "/web/v1/customer/abc/"}
    )
    assert (answer.status, answer.body) == (
        404,
        {"error": "The URL provided '/web/v1/customer/abc/' was not a link to a valid resource."},
    )


async def test_concurrent_writes_get_distinct_lts_in_commit_order(intempus: Intempus) -> None:
    case = await intempus.create()
    answers = await asyncio.gather(
        *(intempus.call("PATCH", case["resource_uri"], {"notes": str(n)}) for n in range(20))
    )
    headers = sorted(a.lt for a in answers)
    first = headers[0]
    assert headers == [first + 2 * n for n in range(20)]
    final = (await intempus.truth())[case["id"]]
    assert final["logical_timestamp"] == headers[-1]

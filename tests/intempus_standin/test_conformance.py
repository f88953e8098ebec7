"""Contract section 13: the conformance tests the stand-in must pass, against captured-style
fixtures written from the contract's descriptions (tests/intempus_standin/fixtures/)."""

from __future__ import annotations

from typing import Any

import pytest

from intempus.case import CASE_KEYS
from intempus.models import CaseList, CaseOut
from tests.intempus_standin.conftest import CUSTOMER, Intempus, StartIntempus, fixture

IGNORED = ("id", "resource_uri", "creation_date", "logical_timestamp")


def _without(case: dict[str, Any], keys: tuple[str, ...] = IGNORED) -> dict[str, Any]:
    return {k: v for k, v in case.items() if k not in keys}


def test_the_captured_list_round_trips_through_the_models_with_every_key_and_type() -> None:
    captured = fixture("initial.json")
    parsed = CaseList.model_validate(captured)
    assert parsed.model_dump(mode="json") == captured
    for case in captured["objects"]:
        assert tuple(case) == CASE_KEYS


@pytest.mark.parametrize(
    ("key", "wrong"),
    [("customer_id", 6666940), ("hour_budget", 155.5), ("number", 1), ("active", "true")],
)
def test_the_case_model_refuses_a_key_of_the_wrong_type(key: str, wrong: Any) -> None:
    case = dict(fixture("initial.json")["objects"][0])
    case[key] = wrong
    with pytest.raises(ValueError):
        CaseOut.model_validate(case)


async def test_every_answer_of_the_stand_in_fits_the_captured_shape(intempus: Intempus) -> None:
    parent = await intempus.create(number="1", case_group="/web/v1/case_group/1001/")
    await intempus.create(parent=parent["resource_uri"], latitude=55.1, longitude=12)
    listed = await intempus.call("GET", "/web/v1/case/")
    assert listed.status == 200
    CaseList.model_validate(listed.body)
    detail = await intempus.call("GET", parent["resource_uri"])
    CaseOut.model_validate(detail.body)
    assert tuple(detail.body) == CASE_KEYS
    assert detail.body["number_of_children"] == 1


async def test_a_post_shaped_like_payload_add_produces_project_add(intempus: Intempus) -> None:
    answer = await intempus.call("POST", "/web/v1/case/", fixture("payload_add.json"))
    assert answer.status == 201
    assert answer.headers["Location"] == f"/web/v1/case/{answer.body['id']}/"
    assert _without(answer.body, ("id", "resource_uri", "creation_date")) == _without(
        fixture("project_add.json"), ("id", "resource_uri", "creation_date")
    )
    assert answer.body["logical_timestamp"] == 42


async def test_single_key_puts_in_order_reproduce_the_updated_object(
    intempus: Intempus,
) -> None:
    created = await intempus.call("POST", "/web/v1/case/", fixture("payload_add.json"))
    uri = created.body["resource_uri"]
    for step in fixture("update_steps.json"):
        answer = await intempus.call("PUT", uri, step)
        assert answer.status == 200, (step, answer.raw)
    final = await intempus.call("GET", uri)
    assert _without(final.body) == _without(fixture("update_expected.json"))


async def test_cases_written_after_the_first_page_header_are_exactly_those_after_it(
    intempus: Intempus,
) -> None:
    before = [await intempus.create(number=str(n)) for n in range(5)]
    page = await intempus.call("GET", "/web/v1/case/?pagination_type=cursor&limit=2")
    hwm = page.lt
    # Written after the header: an update of an old case, and a new case.
    await intempus.call("PATCH", before[1]["resource_uri"], {"notes": "changed"})
    new = await intempus.create(number="new")
    after = await intempus.call("GET", f"/web/v1/case/?logical_timestamp__gt={hwm}")
    assert sorted(c["id"] for c in after.body["objects"]) == sorted([before[1]["id"], new["id"]])


async def test_the_400_texts_come_back_verbatim(intempus: Intempus) -> None:
    texts = {
        "/web/v1/case/?limit=x": "Invalid limit 'x' provided. Please provide a positive integer.",
        "/web/v1/case/?offset=-1": (
            "Invalid offset '-1' provided. Please provide a positive integer >= 0."
        ),
        "/web/v1/case/?notes=x": "The 'notes' field does not allow filtering.",
        "/web/v1/case/?name__iexact=x": "'iexact' is not an allowed filter on the 'name' field.",
        "/web/v1/case/?logical_timestamp__gtt=1": (
            "The 'logical_timestamp' field does not support relations."
        ),
        "/web/v1/case/?order_by=x": "No matching 'x' field for ordering on.",
        "/web/v1/case/?order_by=notes": "The 'notes' field does not allow ordering.",
    }
    for path, text in texts.items():
        answer = await intempus.call("GET", path)
        assert (answer.status, answer.body) == (400, {"error": text}), path


async def test_a_create_without_name_or_customer_gets_tastypies_texts(intempus: Intempus) -> None:
    no_name = await intempus.call("POST", "/web/v1/case/", {"customer": CUSTOMER})
    assert no_name.body == {
        "error": "The 'name' field has no data and doesn't allow a default or null value."
    }
    no_customer = await intempus.call("POST", "/web/v1/case/", {"name": "x", "customer": None})
    assert no_customer.body == {
        "error": "The 'customer' field has no data and doesn't allow a null value."
    }
    unknown = await intempus.call(
        "POST", "/web/v1/case/", {"name": "x", "customer": "/web/v1/customer/999/"}
    )
    assert (unknown.status, unknown.body) == (
        400,
        {"error": "Could not find the provided object via resource URI '/web/v1/customer/999/'."},
    )


async def test_bad_dates_and_decimals_get_tastypies_texts(intempus: Intempus) -> None:
    case = await intempus.create()
    date = await intempus.call("PATCH", case["resource_uri"], {"start_date": "x"})
    assert (date.status, date.body) == (
        400,
        {
            "error": "Date provided to 'start_date' field doesn't appear to be a valid date "
            "string: 'x'"
        },
    )
    decimal = await intempus.call("PATCH", case["resource_uri"], {"latitude": "x"})
    assert decimal.body == {"error": "Invalid decimal string for 'latitude' field: 'x'"}


async def test_a_wrong_credential_gets_401_with_an_empty_body(intempus: Intempus) -> None:
    answer = await intempus.call(
        "GET", "/web/v1/case/", headers={"Authorization": "ApiKey sync@example.com:wrong"}
    )
    assert (answer.status, answer.raw) == (401, b"")
    assert answer.headers["WWW-Authenticate"] == 'CustomBasic realm="django-tastypie"'


@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
async def test_a_missing_id_gets_404_with_an_empty_body(intempus: Intempus, method: str) -> None:
    body = {"name": "x"} if method == "PATCH" else None
    answer = await intempus.call(method, "/web/v1/case/123/", body)
    assert (answer.status, answer.raw) == (404, b"")


async def test_delete_answers_204_and_then_get_answers_404(intempus: Intempus) -> None:
    case = await intempus.create()
    deleted = await intempus.call("DELETE", case["resource_uri"])
    assert (deleted.status, deleted.raw) == (204, b"")
    assert (await intempus.call("GET", case["resource_uri"])).status == 404


async def test_over_500_a_minute_the_answer_is_429_with_retry_after_and_none_is_served(
    start_intempus: StartIntempus,
) -> None:
    intempus = await start_intempus(rate_per_minute=500)
    statuses = [(await intempus.call("GET", "/web/v1/case/?limit=1")).status for _ in range(505)]
    assert statuses.count(200) == 500 and statuses[500:] == [429] * 5
    limited = await intempus.call("GET", "/web/v1/case/")
    assert limited.status == 429
    assert limited.body == {"error": "Too many requests"}
    assert int(limited.headers["Retry-After"]) >= 1
    assert intempus.service.stats.count("GET", "/web/v1/case/", 200) == 500

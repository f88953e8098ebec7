"""Filters (contract section 5): what each allows, the refusals' texts, the minimal switch."""

from __future__ import annotations

import pytest

from tests.intempus_standin.conftest import Intempus


async def _ids(intempus: Intempus, query: str) -> list[int]:
    answer = await intempus.call("GET", f"/web/v1/case/?{query}")
    assert answer.status == 200, answer.raw
    return [c["id"] for c in answer.body["objects"]]


async def test_numeric_filters_on_id_and_logical_timestamp(intempus: Intempus) -> None:
    cases = [await intempus.create(number=str(n)) for n in range(4)]
    ids = [c["id"] for c in cases]
    assert await _ids(intempus, f"id__in={ids[0]},{ids[2]}") == [ids[0], ids[2]]
    assert await _ids(intempus, f"id__gte={ids[2]}") == ids[2:]
    assert await _ids(intempus, f"id={ids[1]}") == [ids[1]]
    truth = await intempus.truth()
    lt1 = truth[ids[1]]["logical_timestamp"]
    assert await _ids(intempus, f"logical_timestamp__gt={lt1}") == ids[2:]
    assert await _ids(intempus, f"logical_timestamp__lte={lt1}") == ids[:2]


async def test_active_number_customer_and_name_filters(intempus: Intempus) -> None:
    a = await intempus.create(name="Tag Vejle", number="7", active=False)
    b = await intempus.create(name="Kloak", number="8", customer="/web/v1/customer/6666941/")
    assert await _ids(intempus, "active=false") == [a["id"]]
    assert await _ids(intempus, "active=1") == [b["id"]]
    assert await _ids(intempus, "number__in=7,8") == [a["id"], b["id"]]
    assert await _ids(intempus, "customer=6666941") == [b["id"]]
    assert await _ids(intempus, "customer=/web/v1/customer/6666941/") == [b["id"]]
    assert await _ids(intempus, "name__icontains=tag") == [a["id"]]


async def test_parameters_that_are_not_fields_are_ignored(intempus: Intempus) -> None:
    case = await intempus.create()
    assert await _ids(intempus, "logical_timestampp__gt=1&format=json&foo=bar") == [case["id"]]


@pytest.mark.parametrize(
    ("query", "text"),
    [
        ("active=maybe", "Invalid resource lookup data provided (mismatched type)."),
        ("id__gt=x", "Invalid resource lookup data provided (mismatched type)."),
        ("customer__name=x", "Lookups are not allowed more than one level deep on the "
         "'customer' field."),
        ("active__gt=1", "'gt' is not an allowed filter on the 'active' field."),
        ("creation_id=x", "The 'creation_id' field does not allow filtering."),
    ],
)  # fmt: skip
async def test_refused_filters_answer_400_with_the_text(
    intempus: Intempus, query: str, text: str
) -> None:
    answer = await intempus.call("GET", f"/web/v1/case/?{query}")
    assert (answer.status, answer.body) == (400, {"error": text})


async def test_minimal_filters_allow_only_logical_timestamp_gt_and_active(
    intempus: Intempus,
) -> None:
    case = await intempus.create()
    await intempus.switch(filters="minimal")
    assert await _ids(intempus, "logical_timestamp__gt=1&active=true") == [case["id"]]
    refused = {
        "id=1": "The 'id' field does not allow filtering.",
        "logical_timestamp__gte=1": (
            "'gte' is not an allowed filter on the 'logical_timestamp' field."
        ),
    }
    for query, text in refused.items():
        answer = await intempus.call("GET", f"/web/v1/case/?{query}")
        assert answer.body == {"error": text}

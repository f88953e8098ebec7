"""The canonical form of both sides' cases and the three-way merge, rule by rule.

Rows are made by the stand-ins' own code (the Intempus hydrator and renderer, the case store's
pydantic models), so the wire formats tested are the ones the services really answer.
"""

from __future__ import annotations

from typing import Any

import pytest

from case_store.models import CaseFields, CaseRow
from integration.core.errors import InvalidInput
from integration.pipelines.intempus_cases.mapping import (
    GROUPS,
    SYNCED_FIELDS,
    Canonical,
    Clash,
    content_hash,
    differs,
    from_intempus,
    from_local,
    merge,
    to_intempus,
    to_local,
)
from intempus.case import CASE_KEYS, WRITABLE, Hydrator, Renderer, StoredCase
from intempus.world import World

CUSTOMER = "/web/v1/customer/6666940/"
BODY: dict[str, Any] = {
    "name": "Tagrenovering",
    "customer": CUSTOMER,
    "number": "1",
    "case_group": "/web/v1/case_group/1001/",
    "responsible": "/web/v1/employee/401/",
    "start_date": "2026-01-05",
    "hour_budget": "155.50",
}


def intempus_row(case_id: int = 9584677, **changes: Any) -> dict[str, Any]:
    """The detail answer the Intempus stand-in gives for a case created from ``BODY``."""
    world = World()
    fields = Hydrator(world, {}).create({**BODY, **changes})
    fields["creation_date"] = "2026-11-22"
    case = StoredCase(id=case_id, lt=9083590836, fields=fields)
    return Renderer(world, {case_id: case}, {}).render(case, full=True)


def local_row(**changes: Any) -> dict[str, Any]:
    """A local store row holding the same case as ``intempus_row()``."""
    body = {
        "name": "Tagrenovering",
        "customer": 6666940,
        "number": "1",
        "case_group": 1001,
        "responsible": 401,
        "start_date": "2026-01-05",
        "hour_budget": "155.50",
        **changes,
    }
    fields = CaseFields.model_validate(body).model_dump()
    bookkeeping = {
        "id": 12,
        "version": 41,
        "origin": "user",
        "deleted": False,
        "created_at": "2026-09-21T14:13:20+00:00",
        "updated_at": "2026-09-21T14:13:20+00:00",
        "deleted_at": None,
    }
    return CaseRow.model_validate({**bookkeeping, **fields}).model_dump()


def canonical(**changes: Any) -> Canonical:
    return {**from_local(local_row()), **changes}


# -- the field list ------------------------------------------------------------------------


def test_every_synced_field_is_writable_on_intempus_and_in_the_local_store() -> None:
    assert set(SYNCED_FIELDS) <= set(WRITABLE)
    assert set(SYNCED_FIELDS) <= set(CaseFields.model_fields)
    assert {name for group in GROUPS for name in group} <= set(SYNCED_FIELDS)


def test_parent_is_not_synced_because_its_ids_differ_per_side() -> None:
    # Intempus's parent is an Intempus case id, the store's a local case id.
    assert "parent" not in SYNCED_FIELDS
    assert "parent" not in from_intempus(intempus_row())


# -- canonical form ------------------------------------------------------------------------


def test_an_intempus_case_and_its_local_copy_are_equal() -> None:
    row = intempus_row()
    assert set(row) == set(CASE_KEYS)
    assert from_intempus(row) == from_local(local_row())
    assert set(from_intempus(row)) == set(SYNCED_FIELDS)


@pytest.mark.parametrize(
    ("field", "loose", "strict"),
    [
        ("hour_budget", 155.5, "155.50"),
        ("hour_budget", "155.5", "155.50"),
        ("hour_budget", 7, "7.00"),
        ("latitude", "56.1564", "56.156400"),
        ("longitude", 10.2069, "10.206900"),
        ("hour_budget", "-0", "0.00"),
    ],
)
def test_decimals_equal_at_their_scale(field: str, loose: Any, strict: str) -> None:
    assert from_local({**local_row(), field: loose})[field] == strict
    assert from_local({**local_row(), field: strict})[field] == strict


def test_decimal_spellings_hash_the_same() -> None:
    assert content_hash(from_local({**local_row(), "hour_budget": 155.5})) == content_hash(
        from_intempus(intempus_row())
    )


@pytest.mark.parametrize("field", ["street_address", "zip_code", "city", "country", "notes"])
def test_null_and_empty_string_are_the_same(field: str) -> None:
    assert from_intempus({**intempus_row(), field: None}) == from_intempus(intempus_row())
    assert from_local({**local_row(), field: None})[field] == ""


def test_relation_uri_becomes_its_id() -> None:
    c = from_intempus(intempus_row())
    assert (c["customer"], c["case_group"], c["responsible"]) == (6666940, 1001, 401)
    assert c["case_state"] is None


def test_absolute_relation_url_is_read_by_its_path() -> None:
    row = {**intempus_row(), "customer": "https://intempus.dk/web/v1/customer/6666941/"}
    assert from_intempus(row)["customer"] == 6666941


@pytest.mark.parametrize(
    "embedded",
    [
        {"id": 1002, "name": "Service", "resource_uri": "/web/v1/case_group/1002/"},
        {"id": "1002", "name": "Service"},
    ],
)
def test_embedded_relation_becomes_its_id(embedded: dict[str, Any]) -> None:
    assert from_intempus({**intempus_row(), "case_group": embedded})["case_group"] == 1002


def test_a_row_without_synced_changes_hashes_the_same() -> None:
    # The stand-ins' bookkeeping (LT, creation_date, version, origin) is not case data.
    a = intempus_row()
    b = {**a, "logical_timestamp": 9083590900, "creation_date": "2026-11-23"}
    assert content_hash(from_intempus(a)) == content_hash(from_intempus(b))
    changed = from_intempus({**a, "notes": "x"})
    assert content_hash(changed) != content_hash(from_intempus(a))


def test_content_hash_does_not_depend_on_key_order() -> None:
    c = canonical()
    assert content_hash(dict(reversed(list(c.items())))) == content_hash(c)


# -- bad values ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("latitude", "abc"),
        ("latitude", "90.5"),
        ("longitude", "-181"),
        ("hour_budget", "NaN"),
        ("start_date", "2026-13-01"),
        ("start_date", "05/01/2026"),
        ("customer", "/web/v1/employee/401/"),
        ("responsible", "/web/v1/customer/6666940/"),
        ("case_group", "/web/v1/case_group/abc/"),
        ("case_group", {"name": "no id"}),
        ("active", "yes"),
        ("remarks_required", 1),
        ("name", "   "),
        ("number", 17),
        ("city", ["Aarhus"]),
    ],
)
def test_a_bad_intempus_value_is_invalid_input_naming_the_field(field: str, value: Any) -> None:
    with pytest.raises(InvalidInput) as caught:
        from_intempus({**intempus_row(), field: value})
    message = str(caught.value)
    assert message.startswith(f"intempus case 9584677: {field}={value!r}: ")
    assert "\n" not in message
    assert "pydantic" not in message and "Value error" not in message
    assert not caught.value.blocking


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("customer", "6666940"),  # the store answers ints; a string is someone else's data
        ("customer", 0),
        ("customer", True),
        ("case_state", "/web/v1/case_state/201/"),
        ("name", "x" * 256),
        ("number", "1" * 101),
        ("hour_budget", "100000000"),
    ],
)
def test_a_bad_local_value_is_invalid_input_naming_the_field(field: str, value: Any) -> None:
    with pytest.raises(InvalidInput) as caught:
        from_local({**local_row(), field: value})
    assert str(caught.value).startswith(f"local case 12: {field}=")
    assert "\n" not in str(caught.value)


def test_an_overlong_value_is_shortened_in_the_message() -> None:
    with pytest.raises(InvalidInput) as caught:
        from_intempus({**intempus_row(), "name": "x" * 5000})
    assert "name=" in str(caught.value) and len(str(caught.value)) < 200


def test_a_missing_field_is_invalid_input_naming_it() -> None:
    row = intempus_row()
    del row["geofence"]
    with pytest.raises(InvalidInput, match=r"^intempus case 9584677: geofence is missing$"):
        from_intempus(row)


def test_an_end_date_without_a_start_date_is_invalid_input() -> None:
    with pytest.raises(InvalidInput, match=r"end_date='2026-02-01': needs a start_date"):
        from_local({**local_row(), "start_date": None, "end_date": "2026-02-01"})


def test_a_geofence_without_coordinates_is_invalid_input() -> None:
    with pytest.raises(InvalidInput, match=r"geofence=True: needs latitude and longitude"):
        from_intempus({**intempus_row(), "geofence": True})


# -- writes ----------------------------------------------------------------------------------


def test_intempus_is_written_relations_as_uris() -> None:
    body = to_intempus({"customer": 6666941, "responsible": 402, "case_state": None, "notes": ""})
    assert body == {
        "customer": "/web/v1/customer/6666941/",
        "responsible": "/web/v1/employee/402/",
        "case_state": None,
        "notes": "",
    }


def test_a_whole_case_written_to_intempus_reads_back_equal() -> None:
    c = canonical(geofence=True, latitude="56.156400", longitude="10.206900", end_date="2026-03-01")
    world = World()
    # The stand-in's own hydrator accepts the body (it refuses bare ids and objects).
    fields = Hydrator(world, {}).create(to_intempus(c))
    fields["creation_date"] = "2026-11-22"
    case = StoredCase(id=9584678, lt=9083590838, fields=fields)
    assert from_intempus(Renderer(world, {case.id: case}, {}).render(case, full=False)) == c


def test_a_whole_case_written_locally_reads_back_equal() -> None:
    c = canonical(notes="Ring først", hour_budget="0.25")
    assert from_local(local_row(**to_local(c))) == c


def test_a_write_refuses_fields_that_are_not_synced() -> None:
    with pytest.raises(ValueError, match="parent"):
        to_intempus({"parent": 9584677})
    with pytest.raises(ValueError, match="intempus_id"):
        to_local({"intempus_id": 9584677})


# -- merge -----------------------------------------------------------------------------------


def test_no_change_merge_writes_nothing() -> None:
    c = canonical()
    merged = merge(c, dict(c), dict(c))
    assert merged.result == c
    assert (merged.for_intempus, merged.for_local, merged.clashes) == ({}, {}, [])


def test_edits_on_different_fields_on_both_sides_merge() -> None:
    base = canonical()
    merged = merge(base, {**base, "name": "Nyt tag"}, {**base, "notes": "Stige"})
    assert merged.result == {**base, "name": "Nyt tag", "notes": "Stige"}
    assert merged.for_intempus == {"notes": "Stige"}
    assert merged.for_local == {"name": "Nyt tag"}
    assert merged.clashes == []


def test_an_edit_on_one_side_is_written_to_the_other_only() -> None:
    base = canonical()
    merged = merge(base, base, {**base, "active": False, "hour_budget": "10.00"})
    assert merged.for_intempus == {"active": False, "hour_budget": "10.00"}
    assert merged.for_local == {}


def test_the_same_edit_on_both_sides_is_no_clash_and_no_write() -> None:
    base = canonical()
    both = {**base, "city": "Vejle"}
    merged = merge(base, both, dict(both))
    assert (merged.result, merged.clashes, merged.for_intempus, merged.for_local) == (
        both,
        [],
        {},
        {},
    )


@pytest.mark.parametrize("policy", ["intempus", "local"])
def test_a_same_field_clash_follows_the_policy_and_is_recorded(policy: Any) -> None:
    base = canonical()
    i = {**base, "name": "Intempus-navn", "notes": "fra Intempus"}
    lo = {**base, "name": "Lokalt navn", "city": "Odense"}
    merged = merge(base, i, lo, policy)
    winner = i if policy == "intempus" else lo
    assert merged.result == {
        **base,
        "name": winner["name"],
        "notes": "fra Intempus",
        "city": "Odense",
    }
    assert merged.clashes == [
        Clash("name", "Intempus-navn", "Lokalt navn", "Tagrenovering", policy)
    ]
    assert differs(i, merged.result) == list(merged.for_intempus)
    assert differs(lo, merged.result) == list(merged.for_local)


def test_the_date_group_moves_whole_from_the_winner() -> None:
    base = canonical(start_date="2026-01-05", end_date="2026-02-01")
    i = {**base, "start_date": "2026-01-10"}
    lo = {**base, "end_date": "2026-03-01"}
    merged = merge(base, i, lo, "intempus")
    assert (merged.result["start_date"], merged.result["end_date"]) == ("2026-01-10", "2026-02-01")
    assert merged.for_local == {"start_date": "2026-01-10", "end_date": "2026-02-01"}
    assert [c.field for c in merged.clashes] == ["start_date", "end_date"]
    assert {c.winner for c in merged.clashes} == {"intempus"}


def test_the_date_group_never_mixes_into_an_end_without_a_start() -> None:
    # Per field this would be start None (Intempus's edit) + end set (local's): refused by both.
    base = canonical(start_date="2026-01-05", end_date=None)
    i = {**base, "start_date": None}
    lo = {**base, "end_date": "2026-02-01"}
    result = merge(base, i, lo, "local").result
    assert (result["start_date"], result["end_date"]) == ("2026-01-05", "2026-02-01")
    from_local(local_row(**to_local(result)))  # valid


def test_a_location_moved_on_both_sides_is_taken_whole_from_the_winner() -> None:
    base = canonical(geofence=True, latitude="56.000000", longitude="10.000000")
    i = {**base, "latitude": "56.100000"}
    lo = {**base, "longitude": "10.300000"}
    merged = merge(base, i, lo, "local")
    assert (merged.result["latitude"], merged.result["longitude"]) == ("56.000000", "10.300000")
    assert [(c.field, c.winner) for c in merged.clashes] == [
        ("latitude", "local"),
        ("longitude", "local"),
    ]


def test_a_group_changed_on_one_side_only_is_taken_from_that_side() -> None:
    base = canonical()
    lo = {**base, "geofence": True, "latitude": "55.000000", "longitude": "12.000000"}
    merged = merge(base, base, lo)
    assert merged.clashes == []
    assert merged.for_intempus == {
        "geofence": True,
        "latitude": "55.000000",
        "longitude": "12.000000",
    }


@pytest.mark.parametrize("policy", ["intempus", "local"])
def test_first_contact_every_difference_is_a_clash_won_by_the_policy(policy: Any) -> None:
    i = canonical(name="A", notes="x")
    lo = canonical(name="B", notes="x", city="Horsens")
    merged = merge(None, i, lo, policy)
    assert merged.result == (i if policy == "intempus" else lo)
    assert [(c.field, c.base, c.winner) for c in merged.clashes] == [
        ("name", None, policy),
        ("city", None, policy),
    ]


def test_first_contact_with_equal_sides_writes_nothing() -> None:
    c = canonical()
    merged = merge(None, c, dict(c))
    assert (merged.result, merged.clashes, merged.for_intempus, merged.for_local) == (c, [], {}, {})


def test_a_field_missing_from_the_base_counts_as_unknown() -> None:
    base = canonical()
    del base["notes"]
    merged = merge(base, canonical(notes="i"), canonical(notes="l"), "local")
    assert merged.result["notes"] == "l"
    assert merged.clashes == [Clash("notes", "i", "l", None, "local")]


def test_merge_refuses_a_side_without_every_synced_field() -> None:
    c = canonical()
    partial = {k: v for k, v in c.items() if k != "name"}
    with pytest.raises(ValueError, match="local state lacks synced fields: name"):
        merge(c, c, partial)


def test_differs_lists_changed_and_missing_fields_in_field_order() -> None:
    a = canonical()
    b = {**a, "notes": "x", "name": "y", "extra": 1}
    del b["city"]
    assert differs(a, b) == ["name", "city", "notes", "extra"]

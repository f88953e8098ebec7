"""Properties of the canonical form and the three-way merge, for any realistic cases and edits.

A state is drawn unit by unit (a group of ``GROUPS`` as one valid combination), so every drawn
state is one both services would hold; small value pools make both sides hit the same values.
"""

from __future__ import annotations

from typing import Any, Literal

from hypothesis import given, settings
from hypothesis import strategies as st

from case_store.models import CaseFields
from integration.pipelines.intempus_cases.mapping import (
    GROUPS,
    RELATIONS,
    SYNCED_FIELDS,
    Canonical,
    Merged,
    content_hash,
    from_intempus,
    from_local,
    merge,
    to_intempus,
    to_local,
)
from intempus.case import Hydrator
from intempus.world import World

from .test_mapping import intempus_row, local_row

Policy = Literal["intempus", "local"]
Unit = tuple[str, ...]

DAYS = st.sampled_from(["2026-01-05", "2026-02-01", "2026-03-15", "2027-12-31"])
LATITUDES = st.sampled_from(["56.156400", "55.730100", "-33.868800", "90.000000"])
LONGITUDES = st.sampled_from(["10.206900", "12.575600", "151.209300", "-180.000000"])
TEXTS = st.sampled_from(["", "Vestergade 12", "8000", "Aarhus C", "Ring først ✓"])


def maybe(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), values)


BOOLEANS = (
    "active",
    "permit_new_workreports",
    "all_employees_may_add_work_reports",
    "all_worktypes_may_used_in_work_reports",
    "file_upload_required",
)
SINGLE: dict[str, st.SearchStrategy[Any]] = {
    "number": st.sampled_from(["", "1", "2", "A-17"]),
    "name": st.sampled_from(["Tagrenovering", "Kloak", "Nyt navn"]),
    "customer": st.sampled_from([6666940, 6666941, 6666942]),
    **dict.fromkeys(BOOLEANS, st.booleans()),
    "remarks_required": maybe(st.booleans()),
    "case_group": maybe(st.sampled_from([1001, 1002, 1003])),
    "case_state": maybe(st.sampled_from([201, 202])),
    "department": maybe(st.sampled_from([301, 302])),
    "responsible": maybe(st.sampled_from([401, 402])),
    "co_responsible": maybe(st.sampled_from([403, 404])),
    **dict.fromkeys(("street_address", "zip_code", "city", "country", "notes"), TEXTS),
    "hour_budget": maybe(st.sampled_from(["0.00", "155.50", "7.25", "99999999.00"])),
}
UNIT_VALUES: dict[Unit, st.SearchStrategy[tuple[Any, ...]]] = {
    ("start_date", "end_date"): st.one_of(
        st.just((None, None)), st.tuples(DAYS, st.none()), st.tuples(DAYS, DAYS)
    ),
    ("geofence", "latitude", "longitude"): st.one_of(
        st.tuples(st.just(False), maybe(LATITUDES), maybe(LONGITUDES)),
        st.tuples(st.just(True), LATITUDES, LONGITUDES),
    ),
    **{(name,): st.tuples(values) for name, values in SINGLE.items()},
}
UNITS = list(UNIT_VALUES)
POLICIES: st.SearchStrategy[Policy] = st.sampled_from(["intempus", "local"])


def test_the_strategies_cover_exactly_the_synced_fields_and_groups() -> None:
    assert sorted(name for unit in UNITS for name in unit) == sorted(SYNCED_FIELDS)
    assert set(GROUPS) <= set(UNITS)


@st.composite
def cases(draw: st.DrawFn) -> Canonical:
    state: Canonical = {}
    for unit, values in UNIT_VALUES.items():
        state.update(zip(unit, draw(values), strict=True))
    return {name: state[name] for name in SYNCED_FIELDS}


@st.composite
def edited(draw: st.DrawFn, state: Canonical) -> Canonical:
    """``state`` with a few units given new (possibly equal) values, as one user save."""
    units = draw(st.lists(st.sampled_from(UNITS), min_size=1, max_size=4, unique=True))
    new = dict(state)
    for unit in units:
        new.update(zip(unit, draw(UNIT_VALUES[unit]), strict=True))
    return new


def unit_of(state: Canonical, unit: Unit) -> tuple[Any, ...]:
    return tuple(state[name] for name in unit)


def apply(state: Canonical, write: Canonical) -> Canonical:
    return {**state, **write}


def check_merged(base: Canonical | None, i: Canonical, lo: Canonical, m: Merged) -> None:
    """What holds for every merge: both sides reach the result by their writes alone, each
    write holds exactly the fields that side has wrong, the result is valid on both services,
    and a unit edited on one side only is never lost."""
    assert apply(i, m.for_intempus) == m.result == apply(lo, m.for_local)
    assert m.for_intempus == {n: v for n, v in m.result.items() if i[n] != v}
    assert m.for_local == {n: v for n, v in m.result.items() if lo[n] != v}
    CaseFields.model_validate(to_local(m.result))
    Hydrator(World(), {}).create(to_intempus(m.result))
    clashed = {c.field for c in m.clashes}
    for unit in UNITS:
        ours, theirs = unit_of(i, unit), unit_of(lo, unit)
        if base is not None and ours == unit_of(base, unit):
            assert unit_of(m.result, unit) == theirs
            assert not clashed & set(unit)
        elif base is not None and theirs == unit_of(base, unit):
            assert unit_of(m.result, unit) == ours
            assert not clashed & set(unit)
        elif ours != theirs:
            assert clashed >= {n for n in unit if i[n] != lo[n]}
    # A second merge from the result, both sides having been written, is a no-op.
    again = merge(m.result, apply(i, m.for_intempus), apply(lo, m.for_local))
    assert (again.result, again.clashes, again.for_intempus, again.for_local) == (
        m.result,
        [],
        {},
        {},
    )


@settings(max_examples=60, deadline=None)
@given(cases(), POLICIES)
def test_merging_equal_states_changes_nothing(x: Canonical, policy: Policy) -> None:
    for base in (x, None):
        m = merge(base, dict(x), dict(x), policy)
        assert (m.result, m.clashes, m.for_intempus, m.for_local) == (x, [], {}, {})


@settings(max_examples=150, deadline=None)
@given(st.data(), cases(), POLICIES)
def test_any_edits_on_both_sides_merge_to_one_state_both_sides_reach(
    data: st.DataObject, base: Canonical, policy: Policy
) -> None:
    i = data.draw(st.one_of(st.just(base), edited(base)), label="intempus")
    lo = data.draw(st.one_of(st.just(base), edited(base)), label="local")
    m = merge(base, i, lo, policy)
    check_merged(base, i, lo, m)
    for clash in m.clashes:
        assert clash.winner == policy
        assert m.result[clash.field] == (clash.intempus if policy == "intempus" else clash.local)
        assert clash.base == base[clash.field]


@settings(max_examples=60, deadline=None)
@given(cases(), cases(), POLICIES)
def test_first_contact_takes_the_policy_side_whole(i: Canonical, lo: Canonical, p: Policy) -> None:
    m = merge(None, i, lo, p)
    check_merged(None, i, lo, m)
    assert m.result == (i if p == "intempus" else lo)
    assert sorted(c.field for c in m.clashes) == sorted(n for n in SYNCED_FIELDS if i[n] != lo[n])


@st.composite
def histories(draw: st.DrawFn) -> tuple[Canonical, Canonical, bool, list[str]]:
    start_i = draw(cases())
    linked = draw(st.booleans())
    start_l = start_i if linked else draw(cases())
    steps = draw(st.lists(st.sampled_from(["I", "L", "merge"]), max_size=12))
    return start_i, start_l, linked, steps


@settings(max_examples=100, deadline=None)
@given(st.data(), histories(), POLICIES)
def test_any_interleaving_of_edits_and_merges_converges(
    data: st.DataObject, history: tuple[Canonical, Canonical, bool, list[str]], policy: Policy
) -> None:
    i, lo, linked, steps = history
    base: Canonical | None = dict(i) if linked else None
    for step in [*steps, "merge"]:
        if step == "I":
            i = data.draw(edited(i), label="edit on Intempus")
        elif step == "L":
            lo = data.draw(edited(lo), label="edit locally")
        else:
            m = merge(base, i, lo, policy)
            check_merged(base, i, lo, m)
            i, lo, base = apply(i, m.for_intempus), apply(lo, m.for_local), m.result
    assert i == lo == base
    assert content_hash(i) == content_hash(lo)


# -- the canonical form --------------------------------------------------------------------


def spelled(data: st.DataObject, c: Canonical, side: Literal["intempus", "local"]) -> Canonical:
    """``c`` as a service may spell it: decimals as numbers or shorter strings, a blank string
    as null; on Intempus relations as paths, absolute URLs or embedded objects."""
    row = dict(c)
    for name in ("latitude", "longitude", "hour_budget"):
        if row[name] is not None:
            row[name] = data.draw(
                st.sampled_from([row[name], float(row[name]), row[name].rstrip("0")])
            )
    for name in ("street_address", "zip_code", "city", "country", "notes"):
        if row[name] == "" and data.draw(st.booleans()):
            row[name] = None
    if side == "intempus":
        for name, resource in RELATIONS.items():
            if row[name] is not None:
                path = f"/web/v1/{resource}/{row[name]}/"
                row[name] = data.draw(
                    st.sampled_from(
                        [path, "https://intempus.dk" + path, {"id": row[name], "name": "x"}]
                    )
                )
    return row


@settings(max_examples=80, deadline=None)
@given(st.data(), cases())
def test_every_spelling_of_a_case_reads_as_the_same_canonical_case(
    data: st.DataObject, c: Canonical
) -> None:
    assert from_intempus({**intempus_row(), **spelled(data, c, "intempus")}) == c
    assert from_local({**local_row(), **spelled(data, c, "local")}) == c


@settings(max_examples=60, deadline=None)
@given(cases(), cases())
def test_equal_hashes_mean_equal_cases(a: Canonical, b: Canonical) -> None:
    assert (content_hash(a) == content_hash(b)) == (a == b)

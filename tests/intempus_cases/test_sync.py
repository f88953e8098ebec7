"""The Intempus ⇄ case store sync against both stand-ins over real sockets, run in drain mode:
each drain reads both sides up to now and applies everything, as one pass of ``intempus --once``
would."""

from __future__ import annotations

import json
from typing import Any

from integration.core.state import InboxEntry, SQLiteStore
from integration.pipelines.intempus_cases.links import CONFLICTS
from integration.pipelines.intempus_cases.sink import CaseSink
from tests.helpers.clocks import ManualClock

from .conftest import Sides, intempus_client, store_client

CUSTOMER = "/web/v1/customer/6666940/"


async def settle(sides: Sides, drains: int = 3) -> None:
    """A change goes out in one drain and its echo comes back in the next: a few drains reach
    the quiet state."""
    for _ in range(drains):
        await sides.drain()


def by_name(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {row["name"]: row for row in rows}


async def conflicts(sides: Sides) -> list[str]:
    store = SQLiteStore(sides.settings.state_db)
    await store.open()
    try:
        return [value async for _, value in store.map_iter(CONFLICTS)]
    finally:
        await store.close()


# -- creates -----------------------------------------------------------------------------------


async def test_a_case_created_in_intempus_appears_once_in_the_case_store(sides: Sides) -> None:
    made = await sides.intempus.create(name="Roof", number="R-1", notes="from Intempus")

    await settle(sides)

    [row] = await sides.local_cases()
    assert row["name"] == "Roof" and row["notes"] == "from Intempus"
    assert row["intempus_id"] == made["id"]


async def test_a_case_created_locally_appears_once_in_intempus_named_by_its_local_id(
    sides: Sides,
) -> None:
    made = await sides.store.create(name="Cellar", number="C-1")

    await settle(sides)

    [case] = await sides.intempus_cases()
    assert case["name"] == "Cellar" and case["creation_id"] == f"local:{made['id']}"
    assert len(await sides.local_cases()) == 1


async def test_many_cases_on_both_sides_end_the_same_and_none_twice(sides: Sides) -> None:
    for n in range(15):
        await sides.intempus.create(name=f"I{n}", number=f"i{n}")
        await sides.store.create(name=f"L{n}", number=f"l{n}")

    await settle(sides)

    local, remote = await sides.local_cases(), await sides.intempus_cases()
    assert sorted(r["name"] for r in local) == sorted(r["name"] for r in remote)
    assert len(local) == len(remote) == 30


# -- updates and conflicts ---------------------------------------------------------------------


async def test_edits_to_different_fields_on_both_sides_merge(sides: Sides) -> None:
    made = await sides.intempus.create(name="Garage", number="G-1")
    await settle(sides)
    [row] = await sides.local_cases()

    await sides.user_edits_intempus(made["id"], notes="painted")
    await sides.user_edits_local(row["id"], city="Aarhus")
    await settle(sides)

    [row] = await sides.local_cases()
    [case] = await sides.intempus_cases()
    assert (row["notes"], row["city"]) == ("painted", "Aarhus")
    assert (case["notes"], case["city"]) == ("painted", "Aarhus")
    assert await conflicts(sides) == []


async def clash_on_notes(sides: Sides) -> tuple[dict[str, Any], dict[str, Any]]:
    """A case both sides hold, then ``notes`` changed on both before the sync runs again; the
    case as each side holds it afterwards (the store's, Intempus's)."""
    made = await sides.intempus.create(name="Shed", number="S-1")
    await settle(sides)
    [row] = await sides.local_cases()
    await sides.user_edits_intempus(made["id"], notes="intempus says")
    await sides.user_edits_local(row["id"], notes="local says")
    await settle(sides)
    [row] = await sides.local_cases()
    [case] = await sides.intempus_cases()
    return row, case


async def test_a_same_field_clash_goes_to_intempus_by_default_and_is_recorded(
    sides: Sides,
) -> None:
    row, case = await clash_on_notes(sides)

    assert row["notes"] == case["notes"] == "intempus says"
    [record] = await conflicts(sides)
    assert '"field": "notes"' in record and '"winner": "intempus"' in record


async def test_with_the_local_policy_a_same_field_clash_goes_to_the_local_side(
    sides: Sides,
) -> None:
    sides.settings = sides.settings.model_copy(update={"conflict_policy": "local"})

    row, case = await clash_on_notes(sides)

    assert row["notes"] == case["notes"] == "local says"


# -- no echo -----------------------------------------------------------------------------------


async def test_once_in_step_a_drain_only_polls_both_sides(sides: Sides) -> None:
    for n in range(3):
        await sides.intempus.create(name=f"I{n}")
        await sides.store.create(name=f"L{n}")
    await settle(sides)
    await sides.reset_counts()

    await sides.drain()

    intempus_requests, local_requests = await sides.requests()
    assert {(r["method"], r["route"]) for r in intempus_requests} == {("GET", "/web/v1/case/")}
    assert {(r["method"], r["route"]) for r in local_requests} == {("GET", "/cases/changes")}


# -- deletes -----------------------------------------------------------------------------------


async def test_a_local_delete_deletes_the_case_in_intempus(sides: Sides) -> None:
    made = await sides.intempus.create(name="Porch")
    await settle(sides)
    [row] = await sides.local_cases()

    answer = await sides.store.call(
        "DELETE", f"/cases/{row['id']}", headers={"If-Match": str(row["version"])}
    )
    assert answer.status == 200
    await settle(sides)

    assert made["id"] not in await sides.intempus.truth()


async def test_a_case_deleted_in_intempus_is_deleted_locally_after_a_full_scan(
    sides: Sides,
) -> None:
    made = await sides.intempus.create(name="Attic")
    keep = await sides.intempus.create(name="Keep")
    for n in range(10):  # enough linked cases that one gone is under the mass-delete guard
        await sides.intempus.create(name=f"Other {n}")
    await settle(sides)

    await sides.intempus.call("DELETE", f"/_standin/cases/{made['id']}", headers={})
    await sides.drain(full_scan_interval=0.001)
    await settle(sides)

    names = {row["name"] for row in await sides.local_cases()}
    assert "Attic" not in names and keep["name"] in names


async def test_a_drain_while_intempus_fails_every_call_deletes_nothing(sides: Sides) -> None:
    for n in range(12):
        await sides.intempus.create(name=f"Case {n}")
    await settle(sides)
    gone = (await sides.intempus_cases())[0]
    await sides.intempus.call("DELETE", f"/_standin/cases/{gone['id']}", headers={})
    await sides.intempus.switch(error_rate=1.0)

    await sides.drain(full_scan_interval=0.001)

    assert len(await sides.local_cases()) == 12


async def test_when_too_many_cases_vanish_at_once_nothing_is_deleted(sides: Sides) -> None:
    for n in range(10):
        await sides.intempus.create(name=f"Case {n}")
    await settle(sides)
    for case in (await sides.intempus_cases())[:5]:
        await sides.intempus.call("DELETE", f"/_standin/cases/{case['id']}", headers={})

    await sides.drain(full_scan_interval=0.001)
    await settle(sides)

    assert len(await sides.local_cases()) == 10


async def test_a_case_intempus_will_not_delete_is_closed_there_instead(sides: Sides) -> None:
    made = await sides.intempus.create(name="Busy")
    await sides.intempus.call(
        "PUT", f"/_standin/cases/{made['id']}/work_reports", {"count": 3}, headers={}
    )
    await settle(sides)
    [row] = await sides.local_cases()

    await sides.store.call(
        "DELETE", f"/cases/{row['id']}", headers={"If-Match": str(row["version"])}
    )
    await settle(sides)

    case = (await sides.intempus.truth())[made["id"]]
    assert case["active"] is False and case["permit_new_workreports"] is False
    assert await sides.local_cases() == []


# -- bad data and faults -----------------------------------------------------------------------


async def test_an_intempus_case_the_store_cannot_hold_is_a_dead_letter_naming_the_field(
    sides: Sides,
) -> None:
    await sides.intempus.create(name="x" * 300)
    await sides.intempus.create(name="Fine")

    engine = await sides.drain()
    await settle(sides)

    assert [row["name"] for row in await sides.local_cases()] == ["Fine"]
    store = SQLiteStore(sides.settings.state_db)
    await store.open()
    try:
        [letter] = await store.dead_letters("intempus")
    finally:
        await store.close()
    assert "name" in letter.reason and not letter.blocking
    assert engine.stats.dead_lettered == 1


async def test_with_faults_on_both_sides_both_end_the_same_and_nothing_is_created_twice(
    sides: Sides,
) -> None:
    for n in range(8):
        await sides.intempus.create(name=f"I{n}")
        await sides.store.create(name=f"L{n}")
    await sides.intempus.switch(error_rate=0.2, ambiguous_rate=0.1)
    await sides.store.call("PATCH", "/_standin/faults", {"error_rate": 0.2, "ambiguous_rate": 0.1})

    for _ in range(6):
        await sides.drain()
    await sides.intempus.switch(error_rate=0, ambiguous_rate=0)
    await sides.store.call("PATCH", "/_standin/faults", {"error_rate": 0, "ambiguous_rate": 0})
    await settle(sides)

    local, remote = await sides.local_cases(), await sides.intempus_cases()
    assert sorted(r["name"] for r in local) == sorted(r["name"] for r in remote)
    assert len(local) == len(remote) == 16


async def test_an_edit_costs_one_write_on_the_other_side_and_its_echo_costs_no_request(
    sides: Sides,
) -> None:
    made = await sides.intempus.create(name="Loft")
    await settle(sides)
    await sides.reset_counts()

    await sides.user_edits_intempus(made["id"], notes="new roof")
    await settle(sides)

    intempus_requests, local_requests = await sides.requests()
    assert {(r["method"], r["route"]) for r in intempus_requests} == {("GET", "/web/v1/case/")}
    local = {(r["method"], r["route"]): r["count"] for r in local_requests}
    assert local[("PATCH", "/cases/{case_id}")] == 1
    assert local[("GET", "/cases/{case_id}")] == 1  # the local side read before writing


# -- first contact ---------------------------------------------------------------------------


async def test_a_first_run_links_the_cases_both_sides_already_have_by_number(
    sides: Sides,
) -> None:
    for n in range(5):
        await sides.intempus.create(name=f"Case {n}", number=f"N-{n}", notes="intempus")
        await sides.store.create(name=f"Case {n}", number=f"N-{n}")
    await sides.intempus.create(name="Only in Intempus", number="I-1")
    await sides.store.create(name="Only local", number="L-1")

    await settle(sides)

    local, remote = await sides.local_cases(), await sides.intempus_cases()
    assert len(local) == len(remote) == 7
    assert {r["number"] for r in local} == {r["number"] for r in remote}
    # Matched, not copied: the local rows of the shared numbers point at Intempus's cases,
    # and their first-contact differences went the policy's way (Intempus).
    shared = [r for r in local if r["number"].startswith("N-")]
    assert all(r["intempus_id"] is not None and r["notes"] == "intempus" for r in shared)


async def test_a_number_used_twice_on_one_side_is_not_matched_but_copied(sides: Sides) -> None:
    await sides.intempus.create(name="A", number="D-1")
    await sides.store.create(name="B", number="D-1")
    await sides.store.create(name="C", number="D-1")

    await settle(sides)

    assert len(await sides.local_cases()) == len(await sides.intempus_cases()) == 3


async def test_a_case_restored_after_a_delete_update_clash_stays_on_both_sides(
    sides: Sides,
) -> None:
    made = await sides.intempus.create(name="Hall", number="H-1")
    await settle(sides)
    [row] = await sides.local_cases()

    await sides.user_edits_intempus(made["id"], notes="still in use")
    answer = await sides.store.call(
        "DELETE", f"/cases/{row['id']}", headers={"If-Match": str(row["version"])}
    )
    assert answer.status == 200
    await settle(sides)

    [row] = await sides.local_cases()
    assert row["notes"] == "still in use"
    assert made["id"] in await sides.intempus.truth()


async def test_a_local_edit_applied_after_the_user_deleted_the_case_is_taken_as_the_delete(
    sides: Sides,
) -> None:
    """An edit's entry is applied after the user deleted the case (between the feed read and
    the apply), while Intempus changed it: a delete/update clash (Intempus wins, the case is
    restored), not a patch of the tombstone (a 404, and the case's entries blocked behind a
    dead letter)."""
    made = await sides.store.create(name="Annex", number="A-1")
    await settle(sides)
    [case] = await sides.intempus_cases()
    edited = await sides.user_edits_local(made["id"], notes="edited, then deleted")
    answer = await sides.store.call(
        "DELETE", f"/cases/{made['id']}", headers={"If-Match": str(edited["version"])}
    )
    assert answer.status == 200
    await sides.user_edits_intempus(case["id"], city="Vejle")

    store = SQLiteStore(sides.settings.state_db)
    await store.open()
    try:
        sink = CaseSink(
            intempus_client(sides.intempus),
            store_client(sides.store),
            store,
            ManualClock(sides.store.clock.at),
        )
        await sink.apply(local_entry(edited))
    finally:
        await store.close()

    [row] = await sides.local_cases()
    [case] = await sides.intempus_cases()
    assert row["city"] == case["city"] == "Vejle"


def local_entry(row: dict[str, Any]) -> InboxEntry:
    """The case store feed's entry of ``row``, as the local source stores it."""
    return InboxEntry(
        seq=1,
        source="case-store",
        key=f"l{row['id']}",
        kind="local.row",
        fingerprint=f"local:{row['id']}:{row['version']}",
        payload=json.dumps(row),
        occurred_at=None,
        attempts=0,
    )


async def test_cases_made_after_the_first_run_are_new_even_when_their_numbers_meet(
    sides: Sides,
) -> None:
    await sides.intempus.create(name="Before", number="B-1")
    await settle(sides)
    await sides.reset_counts()

    await sides.intempus.create(name="New in Intempus", number="N-1")
    await sides.store.create(name="New locally", number="N-1")
    await settle(sides)

    assert len(await sides.local_cases()) == len(await sides.intempus_cases()) == 3
    intempus_requests, _ = await sides.requests()
    lists = sum(
        r["count"]
        for r in intempus_requests
        if (r["method"], r["route"]) == ("GET", "/web/v1/case/")
    )
    assert lists == 3  # one poll per drain, and no search for a twin by number


async def test_a_local_case_intempus_refuses_is_a_dead_letter_naming_the_field_and_the_rest_flows(
    sides: Sides,
) -> None:
    await sides.store.create(name="Unknown customer", customer=999)
    await sides.store.create(name="Fine", number="F-1")

    await settle(sides)

    assert [case["name"] for case in await sides.intempus_cases()] == ["Fine"]
    store = SQLiteStore(sides.settings.state_db)
    await store.open()
    try:
        [letter] = await store.dead_letters("case-store")
    finally:
        await store.close()
    assert "customer" in letter.reason


async def test_edits_intempus_commits_below_a_served_mark_are_found_by_the_full_scan(
    sides: Sides,
) -> None:
    cases = [await sides.intempus.create(name=f"Case {n}") for n in range(20)]
    await settle(sides)
    await sides.intempus.switch(lt_late_commit=0.5)  # writes that commit behind the feed's mark

    for n, case in enumerate(cases):
        answer = await sides.intempus.call(  # another API client's write
            "PATCH", f"/web/v1/case/{case['id']}/", {"notes": "edited"}
        )
        assert answer.status in (200, 202), answer.raw
        if n % 2:
            await sides.drain()  # serves a header between writes: later ones may commit below it
    await settle(sides)
    faults = await sides.intempus.call("GET", "/_standin/faults", headers={})
    assert faults.body["counts"].get("late_lt", 0) > 0  # the hostile case did happen
    await sides.drain(full_scan_interval=0.001)
    await settle(sides)

    assert {row["notes"] for row in await sides.local_cases()} == {"edited"}


async def test_intempus_offset_paging_drift_does_not_matter_to_the_sync(sides: Sides) -> None:
    await sides.intempus.switch(offset_drift=True)
    cases = [await sides.intempus.create(name=f"Case {n}") for n in range(12)]
    await settle(sides)
    await sides.intempus.call("DELETE", f"/_standin/cases/{cases[3]['id']}", headers={})
    await sides.store.create(name="Local")

    await sides.drain(full_scan_interval=0.001)
    await settle(sides)

    assert len(await sides.intempus_cases()) == len(await sides.local_cases()) == 12

"""The Intempus and case-store connectors against the real stand-ins, over real sockets."""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any
from urllib.parse import urlencode

import pytest
from multidict import MultiMapping
from pydantic import ValidationError

from integration.connectors.case_store.client import (
    CaseMissing,
    ChangesPage,
    FeedExpired,
    FieldsRefused,
    NotDeleted,
    VersionMismatch,
)
from integration.connectors.intempus.budget import RateBudget
from integration.connectors.intempus.client import (
    CaseGone,
    CasePage,
    DeleteOutcome,
    IntempusClient,
    WriteRefused,
)
from integration.connectors.intempus.models import IntempusCase
from integration.core.errors import PermanentError, TransientError
from tests.case_store.conftest import StartStore, Store
from tests.intempus_cases.conftest import SteppingClock, intempus_client, store_client
from tests.intempus_standin.conftest import CUSTOMER, KEY, Intempus, StartIntempus

NEW = {"name": "Tagrenovering", "customer": CUSTOMER}


async def pages(client: IntempusClient, lt: int | None, limit: int) -> list[CasePage]:
    return [page async for page in client.changed_after(lt, limit)]


def ids(pages_read: list[CasePage]) -> list[int]:
    return [row["id"] for page in pages_read for row in page.rows]


# -- Intempus: authentication ------------------------------------------------------------------


async def test_every_call_sends_the_api_key_as_a_header_and_never_logs_it(
    start_intempus: StartIntempus, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    intempus = await start_intempus(basic_auth=False)  # only the ApiKey header gets through
    client = intempus_client(intempus)
    created = await client.create(NEW, "c-auth")
    assert await client.get(created["id"]) is not None
    assert ids(await pages(client, None, 10)) == [created["id"]]
    await client.patch(created["id"], {"notes": "x"})
    assert await client.delete(created["id"]) is DeleteOutcome.DELETED
    served = {(r["method"], r["status"]) for r in (await stats(intempus))["requests"]}
    assert served == {("POST", 201), ("GET", 200), ("PATCH", 202), ("DELETE", 204)}
    assert KEY not in caplog.text


async def test_a_refused_key_is_a_permanent_error_naming_the_settings_but_not_the_key(
    intempus: Intempus,
) -> None:
    wrong = "wrong-key-value"
    client = intempus_client(intempus, key=wrong)
    with pytest.raises(PermanentError) as refused:
        await client.get(1)
    message = str(refused.value)
    assert "INTEMPUS_USER" in message and "INTEMPUS_API_KEY" in message and "401" in message
    assert wrong not in message and wrong not in repr(client)


async def test_a_case_row_reads_relations_given_as_uris_or_embedded_objects(
    intempus: Intempus,
) -> None:
    client = intempus_client(intempus)
    made = await client.create({**NEW, "responsible": "/web/v1/employee/401/"}, "c-rel")
    detail = await client.get(made["id"])
    assert detail is not None
    case = IntempusCase.parse(detail)
    assert (case.id, case.customer, case.responsible) == (made["id"], 6666940, 401)
    assert case.parent is None
    assert case.raw == detail  # kept as received, for the sync's own canonical form
    embedded = {**detail, "customer": {"id": 6666941, "name": "Nordic Facility ApS"}}
    absolute = {**detail, "case_group": "https://intempus.dk/web/v1/case_group/1002/"}
    assert IntempusCase.parse(embedded).customer == 6666941
    assert IntempusCase.parse(absolute).case_group == 1002
    with pytest.raises(ValidationError, match="customer"):
        IntempusCase.parse({**detail, "customer": 5.5})


# -- Intempus: paging and logical timestamps ---------------------------------------------------


async def test_cursor_paging_reads_every_case_once_across_pages(
    start_intempus: StartIntempus,
) -> None:
    intempus = await start_intempus(cursor_meta_full=True)  # extra meta keys change nothing
    made = [(await intempus.create(number=str(n)))["id"] for n in range(5)]
    client = intempus_client(intempus)
    read = [page async for page in client.all_cases(limit=2)]
    assert ids(read) == made
    assert [page.last for page in read] == [False, False, True]
    assert all(isinstance(page.body, bytes) and page.rows for page in read)
    assert [IntempusCase.parse(row).customer for row in read[0].rows] == [6666940, 6666940]


async def test_a_next_link_to_another_origin_is_refused_after_its_page_is_handed_over(
    intempus: Intempus, monkeypatch: pytest.MonkeyPatch
) -> None:
    for n in range(3):
        await intempus.create(number=str(n))

    def foreign(path: str, query: MultiMapping[str], **replace: str) -> str:
        return f"http://elsewhere.example:{intempus.url.rsplit(':', 1)[1]}{path}?after=x"

    monkeypatch.setattr("intempus.listing.page_uri", foreign)
    client = intempus_client(intempus)
    read: list[CasePage] = []
    with pytest.raises(PermanentError, match="refusing to follow a link to http://elsewhere"):
        async for page in client.all_cases(limit=2):
            read.append(page)
    assert len(ids(read)) == 2 and not read[0].last
    assert await list_reads(intempus) == 1  # nothing was sent to the other origin


async def test_a_next_link_back_to_a_page_already_read_is_refused(
    intempus: Intempus, monkeypatch: pytest.MonkeyPatch
) -> None:
    for n in range(3):
        await intempus.create(number=str(n))

    def same_page(path: str, query: MultiMapping[str], **replace: str) -> str:
        return f"{path}?{urlencode(list(query.items()))}"  # the request's own URL

    monkeypatch.setattr("intempus.listing.page_uri", same_page)
    with pytest.raises(PermanentError, match="loops back"):
        await pages(intempus_client(intempus), None, 2)
    assert await list_reads(intempus) == 1


async def test_changed_after_reads_only_cases_written_after_the_mark_with_minimal_filters(
    start_intempus: StartIntempus,
) -> None:
    intempus = await start_intempus(filters="minimal")  # logical_timestamp__gt is all it needs
    first = await intempus.create(number="1")
    client = intempus_client(intempus)
    mark = (await pages(client, None, 10))[0].high_water
    second = await intempus.create(number="2")
    await touch(intempus, first["id"], {"notes": "edited"})
    read = await pages(client, mark, 10)
    assert sorted(ids(read)) == sorted([first["id"], second["id"]])
    assert ids(await pages(client, read[0].high_water, 10)) == []


async def test_the_high_water_mark_is_the_first_pages_header_so_a_write_during_a_pass_is_read_next(
    intempus: Intempus,
) -> None:
    made = [(await intempus.create(number=str(n)))["id"] for n in range(3)]
    client = intempus_client(intempus)
    read: list[CasePage] = []
    async for page in client.changed_after(None, limit=1):
        read.append(page)
        if len(read) == 1:
            # Edited behind the cursor while the pass goes on: its LT is above every row read.
            await touch(intempus, made[0], {"notes": "during the pass"})
    first_header = read[0].logical_timestamp
    assert first_header is not None
    assert [page.high_water for page in read] == [first_header] * 3
    assert read[-1].logical_timestamp is not None and read[-1].logical_timestamp > first_header
    # The largest row LT of this pass would be the touched case's new LT... except the touched
    # case was already read, so that mark would skip it. The first header does not.
    again = await pages(client, read[-1].high_water, 10)
    assert ids(again) == [made[0]]


# -- Intempus: rate limits ---------------------------------------------------------------------


async def test_a_429_is_transient_with_retry_after_and_holds_the_budget_until_then(
    start_intempus: StartIntempus,
) -> None:
    intempus = await start_intempus(rate_per_minute=2)
    clock = SteppingClock(1000.0)
    client = intempus_client(intempus, budget=RateBudget(per_minute=100, clock=clock))
    await client.get(1)
    await client.get(1)
    with pytest.raises(TransientError) as limited:
        await client.get(1)
    assert limited.value.status == 429 and not limited.value.maybe_applied
    assert limited.value.retry_after is not None and limited.value.retry_after >= 1
    clock.sleeps.clear()
    await client.budget.take()  # the next request waits out Retry-After before it is sent
    assert sum(clock.sleeps) == pytest.approx(limited.value.retry_after)


async def test_the_budget_never_lets_more_than_n_calls_through_any_60_seconds() -> None:
    clock = SteppingClock(0.0)
    budget = RateBudget(per_minute=5, per_day=1000, clock=clock)
    rng = random.Random(7)
    sent: list[float] = []

    async def caller() -> None:
        for _ in range(8):
            clock.at += rng.choice([0.0, 0.5, 3.0, 20.0])
            await budget.take()
            sent.append(clock.at)

    await asyncio.gather(*(caller() for _ in range(4)))
    assert len(sent) == 32
    sent.sort()
    for i, start in enumerate(sent):
        in_window = [t for t in sent[i:] if t < start + 60.0]
        assert len(in_window) <= 5, (start, in_window)
    assert clock.sleeps  # the budget did have to wait


async def test_the_budget_keeps_to_the_day_limit_until_utc_midnight() -> None:
    clock = SteppingClock(86_400 * 100 + 86_000)  # 400 s before midnight UTC
    budget = RateBudget(per_minute=100, per_day=3, clock=clock)
    for _ in range(3):
        await budget.take()
    assert budget.remaining() == (97, 0)
    await budget.take()
    assert clock.at == 86_400 * 101  # waited for the new UTC day
    assert budget.remaining().day == 2


# -- Intempus: writes --------------------------------------------------------------------------


async def test_a_create_whose_answer_was_lost_is_found_by_its_creation_id(
    intempus: Intempus,
) -> None:
    await intempus.create(number="old", creation_id="earlier")
    client = intempus_client(intempus)
    mark = (await pages(client, None, 10))[0].high_water
    await intempus.switch(ambiguous_rate=1.0)
    with pytest.raises(TransientError) as lost:
        await client.create(NEW, "local:7")
    assert lost.value.maybe_applied and lost.value.status == 500
    await intempus.switch(ambiguous_rate=0.0)
    found = await client.find_created("local:7", mark)
    assert found is not None and found["name"] == "Tagrenovering"
    assert await client.find_created("local:8", mark) is None
    assert await client.find_created("earlier", mark) is None  # older than the mark
    assert [c["creation_id"] for c in (await intempus.truth()).values()] == ["earlier", "local:7"]


async def test_delete_answers_deleted_then_gone_and_refused_when_work_reports_block_it(
    intempus: Intempus,
) -> None:
    client = intempus_client(intempus)
    plain = await intempus.create()
    blocked = await intempus.create()
    reports = await intempus.call(
        "PUT", f"/_standin/cases/{blocked['id']}/work_reports", {"count": 1}, headers={}
    )
    assert reports.status == 200
    assert await client.delete(plain["id"]) is DeleteOutcome.DELETED
    assert await client.delete(plain["id"]) is DeleteOutcome.GONE
    assert await client.delete(blocked["id"]) is DeleteOutcome.REFUSED
    assert set(await intempus.truth()) == {blocked["id"]}


async def test_patch_sends_only_the_given_fields_and_a_missing_case_is_case_gone(
    intempus: Intempus,
) -> None:
    client = intempus_client(intempus)
    case = await client.create({**NEW, "notes": "kept", "city": "Aarhus"}, "c-patch")
    answer = await client.patch(case["id"], {"city": "Odense"})
    assert (answer["city"], answer["notes"]) == ("Odense", "kept")
    with pytest.raises(ValueError):
        await client.patch(case["id"], {})  # a no-op PATCH would still be a write
    await intempus.call("DELETE", f"/_standin/cases/{case['id']}", headers={})
    assert await client.get(case["id"]) is None
    with pytest.raises(CaseGone):
        await client.patch(case["id"], {"city": "Vejle"})


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"latitude": "x"}, "latitude"),  # tastypie's {"error": "... 'latitude' field ..."}
        ({"geofence": True}, "geofence"),  # form validation {"case": {"geofence": [...]}}
        ({"customer": "/web/v1/employee/401/"}, "customer"),  # 404 with a body, not "no case"
        ({"customer": None}, "customer"),
        ({"customer": "/web/v1/customer/999/"}, "customer"),  # names only the URI
        ({"responsible": "/web/v1/customer/6666940/"}, "responsible"),  # EmployeeResource
    ],
)
async def test_a_refused_write_is_blocking_and_names_the_field(
    intempus: Intempus, fields: dict[str, Any], field: str
) -> None:
    client = intempus_client(intempus)
    with pytest.raises(WriteRefused) as refused:
        await client.create({**NEW, **fields}, "c-bad")
    assert refused.value.blocking and refused.value.field == field
    assert f"'{field}'" in str(refused.value)


async def test_a_5xx_is_transient_and_an_html_page_is_summarised(
    start_intempus: StartIntempus,
) -> None:
    intempus = await start_intempus(error_rate=1.0, html_500=True)
    client = intempus_client(intempus)
    with pytest.raises(TransientError) as read:
        await client.get(1)
    assert read.value.status == 500 and not read.value.maybe_applied
    assert "HTML error page" in str(read.value) and "<" not in str(read.value)
    with pytest.raises(TransientError) as write:
        await client.create(NEW, "c-5xx")
    # Refused before anything was done, but the client cannot know that: it may have applied.
    assert write.value.maybe_applied


# -- case store --------------------------------------------------------------------------------


async def test_the_feed_pages_in_version_order_with_tombstones_to_the_high_water_mark(
    store: Store,
) -> None:
    client = store_client(store)
    rows = [await client.create({"name": f"c{n}", "customer": 1}, f"k{n}") for n in range(3)]
    await client.delete(rows[0]["id"], rows[0]["version"])
    read: list[ChangesPage] = []
    after: int | None = None
    while not read or not read[-1].last:
        read.append(await client.changes(after, limit=2))
        after = read[-1].next_after
    items = [item for page in read for item in page.items]
    assert [(i["id"], i["deleted"]) for i in items] == [
        (rows[1]["id"], False),
        (rows[2]["id"], False),
        (rows[0]["id"], True),
    ]
    assert read[-1].next_after == read[-1].high_water == 4
    assert all(i["origin"] == "intempus-sync" for i in items)
    assert (await client.changes(4)).items == []


async def test_a_feed_cursor_older_than_the_tombstone_horizon_raises_feed_expired(
    start_store: StartStore,
) -> None:
    store = await start_store(tombstone_days=30)
    client = store_client(store)
    await client.create({"name": "keep", "customer": 1}, "k1")
    gone = await client.create({"name": "gone", "customer": 1}, "k2")
    await client.delete(gone["id"], gone["version"])
    store.clock.at += 31 * 86_400
    with pytest.raises(FeedExpired) as expired:
        await client.changes(1)
    assert (expired.value.after, expired.value.horizon) == (1, 3)
    assert await client.high_water() == 3
    assert len((await client.changes(None)).items) == 1  # no cursor: never refused


async def test_a_stale_if_match_raises_version_mismatch_with_the_current_version(
    store: Store,
) -> None:
    client = store_client(store)
    row = await client.create({"name": "x", "customer": 1}, "k1")
    moved = await store.call("PATCH", f"/cases/{row['id']}", {"notes": "user"})  # version 2
    with pytest.raises(VersionMismatch) as patch:
        await client.patch(row["id"], {"city": "Aarhus"}, if_match=row["version"])
    assert (patch.value.expected, patch.value.current) == (1, moved.body["version"])
    with pytest.raises(VersionMismatch):
        await client.delete(row["id"], if_match=row["version"])
    current = await client.get(row["id"])
    assert current is not None and (current["notes"], current["city"]) == ("user", "")
    patched = await client.patch(row["id"], {"city": "Aarhus"}, if_match=current["version"])
    assert (patched["city"], patched["origin"]) == ("Aarhus", "intempus-sync")


async def test_a_create_repeated_with_the_same_key_returns_the_first_row(store: Store) -> None:
    client = store_client(store)
    first = await client.create({"name": "once", "customer": 1, "intempus_id": 9584677}, "ik")
    again = await client.create({"name": "twice", "customer": 2}, "ik")
    assert again == first
    assert [r["name"] async for page in client.all_cases() for r in page] == ["once"]
    assert [r["id"] for r in await client.find_by_intempus_id(9584677)] == [first["id"]]


async def test_delete_returns_the_tombstone_then_none_and_restore_brings_it_back(
    store: Store,
) -> None:
    client = store_client(store)
    row = await client.create({"name": "x", "customer": 1}, "k1")
    tomb = await client.delete(row["id"], row["version"])
    assert tomb is not None and tomb["deleted"] and tomb["origin"] == "intempus-sync"
    assert await client.delete(row["id"], tomb["version"]) is None
    assert await client.get(row["id"]) is None
    assert (await client.get(row["id"], include_deleted=True)) == tomb
    with pytest.raises(CaseMissing):
        await client.patch(row["id"], {"city": "x"}, if_match=tomb["version"])
    back = await client.restore(row["id"], tomb["version"], {"notes": "restored"})
    assert (back["deleted"], back["notes"]) == (False, "restored")
    with pytest.raises(NotDeleted):
        await client.restore(row["id"], back["version"])


async def test_all_cases_pages_every_live_case(store: Store) -> None:
    client = store_client(store)
    made = [
        (await client.create({"name": f"c{n}", "customer": 1}, f"k{n}"))["id"] for n in range(5)
    ]
    pages_read = [page async for page in client.all_cases(limit=2)]
    assert [len(page) for page in pages_read] == [2, 2, 1]
    assert [r["id"] for page in pages_read for r in page] == made


async def test_a_refused_local_write_names_every_bad_field(store: Store) -> None:
    client = store_client(store)
    with pytest.raises(FieldsRefused) as refused:
        await client.create({"name": "", "customer": 1, "latitude": 100}, "bad")
    assert set(refused.value.fields) == {"name", "latitude"} and refused.value.blocking
    assert "latitude" in str(refused.value)


# -- helpers -----------------------------------------------------------------------------------


async def stats(intempus: Intempus) -> dict[str, Any]:
    answer = await intempus.call("GET", "/_standin/stats", headers={})
    return dict(answer.body)


async def list_reads(intempus: Intempus) -> int:
    """List pages the stand-in served."""
    requests = (await stats(intempus))["requests"]
    return sum(
        r["count"] for r in requests if (r["method"], r["route"]) == ("GET", "/web/v1/case/")
    )


async def touch(intempus: Intempus, case_id: int, fields: dict[str, Any]) -> None:
    answer = await intempus.call("POST", f"/_standin/cases/{case_id}/touch", fields, headers={})
    assert answer.status in (200, 201), answer.raw

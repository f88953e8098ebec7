"""The HubSpot connector against the HubSpot-like stand-in, over real sockets: paging that never
misses a record under a drifting cursor, upserts by our_id, per-record errors, archive, 429s and
the budget taken before every request."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from crm_providers.hubspot import HUBSPOT, HubSpotLimits, HubSpotSettings, create_app
from crm_providers.hubspot.provider import HubSpotCore
from integration.connectors.crm.base import (
    ObjectName,
    RateLimited,
    RemoteRecord,
    UnlimitedBudget,
    Write,
)
from integration.connectors.crm.hubspot import HubSpotConnector
from integration.core.errors import PermanentError, TransientError
from integration.core.http import HttpService
from integration.core.serving import serve_app
from tests.helpers.clocks import ManualClock

START = 1_767_225_600.0  # 2026-01-01T00:00:00Z
ROOMY = HubSpotLimits(burst_limit=100_000, search_per_second=100_000)
"""The manual clock never moves on its own, so the default limits would refuse a long test."""


@dataclass
class Hub:
    """A served stand-in, its clock, and a connector to it counting what it takes."""

    url: str
    app: web.Application
    clock: ManualClock
    session: aiohttp.ClientSession
    budget: UnlimitedBudget
    connector: HubSpotConnector

    @property
    def core(self) -> HubSpotCore:
        return self.app[HUBSPOT]

    def connect(self, **options: Any) -> HubSpotConnector:
        http = HttpService("hubspot", self.url, self.session)
        return HubSpotConnector(http, self.budget, **options)

    async def standin(self, method: str, path: str, body: Any = None) -> Any:
        async with self.session.request(
            method, f"{self.url}/_standin/{path}", json=body
        ) as response:
            assert response.status < 300, await response.text()
            return await response.json()

    async def user_create(self, obj: str, **fields: str) -> str:
        return str((await self.standin("POST", f"users/{obj}", {"fields": fields}))["id"])

    async def user_update(self, obj: str, id: str, **fields: str) -> None:
        await self.standin("PATCH", f"users/{obj}/{id}", {"fields": fields})

    def live(self, obj: str) -> list[Any]:
        return list(self.core.store.find(obj))


@pytest.fixture
async def hub() -> AsyncIterator[Hub]:
    clock = ManualClock(START)
    app = create_app(HubSpotSettings(limits=ROOMY), clock=clock)
    async with aiohttp.ClientSession() as session, serve_app(app) as served:
        budget = UnlimitedBudget()
        http = HttpService("hubspot", served.url, session)
        yield Hub(served.url, app, clock, session, budget, HubSpotConnector(http, budget))


async def read_all(
    connector: HubSpotConnector, obj: ObjectName, since: float | None, between: Any = None
) -> list[list[RemoteRecord]]:
    """Every page; ``between(page)`` runs after each page (edits that make the cursor drift)."""
    pages: list[list[RemoteRecord]] = []
    async with asyncio.timeout(10):  # a paging loop that never ends fails here
        async for page in connector.changed_since(obj, since):
            pages.append(page)
            if between is not None:
                await between(page)
    return pages


def ids(pages: list[list[RemoteRecord]]) -> set[str]:
    return {r.id for page in pages for r in page}


# -- reads -------------------------------------------------------------------------------------


async def test_changed_since_none_lists_every_live_record_in_pages(hub: Hub) -> None:
    made = [await hub.user_create("contacts", firstname=f"n{i}", our_id=f"o{i}") for i in range(7)]
    await hub.standin("DELETE", f"users/contacts/{made[0]}")
    pages = await read_all(hub.connect(page_size=3), "contact", None)
    assert [len(p) for p in pages] == [3, 3]
    assert ids(pages) == set(made[1:])
    first = pages[0][0]
    assert first.fields["firstname"] == "n1" and first.our_id == "o1"
    assert first.fields["email"] is None  # unset
    assert set(first.fields) == {
        "firstname", "lastname", "email", "phone", "company", "lifecyclestage", "our_id",
    }  # fmt: skip
    assert first.updated_at == START and not first.deleted
    assert hub.budget.taken == {"list": 2}


async def test_changed_since_reads_only_records_modified_at_or_after_since(hub: Hub) -> None:
    await hub.user_create("contacts", firstname="old")
    hub.clock.at += 5
    newer = await hub.user_create("contacts", firstname="new")
    pages = await read_all(hub.connector, "contact", START + 5)
    assert ids(pages) == {newer}
    assert hub.budget.taken == {"search": 1}


async def test_changed_since_misses_no_record_when_records_change_between_pages(
    hub: Hub,
) -> None:
    made = []
    for i in range(12):
        made.append(await hub.user_create("contacts", firstname=f"n{i}"))
        hub.clock.at += 1
    edited: list[str] = []

    async def edit_the_first_of(page: list[RemoteRecord]) -> None:
        # Moving a record already read to the end slides the rest back under an offset cursor.
        hub.clock.at += 1
        await hub.user_update("contacts", page[0].id, firstname="edited")
        edited.append(page[0].id)

    pages = await read_all(hub.connect(page_size=3), "contact", START, edit_the_first_of)
    assert ids(pages) == set(made)
    last_seen = {r.id: r for page in pages for r in page}
    assert all(last_seen[i].fields["firstname"] == "edited" for i in edited)


async def test_changed_since_pages_through_more_equal_timestamps_than_a_page(hub: Hub) -> None:
    same = [await hub.user_create("contacts", firstname=f"s{i}") for i in range(8)]
    hub.clock.at += 1
    later = [await hub.user_create("contacts", firstname=f"l{i}") for i in range(4)]
    pages = await read_all(hub.connect(page_size=3), "contact", START)
    assert ids(pages) == set(same) | set(later)
    assert sum(len(p) for p in pages) <= 2 * 12  # duplicates allowed, not endless


async def test_changed_since_misses_no_record_when_equal_timestamps_change_between_pages(
    hub: Hub,
) -> None:
    same = [await hub.user_create("contacts", firstname=f"s{i}") for i in range(10)]

    async def edit_the_last_of(page: list[RemoteRecord]) -> None:
        hub.clock.at += 1
        await hub.user_update("contacts", page[-1].id, firstname="edited")

    pages = await read_all(hub.connect(page_size=3), "contact", START, edit_the_last_of)
    assert ids(pages) == set(same)


async def test_changed_since_reads_companies_by_their_own_modified_property(hub: Hub) -> None:
    await hub.user_create("companies", name="Old")
    hub.clock.at += 2
    acme = await hub.user_create("companies", name="Acme", domain="acme.test", our_id="c1")
    pages = await read_all(hub.connector, "company", START + 1)
    assert [[(r.id, r.fields["name"], r.our_id) for r in p] for p in pages] == [
        [(acme, "Acme", "c1")]
    ]


# -- writes ------------------------------------------------------------------------------------


async def test_upsert_creates_then_updates_by_our_id_without_duplicating(hub: Hub) -> None:
    write = Write(our_id="ours-1", fields={"firstname": "Ann", "email": "ann@example.test"})
    first = await hub.connector.upsert("contact", [write])
    again = await hub.connector.upsert("contact", [write])
    assert first[0].ok and first[0].created and first[0].provider_id
    assert again[0].ok and not again[0].created
    assert again[0].provider_id == first[0].provider_id
    [record] = hub.live("contacts")
    assert record.fields["our_id"] == "ours-1" and record.fields["firstname"] == "Ann"


async def test_upsert_with_a_provider_id_updates_that_record(hub: Hub) -> None:
    id = await hub.user_create("contacts", firstname="Ann")
    hub.clock.at += 3
    [result] = await hub.connector.upsert(
        "contact", [Write(our_id="o", fields={"firstname": "Bo"}, provider_id=id)]
    )
    assert result.ok and result.provider_id == id and result.updated_at == START + 3
    assert hub.core.store.get("contacts", id).fields["firstname"] == "Bo"


async def test_a_field_cleared_with_none_reads_back_as_none(hub: Hub) -> None:
    id = await hub.user_create("contacts", firstname="Ann", phone="123")
    await hub.connector.upsert(
        "contact", [Write(our_id="o", fields={"phone": None}, provider_id=id)]
    )
    [record] = await hub.connector.get("contact", [id])
    assert record is not None and record.fields["phone"] is None
    assert record.fields["firstname"] == "Ann"


async def test_a_refused_record_fails_alone_with_the_reason_naming_it(hub: Hub) -> None:
    results = await hub.connector.upsert(
        "contact",
        [
            Write(our_id="a", fields={"firstname": "A"}),
            Write(our_id="b", fields={"email": "not-an-email"}),
            Write(our_id="c", fields={"firstname": "C"}, provider_id="999999"),
            Write(our_id="d", fields={"shoe_size": "9"}),
            Write(our_id="e", fields={"firstname": "E"}),
        ],
    )
    assert [r.ok for r in results] == [True, False, False, False, True]
    assert results[1].error == (
        "VALIDATION_ERROR: Property values were not valid: Email address not-an-email is "
        "invalid (INVALID_EMAIL)"
    )
    assert results[2].error is not None and results[2].error.startswith("OBJECT_NOT_FOUND: ")
    assert results[3].error is not None and 'Property "shoe_size"' in results[3].error
    assert not any(r.transient for r in results)
    assert {r.fields["our_id"] for r in hub.live("contacts")} == {"a", "e"}


async def test_more_writes_than_a_batch_go_in_several_calls_in_order(hub: Hub) -> None:
    writes = [Write(our_id=f"o{i}", fields={"name": f"Co {i}"}) for i in range(150)]
    results = await hub.connector.upsert("company", writes)
    assert len(results) == 150 and all(r.ok and r.created for r in results)
    names = {r.id: r.fields["name"] for r in hub.live("companies")}
    assert [names[r.provider_id or ""] for r in results] == [f"Co {i}" for i in range(150)]
    assert hub.budget.taken == {"write": 2}


async def test_a_whole_call_5xx_raises_transient(hub: Hub) -> None:
    await hub.standin("PATCH", "faults", {"error_rate": 1.0})
    with pytest.raises(TransientError) as caught:
        await hub.connector.upsert("contact", [Write(our_id="x", fields={"firstname": "X"})])
    assert not isinstance(caught.value, RateLimited) and caught.value.status == 500


async def test_delete_archives_and_get_shows_the_record_deleted(hub: Hub) -> None:
    kept = await hub.user_create("contacts", firstname="Kept")
    gone = await hub.user_create("contacts", firstname="Gone", our_id="g")
    deleted = await hub.connector.delete("contact", [gone])
    again = await hub.connector.delete("contact", [gone, "404404"])
    assert deleted[0].ok and all(r.ok for r in again)
    got = await hub.connector.get("contact", [kept, gone, "404404"])
    assert got[0] is not None and not got[0].deleted and got[0].fields["firstname"] == "Kept"
    assert got[1] is not None and got[1].deleted and got[1].our_id == "g"
    assert got[2] is None


# -- limits and budget -------------------------------------------------------------------------


async def test_a_429_raises_rate_limited_and_tells_the_budget(hub: Hub) -> None:
    await hub.standin("PATCH", "limits", {"burst_limit": 1})
    await read_all(hub.connector, "contact", None)
    with pytest.raises(RateLimited) as caught:
        await read_all(hub.connector, "contact", None)
    assert (caught.value.dimension, caught.value.wait) == ("burst", 10.0)
    assert hub.budget.refusals == [("burst", 10.0)]


async def test_a_refused_search_is_held_on_the_search_limit_its_429_names(hub: Hub) -> None:
    await hub.standin("PATCH", "limits", {"search_per_second": 1})
    await read_all(hub.connector, "contact", START)
    with pytest.raises(RateLimited) as caught:
        await read_all(hub.connector, "contact", START)
    assert (caught.value.dimension, caught.value.wait) == ("search", 1.0)
    assert hub.budget.refusals == [("search", 1.0)]
    assert hub.core.stats.snapshot()["limited_by_policy"] == {"SECONDLY": 1}


@pytest.mark.parametrize(
    ("policy", "dimension", "wait"),
    [
        ("TEN_SECONDLY_ROLLING", "burst", 7.0),
        ("DAILY", "daily", 3600.0),
        ("SECONDLY", "search", 1.0),
    ],
)
def test_a_named_policy_holds_its_own_dimension(
    hub: Hub, policy: str, dimension: str, wait: float
) -> None:
    connector = hub.connect(burst_window=7.0)
    refusal = connector._refused("search", policy, None)
    assert (refusal.dimension, refusal.wait) == (dimension, wait)
    assert hub.budget.refusals == [(dimension, wait)]


async def test_the_budget_is_taken_before_every_request(hub: Hub) -> None:
    c = hub.connect(page_size=2)
    await c.upsert("contact", [Write(our_id=f"o{i}", fields={}) for i in range(5)])
    await read_all(c, "contact", None)
    await read_all(c, "contact", START)
    await c.get("contact", ["1", "2"])
    await c.delete("contact", ["1"])
    sent = hub.core.stats.snapshot()["total"]
    assert sum(hub.budget.taken.values()) == sent
    assert hub.budget.taken == {"write": 2, "list": 3, "search": 5, "read": 3}


def test_dimensions_cost_every_call_on_burst_and_daily_and_only_search_on_search(
    hub: Hub,
) -> None:
    burst, daily, search = hub.connect(burst=50, daily=1000, search_per_second=2).dimensions()
    assert (burst.name, burst.limit, burst.window, burst.rolling) == ("burst", 50, 10.0, True)
    assert (daily.name, daily.limit, daily.window, daily.rolling) == ("daily", 1000, 86400, False)
    assert (search.name, search.limit, search.window) == ("search", 2, 1.0)
    assert [d.cost("read") for d in (burst, daily, search)] == [1, 1, 0]
    assert [d.cost("search") for d in (burst, daily, search)] == [1, 1, 1]


async def test_a_malformed_answer_is_a_permanent_error_naming_the_field() -> None:
    async def search(request: web.Request) -> web.Response:
        return web.json_response({"results": [{"id": "1", "properties": {}}]})

    app = web.Application()
    app.router.add_post("/crm/v3/objects/contacts/search", search)
    async with aiohttp.ClientSession() as session, serve_app(app) as served:
        c = HubSpotConnector(HttpService("hubspot", served.url, session), UnlimitedBudget())
        with pytest.raises(PermanentError, match=r"results\.0\.updatedAt: Field required"):
            await read_all(c, "contact", START)

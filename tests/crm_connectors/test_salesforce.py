"""The Salesforce connector against the Salesforce-like stand-in over real sockets: reads that
lose nothing under drifting query locators, deleted records, upserts by external id,
per-record errors, the loop marker, and the 403 allocation refusal."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from crm_providers.salesforce import SalesforceLimits, SalesforceSettings, create_app
from integration.connectors.crm.base import (
    ObjectName,
    RateLimited,
    RemoteRecord,
    UnlimitedBudget,
    Write,
)
from integration.connectors.crm.salesforce import SalesforceConnector
from integration.core.errors import PermanentError, TransientError
from integration.core.http import HttpService
from integration.core.serving import serve_app
from tests.helpers.clocks import ManualClock

START = 1_767_225_600.0  # 2026-01-01T00:00:00Z
BASE = "/services/data/v60.0"
CLIENT = "sync-test"


@dataclass
class Org:
    """A served stand-in, its clock, and a connector to it."""

    url: str
    session: aiohttp.ClientSession
    clock: ManualClock
    budget: UnlimitedBudget
    sf: SalesforceConnector

    async def standin(self, method: str, path: str, **kwargs: Any) -> Any:
        async with self.session.request(method, f"{self.url}/_standin/{path}", **kwargs) as r:
            assert 200 <= r.status < 300, (r.status, await r.text())
            return await r.json() if r.content_type == "application/json" else None

    async def user_creates(self, sobject: str, step: float = 1.0, **fields: Any) -> str:
        """A record made as a CRM user (not through the connector), ``step`` seconds after the
        last change so that modification times differ."""
        self.clock.at += step
        body = await self.standin("POST", f"users/{sobject}", json={"fields": fields})
        return str(body["id"])

    async def user_edits(self, sobject: str, record_id: str, **fields: Any) -> None:
        self.clock.at += 1
        await self.standin("PATCH", f"users/{sobject}/{record_id}", json={"fields": fields})

    async def truth(self, sobject: str) -> list[dict[str, Any]]:
        body = await self.standin("GET", "records", params={"object": sobject})
        return list(body["objects"][sobject])

    async def requests(self) -> int:
        return int((await self.standin("GET", "stats"))["total"])


Start = Callable[..., Awaitable[Org]]


@pytest.fixture
async def org() -> AsyncIterator[Start]:
    """``await org(**settings)``: a Salesforce-like stand-in on a manual clock and a connector
    to it with an ``UnlimitedBudget``."""
    async with AsyncExitStack() as stack:
        session = await stack.enter_async_context(aiohttp.ClientSession())

        async def run(**settings: Any) -> Org:
            clock = ManualClock(START)
            app = create_app(SalesforceSettings(**settings), clock=clock)
            served = await stack.enter_async_context(serve_app(app))
            budget = UnlimitedBudget()
            http = HttpService("salesforce", served.url, session, timeout=5.0)
            sf = SalesforceConnector(http, budget, client_id=CLIENT)
            return Org(served.url, session, clock, budget, sf)

        yield run


async def read_all(
    sf: SalesforceConnector,
    object: ObjectName,
    since: float | None = None,
    between: Callable[[int], Awaitable[None]] | None = None,
) -> list[RemoteRecord]:
    """Every record ``changed_since`` yields; ``between(n)`` runs after the n-th batch."""
    out: list[RemoteRecord] = []
    batches = 0
    async for batch in sf.changed_since(object, since):
        out.extend(batch)
        batches += 1
        if between is not None:
            await between(batches)
    return out


def latest_versions_missing(read: list[RemoteRecord], truth: list[dict[str, Any]]) -> list[str]:
    """Ids of records whose current version (by modification time, to the millisecond) was
    never read."""
    seen = {(r.id, round(r.updated_at * 1000)) for r in read}
    return [t["id"] for t in truth if (t["id"], int(t["updated_at"] * 1000)) not in seen]


async def naive_read(org: Org, soql: str, between: Callable[[], Awaitable[None]]) -> set[str]:
    """Ids read by following ``nextRecordsUrl`` as given: what trusting the locator sees."""
    ids: set[str] = set()
    url = f"{org.url}{BASE}/queryAll"
    params: dict[str, str] | None = {"q": soql}
    while True:
        async with org.session.get(url, params=params) as response:
            body = await response.json()
        ids.update(r["Id"] for r in body["records"])
        if body["done"]:
            return ids
        await between()
        url, params = org.url + body["nextRecordsUrl"], None


# -- reading changes ---------------------------------------------------------------------------


async def test_the_stand_in_locator_drifts_so_trusting_it_loses_a_record(org: Start) -> None:
    # The premise of the next test: a record edited behind the locator makes it skip one.
    o = await org(query_batch_size=200)
    ids = [await o.user_creates("Contact", LastName=f"C{i}") for i in range(300)]
    soql = "SELECT Id, SystemModstamp FROM Contact ORDER BY SystemModstamp ASC"

    async def edit_one_already_read() -> None:
        await o.user_edits("Contact", ids[0], Title="moved")

    assert len(await naive_read(o, soql, edit_one_already_read)) == 299


async def test_changed_since_loses_nothing_when_records_change_between_batches(
    org: Start,
) -> None:
    o = await org(query_batch_size=200)
    ids = [await o.user_creates("Contact", LastName=f"C{i}") for i in range(450)]

    async def edit_records_already_read(batch: int) -> None:
        if batch <= 2:
            for record_id in ids[batch * 7 : batch * 7 + 5]:
                await o.user_edits("Contact", record_id, Title=f"edited after batch {batch}")

    read = await read_all(o.sf, "contact", None, edit_records_already_read)

    assert latest_versions_missing(read, await o.truth("Contact")) == []
    assert {r.id for r in read} == set(ids)


async def test_changed_since_reads_more_records_sharing_one_modstamp_than_a_batch_holds(
    org: Start,
) -> None:
    # 450 records made in the same millisecond: no time bound can page through them.
    o = await org(query_batch_size=200, records=450)
    truth = await o.truth("Contact")
    first_read: list[str] = []

    async def edit_some(batch: int) -> None:
        if batch == 1:
            for record in truth[:3]:
                first_read.append(record["id"])
                await o.user_edits("Contact", record["id"], Title="edited while paging")

    read = await read_all(o.sf, "contact", None, edit_some)

    assert latest_versions_missing(read, await o.truth("Contact")) == []
    assert len({r.id for r in read}) == 450


async def test_changed_since_reads_one_second_holding_more_records_than_a_batch(
    org: Start,
) -> None:
    # Salesforce compares date-times to the second: 300 records a millisecond apart share one.
    o = await org(query_batch_size=200)
    ids = [await o.user_creates("Contact", 0.001, LastName=f"C{i}") for i in range(300)]

    async def edit_one_already_read(batch: int) -> None:
        if batch == 1:
            await o.user_edits("Contact", ids[0], Title="edited while paging")

    read = await read_all(o.sf, "contact", None, edit_one_already_read)

    assert latest_versions_missing(read, await o.truth("Contact")) == []
    assert {r.id for r in read} == set(ids)


async def test_changed_since_starts_at_since_inclusive(org: Start) -> None:
    o = await org()
    old = await o.user_creates("Account", Name="Old")
    at = await o.user_creates("Account", Name="At")
    new = await o.user_creates("Account", Name="New")
    since = next(t["updated_at"] for t in await o.truth("Account") if t["id"] == at)

    read = await read_all(o.sf, "company", since)

    assert [r.id for r in read] == [at, new]
    assert old not in {r.id for r in read}
    assert read[0].fields == {
        "Name": "At",
        "Website": None,
        "Phone": None,
        "Industry": None,
        "Our_Id__c": None,
    }
    assert read[0].updated_at == since and read[0].deleted is False


async def test_changed_since_includes_deleted_records_marked_deleted(org: Start) -> None:
    o = await org()
    kept = await o.user_creates("Contact", LastName="Kept")
    gone = await o.user_creates("Contact", LastName="Gone", Our_Id__c="ours-1")
    o.clock.at += 1
    await o.standin("DELETE", f"users/Contact/{gone}")

    read = {r.id: r for r in await read_all(o.sf, "contact")}

    assert read[gone].deleted is True and read[gone].our_id == "ours-1"
    assert read[kept].deleted is False and read[kept].our_id is None


# -- reading by id -----------------------------------------------------------------------------


async def test_get_answers_in_order_with_none_for_unknown_ids(org: Start) -> None:
    o = await org()
    a = await o.user_creates("Contact", LastName="A", Email="a@example.com")
    b = await o.user_creates("Contact", LastName="B")

    got = await o.sf.get("contact", [b, "003000000000000AAA", a[:15], "not an id"])

    assert [r.id if r else None for r in got] == [b, None, a, None]
    assert got[2] is not None and got[2].fields["Email"] == "a@example.com"


async def test_get_reads_more_ids_than_one_query_takes(org: Start) -> None:
    o = await org(records=450)
    ids = [t["id"] for t in await o.truth("Contact")]

    got = await o.sf.get("contact", ids)

    assert [r.id if r else None for r in got] == ids
    assert o.budget.taken == {"query": 3}


async def test_delete_then_get_shows_the_record_deleted(org: Start) -> None:
    o = await org()
    [created] = await o.sf.upsert("contact", [Write("ours-1", {"LastName": "Doe"})])
    assert created.provider_id is not None

    [deleted] = await o.sf.delete("contact", [created.provider_id])
    [record] = await o.sf.get("contact", [created.provider_id])

    assert deleted.ok and deleted.provider_id == created.provider_id
    assert record is not None and record.deleted is True and record.our_id == "ours-1"


async def test_deleting_a_record_already_deleted_or_unknown_is_ok(org: Start) -> None:
    o = await org()
    gone = await o.user_creates("Contact", LastName="Gone")
    await o.standin("DELETE", f"users/Contact/{gone}")

    results = await o.sf.delete("contact", [gone, "003000000000000AAA"])

    assert [r.ok for r in results] == [True, True]


# -- writing -----------------------------------------------------------------------------------


async def test_upsert_by_external_id_twice_gives_one_record(org: Start) -> None:
    o = await org()
    write = Write("ours-1", {"LastName": "Doe", "Email": "doe@example.com"})

    [first] = await o.sf.upsert("contact", [write])
    [second] = await o.sf.upsert("contact", [write])

    assert first.ok and first.created
    assert second.ok and not second.created and second.provider_id == first.provider_id
    [record] = await o.truth("Contact")
    assert record["fields"]["Our_Id__c"] == "ours-1"


async def test_two_writes_of_one_our_id_in_one_call_give_one_record(org: Start) -> None:
    o = await org()
    writes = [Write("ours-1", {"LastName": "First"}), Write("ours-1", {"LastName": "Second"})]

    results = await o.sf.upsert("contact", writes)

    assert [r.created for r in results] == [True, False]
    [record] = await o.truth("Contact")
    assert record["fields"]["LastName"] == "Second"


async def test_a_write_with_a_provider_id_updates_that_record_and_leaves_its_our_id(
    org: Start,
) -> None:
    o = await org()
    existing = await o.user_creates("Contact", LastName="Doe")

    [result] = await o.sf.upsert(
        "contact", [Write("ours-9", {"Title": "CEO"}, provider_id=existing)]
    )

    assert result.ok and result.provider_id == existing and not result.created
    [record] = await o.truth("Contact")
    assert record["fields"]["Title"] == "CEO"
    # Born at Salesforce, it is known by its Salesforce id: giving it our id would change its key.
    assert record["fields"].get("Our_Id__c") in (None, "")


async def test_a_duplicate_external_id_fails_alone_and_the_rest_of_the_batch_succeeds(
    org: Start,
) -> None:
    o = await org()
    await o.user_creates("Contact", LastName="Twin1", Our_Id__c="ours-dup")
    await o.user_creates("Contact", LastName="Twin2", Our_Id__c="ours-dup")
    writes = [
        Write("ours-a", {"LastName": "A"}),
        Write("ours-dup", {"LastName": "Dup"}),
        Write("ours-b", {"LastName": "B"}),
    ]

    results = await o.sf.upsert("contact", writes)

    assert [r.ok for r in results] == [True, False, True]
    error = results[1].error
    assert error is not None and "\n" not in error
    assert error.startswith("DUPLICATE_EXTERNAL_ID on Our_Id__c:")
    assert results[1].transient is False
    assert len(await o.truth("Contact")) == 4


async def test_a_field_error_names_the_code_and_the_field(org: Start) -> None:
    o = await org()

    results = await o.sf.upsert(
        "contact",
        [Write("ours-1", {"LastName": "A", "Email": "not-an-email"}), Write("ours-2", {})],
    )

    assert [r.ok for r in results] == [False, False]
    assert (results[0].error or "").startswith("INVALID_EMAIL_ADDRESS on Email:")
    assert (results[1].error or "").startswith("REQUIRED_FIELD_MISSING on LastName:")


async def test_more_writes_than_a_collection_takes_go_in_several_calls(org: Start) -> None:
    o = await org()
    writes = [Write(f"ours-{i}", {"LastName": f"L{i}"}) for i in range(450)]

    results = await o.sf.upsert("contact", writes)

    assert all(r.ok and r.created for r in results)
    assert o.budget.taken == {"write": 3}
    assert len(await o.truth("Contact")) == 450


async def test_every_write_carries_the_client_marker(org: Start) -> None:
    o = await org()
    existing = await o.user_creates("Account", Name="Acme")
    after = max(c["seq"] for c in (await o.standin("GET", "changes"))["changes"])

    [created] = await o.sf.upsert("company", [Write("ours-1", {"Name": "New"})])
    await o.sf.upsert("company", [Write("ours-2", {"Name": "Acme 2"}, provider_id=existing)])
    assert created.provider_id is not None
    await o.sf.delete("company", [created.provider_id])

    changes = (await o.standin("GET", "changes", params={"after": str(after)}))["changes"]
    assert [c["kind"] for c in changes] == ["create", "update", "delete"]
    assert all(c["origin"] == {"kind": "integration", "actor": CLIENT} for c in changes)


async def test_a_whole_call_server_error_is_transient(org: Start) -> None:
    o = await org(error_rate=1.0)

    with pytest.raises(TransientError):
        await o.sf.upsert("contact", [Write("ours-1", {"LastName": "Doe"})])


# -- limits and budget -------------------------------------------------------------------------


async def test_request_limit_exceeded_raises_rate_limited_and_tells_the_budget(
    org: Start,
) -> None:
    o = await org(limits=SalesforceLimits(allocation=2))
    await o.sf.get("contact", ["003000000000000AAA"])
    await o.sf.get("contact", ["003000000000000AAA"])

    with pytest.raises(RateLimited) as refused:
        await o.sf.get("contact", ["003000000000000AAA"])

    assert refused.value.dimension == "rolling24h" and refused.value.wait == 300.0
    assert o.budget.refusals == [("rolling24h", 300.0)]
    assert o.sf.usage == (2, 2)


async def test_usage_follows_sforce_limit_info(org: Start) -> None:
    o = await org(limits=SalesforceLimits(allocation=50))
    assert o.sf.usage is None

    await read_all(o.sf, "contact")
    await o.sf.get("company", ["001000000000000AAA"])

    assert o.sf.usage == (2, 50)


async def test_the_budget_is_taken_before_every_request(org: Start) -> None:
    o = await org(query_batch_size=200, records=250)
    takes: list[tuple[str, int]] = []

    class Watching(UnlimitedBudget):
        async def take(self, call: str) -> None:
            # What the stand-in has served when the budget is asked: the take comes first.
            takes.append((call, await o.requests()))
            await super().take(call)

    sf = SalesforceConnector(o.sf.http, Watching(), client_id=CLIENT)
    read = await read_all(sf, "contact")
    [result] = await sf.upsert("contact", [Write("ours-1", {"LastName": "Doe"})])
    assert result.provider_id is not None
    await sf.get("contact", [result.provider_id, read[0].id])
    await sf.delete("contact", [result.provider_id])

    assert [served for _, served in takes] == list(range(len(takes)))
    assert await o.requests() == len(takes)
    assert {call for call, _ in takes} == {"query", "write"}


def test_one_rolling_dimension_where_every_request_costs_one() -> None:
    sf = SalesforceConnector(
        None,  # type: ignore[arg-type]  # dimensions() sends nothing
        UnlimitedBudget(),
        allocation=5_000,
        window=3_600.0,
    )

    [dimension] = sf.dimensions()

    assert (dimension.name, dimension.limit, dimension.window, dimension.rolling) == (
        "rolling24h",
        5_000,
        3_600.0,
        True,
    )
    assert [dimension.cost(call) for call in ("read", "write", "query")] == [1, 1, 1]
    assert sf.kind == "salesforce" and sf.max_batch == 200


# -- malformed answers -------------------------------------------------------------------------


async def test_a_malformed_query_answer_is_permanent_and_says_what_is_wrong() -> None:
    async def query_all(request: web.Request) -> web.Response:
        return web.json_response({"totalSize": 1, "done": True, "records": [{"Id": "x"}]})

    app = web.Application()
    app.router.add_get(f"{BASE}/queryAll", query_all)
    async with serve_app(app) as served, aiohttp.ClientSession() as session:
        http = HttpService("salesforce", served.url, session, timeout=5.0)
        sf = SalesforceConnector(http, UnlimitedBudget())

        with pytest.raises(PermanentError, match=r"wrong shape \(records\.0\.IsDeleted"):
            await read_all(sf, "contact")


async def test_a_link_to_another_origin_is_refused() -> None:
    async def query_all(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "totalSize": 2,
                "done": False,
                "nextRecordsUrl": "http://elsewhere.invalid/services/data/v60.0/queryAll/x-1",
                "records": [],
            }
        )

    app = web.Application()
    app.router.add_get(f"{BASE}/queryAll", query_all)
    async with serve_app(app) as served, aiohttp.ClientSession() as session:
        http = HttpService("salesforce", served.url, session, timeout=5.0)
        sf = SalesforceConnector(http, UnlimitedBudget())

        with pytest.raises(PermanentError, match="refusing to follow a link"):
            await sf.get("contact", ["003000000000000AAA"])


async def test_save_results_that_do_not_match_the_records_are_permanent() -> None:
    async def upsert(request: web.Request) -> web.Response:
        return web.json_response([])

    app = web.Application()
    app.router.add_patch(f"{BASE}/composite/sobjects/Contact/Our_Id__c", upsert)
    async with serve_app(app) as served, aiohttp.ClientSession() as session:
        http = HttpService("salesforce", served.url, session, timeout=5.0)
        sf = SalesforceConnector(http, UnlimitedBudget())

        with pytest.raises(PermanentError, match="0 results for 1 records"):
            await sf.upsert("contact", [Write("ours-1", {"LastName": "Doe"})])

"""The Pipedrive connector against the Pipedrive-like stand-in on a real socket: listings that
lose nothing under a drifting cursor, flattened fields that round-trip, upserts by our custom
field, soft deletes, per-record refusals, and the budget spent and told about every refusal."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import web

import crm_providers.pipedrive
from crm_providers.core.app import PROVIDER
from crm_providers.pipedrive import PipedriveLimits, PipedriveSettings, create_app
from crm_providers.pipedrive.provider import COSTS, PipedriveCore, call_kind
from integration.connectors.crm.base import (
    Connector,
    RateLimited,
    RemoteRecord,
    UnlimitedBudget,
    Write,
)
from integration.connectors.crm.pipedrive import OUR_ID_KEY, PipedriveConnector
from integration.core.errors import PermanentError, TransientError
from integration.core.http import HttpService
from integration.core.serving import serve_app
from tests.helpers.clocks import ManualClock

START = 1_767_225_600.0  # 2026-01-01T00:00:00Z: a day boundary, so the daily budget is simple
CF = f"custom_fields.{OUR_ID_KEY}"


@dataclass
class Pd:
    """A served stand-in, a connector to it and the budget the connector spends."""

    app: web.Application
    url: str
    session: aiohttp.ClientSession
    clock: ManualClock
    budget: UnlimitedBudget
    connector: PipedriveConnector

    @property
    def core(self) -> PipedriveCore:
        core = self.app[PROVIDER]
        assert isinstance(core, PipedriveCore)
        return core

    async def call(self, method: str, path: str, **kwargs: Any) -> Any:
        async with self.session.request(method, self.url + path, **kwargs) as response:
            assert response.status < 300, (response.status, await response.text())
            return await response.json()

    async def person(self, name: str) -> str:
        """A person created as a CRM user (no budget of ours spent)."""
        body = await self.call("POST", "/_standin/users/persons", json={"fields": {"name": name}})
        return str(body["id"] if "id" in body else body["data"]["id"])

    async def rename(self, pid: str, name: str) -> None:
        await self.call("PATCH", f"/_standin/users/persons/{pid}", json={"fields": {"name": name}})

    def searches(self) -> int:
        return sum(
            r["count"]
            for r in self.core.stats.snapshot()["requests"]
            if call_kind(r["method"], r["route"]) == "search"
        )


class Setup:
    """``await setup(limits, page_size)``: a stand-in served until teardown, and a connector."""

    def __init__(self, stack: AsyncExitStack, session: aiohttp.ClientSession) -> None:
        self.stack = stack
        self.session = session

    async def __call__(self, limits: PipedriveLimits | None = None, page_size: int = 500) -> Pd:
        clock = ManualClock(START)
        settings = PipedriveSettings(limits=limits or PipedriveLimits())
        app = create_app(settings, clock=clock)
        url = (await self.stack.enter_async_context(serve_app(app))).url
        budget = UnlimitedBudget()
        lim = settings.limits
        connector = PipedriveConnector(
            HttpService("pipedrive", url, self.session),
            budget,
            daily_tokens=lim.daily_tokens,
            burst=lim.burst_limit,
            burst_window=lim.burst_window_s,
            page_size=page_size,
        )
        return Pd(app, url, self.session, clock, budget, connector)


@pytest.fixture
async def setup() -> AsyncIterator[Setup]:
    async with AsyncExitStack() as stack:
        session = await stack.enter_async_context(aiohttp.ClientSession())
        yield Setup(stack, session)


async def collect(
    pages: AsyncIterator[list[RemoteRecord]],
) -> list[RemoteRecord]:
    out: list[RemoteRecord] = []
    async with asyncio.timeout(10):
        async for page in pages:
            out += page
    return out


def write(our_id: str, **fields: Any) -> Write:
    return Write(our_id=our_id, fields=fields)


# -- the interface -----------------------------------------------------------------------------


async def test_the_connector_is_a_connector_with_the_stand_ins_our_id_key(setup: Setup) -> None:
    connector: Connector = (await setup()).connector
    assert (connector.kind, connector.max_batch) == ("pipedrive", 1)
    assert OUR_ID_KEY == crm_providers.pipedrive.OUR_ID_KEY


async def test_dimensions_are_daily_tokens_at_the_stand_ins_costs_and_a_rolling_burst(
    setup: Setup,
) -> None:
    pd = await setup()
    tokens, burst = pd.connector.dimensions()
    assert (tokens.name, tokens.limit, tokens.window, tokens.rolling) == (
        "tokens",
        30_000,
        86_400,
        False,
    )
    assert {kind: tokens.cost(kind) for kind in COSTS} == COSTS
    assert (burst.name, burst.limit, burst.window, burst.rolling) == ("burst", 20, 2.0, True)
    assert burst.cost("search") == 1


# -- reads -------------------------------------------------------------------------------------


async def test_changed_since_loses_nothing_when_records_change_between_pages(
    setup: Setup,
) -> None:
    pd = await setup(page_size=2)
    ids = []
    for n in range(7):
        pd.clock.at += 1
        ids.append(await pd.person(f"P{n}"))
    seen: dict[str, str] = {}
    edited: list[str] = []
    pages = pd.connector.changed_since("contact", START)
    async with asyncio.timeout(10):
        async for page in pages:
            for record in page:
                seen[record.id] = record.fields["name"]
            if len(edited) < 3:
                # Move a record already read to the end: with the offset cursor, the record
                # after the page would slide into the offset already read and never be served.
                pd.clock.at += 1
                await pd.rename(page[0].id, f"{page[0].fields['name']}!")
                edited.append(page[0].id)
    assert set(seen) == set(ids)
    assert all(seen[pid].endswith("!") for pid in edited)  # every edit was read too


async def test_changed_since_ends_on_more_records_of_one_second_than_a_page(
    setup: Setup,
) -> None:
    pd = await setup(page_size=2)
    pd.clock.at += 1
    ids = [await pd.person(f"P{n}") for n in range(5)]
    pd.clock.at += 1
    later = await pd.person("Later")
    records = await collect(pd.connector.changed_since("contact", START + 0.5))
    assert {r.id for r in records} == {*ids, later}


async def test_changed_since_none_lists_every_live_record_by_id(setup: Setup) -> None:
    pd = await setup(page_size=2)
    ids = [await pd.person(f"P{n}") for n in range(5)]
    await pd.call("DELETE", f"/_standin/users/persons/{ids[1]}")
    records = await collect(pd.connector.changed_since("contact", None))
    assert [r.id for r in records] == [i for i in ids if i != ids[1]]


async def test_get_shows_a_deleted_record_as_deleted_and_an_unknown_id_as_none(
    setup: Setup,
) -> None:
    pd = await setup()
    (created,) = await pd.connector.upsert("contact", [write("our-1", name="Ann")])
    assert created.ok and created.provider_id
    assert await pd.connector.delete("contact", [created.provider_id]) == [
        type(created)(ok=True, provider_id=created.provider_id)
    ]
    gone, unknown = await pd.connector.get("contact", [created.provider_id, "999999"])
    assert gone is not None and gone.deleted and gone.our_id == "our-1"
    assert unknown is None


async def test_deleting_a_record_already_deleted_is_ok(setup: Setup) -> None:
    pd = await setup()
    pid = await pd.person("Ann")
    first = await pd.connector.delete("contact", [pid])
    again = await pd.connector.delete("contact", [pid])
    assert first[0].ok and again[0].ok


async def test_a_malformed_answer_is_a_permanent_error_naming_the_field(setup: Setup) -> None:
    pd = await setup()
    pid = await pd.person("Ann")
    pd.core.store.table("persons")[pid].fields["org_id"] = "not a number"
    with pytest.raises(PermanentError, match=r"malformed answer: org_id"):
        await pd.connector.get("contact", [pid])


# -- writes ------------------------------------------------------------------------------------


async def test_a_person_written_reads_back_with_the_same_flattened_fields(setup: Setup) -> None:
    pd = await setup()
    (org,) = await pd.connector.upsert("company", [write("org-1", name="Acme", address="Main 1")])
    assert org.ok and org.created and org.provider_id
    fields = {
        "name": "Ann Lee",
        "first_name": "Ann",
        "last_name": "Lee",
        "email": "ann@example.com",
        "phone": "+45 1234",
        "org_id": int(org.provider_id),
        "owner_id": 42,
        CF: "our-1",
    }
    (result,) = await pd.connector.upsert("contact", [Write("our-1", fields)])
    assert result.ok and result.created and result.provider_id
    (person,) = await pd.connector.get("contact", [result.provider_id])
    assert person is not None
    assert dict(person.fields) == fields
    assert (person.our_id, person.deleted, person.updated_at) == ("our-1", False, START)
    (company,) = await pd.connector.get("company", [org.provider_id])
    assert company is not None and dict(company.fields) == {
        "name": "Acme",
        "address": "Main 1",
        "owner_id": 9001,
        CF: "org-1",
    }


async def test_an_upsert_repeated_without_provider_id_updates_the_one_record(
    setup: Setup,
) -> None:
    pd = await setup()
    (first,) = await pd.connector.upsert("contact", [write("our-1", name="Ann")])
    (second,) = await pd.connector.upsert("contact", [write("our-1", name="Ann B")])
    assert first.created and not second.created
    assert second.ok and second.provider_id == first.provider_id
    records = await collect(pd.connector.changed_since("contact", None))
    assert [(r.our_id, r.fields["name"]) for r in records] == [("our-1", "Ann B")]
    assert pd.searches() == 2


async def test_a_surely_new_write_creates_without_searching(setup: Setup) -> None:
    pd = await setup()
    (result,) = await pd.connector.upsert(
        "contact", [Write("our-1", {"name": "Ann"}, surely_new=True)]
    )
    assert result.ok and result.created
    assert pd.searches() == 0


async def test_an_update_of_a_record_deleted_at_pipedrive_is_refused_for_that_record(
    setup: Setup,
) -> None:
    pd = await setup()
    pid = await pd.person("Ann")
    await pd.call("DELETE", f"/_standin/users/persons/{pid}")
    (result,) = await pd.connector.upsert(
        "contact", [Write("our-1", {"name": "Ann B"}, provider_id=pid)]
    )
    assert (result.ok, result.transient, result.error) == (False, False, "deleted at Pipedrive")


async def test_a_400_is_a_per_record_error_with_the_providers_text(setup: Setup) -> None:
    pd = await setup()
    (result,) = await pd.connector.upsert("contact", [write("our-1", name="Ann", org_id=999999)])
    assert (result.ok, result.transient) == (False, False)
    assert result.error == "Organization with id 999999 does not exist"


async def test_a_search_the_provider_refuses_is_a_per_record_error(setup: Setup) -> None:
    pd = await setup()
    (result,) = await pd.connector.upsert("contact", [write("", name="Ann")])
    assert (result.ok, result.transient) == (False, False)
    assert result.error is not None and result.error.startswith("term must be at least")


async def test_an_integer_field_that_is_not_one_is_refused_before_sending(setup: Setup) -> None:
    pd = await setup()
    (result,) = await pd.connector.upsert("contact", [write("our-1", name="Ann", org_id="x")])
    assert not result.ok and result.error is not None and "org_id" in result.error
    assert pd.core.stats.snapshot()["total"] == 0


async def test_a_server_error_on_a_write_is_a_transient_result_and_on_a_read_raises(
    setup: Setup,
) -> None:
    pd = await setup()
    await pd.call("PATCH", "/_standin/faults", json={"error_rate": 1.0})
    (result,) = await pd.connector.upsert("contact", [write("our-1", name="Ann")])
    assert (result.ok, result.transient) == (False, True)
    assert result.error is not None and "500" in result.error
    with pytest.raises(TransientError):
        await pd.connector.get("contact", ["1"])


# -- limits ------------------------------------------------------------------------------------


async def test_every_request_takes_its_kind_from_the_budget_first(setup: Setup) -> None:
    pd = await setup(page_size=1)
    (a,) = await pd.connector.upsert("contact", [write("our-1", name="Ann")])  # search, create
    await pd.connector.upsert("contact", [write("our-1", name="Ann B")])  # search, update
    await pd.connector.upsert("contact", [write("our-2", name="Bo")])  # search, create
    await pd.connector.get("contact", [str(a.provider_id), "999999"])  # get, get
    await collect(pd.connector.changed_since("contact", None))  # list x2
    # One second holds both: a page, that second by id (two pages), then the next second.
    await collect(pd.connector.changed_since("contact", START))  # list x4
    await pd.connector.delete("contact", [str(a.provider_id)])  # delete
    sent: dict[str, int] = {}
    for row in pd.core.stats.snapshot()["requests"]:
        kind = call_kind(row["method"], row["route"])
        sent[kind] = sent.get(kind, 0) + row["count"]
    assert pd.budget.taken == sent
    assert sent == {"search": 3, "create": 2, "update": 1, "get": 2, "list": 6, "delete": 1}


async def test_a_spent_daily_token_budget_raises_rate_limited_and_tells_the_budget(
    setup: Setup,
) -> None:
    pd = await setup(PipedriveLimits(daily_tokens=15))
    await pd.connector.get("contact", ["1"])  # 1 token
    await pd.connector.upsert("contact", [Write("our-1", {"name": "Ann"}, surely_new=True)])
    with pytest.raises(RateLimited) as caught:
        await pd.connector.upsert("contact", [Write("our-2", {"name": "Bo"}, surely_new=True)])
    assert (caught.value.dimension, caught.value.wait) == ("tokens", 86_400)
    assert pd.budget.refusals == [("tokens", 86_400)]


async def test_a_spent_burst_raises_rate_limited_and_tells_the_budget(setup: Setup) -> None:
    pd = await setup(PipedriveLimits(burst_limit=2))
    await pd.connector.get("contact", ["1", "2"])
    with pytest.raises(RateLimited) as caught:
        await pd.connector.get("contact", ["3"])
    assert (caught.value.dimension, caught.value.wait) == ("burst", 2)
    assert pd.budget.refusals == [("burst", 2)]


async def test_an_abuse_block_raises_rate_limited_on_the_abuse_dimension(setup: Setup) -> None:
    pd = await setup(PipedriveLimits(burst_limit=1, abuse_after=2, abuse_block_s=60))
    await pd.connector.get("contact", ["1"])
    for _ in range(2):
        with pytest.raises(RateLimited):
            await pd.connector.get("contact", ["1"])
    with pytest.raises(RateLimited) as caught:
        await pd.connector.get("contact", ["1"])
    assert (caught.value.dimension, caught.value.wait) == ("abuse", 600)
    assert pd.budget.refusals[-1] == ("burst", 600)

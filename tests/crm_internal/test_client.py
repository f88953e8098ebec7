"""``InternalClient`` against the real stand-in: reads, writes, and the refusals the sync acts
on as exceptions of their own, each one readable line."""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp import web

from integration.connectors.crm.internal import (
    FieldsRefused,
    InternalClient,
    NotDeleted,
    RecordMissing,
    VersionMismatch,
)
from integration.core.errors import PermanentError, TransientError
from integration.core.http import HttpService
from integration.core.serving import serve_app
from tests.crm_internal.conftest import Internal, StartInternal

HS = "crm:hubspot-main"


async def test_create_get_patch_delete_and_restore_round_trip(client: InternalClient) -> None:
    made = await client.create(
        "company", {"name": "Acme", "links": {"hubspot-main": "77"}, "born": "hubspot-main"},
        origin=HS, idempotency_key="hubspot-main:company:77",
    )  # fmt: skip
    assert (made["object"], made["origin"], made["born"]) == ("company", HS, "hubspot-main")
    assert await client.get("company", made["id"]) == made
    patched = await client.patch(
        "company", made["id"], {"city": "Aarhus"}, origin=HS, if_match=made["version"]
    )
    assert (patched["city"], patched["version"]) == ("Aarhus", made["version"] + 1)
    tomb = await client.delete("company", made["id"], origin=HS, if_match=patched["version"])
    assert tomb["deleted"] is True
    assert await client.get("company", made["id"]) == tomb  # tombstones by default
    assert await client.get("company", made["id"], include_deleted=False) is None
    back = await client.restore("company", made["id"], {"city": "Vejle"}, origin=HS, if_match=None)
    assert (back["deleted"], back["city"]) == (False, "Vejle")


async def test_get_of_an_unknown_record_is_none(client: InternalClient) -> None:
    assert await client.get("contact", 404) is None


async def test_a_write_without_origin_is_a_users(client: InternalClient) -> None:
    row = await client.create("contact", {"last_name": "Hansen"}, origin=None, idempotency_key="u")
    assert row["origin"] == "user"


async def test_a_repeated_create_returns_the_first_row(
    client: InternalClient, internal: Internal
) -> None:
    first = await client.create("contact", {"email": "a@b.dk"}, origin=HS, idempotency_key="k1")
    again = await client.create("contact", {"email": "c@d.dk"}, origin=HS, idempotency_key="k1")
    assert again == first
    assert len((await internal.records())["contacts"]) == 1


async def test_changes_pages_both_objects_to_the_end(client: InternalClient) -> None:
    company = await client.create("company", {"name": "A"}, origin=HS, idempotency_key="c")
    contact = await client.create(
        "contact", {"last_name": "B", "company_id": company["id"]}, origin=None, idempotency_key="p"
    )
    await client.delete("company", company["id"], origin=None, if_match=None)
    first = await client.changes(None, limit=2)
    assert [(i["object"], i["version"]) for i in first.items] == [("contact", 2), ("company", 3)]
    assert (first.next_after, first.high_water, first.last) == (3, 3, False)
    assert first.items[1]["deleted"] is True and first.body.startswith(b"{")
    rest = await client.changes(first.next_after, limit=2)
    assert (rest.items, rest.next_after, rest.last) == ([], 3, True)
    assert contact["company_id"] == company["id"]


async def test_high_water_is_the_version_sequence_now(client: InternalClient) -> None:
    assert await client.high_water() == 0
    await client.create("company", {"name": "A"}, origin=HS, idempotency_key="c")
    await client.create("contact", {"last_name": "B"}, origin=HS, idempotency_key="p")
    assert await client.high_water() == 2


async def test_list_all_pages_live_records_by_id(client: InternalClient) -> None:
    made = [
        await client.create("contact", {"last_name": str(n)}, origin=None, idempotency_key=str(n))
        for n in range(5)
    ]
    await client.delete("contact", made[0]["id"], origin=None, if_match=None)
    pages = [page async for page in client.list_all("contact", limit=2)]
    assert [[r["id"] for r in page] for page in pages] == [
        [made[1]["id"], made[2]["id"]], [made[3]["id"], made[4]["id"]],
    ]  # fmt: skip


async def test_a_stale_if_match_raises_version_mismatch_with_the_current_version(
    client: InternalClient,
) -> None:
    row = await client.create("contact", {"last_name": "x"}, origin=None, idempotency_key="v")
    await client.patch("contact", row["id"], {"title": "user's"}, origin=None, if_match=None)
    with pytest.raises(VersionMismatch) as caught:
        await client.patch("contact", row["id"], {"title": "ours"}, origin=HS, if_match=1)
    assert (caught.value.current, caught.value.expected) == (2, 1)
    assert str(caught.value) == f"internal system: contact {row['id']} is at version 2, not 1 (412)"
    with pytest.raises(VersionMismatch):
        await client.delete("contact", row["id"], origin=HS, if_match=1)


async def test_writes_to_a_missing_record_raise_record_missing(client: InternalClient) -> None:
    with pytest.raises(RecordMissing, match="contact 9 not found"):
        await client.patch("contact", 9, {"title": "x"}, origin=HS, if_match=None)
    with pytest.raises(RecordMissing):
        await client.delete("company", 9, origin=HS, if_match=None)
    with pytest.raises(RecordMissing):
        await client.restore("company", 9, origin=HS, if_match=None)


async def test_restoring_a_live_record_raises_not_deleted(client: InternalClient) -> None:
    row = await client.create("company", {"name": "A"}, origin=HS, idempotency_key="a")
    with pytest.raises(NotDeleted) as caught:
        await client.restore("company", row["id"], origin=HS, if_match=None)
    assert caught.value.current == 1


async def test_refused_fields_name_every_field_path_and_reason(client: InternalClient) -> None:
    with pytest.raises(FieldsRefused) as caught:
        await client.create(
            "contact", {"email": "nope", "custom": {"a": []}, "links": {"sf": 1}},
            origin=HS, idempotency_key="bad",
        )  # fmt: skip
    assert caught.value.fields == ["email", "custom.a", "links.sf"]
    message = str(caught.value)
    assert message.startswith("internal system refused POST /contacts/ (422): email: must look")
    assert "custom.a: must be a string" in message and "\n" not in message
    assert isinstance(caught.value, PermanentError)


async def test_an_ambiguous_create_is_transient_and_its_repeat_finds_the_row(
    start_internal: StartInternal,
) -> None:
    internal = await start_internal(ambiguous_rate=1.0)
    client = InternalClient(HttpService("crm_internal", internal.url, internal.session))
    with pytest.raises(TransientError) as caught:
        await client.create("contact", {"last_name": "x"}, origin=HS, idempotency_key="amb")
    assert caught.value.maybe_applied is True
    await internal.call("PATCH", "/_standin/faults", {"ambiguous_rate": 0})
    row = await client.create("contact", {"last_name": "x"}, origin=HS, idempotency_key="amb")
    assert [r["id"] for r in (await internal.records())["contacts"]] == [row["id"]]


async def test_a_feed_row_without_a_version_is_a_transient_error() -> None:
    # A page the client cannot route is the server's fault: retry it, never store its cursor.
    async def changes(request: web.Request) -> web.Response:
        page = {"items": [{"object": "contact", "id": 1}], "next_after": 1, "high_water": 1}
        return web.json_response(page)

    app = web.Application()
    app.router.add_get("/changes", changes)
    async with serve_app(app) as served, aiohttp.ClientSession() as session:
        client = InternalClient(HttpService("crm_internal", served.url, session))
        with pytest.raises(TransientError, match=r"wrong shape \(items\.0\.version"):
            await client.changes(0)

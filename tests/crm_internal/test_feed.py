"""The one change feed: one version sequence for both objects, tombstones, origins."""

from __future__ import annotations

import asyncio

from tests.crm_internal.conftest import SYNC, Internal


async def test_every_write_of_either_object_takes_the_next_version(internal: Internal) -> None:
    company = await internal.company()
    contact = await internal.contact()
    patched = await internal.call("PATCH", f"/companies/{company['id']}", {"city": "Vejle"})
    deleted = await internal.call("DELETE", f"/contacts/{contact['id']}")
    versions = [company["version"], contact["version"], patched.body["version"]]
    assert [*versions, deleted.body["version"]] == [1, 2, 3, 4]


async def test_the_feed_lists_both_objects_and_tombstones_in_version_order(
    internal: Internal,
) -> None:
    company = await internal.company(name="Acme")
    ann = await internal.contact(first_name="Ann", company_id=company["id"])
    bob = await internal.contact(first_name="Bob")
    await internal.call("PATCH", f"/companies/{company['id']}", {"city": "Aarhus"})
    await internal.call("DELETE", f"/contacts/{ann['id']}", headers=SYNC)
    feed = await internal.feed()
    assert feed.status == 200
    items = feed.body["items"]
    assert [(i["object"], i["id"], i["version"], i["deleted"]) for i in items] == [
        ("contact", bob["id"], 3, False),
        ("company", company["id"], 4, False),
        ("contact", ann["id"], 5, True),
    ]
    assert items[2]["first_name"] == "Ann"  # the tombstone keeps its fields
    assert (feed.body["next_after"], feed.body["high_water"]) == (5, 5)


async def test_tombstones_stay_in_the_feed(internal: Internal) -> None:
    row = await internal.company()
    await internal.call("DELETE", f"/companies/{row['id']}")
    internal.clock.at += 10 * 365 * 86_400
    items = (await internal.feed(1)).body["items"]
    assert [(i["id"], i["deleted"]) for i in items] == [(row["id"], True)]


async def test_the_feed_pages_with_next_after(internal: Internal) -> None:
    for n in range(5):
        await (internal.contact() if n % 2 else internal.company())
    first = await internal.feed(limit=2)
    assert [i["version"] for i in first.body["items"]] == [1, 2]
    assert first.body["next_after"] == 2
    second = await internal.feed(first.body["next_after"], limit=2)
    third = await internal.feed(second.body["next_after"], limit=2)
    assert [i["version"] for i in third.body["items"]] == [5]
    empty = await internal.feed(third.body["next_after"])
    assert (empty.body["items"], empty.body["next_after"]) == ([], 5)


async def test_the_origin_header_is_stored_as_the_version_origin(internal: Internal) -> None:
    synced = await internal.contact(headers=SYNC)
    user = await internal.company()
    await internal.call("PATCH", f"/contacts/{synced['id']}", {"title": "x"})  # now a user's
    items = (await internal.feed()).body["items"]
    assert [(i["object"], i["origin"]) for i in items] == [("company", "user"), ("contact", "user")]
    assert (synced["origin"], user["origin"]) == ("crm:hubspot-main", "user")
    bad = await internal.call("POST", "/companies/", {"name": "x"}, {"X-Sync-Origin": "a b"})
    assert bad.status == 400


async def test_concurrent_writes_get_distinct_gapless_versions(internal: Internal) -> None:
    company = await internal.company()
    contact = await internal.contact()
    companies = f"/companies/{company['id']}"
    contacts = f"/contacts/{contact['id']}"
    answers = await asyncio.gather(
        *(internal.call("PATCH", companies, {"city": str(n)}) for n in range(10)),
        *(internal.call("PATCH", contacts, {"title": str(n)}) for n in range(10)),
    )
    assert sorted(a.body["version"] for a in answers) == list(range(3, 23))

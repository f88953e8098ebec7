"""The change feed: one store-wide version sequence, tombstones, origins, the horizon."""

from __future__ import annotations

import asyncio

from tests.case_store.conftest import SYNC, StartStore, Store


async def test_every_committed_write_takes_the_next_store_wide_version(store: Store) -> None:
    a = await store.create()
    b = await store.create()
    patched = await store.call("PATCH", f"/cases/{a['id']}", {"notes": "x"})
    deleted = await store.call("DELETE", f"/cases/{b['id']}")
    assert [a["version"], b["version"], patched.body["version"], deleted.body["version"]] == [
        1,
        2,
        3,
        4,
    ]


async def test_the_feed_lists_rows_and_tombstones_in_version_order(store: Store) -> None:
    a = await store.create(name="a")
    b = await store.create(name="b")
    await store.call("PATCH", f"/cases/{a['id']}", {"notes": "later"})
    await store.call("DELETE", f"/cases/{b['id']}", headers=SYNC)
    feed = await store.feed()
    assert feed.status == 200
    items = feed.body["items"]
    assert [(i["id"], i["version"], i["deleted"]) for i in items] == [
        (a["id"], 3, False),
        (b["id"], 4, True),
    ]
    assert items[1]["name"] == "b"  # the tombstone keeps its fields
    assert (feed.body["next_after"], feed.body["high_water"]) == (4, 4)


async def test_the_feed_pages_with_next_after(store: Store) -> None:
    for _ in range(5):
        await store.create()
    first = await store.feed(limit=2)
    assert [i["version"] for i in first.body["items"]] == [1, 2]
    assert first.body["next_after"] == 2
    second = await store.feed(first.body["next_after"], limit=2)
    third = await store.feed(second.body["next_after"], limit=2)
    assert [i["version"] for i in third.body["items"]] == [5]
    empty = await store.feed(third.body["next_after"])
    assert (empty.body["items"], empty.body["next_after"]) == ([], 5)


async def test_the_origin_header_is_stored_and_echoed_users_are_user(store: Store) -> None:
    synced = await store.create(headers=SYNC)
    await store.create()
    items = (await store.feed()).body["items"]
    assert [i["origin"] for i in items] == ["intempus-sync", "user"]
    assert synced["origin"] == "intempus-sync"
    bad = await store.call(
        "POST", "/cases/", {"name": "x", "customer": 1}, {"X-Sync-Origin": "no spaces"}
    )
    assert bad.status == 400


async def test_concurrent_writes_get_distinct_gapless_versions(store: Store) -> None:
    row = await store.create()
    answers = await asyncio.gather(
        *(store.call("PATCH", f"/cases/{row['id']}", {"notes": str(n)}) for n in range(20))
    )
    assert sorted(a.body["version"] for a in answers) == list(range(2, 22))


async def test_a_cursor_older_than_the_tombstone_horizon_answers_410(
    start_store: StartStore,
) -> None:
    store = await start_store(tombstone_days=30)
    keep = await store.create()
    gone = await store.create()
    await store.call("DELETE", f"/cases/{gone['id']}")  # version 3
    store.clock.at += 29 * 86_400
    assert (await store.feed(1)).status == 200  # not purged yet
    store.clock.at += 2 * 86_400
    old = await store.feed(1)
    assert (old.status, old.body["horizon"]) == (410, 3)
    fresh = await store.feed(3)
    assert fresh.status == 200
    start = await store.feed(0)  # a reader with no state starts over: allowed
    assert [i["id"] for i in start.body["items"]] == [keep["id"]]
    assert (await store.call("GET", f"/cases/{gone['id']}?include_deleted=true")).status == 404

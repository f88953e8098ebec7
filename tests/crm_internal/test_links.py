"""``links`` (connection -> provider id, merged key by key) and ``born`` (set once, at create)."""

from __future__ import annotations

from tests.crm_internal.conftest import SYNC, Internal


async def test_a_create_stores_links_and_born(internal: Internal) -> None:
    row = await internal.contact(links={"hubspot-main": "901", "sf": "003A"}, born="hubspot-main")
    assert (row["links"], row["born"]) == ({"hubspot-main": "901", "sf": "003A"}, "hubspot-main")


async def test_a_record_made_in_our_system_has_no_born(internal: Internal) -> None:
    assert (await internal.company())["born"] is None


async def test_a_patch_merges_links_key_by_key_and_null_removes_one(internal: Internal) -> None:
    row = await internal.contact(links={"hubspot-main": "901", "sf": "003A"})
    path = f"/contacts/{row['id']}"
    added = await internal.call("PATCH", path, {"links": {"pipedrive": "77"}}, SYNC)
    assert added.body["links"] == {"hubspot-main": "901", "sf": "003A", "pipedrive": "77"}
    changed = await internal.call("PATCH", path, {"links": {"sf": "003B", "hubspot-main": None}})
    assert changed.body["links"] == {"sf": "003B", "pipedrive": "77"}
    assert changed.body["version"] == 3


async def test_a_bad_link_is_refused_naming_its_path(internal: Internal) -> None:
    row = await internal.contact()
    answer = await internal.call("PATCH", f"/contacts/{row['id']}", {"links": {"sf": ""}})
    assert (answer.status, [e["field"] for e in answer.body["errors"]]) == (422, ["links.sf"])


async def test_born_cannot_change_after_the_create(internal: Internal) -> None:
    row = await internal.contact(born="sf")
    path = f"/contacts/{row['id']}"
    changed = await internal.call("PATCH", path, {"born": "hubspot-main"})
    assert (changed.status, changed.body["errors"][0]["field"]) == (422, "born")
    cleared = await internal.call("PATCH", path, {"born": None})
    assert cleared.status == 422
    same = await internal.call("PATCH", path, {"born": "sf", "title": "x"})  # a row sent back
    assert (same.status, same.body["born"]) == (200, "sf")


async def test_a_delete_and_a_restore_keep_links_and_born(internal: Internal) -> None:
    row = await internal.company(links={"sf": "001A"}, born="sf")
    path = f"/companies/{row['id']}"
    tomb = (await internal.call("DELETE", path)).body
    assert (tomb["links"], tomb["born"]) == ({"sf": "001A"}, "sf")
    back = (await internal.call("POST", path + "/restore")).body
    assert (back["links"], back["born"]) == ({"sf": "001A"}, "sf")

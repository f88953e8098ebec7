"""The CRM sync against our system and three provider stand-ins on live clocks: each rule of the
design, one behaviour per test."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from integration.core.state.sqlite import SQLiteStore
from tests.crm.world import world

WRITES = ("POST", "PATCH", "PUT", "DELETE")


def writes(stats: dict[str, Any]) -> int:
    """Write requests a stand-in served (searches are POSTs at HubSpot: reads, left out)."""
    return sum(
        r["count"]
        for r in stats["requests"]
        if r["method"] in WRITES and not r["route"].endswith(("/search", "/batch/read"))
    )


async def dead_letters(tmp: Path) -> list[str]:
    store = SQLiteStore(tmp / "crm-state.db")
    await store.open()
    try:
        return [d.reason for d in await store.dead_letters()]
    finally:
        await store.close()


async def test_a_contact_made_at_one_provider_reaches_our_system_and_every_other_provider_once(
    tmp_path: Path,
) -> None:
    async with world(tmp_path) as w:
        await w.user_creates("hubspot", "contact", firstname="Ann", lastname="Berg", email="a@x.io")
        await w.settle()
        ours = await w.ours("contact")
        assert [(r["first_name"], r["last_name"], r["email"]) for r in ours] == [
            ("Ann", "Berg", "a@x.io")
        ]
        sf = await w.records("salesforce", "contact")
        pd = await w.records("pipedrive", "contact")
        assert [(r["fields"]["LastName"], r["fields"]["Email"]) for r in sf] == [("Berg", "a@x.io")]
        assert len(pd) == 1 and pd[0]["fields"]["name"] == "Ann Berg"
        assert len(await w.records("hubspot", "contact")) == 1


async def test_a_record_made_in_our_system_reaches_every_provider_once_holding_our_id(
    tmp_path: Path,
) -> None:
    async with world(tmp_path) as w:
        row = await w.ours_create("company", name="Acme ApS", domain="acme.dk")
        await w.settle(rounds=2)
        hs = await w.records("hubspot", "company")
        sf = await w.records("salesforce", "company")
        pd = await w.records("pipedrive", "company")
        assert [r["fields"]["our_id"] for r in hs] == [str(row["id"])]
        assert [r["fields"]["Our_Id__c"] for r in sf] == [str(row["id"])]
        assert [r["fields"]["name"] for r in pd] == ["Acme ApS"]


async def test_an_edit_at_a_provider_reaches_the_others_and_an_idle_sync_writes_nothing(
    tmp_path: Path,
) -> None:
    async with world(tmp_path) as w:
        sf_id = await w.user_creates("salesforce", "contact", LastName="Holm", Email="h@x.io")
        await w.settle()
        await w.user_edits("salesforce", "contact", sf_id, Phone="+45 1234")
        await w.settle()
        assert [r["phone"] for r in await w.ours("contact")] == ["+45 1234"]
        assert [r["fields"]["phone"] for r in await w.records("hubspot", "contact")] == ["+45 1234"]
        await w.reset_stats()
        await w.settle(rounds=2)  # idle: our own writes come back as echoes
        for provider in w.connected:
            assert writes(await w.stats(provider)) == 0, provider


async def test_a_field_owned_by_our_system_keeps_our_value_when_a_provider_changes_it(
    tmp_path: Path,
) -> None:
    async with world(tmp_path) as w:
        w.extra["hubspot"] = '[connections.owners]\nemail = "internal"'
        row = await w.ours_create("contact", last_name="Dahl", email="dahl@ours.io")
        await w.settle(rounds=2)
        (hs,) = await w.records("hubspot", "contact")
        await w.user_edits("hubspot", "contact", hs["id"], email="dahl@theirs.io", phone="99")
        await w.settle(rounds=2)
        (ours,) = await w.ours("contact")
        assert (ours["id"], ours["email"], ours["phone"]) == (row["id"], "dahl@ours.io", "99")
        (hs,) = await w.records("hubspot", "contact")
        assert hs["fields"]["email"] == "dahl@ours.io"  # our value written back over theirs


async def test_concurrent_edits_of_one_field_resolve_to_the_later_writer(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        w.connected = ("hubspot",)
        row = await w.ours_create("contact", last_name="Lund", title="x", phone="1")
        await w.settle(rounds=2)
        (hs,) = await w.records("hubspot", "contact")
        await w.ours_edit("contact", row["id"], phone="from-ours")
        await w.settle(rounds=0)
        import asyncio

        await asyncio.sleep(1.1)
        await w.user_edits("hubspot", "contact", hs["id"], phone="from-hubspot")  # later
        await w.settle(rounds=2)
        (ours,) = await w.ours("contact")
        (hs,) = await w.records("hubspot", "contact")
        assert ours["phone"] == hs["fields"]["phone"] == "from-hubspot"


async def test_a_delete_at_a_provider_archives_ours_by_default(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        w.connected = ("pipedrive",)
        pd_id = await w.user_creates(
            "pipedrive", "contact", name="Eva Lind", first_name="Eva", last_name="Lind"
        )
        await w.settle(rounds=1)
        await w.user_deletes("pipedrive", "contact", pd_id)
        await w.settle(rounds=1, full_scan_interval=0.001)  # Pipedrive lists no deletes
        (ours,) = await w.ours("contact")
        assert ours["archived"] is True


async def test_a_delete_in_our_system_deletes_at_every_provider(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        row = await w.ours_create("contact", last_name="Moe", email="moe@x.io")
        await w.settle(rounds=2)
        await w.ours_delete("contact", row["id"])
        await w.settle(rounds=2)
        for provider in w.connected:
            assert await w.records(provider, "contact") == [], provider
            assert len(await w.records(provider, "contact", deleted=True)) == 1, provider


async def test_a_rule_that_skips_keeps_a_record_from_a_provider(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        w.connected = ("hubspot",)
        w.extra["hubspot"] = (
            '[[connections.rules]]\nobject = "contact"\nwhen = "lifecycle_stage == \'other\'"\n'
            'then = "skip"'
        )
        await w.ours_create("contact", last_name="Skip", lifecycle_stage="other")
        await w.ours_create("contact", last_name="Keep", lifecycle_stage="lead")
        await w.settle(rounds=1)
        assert [r["fields"]["lastname"] for r in await w.records("hubspot", "contact")] == ["Keep"]


async def test_a_rule_that_archives_removes_a_record_that_leaves_the_synced_set(
    tmp_path: Path,
) -> None:
    async with world(tmp_path) as w:
        w.connected = ("hubspot",)
        w.extra["hubspot"] = (
            '[[connections.rules]]\nobject = "contact"\n'
            "when = \"lifecycle_stage not in ('lead', 'customer')\"\nthen = \"archive\""
        )
        row = await w.ours_create("contact", last_name="Vik", lifecycle_stage="lead")
        await w.settle(rounds=1)
        assert len(await w.records("hubspot", "contact")) == 1
        await w.ours_edit("contact", row["id"], lifecycle_stage="other")
        await w.settle(rounds=1)
        assert await w.records("hubspot", "contact") == []
        (archived,) = await w.records("hubspot", "contact", deleted=True)
        assert archived["fields"]["lastname"] == "Vik"


async def test_invalid_data_at_a_provider_is_a_dead_letter_naming_the_field_and_the_rest_flows(
    tmp_path: Path,
) -> None:
    async with world(tmp_path) as w:
        w.connected = ("hubspot",)
        await w.user_creates("hubspot", "contact", lastname="Odd", lifecyclestage="evangelist")
        await w.user_creates("hubspot", "contact", lastname="Fine", lifecyclestage="lead")
        await w.settle(rounds=1)
        assert [r["last_name"] for r in await w.ours("contact")] == ["Fine"]
        (reason,) = await dead_letters(tmp_path)
        assert "contact.lifecycle_stage (from lifecyclestage)" in reason
        assert "'evangelist' is not in the mapping's enum table" in reason


async def test_data_a_provider_cannot_take_is_a_dead_letter_and_the_rest_flows(
    tmp_path: Path,
) -> None:
    async with world(tmp_path) as w:
        w.connected = ("salesforce",)
        await w.ours_create("contact", first_name="NoLast", email="n@x.io")  # no LastName
        await w.ours_create("contact", last_name="Ok")
        await w.settle(rounds=1)
        assert [r["fields"]["LastName"] for r in await w.records("salesforce", "contact")] == ["Ok"]
        (reason,) = await dead_letters(tmp_path)
        assert "cannot be created without LastName" in reason


async def test_a_record_two_mappings_keep_rewriting_is_quarantined(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        w.connected = ("hubspot", "pipedrive")
        # HubSpot's mapping upper-cases the first name on the way out, Pipedrive's lower-cases
        # it: each reads the other's value back as a change.
        w.extra["hubspot"] = (
            "[connections.mapping.contact]\nfields = [\n"
            '  {field = "firstname", canonical = "first_name"},\n'
            '  {field = "firstname", canonical = "first_name", transform = "upper"},\n'
            '  {field = "lastname", canonical = "last_name"},\n]'
        )
        w.extra["pipedrive"] = (
            '[connections.mapping.contact]\nrequired_on_create = ["name"]\nfields = [\n'
            '  {field = "first_name", canonical = "first_name"},\n'
            '  {field = "first_name", canonical = "first_name", transform = "lower"},\n'
            '  {field = "last_name", canonical = "last_name"},\n'
            '  {field = "name", canonical = ["first_name", "last_name"], transform = "join"},\n]'
        )
        await w.ours_create("contact", first_name="ann", last_name="Ro")
        await w.settle(rounds=8, breaker_hops=2)
        reasons = await dead_letters(tmp_path)
        assert any("ping-pong" in reason for reason in reasons), reasons


async def test_a_record_born_at_a_provider_keeps_one_key_after_the_sync_writes_to_it(
    tmp_path: Path,
) -> None:
    async with world(tmp_path) as w:
        w.connected = ("salesforce", "pipedrive")
        w.extra["salesforce"] = '[connections.owners]\nphone = "internal"'
        sf_id = await w.user_creates("salesforce", "contact", LastName="Born", Phone="1")
        pd_id = await w.user_creates(
            "pipedrive", "contact", name="Also Born", first_name="Also", last_name="Born"
        )
        await w.settle(rounds=2)
        # Ours wins phone at Salesforce: the sync writes to the record born there.
        (row,) = [r for r in await w.ours("contact") if r["born"] == "salesforce"]
        await w.ours_edit("contact", row["id"], phone="2")
        await w.user_edits("salesforce", "contact", sf_id, Phone="3")
        await w.user_edits("pipedrive", "contact", pd_id, first_name="Al")
        await w.settle(rounds=2)
        (sf,) = [r for r in await w.records("salesforce", "contact") if r["id"] == sf_id]
        assert sf["fields"].get("Our_Id__c") in (None, "")
        assert sf["fields"]["Phone"] == "2"
        assert len(await w.ours("contact")) == 2
        assert await dead_letters(tmp_path) == []


async def test_an_edit_of_a_record_a_person_deleted_at_the_provider_applies_the_delete(
    tmp_path: Path,
) -> None:
    async with world(tmp_path) as w:
        w.connected = ("hubspot",)
        w.extra["hubspot"] = '[connections.deletes]\nfrom_provider = "delete"'
        row = await w.ours_create("contact", last_name="Gone", phone="1")
        await w.settle(rounds=1)
        (hs,) = await w.records("hubspot", "contact")
        await w.user_deletes("hubspot", "contact", hs["id"])
        await w.ours_edit("contact", row["id"], phone="2")  # before any scan saw the delete
        await w.settle(rounds=1)
        assert await dead_letters(tmp_path) == []
        assert await w.ours("contact") == []


async def test_a_person_editing_a_record_often_at_a_provider_is_not_taken_for_a_ping_pong(
    tmp_path: Path,
) -> None:
    async with world(tmp_path) as w:
        w.connected = ("salesforce",)
        sf_id = await w.user_creates("salesforce", "contact", LastName="Busy")
        for n in range(5):
            await w.settle(rounds=1)
            await w.user_edits("salesforce", "contact", sf_id, Phone=str(n))
        await w.settle(rounds=1, breaker_hops=3)
        assert await dead_letters(tmp_path) == []
        assert [r["phone"] for r in await w.ours("contact")] == ["4"]

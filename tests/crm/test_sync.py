"""The CRM sync against our system and three provider stand-ins: each rule of the design, one
behaviour per test."""

from __future__ import annotations

from pathlib import Path

from tests.crm.world import world


async def test_a_contact_made_at_one_provider_reaches_our_system_and_every_other_provider_once(
    tmp_path: Path,
) -> None:
    async with world(tmp_path) as w:
        await w.user_creates(
            "hubspot", "contact", firstname="Ann", lastname="Berg", email="ann@x.io"
        )
        await w.settle()
        ours = await w.ours("contact")
        assert [(r["first_name"], r["last_name"], r["email"]) for r in ours] == [
            ("Ann", "Berg", "ann@x.io")
        ]
        sf = await w.records("salesforce", "contact")
        pd = await w.records("pipedrive", "contact")
        assert [(r["fields"]["LastName"], r["fields"]["Email"]) for r in sf] == [
            ("Berg", "ann@x.io")
        ]
        assert len(pd) == 1 and pd[0]["fields"]["name"] == "Ann Berg"
        assert len(await w.records("hubspot", "contact")) == 1

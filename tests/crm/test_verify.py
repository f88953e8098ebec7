"""``python run.py crm verify [--connection NAME] [--repair]``: our system and each provider
compared through the sync's links, against the stand-ins on live clocks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from integration.pipelines.crm import SYNC
from integration.pipelines.crm.commands import run_verify
from tests.crm.world import OBJECTS, World, world


async def verify(w: World, *names: str, repair: bool = False) -> int:
    return await run_verify(w.settings(), names, repair_them=repair)


async def purge(w: World, provider: str, obj: str, record_id: str) -> None:
    """A hard delete at the provider, which a sync pass afterwards would not be asked to see."""
    url = f"{w.urls[provider]}/_standin/users/{OBJECTS[provider][obj]}/{record_id}?hard=true"
    await w._call("DELETE", url)


def last_line(capsys: pytest.CaptureFixture[str]) -> str:
    return capsys.readouterr().out.strip().splitlines()[-1]


async def test_a_settled_world_verifies_with_no_difference_and_exit_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with world(tmp_path) as w:
        await w.ours_create("contact", first_name="Ann", last_name="Berg", email="a@x.io")
        await w.user_creates("hubspot", "company", name="Acme", domain="acme.dk")
        await w.settle()
        assert await verify(w) == 0
        out = capsys.readouterr().out
        assert "hubspot: 2 record(s) linked; missing at the provider 0" in out
        assert out.strip().splitlines()[-1].startswith("verify: 3 connection(s), 6 linked")
        assert "OK" in out.strip().splitlines()[-1]


async def test_a_record_purged_at_a_provider_is_missing_there_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with world(tmp_path) as w:
        w.connected = ("salesforce",)
        row = await w.ours_create("contact", last_name="Holm", email="h@x.io")
        await w.settle(rounds=1)
        (sf,) = await w.records("salesforce", "contact")
        await purge(w, "salesforce", "contact", sf["id"])
        assert await verify(w) == 1
        out = capsys.readouterr().out
        assert f"contact:l{row['id']}" in out and "missing at the provider" in out
        assert out.strip().splitlines()[-1].startswith("verify: 1 connection(s), 0 linked")


async def test_repair_writes_a_purged_record_again_and_a_second_verify_exits_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with world(tmp_path) as w:
        w.connected = ("hubspot",)
        row = await w.ours_create("contact", last_name="Holm", email="h@x.io", phone="7")
        await w.settle(rounds=1)
        (hs,) = await w.records("hubspot", "contact")
        await purge(w, "hubspot", "contact", hs["id"])
        assert await verify(w, repair=True) == 0
        assert f"contact:l{row['id']}: repaired" in capsys.readouterr().out
        (again,) = await w.records("hubspot", "contact")
        fields: dict[str, Any] = again["fields"]
        assert (fields["our_id"], fields["email"], fields["phone"]) == (
            str(row["id"]),
            "h@x.io",
            "7",
        )
        assert await verify(w) == 0


async def test_an_edit_no_sync_pass_has_seen_is_different_by_field_and_repair_merges_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with world(tmp_path) as w:
        w.connected = ("pipedrive",)
        row = await w.ours_create("contact", first_name="Eva", last_name="Lind")
        await w.settle(rounds=1)
        (pd,) = await w.records("pipedrive", "contact")
        await w.user_edits("pipedrive", "contact", pd["id"], last_name="Lindqvist")
        assert await verify(w) == 1
        assert f"contact:l{row['id']}" in capsys.readouterr().out
        assert await verify(w, repair=True) == 0
        (ours,) = await w.ours("contact")
        assert ours["last_name"] == "Lindqvist"  # the provider's change, merged as the sync would


async def test_a_difference_shows_the_field_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with world(tmp_path) as w:
        w.connected = ("hubspot",)
        await w.ours_create("company", name="Acme", city="Aarhus")
        await w.settle(rounds=1)
        (hs,) = await w.records("hubspot", "company")
        await w.user_edits("hubspot", "company", hs["id"], city="Odense", industry="Food")
        assert await verify(w) == 1
        (line,) = [x for x in capsys.readouterr().out.splitlines() if x.startswith("  ")]
        assert line.split()[-2:] == ["city,", "industry"]


async def test_verify_of_one_connection_reads_only_that_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with world(tmp_path) as w:
        await w.ours_create("contact", last_name="Moe")
        await w.settle(rounds=1)
        assert await verify(w, "pipedrive") == 0
        lines = capsys.readouterr().out.strip().splitlines()
        assert lines[0].startswith("pipedrive: 1 record(s) linked")
        assert lines[-1].startswith("verify: 1 connection(s), 1 linked record(s): OK")


async def test_an_unknown_connection_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with world(tmp_path) as w:
        assert await verify(w, "zoho") == 2
        assert capsys.readouterr().out.startswith("verify: no connection zoho in ")


def test_verify_is_a_command_of_the_crm_sync() -> None:
    (verify_command,) = [c for c in SYNC.commands if c.name == "verify"]
    help_text = CliRunner().invoke(verify_command, ["--help"]).output
    assert "--connection NAME" in help_text and "--repair" in help_text


async def test_a_provider_record_no_sync_pass_has_seen_is_missing_in_ours_until_repaired(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with world(tmp_path) as w:
        w.connected = ("hubspot",)
        await w.ours_create("contact", last_name="Moe")
        await w.settle(rounds=1)
        hs_id = await w.user_creates("hubspot", "contact", lastname="Nyt", email="n@x.io")
        assert await verify(w) == 1
        assert f"contact:p{hs_id}" in capsys.readouterr().out
        assert await verify(w, repair=True) == 0
        assert sorted(r["last_name"] for r in await w.ours("contact")) == ["Moe", "Nyt"]

"""At the limits the connections file declares, a backlog never draws a refusal: the stand-ins
count zero 429s and zero budget 403s; and changes made while a record waits coalesce into fewer
writes than changes."""

from __future__ import annotations

from pathlib import Path

from tests.crm.test_sync import writes
from tests.crm.world import world


async def test_a_backlog_at_tight_limits_draws_no_429_or_403_from_any_provider(
    tmp_path: Path,
) -> None:
    limits = {
        "hubspot": {"limits": {"burst_limit": 12, "burst_window_s": 2.0}},
        "pipedrive": {"limits": {"burst_limit": 8, "burst_window_s": 2.0}},
        # Salesforce's 24-hour allocation, compressed to 3 s so a test can reach it.
        "salesforce": {"limits": {"allocation": 30, "window_s": 3.0}},
    }
    async with world(tmp_path, **limits) as w:
        w.extra = {
            "hubspot": "batch_writes = false\n[connections.limits]\nburst = 12\nburst_window = 2.0",
            "pipedrive": "[connections.limits]\nburst = 8\nburst_window = 2.0",
            "salesforce": (
                "batch_writes = false\n[connections.limits]\nallocation = 30\nwindow = 3.0"
            ),
        }
        for n in range(40):
            await w.ours_create("contact", last_name=f"Backlog {n}", email=f"b{n}@x.io")
        await w.settle(rounds=1)
        for provider in w.connected:
            stats = await w.stats(provider)
            assert stats["limited"] == 0, (provider, stats["limited_by_policy"])
            assert len(await w.records(provider, "contact")) == 40, provider


async def test_changes_made_while_a_record_waits_coalesce_into_fewer_writes(
    tmp_path: Path,
) -> None:
    async with world(tmp_path) as w:
        w.connected = ("hubspot",)
        row = await w.ours_create("contact", last_name="Often", phone="0")
        await w.settle(rounds=1)
        await w.reset_stats()
        for n in range(1, 11):
            await w.ours_edit("contact", row["id"], phone=str(n))
        await w.settle(rounds=1)
        (hs,) = await w.records("hubspot", "contact")
        assert hs["fields"]["phone"] == "10"
        assert writes(await w.stats("hubspot")) < 10

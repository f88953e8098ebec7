"""``python run.py intempus conflicts`` and ``intempus verify [--repair]`` as a person runs them,
against both stand-ins and the state a drain left."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from .conftest import Sides
from .test_sync import settle

RUN_PY = Path(__file__).resolve().parents[2] / "run.py"


async def run_py(sides: Sides, *args: str) -> tuple[int, str]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.upper().startswith("INTEMPUS_")},
        "INTEMPUS_URL": str(sides.settings.intempus_url),
        "INTEMPUS_USER": sides.settings.intempus_user,
        "INTEMPUS_API_KEY": sides.settings.intempus_api_key.get_secret_value(),
        "CASE_STORE_URL": str(sides.settings.case_store_url),
        "INTEMPUS_STATE_DB": str(sides.settings.state_db),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(RUN_PY), "intempus", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode()


async def test_conflicts_lists_a_clash_with_both_values_and_the_winner(sides: Sides) -> None:
    made = await sides.intempus.create(name="Shed")
    await settle(sides)
    [row] = await sides.local_cases()
    await sides.user_edits_intempus(made["id"], notes="intempus says")
    await sides.user_edits_local(row["id"], notes="local says")
    await settle(sides)

    status, out = await run_py(sides, "conflicts")

    assert status == 0
    assert "notes" in out and "'intempus says' / 'local says'" in out and "intempus" in out
    assert out.strip().endswith("1 conflict(s)")


async def test_verify_is_0_in_step_1_on_a_difference_and_repair_brings_it_back(
    sides: Sides,
) -> None:
    made = await sides.intempus.create(name="Barn")
    await settle(sides)
    status, out = await run_py(sides, "verify")
    assert status == 0, out
    assert "1 linked case(s): OK" in out

    await sides.user_edits_intempus(made["id"], city="Odense")  # not synced yet
    status, out = await run_py(sides, "verify")
    assert status == 1 and "different" in out and "city" in out

    status, out = await run_py(sides, "verify", "--repair")
    assert status == 0, out
    [row] = await sides.local_cases()
    assert row["city"] == "Odense"


async def test_the_api_key_never_appears_in_what_a_command_prints(sides: Sides) -> None:
    await sides.intempus.create(name="Loft")
    await settle(sides)
    status, out = await run_py(sides, "verify", "--log-level", "DEBUG")
    assert status == 0
    assert sides.settings.intempus_api_key.get_secret_value() not in out


async def test_status_shows_each_feeds_position_as_a_number_not_a_date(sides: Sides) -> None:
    await sides.intempus.create(name="Shed")
    await settle(sides)

    status, out = await run_py(sides, "status")

    assert status == 0
    positions = [
        line.split()[-1] for line in out.splitlines() if line.strip().startswith("position")
    ]
    assert len(positions) == 2 and all(p.isdigit() for p in positions), out
    assert "cursor" not in out


async def test_the_api_keys_help_says_unset_or_hidden_never_the_key(sides: Sides) -> None:
    status, out = await run_py(sides, "run", "--help")

    assert status == 0
    assert "(default: unset; env" in " ".join(out.split())

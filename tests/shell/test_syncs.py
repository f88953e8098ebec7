"""The syncs the command line offers: each listed under its own name, and loaded only when its
commands are asked for."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from integration.syncs import SYNCS, sync

REPO = Path(__file__).resolve().parents[2]


def test_every_listed_sync_loads_under_the_name_it_is_listed_by() -> None:
    assert all(sync(name).name == name for name in SYNCS)


def test_the_command_line_loads_no_other_syncs_package_until_it_is_asked_for() -> None:
    probe = (
        "import json, sys\n"
        "from integration.cli import Cli\n"
        "Cli()\n"
        "loaded = [m for m in sys.modules if m.startswith('integration.pipelines.')]\n"
        "print(json.dumps(sorted(loaded)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    loaded = json.loads(done.stdout)
    assert any(m.startswith("integration.pipelines.bigchat_ourapi") for m in loaded)
    assert not any(
        m.startswith(("integration.pipelines.tracos_erp", "integration.pipelines.intempus_cases"))
        for m in loaded
    )

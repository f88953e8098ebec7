"""What an operator sees of the CRM sync: /metrics per connection (budget left, lag per source,
outcomes), ``crm status`` per source, and a connections file that is wrong refused in one line."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import aiohttp

from integration.core.health import serve_health
from integration.core.shell import open_engine
from integration.pipelines.crm import SYNC
from tests.crm.world import world
from tests.helpers.policies import FAST_RETRY

ROOT = Path(__file__).resolve().parents[2]


async def test_metrics_show_each_connections_budget_lag_and_outcomes(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        await w.ours_create("contact", last_name="Metric")
        async with open_engine(SYNC, w.settings(), retry=FAST_RETRY) as engine:
            async with asyncio.timeout(60):
                await engine.run(asyncio.Event(), once=True)
            async with (
                serve_health(engine) as health,
                aiohttp.ClientSession() as session,
                session.get(health.url + "/metrics") as response,
            ):
                text = await response.text()
    assert 'integration_crm_budget_remaining{connection="hubspot",dimension="burst"}' in text
    assert 'integration_crm_budget_remaining{connection="pipedrive",dimension="tokens"}' in text
    assert 'integration_source_lag_seconds{source="salesforce.internal"} 0.0' in text
    assert 'integration_crm_outcomes{connection="hubspot",outcome="provider.create"} 1.0' in text


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "run.py"), "crm", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=ROOT,
    )


async def test_status_lists_every_connections_sources(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        settings = w.settings()
        await w.drain()
    done = run(
        "status",
        "--state-db",
        str(settings.state_db),
        "--connections",
        str(settings.connections),
    )
    assert done.returncode == 0, done.stderr
    for source in ("hubspot.contact", "salesforce.company", "pipedrive.internal"):
        assert f"\n{source}\n" in done.stdout


def test_a_connections_file_naming_an_unknown_canonical_field_is_refused_in_one_line(
    tmp_path: Path,
) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        'internal_url = "http://127.0.0.1:1"\n[[connections]]\nname = "hs"\n'
        'provider = "hubspot"\nurl = "http://127.0.0.1:2"\n'
        "[connections.mapping.contact]\n"
        'fields = [{field = "firstname", canonical = "given_name"}]\n'
    )
    done = run("--once", "--connections", str(path), "--state-db", str(tmp_path / "s.db"))
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "given_name" in lines[0] and "Traceback" not in done.stderr

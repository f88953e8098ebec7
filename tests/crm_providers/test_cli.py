"""python -m crm_providers: flags, a busy port, and a clean stop on SIGTERM and SIGINT."""

from __future__ import annotations

import asyncio
import signal
import time

import aiohttp
import pytest

from crm_providers.__main__ import build_parser, main, settings_from_args
from crm_providers.hubspot import HubSpotSettings
from crm_providers.pipedrive import PipedriveSettings
from crm_providers.salesforce import SalesforceSettings
from tests.helpers.cli import child_module, free_port, run_module, taken_port


def test_hubspot_flags_map_onto_settings() -> None:
    args = build_parser().parse_args(
        ["hubspot", "--burst-limit", "7", "--daily-limit", "70", "--search-per-second", "2",
         "--app-id", "5", "--records", "3", "--seed", "9", "--webhook-url", "http://x/h",
         "--webhook-attempts", "2", "--error-rate", "0.1", "--no-cursor-drift"]
    )  # fmt: skip
    s = settings_from_args(args)
    assert isinstance(s, HubSpotSettings)
    assert (s.limits.burst_limit, s.limits.daily_limit, s.limits.search_per_second) == (7, 70, 2)
    assert (s.app_id, s.records, s.seed, s.error_rate, s.cursor_drift) == (5, 3, 9, 0.1, False)
    assert (s.webhook.url, s.webhook.max_attempts) == ("http://x/h", 2)


def test_salesforce_and_pipedrive_flags_map_onto_settings() -> None:
    sf = settings_from_args(build_parser().parse_args(["salesforce", "--allocation", "50"]))
    assert isinstance(sf, SalesforceSettings) and sf.limits.allocation == 50
    pd = settings_from_args(
        build_parser().parse_args(["pipedrive", "--daily-tokens", "99", "--abuse-after", "4"])
    )
    assert isinstance(pd, PipedriveSettings)
    assert (pd.limits.daily_tokens, pd.limits.abuse_after, pd.limits.burst_limit) == (99, 4, 20)


def test_defaults_inject_no_fault() -> None:
    s = settings_from_args(build_parser().parse_args(["pipedrive"]))
    assert s.faults().model_dump() == {
        "error_rate": 0.0,
        "ambiguous_rate": 0.0,
        "latency_ms": 0.0,
        "duplicate_rate": 0.0,
        "reorder_rate": 0.0,
        "cursor_drift": True,
    }


@pytest.mark.parametrize("argv", [["hubspot", "--error-rate", "1.5"], ["nosuch"], []])
def test_invalid_flags_exit_2(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2


@pytest.mark.parametrize("provider", ["hubspot", "salesforce", "pipedrive"])
def test_help_is_plain_text_with_every_default_stated(
    provider: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main([provider, "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    assert "`" not in text
    options = [line.split()[0] for line in text.splitlines() if line.strip().startswith("--")]
    flags = [o for o in options if o != "--help"]
    assert len(flags) > 15
    # Every flag says its default, in words where a number would not do ("the cursor drifts").
    assert text.count("(default") == len(flags)


def test_a_busy_port_is_one_line_and_exit_2() -> None:
    with taken_port() as port:
        done = run_module("crm_providers", "salesforce", "--port", str(port))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"crm_providers: port {port} is already in use (try --port 0 or another port)"
    ]


@pytest.mark.parametrize(
    ("provider", "path", "sig"),
    [
        ("hubspot", "/crm/v3/objects/contacts", signal.SIGTERM),
        ("pipedrive", "/api/v2/persons", signal.SIGINT),
    ],
)
async def test_starts_answers_and_stops_cleanly(
    provider: str, path: str, sig: signal.Signals
) -> None:
    port = free_port()
    async with child_module(
        "crm_providers", provider, "--port", str(port), "--records", "2"
    ) as proc:
        began = time.monotonic()
        answered = False
        async with aiohttp.ClientSession() as session:
            while time.monotonic() - began < 10 and not answered:
                try:
                    async with session.get(f"http://127.0.0.1:{port}{path}") as resp:
                        assert resp.status == 200
                        answered = True
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.05)
        assert answered
        proc.send_signal(sig)
        stdout, stderr = await asyncio.wait_for(proc.communicate(), timeout=10)
    assert proc.returncode == 0, stderr.decode()
    [line] = stdout.decode().splitlines()
    assert f"crm_providers {provider} listening on http://127.0.0.1:{port}" in line

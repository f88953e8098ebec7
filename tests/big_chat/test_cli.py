"""``python -m big_chat``: flags, fast start, clean exit on SIGTERM and SIGINT."""

from __future__ import annotations

import asyncio
import signal
import time
from datetime import UTC, datetime

import aiohttp
import pytest

from big_chat.__main__ import build_parser, main, parse_duration, settings_from_args
from tests.helpers.cli import child_module, free_port


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("90s", 90), ("10m", 600), ("1h", 3600), ("2h30m", 9000), ("1h0m5s", 3605)],
)
def test_history_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_flags_map_onto_settings() -> None:
    args = build_parser().parse_args(
        [
            "--seed", "9", "--advisors", "4", "--conversation-rate", "2", "--page-size", "20",
            "--history", "10m", "--epoch", "1700000000", "--messages", "1-3",
            "--message-gap", "2-9", "--transfer-probability", "0.4", "--repeat-end-rate", "0.1",
            "--after-end-rate", "0.2", "--missing-start-rate", "0.3",
            "--wrong-old-advisor-rate", "0.4", "--error-rate", "0.05", "--latency-ms", "20",
            "--rate-limit", "50", "--duplicate-rate", "0.1", "--late-rate", "0.2", "--shuffle",
            "--ignore-end-at", "--unreplayable",
        ]
    )  # fmt: skip
    s = settings_from_args(args)
    assert (s.seed, s.advisors, s.conversation_rate, s.page_size) == (9, 4, 2, 20)
    assert (s.history, s.epoch) == (600, 1_700_000_000)
    assert (s.messages_min, s.messages_max, s.message_gap_min_s, s.message_gap_max_s) == (
        1,
        3,
        2,
        9,
    )
    assert (s.repeat_end_rate, s.after_end_rate, s.missing_start_rate) == (0.1, 0.2, 0.3)
    assert (s.error_rate, s.latency_ms, s.rate_limit) == (0.05, 20, 50)
    assert s.shuffle and s.ignore_end_at and s.unreplayable


def test_defaults_inject_no_fault() -> None:
    s = settings_from_args(build_parser().parse_args([]))
    assert s.fault_settings().model_dump() == {
        "error_rate": 0.0,
        "error_all_routes": False,
        "latency_ms": 0,
        "rate_limit": None,
        "duplicate_rate": 0.0,
        "late_rate": 0.0,
        "shuffle": False,
        "ignore_end_at": False,
        "unreplayable": False,
        "history_mode": "full",
        "next_page_url_override": None,
    }
    assert s.repeat_end_rate == s.after_end_rate == s.missing_start_rate == 0


@pytest.mark.parametrize(
    "argv", [["--error-rate", "1.5"], ["--messages", "5-2"], ["--history", "x"]]
)
def test_invalid_flags_are_refused(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)  # refused before anything is served
    assert exc.value.code == 2


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_starts_promptly_and_exits_cleanly(sig: signal.Signals) -> None:
    port = free_port()
    began = time.monotonic()
    async with child_module("big_chat", "--port", str(port), "--history", "30d") as proc:
        answered = None
        async with aiohttp.ClientSession() as session:
            while time.monotonic() - began < 20 and answered is None:
                try:
                    url = f"http://127.0.0.1:{port}/events"
                    recent = datetime.fromtimestamp(time.time() - 600, tz=UTC).isoformat()
                    params = {"start_at": recent}
                    async with session.get(url, params=params) as resp:
                        assert resp.status == 200
                        assert (await resp.json())["events"]
                        answered = time.monotonic() - began
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.02)
        # Guards against eager work at start-up: generating thirty days of world would take
        # minutes, while a lazy world answers for the last ten minutes in well under a second.
        # Not the figure (the machine may be busy): scripts/startup_time.py measures that.
        assert answered is not None and answered < 15.0
        proc.send_signal(sig)
        stdout, stderr = await asyncio.wait_for(proc.communicate(), timeout=5)
    assert proc.returncode == 0, stderr.decode()
    [line] = stdout.decode().splitlines()
    assert f"listening on http://127.0.0.1:{port}" in line and "epoch" in line

"""python -m intempus: flags, help, a busy port, and a clean stop on SIGTERM and SIGINT."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from intempus.__main__ import build_parser, main, settings_from_args
from tests.helpers.cli import free_port, serve_then_stop, taken_port


def test_flags_map_onto_settings() -> None:
    args = build_parser().parse_args(
        ["--user", "me@example.com", "--api-key", "k", "--no-basic-auth", "--cases", "3",
         "--rate-per-minute", "off", "--rate-per-day", "10", "--offset-drift",
         "--no-stale-write-lt", "--put-creates", "--unique-number", "--delete-cascade",
         "--strict-slash", "--cursor-meta-full", "--filters", "minimal", "--html-500",
         "--lt-late-commit", "0.5", "--error-rate", "0.1", "--ambiguous-rate", "0.2",
         "--latency-ms", "5"]
    )  # fmt: skip
    s = settings_from_args(args)
    assert s.users == {"me@example.com": "k"} and not s.basic_auth and s.cases == 3
    assert (s.rate_per_minute, s.rate_per_day) == (None, 10)
    assert s.offset_drift and not s.stale_write_lt and s.put_creates and s.unique_number
    assert s.delete_cascade and s.strict_slash and s.cursor_meta_full and s.html_500
    assert (s.filters, s.lt_late_commit, s.error_rate, s.ambiguous_rate, s.latency_ms) == (
        "minimal",
        0.5,
        0.1,
        0.2,
        5,
    )


def test_the_defaults_are_the_contracts_likely_behaviour() -> None:
    s = settings_from_args(build_parser().parse_args([]))
    assert (s.rate_per_minute, s.rate_per_day) == (500, 50_000)
    assert s.stale_write_lt and s.basic_auth and s.filters == "full"
    assert not (s.offset_drift or s.put_creates or s.delete_cascade or s.strict_slash)
    assert (s.error_rate, s.ambiguous_rate, s.lt_late_commit) == (0, 0, 0)


def test_every_flag_has_a_plain_help_text() -> None:
    parser = build_parser()
    for action in parser._actions:
        if action.dest != "help":
            assert action.help and "default" in action.help, action.dest
            assert "`" not in action.help


def test_a_busy_port_gives_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with taken_port() as port:
        status = main(["--port", str(port), "--db", str(tmp_path / "x.db")])
    assert status == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"intempus: port {port} is already in use (try --port 0 or another port)"
    ]


def test_invalid_settings_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--error-rate", "2", "--db", str(tmp_path / "x.db")]) == 2
    assert "error_rate" in capsys.readouterr().err


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_the_server_starts_and_exits_0_on_a_signal(tmp_path: Path, stop: signal.Signals) -> None:
    port = free_port()
    db = tmp_path / "cli.db"
    run = serve_then_stop(
        ["intempus", "--port", str(port), "--db", str(db)],
        f"http://127.0.0.1:{port}/openapi.json",
        stop,
    )
    assert run.up_after is not None
    assert run.returncode == 0, run.err
    assert run.out.strip() == f"intempus listening on http://127.0.0.1:{port} (db: {db})"

"""python -m crm_internal: flags, help, a busy port, and a clean stop on SIGTERM and SIGINT."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from crm_internal.__main__ import build_parser, main
from tests.helpers.cli import free_port, serve_then_stop, taken_port


def test_every_flag_has_a_plain_help_text_with_its_default() -> None:
    parser = build_parser()
    for action in parser._actions:
        if action.dest != "help":
            assert action.help and "default" in action.help, action.dest


def test_the_default_port_is_8290() -> None:
    assert build_parser().parse_args([]).port == 8290


def test_invalid_settings_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--error-rate", "2", "--db", str(tmp_path / "x.db")]) == 2
    err = capsys.readouterr().err
    assert "error_rate" in err and "Traceback" not in err


def test_a_busy_port_gives_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with taken_port() as port:
        status = main(["--port", str(port), "--db", str(tmp_path / "x.db")])
    assert status == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"crm_internal: port {port} is already in use (try --port 0 or another port)"
    ]


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_the_server_starts_and_exits_0_on_a_signal(tmp_path: Path, stop: signal.Signals) -> None:
    port = free_port()
    db = tmp_path / "cli.db"
    run = serve_then_stop(
        ["crm_internal", "--port", str(port), "--db", str(db)],
        f"http://127.0.0.1:{port}/changes",
        stop,
    )
    assert run.up_after is not None
    assert run.returncode == 0, run.err
    assert run.out.strip() == f"crm_internal listening on http://127.0.0.1:{port} (db: {db})"

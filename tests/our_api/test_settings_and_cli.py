"""Settings validation, and ``python -m our_api``: quick to start, clean to stop."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from pydantic import ValidationError

from our_api import OurApiSettings
from tests.helpers.cli import free_port, run_module, serve_then_stop


@pytest.mark.parametrize("field", ["error_rate", "ambiguous_rate"])
@pytest.mark.parametrize("value", [-0.1, 1.1])
def test_settings_refuse_a_rate_outside_0_to_1(field: str, value: float) -> None:
    with pytest.raises(ValidationError):
        OurApiSettings.model_validate({field: value})


def test_settings_refuse_a_negative_latency_and_a_zero_rate_limit() -> None:
    with pytest.raises(ValidationError):
        OurApiSettings(latency_ms=-1)
    with pytest.raises(ValidationError):
        OurApiSettings(rate_limit=0)


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_cli_answers_promptly_and_exits_0_on_signal(tmp_path: Path, stop: signal.Signals) -> None:
    port = free_port()
    run = serve_then_stop(
        ["our_api", "--port", str(port), "--db", str(tmp_path / "cli.db")],
        f"http://127.0.0.1:{port}/chats",
        stop,
        within_s=5,
        poll_s=0.02,
    )
    # A guard, not the figure (the machine may be busy): scripts/startup_time.py measures it.
    assert run.up_after is not None and run.up_after < 3.0, f"answered after {run.up_after} s"
    assert run.returncode == 0, run.err
    assert (
        run.out.strip()
        == f"our_api listening on http://127.0.0.1:{port} (db: {tmp_path / 'cli.db'})"
    )


def test_cli_refuses_invalid_settings(tmp_path: Path) -> None:
    result = run_module("our_api", "--error-rate", "2", "--db", str(tmp_path / "x.db"))
    assert result.returncode == 2
    assert "error_rate" in result.stderr

"""Settings validation, and ``python -m our_api``: quick to start, clean to stop."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from pydantic import ValidationError

from our_api import OurApiSettings

REPO = Path(__file__).resolve().parents[2]


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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=0.5) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_cli_answers_promptly_and_exits_0_on_signal(tmp_path: Path, stop: signal.Signals) -> None:
    port = _free_port()
    started = time.monotonic()
    server = subprocess.Popen(
        [sys.executable, "-m", "our_api", "--port", str(port), "--db", str(tmp_path / "cli.db")],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        up_after = None
        while time.monotonic() - started < 5:
            if _answers(f"http://127.0.0.1:{port}/chats"):
                up_after = time.monotonic() - started
                break
            time.sleep(0.02)
        # A guard, not the figure (the machine may be busy): scripts/startup_time.py measures it.
        assert up_after is not None and up_after < 3.0, f"answered after {up_after} s"
        server.send_signal(stop)
        out, err = server.communicate(timeout=10)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    assert server.returncode == 0, err
    assert (
        out.strip() == f"our_api listening on http://127.0.0.1:{port} (db: {tmp_path / 'cli.db'})"
    )


def test_cli_refuses_invalid_settings(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "our_api", "--error-rate", "2", "--db", str(tmp_path / "x.db")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert result.returncode == 2
    assert "error_rate" in result.stderr

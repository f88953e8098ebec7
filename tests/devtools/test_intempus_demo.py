"""``python run.py intempus demo`` as a person runs it: started, left to run a few seconds while
its simulated user edits both sides, stopped with Ctrl-C (SIGINT); it settles, verifies and
exits 0. And a port already taken is one line and exit status 2, not a traceback."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from devtools.bench.processes import HOST, REPO, free_port

STARTED = "Ctrl-C stops."


def _demo(tmp_path: Path, intempus_port: int, case_store_port: int) -> subprocess.Popen[bytes]:
    out = (tmp_path / "demo.out").open("wb")
    return subprocess.Popen(
        [
            sys.executable, "run.py", "intempus", "demo",
            "--intempus-port", str(intempus_port),
            "--case-store-port", str(case_store_port),
            "--dir", str(tmp_path / "demo"),
            "--cases", "3",
            "--rate", "5",
            "--poll-interval", "0.5",
        ],
        cwd=REPO,
        stdout=out,
        stderr=subprocess.STDOUT,
    )  # fmt: skip


def _wait_for(path: Path, text: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        output = path.read_text(errors="replace")
        if text in output:
            return output
        time.sleep(0.1)
    raise AssertionError(f"{text!r} not printed within {timeout:g} s:\n{output}")


@pytest.mark.slow
def test_demo_stops_on_sigint_settles_and_verifies_both_sides_agree(tmp_path: Path) -> None:
    demo = _demo(tmp_path, free_port(), free_port())
    try:
        _wait_for(tmp_path / "demo.out", STARTED, 30)
        time.sleep(4)  # the user edits both sides, the sync polls a few times
        demo.send_signal(signal.SIGINT)
        status = demo.wait(90)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    output = (tmp_path / "demo.out").read_text(errors="replace")
    assert status == 0, output
    assert "the user stopped" in output
    verify = [line for line in output.splitlines() if line.startswith("verify: ")]
    assert verify and "linked case(s): OK" in verify[0], output
    assert (tmp_path / "demo" / "state.db").exists()


def test_a_taken_port_is_one_line_and_exit_status_2(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind((HOST, 0))
        taken.listen()
        demo = _demo(tmp_path, taken.getsockname()[1], free_port())
        status = demo.wait(60)
    output = (tmp_path / "demo.out").read_text(errors="replace")
    assert status == 2, output
    assert "cannot listen" in output and "--intempus-port" in output
    assert "Traceback" not in output

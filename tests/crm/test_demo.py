"""``python run.py crm demo`` as a person runs it, on any free ports: our system and three
provider stand-ins started, records seeded on every side, the sync run for ``--seconds``, then
settled and every connection verified; the exit status is the verdict. A port already taken is
one line and exit status 2, not a traceback."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from devtools.bench.processes import HOST, REPO

ANY_PORT = ("--internal-port", "0", "--hubspot-port", "0", "--salesforce-port", "0")


def demo(tmp_path: Path, *flags: str, pipedrive_port: int = 0) -> tuple[int, str]:
    """The demo run to its end (bounded: a hung demo fails the test, it does not hang it)."""
    done = subprocess.run(
        [
            sys.executable, "run.py", "crm", "demo", *ANY_PORT,
            "--pipedrive-port", str(pipedrive_port),
            "--dir", str(tmp_path / "demo"),
            "--poll-interval", "0.5",
            *flags,
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=90,
    )  # fmt: skip
    return done.returncode, done.stdout.decode(errors="replace")


def verify_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("verify: ")]


@pytest.mark.slow
def test_the_demo_stops_after_its_seconds_settles_and_verifies_every_connection(
    tmp_path: Path,
) -> None:
    # People edit so rarely that none does within the run: what is verified is the seeding
    # on every side carried everywhere, the settle and the verdict.
    status, output = demo(tmp_path, "--seconds", "6", "--rate", "0.01", "--records", "2")
    assert status == 0, output
    assert "the people stopped" in output
    for name in ("hubspot", "salesforce", "pipedrive"):
        assert f"{name}: 16 record(s) linked; missing at the provider 0" in output, output
    (line,) = verify_lines(output)
    assert line.startswith("verify: 3 connection(s), 48 linked record(s): OK"), output
    assert (tmp_path / "demo" / "crm-state.db").exists()
    assert (tmp_path / "demo" / "crm-connections.toml").exists()


@pytest.mark.slow
def test_with_people_editing_every_side_the_demo_ends_verified(tmp_path: Path) -> None:
    status, output = demo(tmp_path, "--seconds", "6", "--rate", "3")
    assert "Traceback" not in output, output
    (line,) = verify_lines(output)
    edits = output.split("the people stopped (")[1].split(" edit(s)")[0]
    assert int(edits) > 0, output
    assert status == 0 and ": OK" in line, output


def test_a_taken_port_is_one_line_and_exit_status_2(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind((HOST, 0))
        taken.listen()
        status, output = demo(tmp_path, "--seconds", "1", pipedrive_port=taken.getsockname()[1])
    assert status == 2, output
    assert "cannot listen on port" in output and "--pipedrive-port" in output
    assert "Traceback" not in output

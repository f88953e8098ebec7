"""``python -m our_api`` as a newcomer meets it: plain help with every default, and one line
(exit 2) when the port is taken."""

from __future__ import annotations

import socket
from pathlib import Path

from our_api.__main__ import build_parser
from tests.helpers.cli import run_module


def test_help_is_plain_text_and_every_flag_says_its_default() -> None:
    parser = build_parser()
    assert "``" not in parser.format_help()
    for action in parser._actions:
        if action.dest != "help":
            assert action.help and "(default: " in action.help, action.dest


def test_a_busy_port_is_one_line_naming_it_and_exit_2(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = run_module("our_api", "--port", str(port), "--db", str(tmp_path / "x.db"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"our_api: port {port} is already in use (try --port 0 or another port)"
    ]
    assert not (tmp_path / "x.db").exists()  # refused before anything was opened

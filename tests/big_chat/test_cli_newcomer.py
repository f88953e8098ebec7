"""``python -m big_chat`` as a newcomer meets it: plain help with every default, the new flags,
a scripted world from a file, and one line (exit 2) when the port is taken."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from big_chat.__main__ import build_parser, main, settings_from_args
from tests.helpers.cli import run_module


def test_help_is_plain_text_and_every_flag_says_its_default() -> None:
    parser = build_parser()
    text = parser.format_help()
    assert "``" not in text and "(2, 8)" not in text
    for action in parser._actions:
        if action.dest != "help":
            assert action.help and "(default: " in action.help, action.dest


def test_the_harsh_world_and_serving_flags_map_onto_settings() -> None:
    args = build_parser().parse_args(
        [
            "--message-gap", "0-3", "--repeat-text-rate", "0.3", "--same-second-rate", "0.2",
            "--transfer-before-start-rate", "0.1", "--after-end-delay", "1h",
            "--history-mode", "start_only", "--next-page-url-override", "http://[::1", "--live",
        ]
    )  # fmt: skip
    s = settings_from_args(args)
    assert (s.message_gap_min_s, s.repeat_text_rate, s.same_second_rate) == (0, 0.3, 0.2)
    assert (s.transfer_before_start_rate, s.after_end_delay_s) == (0.1, 3600)
    assert (s.history_mode, s.next_page_url_override, s.live) == (
        "start_only",
        "http://[::1",
        True,
    )


def test_the_new_knobs_are_off_by_default() -> None:
    s = settings_from_args(build_parser().parse_args([]))
    assert s.repeat_text_rate == s.same_second_rate == s.transfer_before_start_rate == 0
    assert (s.after_end_delay_s, s.history_mode, s.next_page_url_override, s.live) == (
        None,
        "full",
        None,
        False,
    )


def test_a_malformed_script_file_is_refused_with_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "world.json"
    bad.write_text(json.dumps({"conversations": [{"conversation_id": 1}]}))
    with pytest.raises(SystemExit) as exc:
        main(["--script", str(bad)])
    assert exc.value.code == 2


def test_a_busy_port_is_one_line_naming_it_and_exit_2() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = run_module("big_chat", "--port", str(port))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"big_chat: port {port} is already in use (try --port 0 or another port)"
    ]
    assert result.stdout == ""

"""``python run.py`` as a newcomer meets it: help texts that are plain and complete, each command
with only the flags it uses, the same duration forms everywhere, and the demo's status line kept
apart from its log lines."""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import click
import pytest

from integration.cli import Cli
from integration.core.commands import SETTING, load_settings
from integration.pipelines.bigchat_ourapi.settings import BigChatOurApiSettings as Settings

RUN_PY = Path(__file__).resolve().parents[2] / "run.py"

COMMANDS = [
    ["run"],
    ["demo"],
    ["status"],
    ["dead-letters"],
    ["verify"],
    ["tracos"],
    ["tracos", "sample"],
    ["tracos", "status"],
    ["intempus"],
    ["intempus", "run"],
    ["intempus", "conflicts"],
    ["intempus", "verify"],
    ["bench"],
]


def run_py(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k.upper() not in _SETTINGS}
    env["COLUMNS"] = "100"
    return subprocess.run(
        [sys.executable, str(RUN_PY), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=cwd,
    )


_SETTINGS = {name.upper() for name in Settings.model_fields}


def _command(*names: str) -> click.Command:
    command: click.Command | None = Cli()
    for name in names:
        assert isinstance(command, click.Group)
        command = command.get_command(click.Context(command), name)
    assert command is not None
    return command


def _options(*names: str) -> list[click.Option]:
    return [p for p in _command(*names).params if isinstance(p, click.Option)]


def _option_lines_without_help(text: str) -> list[str]:
    """Option lines of a rendered ``--help`` that have no text after the flag, and no text
    on the line below either (argparse puts the help there when the flag is long)."""
    lines = text.splitlines()
    missing = []
    for n, line in enumerate(lines):
        if not re.match(r"  -", line):
            continue
        if re.match(r"  -\S*( \S+)?(, -\S+( \S+)?)*\s{2,}\S", line):
            continue  # help on the same line
        below = lines[n + 1] if n + 1 < len(lines) else ""
        if re.match(r"\s{8,}\S", below) and not below.strip().startswith("-"):
            continue  # help on the line below
        missing.append(line)
    return missing


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_help_is_plain_and_every_option_line_has_a_help_text(command: list[str]) -> None:
    done = run_py(*command, "--help")
    assert done.returncode == 0, done.stderr
    assert "``" not in done.stdout
    assert _option_lines_without_help(done.stdout) == []


def test_the_help_check_sees_an_option_without_help() -> None:
    text = "options:\n  -h, --help  show this\n  --seed SEED\n  --port PORT  the port\n"
    assert _option_lines_without_help(text) == ["  --seed SEED"]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_flag_says_its_default(command: list[str]) -> None:
    for option in _options(*command):
        if option.required or option.hidden:
            continue
        assert "default" in (option.help or ""), option.opts


def _setting_flags(*command: str) -> set[str]:
    return {
        option.opts[0] for option in _options(*command) if (option.name or "").startswith(SETTING)
    }


def test_run_takes_every_setting_as_a_flag() -> None:
    assert _setting_flags("run") == {f"--{n.replace('_', '-')}" for n in Settings.model_fields}


def test_status_and_dead_letters_take_only_the_state_and_log_settings() -> None:
    state = {"--state-db", "--state-url", "--log-level", "--log-format"}
    assert _setting_flags("dead-letters") == state
    # And status the inbox, for the partitions' lag when several workers run.
    assert _setting_flags("status") == state | {"--inbox-url", "--inbox-name"}


def test_verify_and_demo_do_not_offer_worker_settings_they_ignore() -> None:
    for command in ("verify", "demo"):
        flags = _setting_flags(command)
        assert "--shutdown-grace" not in flags
        assert "--retention" not in flags
        assert "--max-window" not in flags
    assert "--metrics-port" not in _setting_flags("verify")
    assert {"--bigchat-url", "--ourapi-url", "--state-db", "--http-timeout"} <= _setting_flags(
        "verify"
    )
    assert {"--poll-interval", "--metrics-port"} <= _setting_flags("demo")


@pytest.mark.parametrize("text", ["90", "90s", "10m", "1h30m", "2d"])
def test_demo_history_takes_a_duration_as_big_chat_does(text: str) -> None:
    from big_chat.durations import parse_duration

    ctx = _command("demo").make_context("demo", ["--history", text])
    assert ctx.params["history"] == parse_duration(text)


def test_duration_settings_take_a_duration() -> None:
    ctx = _command("run").make_context("run", ["--retention", "7d", "--poll-interval", "1m30s"])
    settings = load_settings(Settings, ctx.params)
    assert settings.retention == 7 * 86400
    assert settings.poll_interval == 90


def test_a_bad_flag_is_one_line_naming_the_help_and_exit_status_2() -> None:
    done = run_py("demo", "--history", "10x")
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "python run.py demo: Invalid value for '--history': not a duration: '10x' (try 90, 90s, "
        "10m, 1h, 1h30m or 2d) (see python run.py demo --help)"
    ]


def test_a_bad_setting_is_still_the_one_line_configuration_error(tmp_path: Path) -> None:
    done = run_py("status", "--log-level", "LOUD", cwd=tmp_path)
    assert done.returncode == 2
    assert len(done.stderr.splitlines()) == 1
    assert done.stderr.startswith("configuration error: LOG_LEVEL")


# -- the demo's status line ---------------------------------------------------------------

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _demo_in_a_terminal(tmp_path: Path, seconds: float) -> str:
    """The demo run under a pseudo-terminal (stdout and stderr both the terminal) for
    ``seconds``, then stopped with SIGINT: everything it drew."""
    env = {k: v for k, v in os.environ.items() if k.upper() not in _SETTINGS}
    env.update(COLUMNS="200", LINES="50", TERM="xterm")
    main, child = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, str(RUN_PY), "demo", "--dir", str(tmp_path / "demo"),
         "--bigchat-port", "0", "--ourapi-port", "0", "--metrics-port", "0", "--history", "1m",
         "--no-faults"],
        stdin=child, stdout=child, stderr=child, env=env, cwd=tmp_path, close_fds=True,
    )  # fmt: skip
    os.close(child)
    out = bytearray()
    stop_at = time.monotonic() + seconds
    deadline = stop_at + 30
    stopped = False
    while time.monotonic() < deadline:
        if not stopped and time.monotonic() >= stop_at:
            proc.send_signal(signal.SIGINT)
            stopped = True
        ready, _, _ = select.select([main], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(main, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            out += chunk
        elif stopped and proc.poll() is not None:
            break
    os.close(main)
    proc.wait(timeout=10)
    assert proc.returncode == 0
    return out.decode("utf-8", "replace")


@pytest.mark.slow
def test_on_a_terminal_log_lines_print_above_the_status_line_never_glued_to_it(
    tmp_path: Path,
) -> None:
    drawn = _demo_in_a_terminal(tmp_path, seconds=7)
    # What each stretch of the screen held: text between line feeds and carriage returns,
    # with the cursor and colour sequences left out.
    pieces = [p.strip() for p in re.split(r"[\r\n]", ANSI.sub("", drawn)) if p.strip()]
    status = [p for p in pieces if "backlog" in p and "applied" in p]
    logs = [p for p in pieces if " INFO " in p]
    assert status, drawn
    assert any("poll bigchat" in p for p in logs), drawn
    glued = [p for p in pieces if ("backlog" in p) and (" INFO " in p or "integration" in p)]
    assert glued == []
    # Each log line starts a line of its own: the timestamp first.
    assert all(re.match(r"\d{4}-\d\d-\d\dT", p) for p in logs)
    assert "demo stopped cleanly." in pieces


@pytest.mark.slow
def test_piped_the_demo_prints_whole_progress_lines_and_no_redraws(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k.upper() not in _SETTINGS}
    proc = subprocess.Popen(
        [sys.executable, str(RUN_PY), "demo", "--dir", str(tmp_path / "demo"),
         "--bigchat-port", "0", "--ourapi-port", "0", "--metrics-port", "0", "--history", "1m",
         "--no-faults"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=tmp_path, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    seen = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any("backlog" in line for line in seen):
        seen.append(proc.stdout.readline())  # a progress line comes every few seconds
    proc.send_signal(signal.SIGINT)
    rest, err = proc.communicate(timeout=30)
    out = "".join(seen) + rest
    assert proc.returncode == 0
    assert "\r" not in out and "\x1b" not in out
    progress = [line for line in out.splitlines() if "backlog" in line]
    assert len(progress) >= 2  # at least one every few seconds, and the final one
    assert all(re.fullmatch(r"\s*\d+s  windows .* retries\s+\d+", line) for line in progress)
    assert "applied also counts events taken from conversation histories" in out
    assert "poll bigchat" in err


def test_status_refuses_a_file_that_is_not_a_worker_state_and_changes_nothing(
    tmp_path: Path,
) -> None:
    other = tmp_path / "ourapi.db"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE chats (id TEXT)")
    before = other.read_bytes()

    for command in ("status", "dead-letters"):
        result = subprocess.run(
            [sys.executable, str(RUN_PY), command, "--state-db", str(other)],
            capture_output=True, text=True, timeout=60, cwd=tmp_path,
        )  # fmt: skip
        assert result.returncode == 1
        assert "is not a worker's state file" in result.stderr

    assert other.read_bytes() == before

"""The files in deploy/ agree with the program: every setting documented, exit statuses and stop
timeouts the supervisors act on."""

from __future__ import annotations

import configparser
import re
from pathlib import Path

from integration.core.shell import EXIT_CONFIG, EXIT_OK
from integration.pipelines.bigchat_ourapi.settings import BigChatOurApiSettings as Settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
ENV_FILE = DEPLOY / "integration-worker.env"


def env_names() -> set[str]:
    """Names assigned in the example environment file, commented out or not."""
    return set(re.findall(r"^#?([A-Z][A-Z0-9_]*)=", ENV_FILE.read_text(), re.MULTILINE))


def test_the_example_environment_file_names_every_setting() -> None:
    assert {name.upper() for name in Settings.model_fields} <= env_names()


def test_the_example_environment_file_is_valid_as_it_stands() -> None:
    settings = Settings(_env_file=ENV_FILE)
    assert str(settings.state_db).startswith("/var/lib/integration-worker/")


def test_systemd_does_not_restart_after_a_configuration_error_or_a_clean_stop() -> None:
    unit = (DEPLOY / "systemd" / "integration-worker.service").read_text()
    assert "Restart=on-failure" in unit.splitlines()  # exit 0 is not a failure
    assert f"RestartPreventExitStatus={EXIT_CONFIG}" in unit.splitlines()


def test_supervisord_expects_a_clean_stop_and_a_configuration_error() -> None:
    conf = configparser.ConfigParser(inline_comment_prefixes=None, interpolation=None)
    conf.read(DEPLOY / "supervisord" / "integration-worker.conf")
    program = conf["program:integration-worker"]
    assert program["autorestart"] == "unexpected"
    assert {int(code) for code in program["exitcodes"].split(",")} == {EXIT_OK, EXIT_CONFIG}
    assert program["stopsignal"] == "TERM"


def test_supervisors_wait_longer_than_a_clean_stop_can_take() -> None:
    # A clean stop lets the poll finish (SHUTDOWN_GRACE), then the events in flight (as long again).
    longest_stop = 2 * Settings.model_fields["shutdown_grace"].default
    unit = (DEPLOY / "systemd" / "integration-worker.service").read_text()
    timeout = re.search(r"^TimeoutStopSec=(\d+)$", unit, re.MULTILINE)
    assert timeout is not None and int(timeout.group(1)) > longest_stop
    conf = configparser.ConfigParser(interpolation=None)
    conf.read(DEPLOY / "supervisord" / "integration-worker.conf")
    assert int(conf["program:integration-worker"]["stopwaitsecs"]) > longest_stop


def test_the_several_workers_example_is_valid_settings_with_the_main_file() -> None:
    extra = DEPLOY / "multi-worker" / "multi-worker.env"
    names = set(re.findall(r"^([A-Z][A-Z0-9_]*)=", extra.read_text(), re.MULTILINE))
    assert names == {"STATE_URL", "INBOX_URL", "PARTITIONS", "WORKER_TTL"}
    settings = Settings(_env_file=(ENV_FILE, extra))
    assert settings.inbox_url is not None and settings.state_url is not None


def test_the_several_workers_unit_restarts_like_the_single_one_and_reads_both_files() -> None:
    unit = (DEPLOY / "multi-worker" / "integration-worker@.service").read_text().splitlines()
    single = (DEPLOY / "systemd" / "integration-worker.service").read_text().splitlines()
    for line in ("Restart=on-failure", f"RestartPreventExitStatus={EXIT_CONFIG}"):
        assert line in unit
    assert [x for x in unit if x.startswith("ExecStart=")] == [
        x for x in single if x.startswith("ExecStart=")
    ]
    assert "EnvironmentFile=/etc/integration-worker/multi-worker.env" in unit

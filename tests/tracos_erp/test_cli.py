"""``python run.py tracos``: drain mode's exit statuses, the sample command, settings checked at
start, and what a newcomer sees when MongoDB is not there."""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from pymongo.asynchronous.collection import AsyncCollection

from integration.connectors.erp_files.models import ErpWorkOrder
from integration.connectors.tracos.client import Doc

from .conftest import ROOT, erp_order, fail_commands, free_port, own_server, tracos_doc

CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, PR_CAPBSET_DROP = 1, 2, 24


def environment(mongo_uri: str, db_name: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("MONGO_", "DATA_", "TRACOS_", "LOG_", "MAX_FILE"))
    }
    return env | {
        "MONGO_URI": mongo_uri,
        "MONGO_DATABASE": db_name,
        "MONGO_TIMEOUT": "2",
        "DATA_INBOUND_DIR": str(tmp_path / "in"),
        "DATA_OUTBOUND_DIR": str(tmp_path / "out"),
        "TRACOS_STATE_DB": str(tmp_path / "tracos-state.db"),
        **extra,
    }


def tracos(
    env: dict[str, str], *args: str, cwd: Path, as_unprivileged: bool = False
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "run.py"), "tracos", *args],
        env=env,
        cwd=cwd,  # away from the repository's .env
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=drop_file_privileges if as_unprivileged else None,
    )


def drop_file_privileges() -> None:
    """In the child: give up root's right to read any file, so permissions bite as they would
    for the service's own user (a no-op for a user who never had it)."""
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
        libc.prctl(PR_CAPBSET_DROP, capability, 0, 0, 0)


def write(folder: Path, name: str, data: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(data)
    return folder / name


async def test_once_exits_0_when_every_file_was_handled_or_set_aside(
    mongo_uri: str, db_name: str, tmp_path: Path, collection: AsyncCollection[Doc]
) -> None:
    write(tmp_path / "in", "1.json", json.dumps(erp_order(1)))
    write(tmp_path / "in", "2.json", "{broken")
    env = environment(mongo_uri, db_name, tmp_path)
    result = tracos(env, "--once", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "in" / "processed" / "1.json").exists()
    assert (tmp_path / "in" / "rejected" / "2.json.error.txt").exists()
    # The order that came in goes back out at the next drain (one drain reads both at once).
    again = tracos(env, "--once", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "out" / "1.json").exists()


async def test_once_against_an_unreachable_mongodb_fails_within_seconds_naming_mongo_uri(
    db_name: str, tmp_path: Path
) -> None:
    write(tmp_path / "in", "1.json", json.dumps(erp_order(1)))
    uri = f"mongodb://127.0.0.1:{free_port()}"
    env = environment(uri, db_name, tmp_path)
    del env["MONGO_TIMEOUT"]  # the default, as a newcomer has it
    started = time.monotonic()
    result = tracos(env, "--once", cwd=tmp_path)
    assert time.monotonic() - started < 10
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"tracos: cannot reach MongoDB at {uri} (MONGO_URI): connection refused"
    ]
    assert (tmp_path / "in" / "1.json").exists()  # nothing touched


async def test_an_unreachable_mongodb_is_named_without_its_password(
    db_name: str, tmp_path: Path
) -> None:
    port = free_port()
    env = environment(f"mongodb://ops:s3cret@127.0.0.1:{port}", db_name, tmp_path)
    result = tracos(env | {"MONGO_TIMEOUT": "0.2"}, "--once", cwd=tmp_path)
    assert result.returncode == 1
    assert "s3cret" not in result.stderr
    assert (
        f"cannot reach MongoDB at mongodb://ops:***@127.0.0.1:{port} (MONGO_URI): "
        "connection refused" in result.stderr
    )


async def test_a_work_order_that_cannot_be_sent_is_said_and_listed_as_a_dead_letter(
    mongo_uri: str, db_name: str, tmp_path: Path, collection: AsyncCollection[Doc]
) -> None:
    await collection.insert_many([tracos_doc(1), tracos_doc(2, status="archived")])
    env = environment(mongo_uri, db_name, tmp_path)
    result = tracos(env, "--once", cwd=tmp_path)
    assert result.returncode == 0, result.stderr  # set aside: the drain is complete
    assert "work order 2" in result.stderr and "status" in result.stderr
    letters = tracos(env, "dead-letters", cwd=tmp_path)
    assert letters.returncode == 0, letters.stderr
    [line] = [line for line in letters.stdout.splitlines() if "invalid" in line]
    assert "work order 2 (_id " in line and "not sent: status:" in line


async def test_an_unreadable_file_is_set_aside_as_permission_denied(
    mongo_uri: str, db_name: str, tmp_path: Path, collection: AsyncCollection[Doc]
) -> None:
    write(tmp_path / "in", "1.json", json.dumps(erp_order(1))).chmod(0)
    write(tmp_path / "in", "2.json", json.dumps(erp_order(2)))
    env = environment(mongo_uri, db_name, tmp_path)
    result = tracos(env, "--once", cwd=tmp_path, as_unprivileged=True)
    assert result.returncode == 0, result.stderr
    sidecar = tmp_path / "in" / "rejected" / "1.json.error.txt"
    assert "cannot be read: permission denied" in sidecar.read_text()
    assert [d["number"] async for d in collection.find({})] == [2]


async def test_sample_writes_n_erp_files_and_n_work_orders(
    mongo_uri: str, db_name: str, tmp_path: Path, collection: AsyncCollection[Doc]
) -> None:
    env = environment(mongo_uri, db_name, tmp_path)
    result = tracos(env, "sample", "--orders", "8", "--seed", "1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    files = sorted((tmp_path / "in").glob("*.json"))
    assert len(files) == 8
    assert all(ErpWorkOrder.model_validate_json(f.read_bytes()) for f in files)
    assert await collection.count_documents({}) == 8


async def test_a_bad_setting_exits_2_with_one_line(
    mongo_uri: str, db_name: str, tmp_path: Path
) -> None:
    env = environment(mongo_uri, db_name, tmp_path, TRACOS_POLL_INTERVAL="-1")
    result = tracos(env, "--once", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "configuration error: TRACOS_POLL_INTERVAL: Input should be greater than 0 (got '-1')"
    ]


async def test_a_bad_mongo_uri_is_reported_without_its_password(
    db_name: str, tmp_path: Path
) -> None:
    env = environment("mongodb://ops:s3cret@host:notaport", db_name, tmp_path)
    result = tracos(env, "--once", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("configuration error: MONGO_URI:")
    assert "s3cret" not in result.stderr


def test_the_loop_stops_cleanly_on_sigterm(mongo_uri: str, db_name: str, tmp_path: Path) -> None:
    env = environment(mongo_uri, db_name, tmp_path, TRACOS_POLL_INTERVAL="0.2")
    write(tmp_path / "in", "1.json", json.dumps(erp_order(1)))
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "run.py"), "tracos"],
        env=env,
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not (tmp_path / "out" / "1.json").exists():
            assert time.monotonic() < deadline, "the order never went out"
            time.sleep(0.05)
        write(tmp_path / "in", "2.json", json.dumps(erp_order(2)))  # picked up by a later poll
        while not (tmp_path / "out" / "2.json").exists():
            assert time.monotonic() < deadline, "no later poll"
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        assert process.wait(15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.stderr is not None
    assert "tracos worker stopped" in process.stderr.read()


class Running:
    """``python run.py tracos ...`` running, its stderr read line by line as it comes (so a
    test can wait for what it logs rather than guess how long start-up takes)."""

    def __init__(self, env: dict[str, str], *args: str, cwd: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "run.py"), "tracos", *args],
            env=env,
            cwd=cwd,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line.rstrip("\n"))

    def count(self, text: str) -> int:
        return sum(text in line for line in list(self.lines))

    def wait_for(self, condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert self.process.poll() is None, f"exited while waiting for {what}: {self.lines}"
            assert time.monotonic() < deadline, f"{what}: {self.lines}"
            time.sleep(0.05)

    def stop(self, signum: int = signal.SIGTERM) -> int:
        """Send ``signum``; the exit status, once every line it wrote has been read."""
        self.process.send_signal(signum)
        try:
            self.process.wait(20)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            self._reader.join(5)
        return self.process.returncode


def test_the_loop_says_once_that_mongodb_is_not_answering_and_which_setting_to_check(
    db_name: str, tmp_path: Path
) -> None:
    uri = f"mongodb://127.0.0.1:{free_port()}"
    env = environment(
        uri,
        db_name,
        tmp_path,
        MONGO_TIMEOUT="0.2",
        MONGO_MAX_TRIES="2",
        TRACOS_POLL_INTERVAL="0.1",
        LOG_LEVEL="DEBUG",  # to see the polls go by; what a service logs is INFO and above
    )
    tracos_loop = Running(env, cwd=tmp_path)
    try:
        tracos_loop.wait_for(lambda: tracos_loop.count("poll failed") >= 3, "3 failed polls")
    finally:
        status = tracos_loop.stop()
    assert status == 0
    said = [
        line
        for line in tracos_loop.lines
        if " integration" in line and " DEBUG " not in line  # what a service logs
    ]
    not_answering = [line for line in said if "not answering" in line]
    assert len(not_answering) == 1
    assert " WARNING " in not_answering[0]
    assert (
        f"MongoDB at {uri} (MONGO_URI) is not answering: connection refused" in (not_answering[0])
    )
    warnings = [line.split(" WARNING ", 1)[1] for line in said if " WARNING " in line]
    assert warnings == [
        f"integration.tracos: cannot reach MongoDB at {uri} (MONGO_URI): connection refused; "
        "the sync starts anyway and keeps trying",
        f"integration.tracos: MongoDB at {uri} (MONGO_URI) is not answering: connection "
        "refused; retrying (each retry is logged at DEBUG)",
        "integration.engine: tracos-outbound: poll failed, will retry next interval: MongoDB "
        "find unsynced orders: connection refused (further failures in a row at DEBUG)",
    ]
    # The polls that failed after the first say nothing above DEBUG.
    first = next(n for n, line in enumerate(said) if "poll failed" in line)
    stop = next(n for n, line in enumerate(said) if "SIGTERM received" in line)
    assert said[first + 1 : stop] == []


async def test_sample_against_an_unreachable_mongodb_writes_nothing_and_names_mongo_uri(
    db_name: str, tmp_path: Path
) -> None:
    uri = f"mongodb://127.0.0.1:{free_port()}"
    env = environment(uri, db_name, tmp_path, MONGO_TIMEOUT="0.2")
    result = tracos(env, "sample", "--orders", "4", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"tracos: cannot reach MongoDB at {uri} (MONGO_URI): connection refused"
    ]
    assert not (tmp_path / "in").exists()


@own_server
def test_a_sample_interrupted_while_retrying_says_what_it_did_and_exits_1(
    failing_uri: str, db_name: str, tmp_path: Path
) -> None:
    env = environment(failing_uri, db_name, tmp_path, MONGO_MAX_TRIES="10000")
    with fail_commands(failing_uri, "update"):  # pings answered, writes refused
        sample = Running(env, "sample", "--orders", "6", cwd=tmp_path)
        try:
            sample.wait_for(lambda: sample.count("not answering") == 1, "a write retried")
        finally:
            status = sample.stop()
    assert status == 1
    assert len(list((tmp_path / "in").glob("*.json"))) == 6
    assert (
        sample.count(
            f"sample interrupted (SIGTERM): 6 of 6 ERP files written to {tmp_path / 'in'}, "
            f"0 of 6 work orders stored in {db_name}.workorders; run it again to finish"
        )
        == 1
    )


@own_server
def test_once_stopped_while_mongodb_is_not_answering_exits_1_without_waiting_out_its_grace(
    failing_uri: str, db_name: str, tmp_path: Path
) -> None:
    write(tmp_path / "in", "1.json", json.dumps(erp_order(1)))
    env = environment(
        failing_uri,
        db_name,
        tmp_path,
        MONGO_MAX_TRIES="10000",
        LOG_LEVEL="DEBUG",
        TRACOS_SHUTDOWN_GRACE="1",
    )
    with fail_commands(failing_uri, "createIndexes"):
        once = Running(env, "--once", cwd=tmp_path)
        try:
            once.wait_for(lambda: once.count("MongoDB create index") >= 1, "a retry")
        finally:
            started = time.monotonic()
            status = once.stop()
    assert status == 1
    assert time.monotonic() - started < 3  # the grace, not the 10000 tries
    assert once.count("drain incomplete") == 1
    assert (tmp_path / "in" / "1.json").exists()  # left for the next run

"""``python run.py tracos``: exit statuses, the sample command, settings checked at start."""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from pymongo.asynchronous.collection import AsyncCollection

from integration.connectors.erp_files.models import ErpWorkOrder
from integration.connectors.tracos.client import Doc

from .conftest import ROOT, erp_order, free_port, tracos_doc

CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, PR_CAPBSET_DROP = 1, 2, 24


def environment(mongo_uri: str, db_name: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("MONGO_", "DATA_", "POLL_", "LOG_", "MAX_FILE"))
    }
    return env | {
        "MONGO_URI": mongo_uri,
        "MONGO_DATABASE": db_name,
        "MONGO_TIMEOUT": "2",
        "DATA_INBOUND_DIR": str(tmp_path / "in"),
        "DATA_OUTBOUND_DIR": str(tmp_path / "out"),
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
    result = tracos(environment(mongo_uri, db_name, tmp_path), "--once", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "in" / "processed" / "1.json").exists()
    assert (tmp_path / "in" / "rejected" / "2.json.error.txt").exists()
    assert (tmp_path / "out" / "1.json").exists()


async def test_once_exits_1_when_mongodb_is_unreachable_and_logs_no_traceback(
    db_name: str, tmp_path: Path
) -> None:
    write(tmp_path / "in", "1.json", json.dumps(erp_order(1)))
    env = environment(
        f"mongodb://127.0.0.1:{free_port()}",
        db_name,
        tmp_path,
        MONGO_TIMEOUT="0.2",
        MONGO_MAX_TRIES="2",
    )
    result = tracos(env, "--once", cwd=tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "retrying in" in result.stderr


async def test_once_exits_1_when_a_work_order_cannot_be_sent(
    mongo_uri: str, db_name: str, tmp_path: Path, collection: AsyncCollection[Doc]
) -> None:
    await collection.insert_many([tracos_doc(1), tracos_doc(2, status="archived")])
    result = tracos(environment(mongo_uri, db_name, tmp_path), "--once", cwd=tmp_path)
    assert result.returncode == 1
    assert "work order 2" in result.stderr and "status" in result.stderr


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
    env = environment(mongo_uri, db_name, tmp_path, POLL_INTERVAL="-1")
    result = tracos(env, "--once", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "configuration error: POLL_INTERVAL: Input should be greater than 0 (got '-1')"
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
    env = environment(mongo_uri, db_name, tmp_path, POLL_INTERVAL="0.2")
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
            assert time.monotonic() < deadline, "the first pass never finished"
            time.sleep(0.05)
        write(tmp_path / "in", "2.json", json.dumps(erp_order(2)))  # picked up by a later pass
        while not (tmp_path / "out" / "2.json").exists():
            assert time.monotonic() < deadline, "no later pass"
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        assert process.wait(15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.stderr is not None
    assert "tracos sync stopped" in process.stderr.read()

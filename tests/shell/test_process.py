"""``python run.py run`` as a supervisor sees it: exit statuses it can act on (0 clean stop,
1 unexpected, 2 bad configuration) and one worker per STATE_DB."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from integration.core.lock import AlreadyRunning, StateLock
from integration.core.shell import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK
from integration.pipelines.bigchat_ourapi.settings import BigChatOurApiSettings as Settings
from tests.helpers.cli import free_port

RUN_PY = Path(__file__).resolve().parents[2] / "run.py"


def worker_env(state_db: Path, **extra: str) -> dict[str, str]:
    """The environment without any of the worker's own settings (the test's say everything),
    BigChat and OurAPI at ports where nothing listens: the worker just keeps retrying."""
    ours = {name.upper() for name in Settings.model_fields}
    env = {k: v for k, v in os.environ.items() if k.upper() not in ours}
    env.update(
        BIGCHAT_URL=f"http://127.0.0.1:{free_port()}",
        OURAPI_URL=f"http://127.0.0.1:{free_port()}",
        STATE_DB=str(state_db),
        POLL_INTERVAL="0.2",
        SHUTDOWN_GRACE="0.5",
        LOG_LEVEL="INFO",
    )
    env.update(extra)
    return env


async def start_worker(state_db: Path, **extra: str) -> asyncio.subprocess.Process:
    # cwd: a directory without a .env, so only the environment given here counts.
    return await asyncio.create_subprocess_exec(
        sys.executable, str(RUN_PY), "run",
        cwd=state_db.parent,
        env=worker_env(state_db, **extra),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def finish(proc: asyncio.subprocess.Process, within: float = 10) -> tuple[int, str]:
    """Wait for ``proc`` to exit; its status and stderr."""
    async with asyncio.timeout(within):
        _, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, err.decode()


@asynccontextmanager
async def running_worker(state_db: Path) -> AsyncIterator[asyncio.subprocess.Process]:
    """A worker that has taken its lock and installed its signal handlers (it says so in the
    log); killed at the end if the test left it running."""
    proc = await start_worker(state_db)
    try:
        assert proc.stderr is not None
        async with asyncio.timeout(15):
            while b"worker starting" not in (line := await proc.stderr.readline()):
                assert line, "the worker exited before starting"
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_a_second_worker_on_the_same_state_db_is_refused(tmp_path: Path) -> None:
    state_db = tmp_path / "state.db"
    async with running_worker(state_db) as first:
        second = await start_worker(state_db)
        status, err = await finish(second)
        assert status == EXIT_FAILURE
        assert f"is using {state_db}" in err
        assert "another worker" in err
        assert first.returncode is None  # the first one carries on
        first.send_signal(signal.SIGTERM)
        assert (await finish(first))[0] == EXIT_OK


async def test_exit_status_0_after_sigterm(tmp_path: Path) -> None:
    async with running_worker(tmp_path / "state.db") as worker:
        worker.send_signal(signal.SIGTERM)
        status, err = await finish(worker)
    assert status == EXIT_OK
    assert "worker stopped" in err


async def test_exit_status_1_when_the_state_db_is_locked(tmp_path: Path) -> None:
    state_db = tmp_path / "state.db"
    lock = StateLock(state_db)
    lock.acquire()
    try:
        status, err = await finish(await start_worker(state_db))
    finally:
        lock.release()
    assert status == EXIT_FAILURE
    assert f"another worker (pid {os.getpid()}) is using {state_db}" in err


async def test_exit_status_2_for_a_bad_setting(tmp_path: Path) -> None:
    status, err = await finish(await start_worker(tmp_path / "state.db", POLL_INTERVAL="-1"))
    assert status == EXIT_CONFIG
    assert err.splitlines() == [err.strip()]  # one line
    assert err.startswith("configuration error: POLL_INTERVAL")


def test_the_lock_is_free_again_once_released(tmp_path: Path) -> None:
    first, second = StateLock(tmp_path / "state.db"), StateLock(tmp_path / "state.db")
    first.acquire()
    with pytest.raises(AlreadyRunning, match=r"stop it first, or give this one its own STATE_DB"):
        second.acquire()
    first.release()
    second.acquire()
    second.release()

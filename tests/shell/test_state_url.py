"""STATE_URL: the worker on a PostgreSQL state. Nothing of it is loaded without it; with it, one
worker per state (an advisory lock), and status reads that state."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from integration.core import backends
from integration.core.backends import AdvisoryRunLock, state_store
from integration.core.lock import AlreadyRunning
from integration.core.state import NewEntry, StateError
from integration.pipelines.bigchat_ourapi.settings import BigChatOurApiSettings as Settings
from tests.helpers.stores import postgres_database

RUN_PY = Path(__file__).resolve().parents[2] / "run.py"


def run_py(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("STATE_")}
    return subprocess.run(
        [sys.executable, str(RUN_PY), *args],
        capture_output=True, text=True, timeout=60, cwd=cwd, env=env,
    )  # fmt: skip


def test_the_worker_with_nothing_set_never_imports_asyncpg(tmp_path: Path) -> None:
    script = (
        "import sys\n"
        "from integration.cli import Cli\n"
        "from integration.core.backends import run_lock, state_store\n"
        "from integration.pipelines.bigchat_ourapi.settings import BigChatOurApiSettings\n"
        "settings = BigChatOurApiSettings(_env_file=None)\n"
        "store, lock = state_store(settings), run_lock('bigchat', settings)\n"
        "print(type(store).__name__, type(lock).__name__, 'asyncpg' in sys.modules)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("STATE_")}
    env["PYTHONPATH"] = str(RUN_PY.parent)
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
        cwd=tmp_path, env=env,
    )  # fmt: skip

    assert result.stdout.split() == ["SQLiteStore", "FileRunLock", "False"], result.stderr


def test_a_postgres_state_without_asyncpg_is_one_line_saying_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(backends.importlib.util, "find_spec", lambda name: None)
    settings = Settings(_env_file=None, state_url="postgresql://postgres@127.0.0.1/x")  # type: ignore[call-arg]

    with pytest.raises(StateError) as caught:
        state_store(settings)

    assert str(caught.value) == backends.MISSING_ASYNCPG
    assert "[distributed]" in str(caught.value)


def test_a_state_url_that_is_not_postgresql_is_a_configuration_error(tmp_path: Path) -> None:
    result = run_py("status", "--state-url", "mysql://root:pw@db/state", cwd=tmp_path)

    assert result.returncode == 2
    assert "STATE_URL: a PostgreSQL URL" in result.stderr
    assert "pw" not in result.stderr.replace("postgresql://user[:password]", "")


async def test_a_second_worker_on_the_same_postgres_state_cannot_take_its_lock() -> None:
    async with postgres_database() as url:
        first, second = AdvisoryRunLock(url, "bigchat"), AdvisoryRunLock(url, "bigchat")
        other_sync = AdvisoryRunLock(url, "tracos")
        await first.acquire()
        try:
            with pytest.raises(AlreadyRunning, match="another bigchat worker"):
                await second.acquire()
            await other_sync.acquire()  # another sync's lock is its own
            await other_sync.release()
        finally:
            await first.release()

        await second.acquire()  # released: the next one takes it
        await second.release()


async def test_status_and_dead_letters_read_a_postgres_state(tmp_path: Path) -> None:
    async with postgres_database() as url:
        before = run_py("status", "--state-url", url, cwd=tmp_path)
        assert before.returncode == 1
        assert "no state at" in before.stdout

        store = state_store(Settings(_env_file=None, state_url=url))  # type: ignore[call-arg]
        await store.open()
        try:
            await store.store_page(
                "bigchat", [NewEntry(key="1", kind="MESSAGE", fingerprint="f", payload="{}")]
            )
            [entry] = await store.pending("bigchat", 0, 10)
            await store.dead_letter(entry, "refused", blocking=True)
        finally:
            await store.close()

        status = run_py("status", "--state-url", url, cwd=tmp_path)
        letters = run_py("dead-letters", "--state-url", url, cwd=tmp_path)

    assert status.returncode == 0, status.stderr
    assert f"state            {url}" in status.stdout
    assert "0 pending, 0 done, 1 dead" in status.stdout
    assert "1 (1 conversation(s) waiting behind one)" in status.stdout
    assert letters.returncode == 0, letters.stderr
    assert "refused [blocks its conversation]" in letters.stdout
    assert not (tmp_path / "integration-state.db").exists()

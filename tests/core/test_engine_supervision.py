"""The engine's background work never dies unnoticed, and a blocked key stays blocked."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from integration.core.engine import Engine, EngineFailed, EngineSettings
from integration.core.errors import PermanentError
from integration.core.flow import Page, Received
from integration.core.retry import RetryPolicy
from integration.core.store import InboxEntry, NewEntry, SQLiteStore, StateError
from tests.helpers.clocks import ManualClock

NOW = 1_000_000.0


def settings(**overrides: float) -> EngineSettings:
    values = {
        "poll_interval": 0.01,
        "lag": 0,
        "max_window": 1,
        "start_at": NOW - 2,
        "concurrency": 1,
        "rescan_interval": 0.05,
        "retry": RetryPolicy(base=0.001, max_delay=0.005, max_tries=2),
        **overrides,
    }
    return EngineSettings(**values)  # type: ignore[arg-type]


class Pipeline:
    name = "test"

    def __init__(
        self, entries: list[NewEntry] | None = None, fail_with: BaseException | None = None
    ):
        self.entries = entries or []
        self.fail_with = fail_with
        self.polls = 0
        self.applied: list[int] = []

    async def fetch(self, start: float, end: float) -> AsyncIterator[Received]:
        self.polls += 1
        if self.fail_with is not None:
            raise self.fail_with
        yield Received(b"", last=True)

    def parse(self, body: bytes) -> Page:
        entries, self.entries = self.entries, []
        return Page(entries, [])

    async def apply(self, entry: InboxEntry) -> None:
        n = int(entry.payload)
        if n == 0:
            raise PermanentError("the first one is refused", blocking=True)
        await asyncio.sleep(0)
        self.applied.append(n)

    async def recover(self, reason: str, horizon: float) -> None:
        return None


async def run_for(engine: Engine, seconds: float) -> bool:
    stopping = asyncio.Event()
    task = asyncio.create_task(engine.run(stopping))
    await asyncio.sleep(seconds)
    stopping.set()
    return await task


async def test_an_unexpected_error_while_polling_is_logged_and_polling_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = SQLiteStore(tmp_path / "state.db")
    await store.open()
    pipeline = Pipeline(fail_with=ValueError("a malformed link"))
    engine = Engine(pipeline, store, ManualClock(NOW), settings(poll_interval=0.02))
    try:
        with caplog.at_level(logging.WARNING):
            await run_for(engine, 0.3)
    finally:
        await store.close()

    assert pipeline.polls >= 2
    assert "a malformed link" in (engine.stats.last_poll_error or "")
    assert any("a malformed link" in r.getMessage() for r in caplog.records)


async def test_a_state_store_failure_while_polling_stops_the_engine_as_failed(
    tmp_path: Path,
) -> None:
    store = SQLiteStore(tmp_path / "state.db")
    await store.open()
    pipeline = Pipeline(fail_with=StateError("state.db: database or disk is full"))
    engine = Engine(pipeline, store, ManualClock(NOW), settings())
    try:
        with pytest.raises(EngineFailed, match="disk is full"):
            async with asyncio.timeout(5):
                await engine.run(asyncio.Event())
    finally:
        await store.close()


async def test_a_blocking_dead_letter_holds_back_later_entries_the_feeder_had_already_listed(
    tmp_path: Path,
) -> None:
    store = SQLiteStore(tmp_path / "state.db")
    await store.open()
    # One key, more entries than the dispatcher holds (concurrency 1: 64 queued): the feeder
    # has listed the rest and is waiting for room when the first entry is dead-lettered.
    entries = [NewEntry("k", "x", f"f{n}", str(n), NOW - 1) for n in range(200)]
    pipeline = Pipeline(entries)
    engine = Engine(pipeline, store, ManualClock(NOW), settings())
    try:
        await run_for(engine, 0.5)
        status = await store.status("test")
    finally:
        await store.close()

    assert pipeline.applied == []
    assert status.inbox["pending"] == 199


class FailingRecovery(Pipeline):
    def __init__(self) -> None:
        super().__init__()
        self.recoveries: list[str] = []

    async def recover(self, reason: str, horizon: float) -> None:
        self.recoveries.append(reason)
        if len(self.recoveries) == 1:
            raise RuntimeError("BigChat went away mid-recovery")


async def test_a_recovery_that_failed_runs_again_at_the_next_start_even_after_a_clean_stop(
    tmp_path: Path,
) -> None:
    store = SQLiteStore(tmp_path / "state.db")
    await store.open()
    await store.meta_put("running:test", "2026-01-01T00:00:00+00:00")  # an unclean stop
    pipeline = FailingRecovery()
    try:
        assert await run_for(Engine(pipeline, store, ManualClock(NOW), settings()), 0.2)
        assert await run_for(Engine(pipeline, store, ManualClock(NOW), settings()), 0.2)
        assert await run_for(Engine(pipeline, store, ManualClock(NOW), settings()), 0.2)
    finally:
        await store.close()

    assert pipeline.recoveries[0] == "unclean stop"
    assert len(pipeline.recoveries) == 2  # once more, then never again once it completed


async def test_a_recovery_that_failed_runs_again_while_polling_works_without_a_restart(
    tmp_path: Path,
) -> None:
    # Several workers keep running for days: a recovery that failed (its source answering 5xx
    # meanwhile) must not wait for the next failed poll or the next start.
    store = SQLiteStore(tmp_path / "state.db")
    await store.open()
    await store.meta_put("running:test", "2026-01-01T00:00:00+00:00")  # an unclean stop
    pipeline = FailingRecovery()
    try:
        engine = Engine(pipeline, store, ManualClock(NOW), settings(recovery_retry=0.05))
        assert await run_for(engine, 0.5)
        due = await store.meta_get("recovery-due:test")
    finally:
        await store.close()

    assert pipeline.recoveries == ["unclean stop", "an earlier recovery did not complete"]
    assert due is None

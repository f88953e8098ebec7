"""Bounded growth of the state store: exact counters instead of scans, pruning by age, maps read
in bounded batches, and state files readable by their owner only.

The counters, retention, maps, engine-prune and scrape tests run on both stores (SQLite and
PostgreSQL); those about SQLite itself (its migrations, the cost of ``status`` in VM steps on its
read connection, file modes, the lock file) on SQLite only."""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import stat
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from integration.core.clock import iso
from integration.core.engine import Engine, EngineSettings
from integration.core.flow import Page
from integration.core.health import Probe, create_app
from integration.core.lock import StateLock
from integration.core.metrics import EngineMetrics
from integration.core.serving import serve_app
from integration.core.state import StateStore
from integration.core.stats import Stats
from integration.core.store import (
    _MIGRATIONS,
    InboxEntry,
    NewEntry,
    Rejected,
    SQLiteStore,
    _prune_batch,
)
from tests.helpers.clocks import ManualClock
from tests.helpers.stores import (
    BACKENDS,
    drop_schema,
    fresh_schema,
    opened_store,
    postgres_url,
    rows_elsewhere,
)

NOW = 1_000_000.0


def entry(n: int, key: str = "1", occurred_at: float | None = None) -> NewEntry:
    return NewEntry(
        key=key,
        kind="MESSAGE",
        fingerprint=f"fp{n}",
        payload=f'{{"n":{n}}}',
        occurred_at=float(n) if occurred_at is None else occurred_at,
    )


def reject(n: int, key: str = "1") -> Rejected:
    return Rejected(key=key, fingerprint=f"bad{n}", payload="{}", reason="invalid")


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    async with opened_store(request.param, tmp_path, clock=ManualClock(NOW)) as s:
        yield s


@pytest.fixture
async def sqlite_store(tmp_path: Path):  # type: ignore[no-untyped-def]
    """For the tests about SQLite itself (its read connection, its file)."""
    s = SQLiteStore(tmp_path / "state.db", clock=ManualClock(NOW))
    await s.open()
    yield s
    await s.close()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """A store's kind and, for PostgreSQL, a schema of the test's own (dropped after), for a
    test that opens its stores itself, many times over (a property test's examples)."""
    schema = fresh_schema()
    if request.param == "postgres":
        postgres_url()
    yield str(request.param), schema
    if request.param == "postgres":
        asyncio.run(drop_schema(schema))


@asynccontextmanager
async def emptied_store(
    backend: tuple[str, str], folder: Path, clock: ManualClock
) -> AsyncIterator[StateStore]:
    """An open store with nothing in it: SQLite in ``folder``; PostgreSQL in the test's schema,
    emptied (a schema per example, created and dropped, made the test take minutes)."""
    kind, schema = backend
    if kind == "sqlite":
        async with opened_store(kind, folder, clock=clock) as store:
            yield store
        return
    import asyncpg

    from integration.core.state.postgres import PostgresStore

    async def empty(conn: asyncpg.Connection) -> None:
        await conn.execute(
            "TRUNCATE inbox, dead_letters, maps, ledger, counters, cursors, meta, received"
            " RESTART IDENTITY"
        )

    store = PostgresStore(postgres_url(), clock=clock, schema=schema)
    await store.open()
    try:
        await store.write(empty)
        yield store
    finally:
        await store.close()


@dataclass(frozen=True)
class Counted:
    inbox: dict[str, int]
    dead_letters: int
    blocked_keys: int
    maps: dict[str, int]


async def scan(store: StateStore, sql: str) -> list[tuple[Any, ...]]:
    """``sql`` run outside the store's own queries: on a connection of its own for SQLite, on
    the pool's connections for PostgreSQL (a new connection per scan made the property test
    take minutes)."""
    from integration.core.state.postgres import PostgresStore

    if isinstance(store, PostgresStore):
        return [tuple(row) for row in await store._db.read(sql)]
    return await rows_elsewhere(store, sql)


async def scanned(store: StateStore, source: str) -> Counted:
    """What the counters must say, counted the slow way: by scanning every row."""
    # The source is a test's constant: quoted into the SQL, the same text runs on both stores.
    assert source.isalnum()
    inbox = {"pending": 0, "done": 0, "dead": 0}
    for state, count in await scan(
        store, f"SELECT state, COUNT(*) FROM inbox WHERE source = '{source}' GROUP BY state"
    ):
        inbox[state] = count
    [(letters, blocked)] = await scan(
        store,
        "SELECT COUNT(*), COUNT(DISTINCT CASE WHEN blocking THEN key END)"
        f" FROM dead_letters WHERE source = '{source}' AND resolved_at IS NULL",
    )
    maps = dict(await scan(store, "SELECT namespace, COUNT(*) FROM maps GROUP BY namespace"))
    return Counted(inbox, letters, blocked or 0, maps)


async def counted(store: StateStore, source: str) -> Counted:
    s = await store.status(source)
    return Counted(s.inbox, s.dead_letters, s.blocked_keys, s.maps)


# -- counters --------------------------------------------------------------------------------

SOURCES = ("s1", "s2")

operation = st.one_of(
    st.tuples(
        st.just("page"),
        st.sampled_from(SOURCES),
        st.lists(st.tuples(st.integers(0, 12), st.sampled_from("abc")), max_size=6),
        st.lists(st.integers(0, 4), max_size=2),
    ),
    st.tuples(st.just("done"), st.sampled_from(SOURCES), st.integers(1, 5)),
    st.tuples(st.just("dead"), st.sampled_from(SOURCES), st.integers(0, 5), st.booleans()),
    st.tuples(st.just("retry"), st.one_of(st.none(), st.integers(1, 3))),
    st.tuples(st.just("map_put"), st.sampled_from("xy"), st.integers(0, 5)),
    st.tuples(st.just("map_delete"), st.sampled_from("xy"), st.lists(st.integers(0, 5))),
    st.tuples(st.just("prune"), st.sampled_from(SOURCES), st.integers(0, 14), st.booleans()),
    st.tuples(st.just("crash"), st.sampled_from(SOURCES)),
)


class Crash(Exception):
    pass


async def apply_operation(store: StateStore, clock: ManualClock, op: tuple[Any, ...]) -> None:
    match op:
        case ("page", source, items, rejects):
            await store.store_page(
                source, [entry(n, key) for n, key in items], [reject(n) for n in rejects]
            )
        case ("done", source, count):
            pending = await store.pending(source, 0, count)
            await store.mark_done([e.seq for e in pending] + [e.seq for e in pending[:1]])
        case ("dead", source, index, blocking):
            pending = await store.pending(source, 0, 10)
            if pending:
                await store.dead_letter(pending[index % len(pending)], "no", blocking=blocking)
        case ("retry", count):
            letters = await store.dead_letters()
            ids = None if count is None else [d.id for d in letters[:count]]
            await store.retry_dead_letters(ids)
        case ("map_put", namespace, key):
            await store.map_put(namespace, str(key), "v")
        case ("map_delete", namespace, keys):
            await store.map_delete(namespace, [str(k) for k in keys])
        case ("prune", source, before, later):
            if later:  # past the reception of the invalid events too (they have no occurred_at)
                clock.at += 1
                before = int(clock.at) + 1
            await store.prune(source, float(before), batch=2)
        case ("crash", source):
            # A batch whose transaction fails after it deleted rows and moved counters: none of
            # it may stay, and the writes grouped with it commit on their own.
            results = await asyncio.gather(
                crashing_write(store, source),
                store.store_page(source, [entry(99, "z")]),
                store.map_put("x", "crash", "v"),
                return_exceptions=True,
            )
            assert isinstance(results[0], Crash)


async def crashing_write(store: StateStore, source: str) -> None:
    """A write that deletes rows and moves counters (one prune batch), then fails."""
    if isinstance(store, SQLiteStore):

        def crashing(db: sqlite3.Connection) -> None:
            _prune_batch(db, source, float("inf"), None, 100)
            raise Crash

        await store.write(crashing)
        return
    import asyncpg

    from integration.core.state.postgres import PostgresStore, prune_batch

    async def crashing_pg(conn: asyncpg.Connection) -> None:
        await prune_batch(conn, source, float("inf"), None, 100)
        raise Crash

    assert isinstance(store, PostgresStore)
    await store.write(crashing_pg)


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(operation, min_size=4, max_size=30))
@example([("page", "s1", [(1, "a"), (2, "b")], [0]), ("dead", "s1", 0, True), ("retry", None)])
def test_the_counters_equal_a_full_scan_after_any_mix_of_operations(
    backend: tuple[str, str], operations: list[tuple[Any, ...]]
) -> None:
    async def scenario(folder: Path) -> None:
        clock = ManualClock(NOW)
        async with emptied_store(backend, folder, clock) as store:
            for op in operations:
                await apply_operation(store, clock, op)
                for source in SOURCES:
                    assert await counted(store, source) == await scanned(store, source), op

    with tempfile.TemporaryDirectory() as folder:
        asyncio.run(scenario(Path(folder)))


async def test_a_state_file_of_version_2_gets_its_counters_from_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with sqlite3.connect(path) as db:
        db.executescript(_MIGRATIONS[0] + _MIGRATIONS[1] + "PRAGMA user_version = 2;")
        for seq, state in enumerate(["pending", "done", "done", "dead"], start=1):
            db.execute(
                "INSERT INTO inbox (source, key, kind, fingerprint, payload, state, received_at,"
                " occurred_at) VALUES ('src', ?, 'MESSAGE', ?, '{}', ?, 0, ?)",
                (str(seq % 2), f"fp{seq}", state, float(seq)),
            )
        db.execute(
            "INSERT INTO dead_letters (seq, source, key, kind, reason, blocking, created_at)"
            " VALUES (4, 'src', '0', 'MESSAGE', 'no', 1, 0)"
        )
        db.execute("INSERT INTO maps VALUES ('conversation', '1', '{}'), ('agent', '7', 'u')")
    store = SQLiteStore(path)
    await store.open()
    try:
        status = await store.status("src")
        assert await counted(store, "src") == await scanned(store, "src")
        assert (status.inbox, status.blocked_keys) == ({"pending": 1, "done": 2, "dead": 1}, 1)
        assert status.oldest_pending_at == 1.0
    finally:
        await store.close()


async def vm_steps_of_status(store: SQLiteStore, source: str) -> int:
    """SQLite virtual-machine instructions that ``status`` runs: what its cost grows with."""
    reader = store._reader
    assert reader is not None
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0  # 0: carry on

    # The connection lives on aiosqlite's thread: the handler is set there.
    await reader._execute(reader._conn.set_progress_handler, count, 1)  # type: ignore[no-untyped-call]
    await store.status(source)
    await reader._execute(reader._conn.set_progress_handler, None, 1)  # type: ignore[no-untyped-call]
    return steps


async def test_status_costs_the_same_however_many_entries_and_states_are_kept(
    sqlite_store: SQLiteStore,
) -> None:
    store = sqlite_store
    await store.store_page("src", [entry(n, str(n % 7)) for n in range(10)], [reject(1)])
    small = await vm_steps_of_status(store, "src")

    await store.store_page("src", [entry(n, str(n % 7)) for n in range(10, 3000)], [reject(2)])
    await store.mark_done([e.seq for e in await store.pending("src", 0, 2000)])
    await asyncio.gather(*(store.map_put("conversation", str(n), "{}") for n in range(500)))
    large = await vm_steps_of_status(store, "src")

    assert large <= small + 50  # a counter row more (maps), never a step per entry


# -- retention -------------------------------------------------------------------------------


async def test_prune_deletes_applied_entries_older_than_the_horizon_only(
    store: StateStore,
) -> None:
    await store.store_page("src", [entry(n) for n in (1, 2, 3, 20, 21)])
    pending = await store.pending("src", 0, 10)
    await store.mark_done([e.seq for e in pending if e.fingerprint != "fp2"])

    assert await store.prune("src", 10.0) == 2  # fp1 and fp3; fp2 is pending, fp20/21 recent

    left = await store.entries_for_key("src", "1")
    assert [e.fingerprint for e in left] == ["fp2", "fp20", "fp21"]
    assert (await store.status("src")).inbox == {"pending": 1, "done": 2, "dead": 0}


async def test_prune_keeps_entries_behind_open_dead_letters(store: StateStore) -> None:
    await store.store_page("src", [entry(1, "a"), entry(2, "a")], [reject(1)])
    first = (await store.pending("src", 0, 10))[0]
    await store.dead_letter(first, "refused", blocking=True)
    store._clock.at = NOW + 100  # type: ignore[attr-defined]

    assert await store.prune("src", NOW + 50) == 0

    assert len(await store.dead_letters("src")) == 2
    assert (await store.status("src")).inbox == {"pending": 1, "done": 0, "dead": 2}


async def test_an_entry_retried_from_a_dead_letter_and_applied_is_pruned_with_its_letter(
    store: StateStore,
) -> None:
    await store.store_page("src", [entry(1)])
    [first] = await store.pending("src", 0, 10)
    letter = await store.dead_letter(first, "refused", blocking=True)
    await store.retry_dead_letters([letter])
    await store.mark_done([first.seq])

    assert await store.prune("src", 10.0) == 1

    assert await rows_elsewhere(store, "SELECT COUNT(*) FROM dead_letters") == [(0,)]


async def test_prune_works_through_more_entries_than_one_batch(store: StateStore) -> None:
    await store.store_page("src", [entry(n) for n in range(1, 8)])
    await store.mark_done([e.seq for e in await store.pending("src", 0, 10)])

    assert await store.prune("src", 100.0, batch=3) == 7

    assert (await store.status("src")).inbox == {"pending": 0, "done": 0, "dead": 0}


async def test_a_pruned_events_fingerprint_no_longer_deduplicates(store: StateStore) -> None:
    await store.store_page("src", [entry(1)])
    await store.mark_done([e.seq for e in await store.pending("src", 0, 10)])
    await store.prune("src", 10.0)

    again = await store.store_page("src", [entry(1)])

    assert again.new == 1  # the documented cost of RETENTION: re-served that late, it is new


async def test_prune_leaves_other_sources_alone(store: StateStore) -> None:
    await store.store_page("a", [entry(1)])
    await store.store_page("b", [entry(1)])
    for source in ("a", "b"):
        await store.mark_done([e.seq for e in await store.pending(source, 0, 10)])

    assert await store.prune("a", 10.0) == 1

    assert (await store.status("b")).inbox["done"] == 1


async def test_ledger_prune_deletes_entries_last_written_before_the_horizon(
    store: StateStore,
) -> None:
    clock: ManualClock = store._clock  # type: ignore[assignment]
    await store.ledger_put("chat", "old", "done")
    await store.ledger_put("other", "old", "done")
    clock.at = NOW + 10
    await store.ledger_put("chat", "new", "done")

    assert await store.ledger_prune("chat", NOW + 5, batch=1) == 1

    assert await store.ledger_get("chat", "old") is None
    assert await store.ledger_get("chat", "new") == "done"
    assert await store.ledger_get("other", "old") == "done"


# -- maps ------------------------------------------------------------------------------------


async def test_map_delete_removes_the_keys_it_names_and_says_how_many_were_there(
    store: StateStore,
) -> None:
    for key in "abc":
        await store.map_put("conversation", key, "{}")

    assert await store.map_delete("conversation", ["a", "c", "zz"]) == 2

    assert await store.map_keys("conversation") == ["b"]
    assert (await store.status("src")).maps == {"conversation": 1}


async def test_map_iter_yields_every_item_in_key_order_a_batch_at_a_time(
    store: StateStore,
) -> None:
    items = {f"{n:03d}": f"v{n}" for n in range(11)}
    for key, value in items.items():
        await store.map_put("conversation", key, value)
    await store.map_put("agent", "000", "elsewhere")

    seen = [item async for item in store.map_iter("conversation", batch=3)]

    assert seen == sorted(items.items())


async def test_map_iter_sees_a_key_present_throughout_once_despite_writes_meanwhile(
    store: StateStore,
) -> None:
    for key in "bdf":
        await store.map_put("m", key, "1")
    seen = []
    async for key, _ in store.map_iter("m", batch=1):
        seen.append(key)
        if key == "b":
            await store.map_put("m", "a", "1")  # behind the iteration: not seen
            await store.map_put("m", "e", "1")  # ahead of it: seen
            await store.map_delete("m", ["d"])

    assert seen == ["b", "e", "f"]


# -- private files ---------------------------------------------------------------------------


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def modes(folder: Path) -> dict[str, int]:
    return {p.name: mode(p) for p in folder.iterdir()}


def widen(folder: Path) -> None:
    for p in folder.iterdir():
        p.chmod(0o644)


async def test_the_state_file_and_its_wal_and_shm_are_created_owner_only(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        store = SQLiteStore(tmp_path / "state.db")
        await store.open()
        await store.map_put("m", "k", "v")
        created = modes(tmp_path)
        await store.close()
    finally:
        os.umask(old)

    assert created == {"state.db": 0o600, "state.db-wal": 0o600, "state.db-shm": 0o600}


async def test_a_state_file_readable_by_others_is_tightened_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "state.db"
    first = SQLiteStore(path)
    await first.open()
    await first.close()
    widen(tmp_path)

    with caplog.at_level(logging.WARNING, logger="integration.core.store"):
        store = SQLiteStore(path)
        await store.open()
        await store.close()
        again = SQLiteStore(path)
        await again.open()
        await again.close()

    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "state.db (was 0644)" in warnings[0]
    assert set(modes(tmp_path).values()) == {0o600}


def test_the_lock_file_is_created_owner_only(tmp_path: Path) -> None:
    old = os.umask(0o022)
    lock = StateLock(tmp_path / "state.db")
    try:
        lock.acquire()
        assert mode(lock.path) == 0o600
    finally:
        lock.release()
        os.umask(old)


def test_a_lock_file_readable_by_others_is_tightened(tmp_path: Path) -> None:
    lock = StateLock(tmp_path / "state.db")
    lock.path.write_text("123")
    lock.path.chmod(0o644)

    lock.acquire()
    lock.release()

    assert mode(lock.path) == 0o600


# -- the engine's prune ----------------------------------------------------------------------


class PrunedPipeline:
    """A pipeline with nothing to fetch or apply that records its own prunes."""

    name = "src"

    def __init__(self) -> None:
        self.pruned: list[float] = []
        self.thrice = asyncio.Event()

    async def pages(self, start: float, end: float):  # type: ignore[no-untyped-def]
        yield Page(last=True)

    async def apply(self, entry: InboxEntry) -> None:
        pass

    async def recover(self, reason: str, horizon: float) -> None:
        pass

    async def prune(self, before: float) -> None:
        self.pruned.append(before)
        if len(self.pruned) == 3:
            self.thrice.set()


async def test_the_engine_prunes_the_inbox_and_the_pipeline_at_the_retention(
    store: StateStore, caplog: pytest.LogCaptureFixture
) -> None:
    clock: ManualClock = store._clock  # type: ignore[assignment]
    await store.store_page(
        "src", [entry(1, occurred_at=NOW - 200), entry(2, occurred_at=NOW + 100)]
    )
    await store.mark_done([e.seq for e in await store.pending("src", 0, 10)])
    clock.at = NOW + 150  # both were finished at NOW: 150 s ago
    pipeline = PrunedPipeline()
    engine = Engine(pipeline, store, clock, EngineSettings(retention=100.0))

    with caplog.at_level(logging.INFO, logger="integration.engine"):
        assert await engine.prune_once() == 1

    assert pipeline.pruned == [NOW + 50]
    assert [r.getMessage() for r in caplog.records] == [
        f"pruned 1 finished entries older than {iso(NOW + 50)}"
    ]


async def test_catching_up_on_an_old_backlog_prunes_nothing_just_applied(
    store: StateStore,
) -> None:
    clock: ManualClock = store._clock  # type: ignore[assignment]
    # Events of long ago, applied just now: the source may re-serve them while the worker
    # catches up, so they still de-duplicate.
    await store.store_page("src", [entry(1, occurred_at=NOW - 10_000)])
    await store.mark_done([e.seq for e in await store.pending("src", 0, 10)])
    engine = Engine(PrunedPipeline(), store, clock, EngineSettings(retention=100.0))

    assert await engine.prune_once() == 0
    assert (await store.status("src")).inbox["done"] == 1


async def test_the_engine_prunes_soon_after_it_starts_and_at_every_interval(
    store: StateStore,
) -> None:
    pipeline = PrunedPipeline()
    clock: ManualClock = store._clock  # type: ignore[assignment]
    engine = Engine(pipeline, store, clock, EngineSettings(prune_interval=0.01))
    stopping = asyncio.Event()
    loop = asyncio.create_task(engine._prune_loop(stopping))

    async with asyncio.timeout(5):
        await pipeline.thrice.wait()
    stopping.set()
    await loop

    assert pipeline.pruned[0] == NOW - EngineSettings().retention


# -- the scrape ------------------------------------------------------------------------------


async def test_a_metrics_scrape_reports_the_entries_the_state_file_keeps(
    store: StateStore,
) -> None:
    await store.store_page("src", [entry(1), entry(2)], [reject(1)])
    await store.mark_done([(await store.pending("src", 0, 10))[0].seq])
    await store.map_put("conversation", "1", "{}")
    stats, clock = Stats(), ManualClock(NOW)
    app = create_app(
        Probe(stats, store, clock, 10.0, NOW), EngineMetrics(stats, store, clock, "src")
    )

    async with (
        serve_app(app) as served,
        aiohttp.ClientSession() as session,
        session.get(f"{served.url}/metrics") as resp,
    ):
        text = await resp.text()

    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    inbox = {
        s: samples[("integration_inbox_entries", (("state", s),))]
        for s in ("pending", "done", "dead")
    }
    assert inbox == {"pending": 1, "done": 1, "dead": 1}
    assert samples[("integration_map_entries", (("map", "conversation"),))] == 1


async def test_the_latest_prune_horizon_is_recorded_and_never_moves_back(
    store: StateStore,
) -> None:
    assert await store.pruned_before("src") is None

    await store.prune("src", 100.0)
    await store.prune("src", 50.0)

    assert await store.pruned_before("src") == 100.0
    assert await store.pruned_before("other") is None

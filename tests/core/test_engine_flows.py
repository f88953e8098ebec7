"""One engine carries a sync of several flows, windowed and pending sources alike, and in drain
mode stops by itself once everything there was is applied."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from integration.core.engine import Engine, EngineSettings
from integration.core.errors import PermanentError, TransientError
from integration.core.flow import Flow, Page, Received
from integration.core.retry import RetryPolicy
from integration.core.store import InboxEntry, NewEntry, SQLiteStore
from tests.helpers.clocks import ManualClock

NOW = 1_000_000.0


def settings(**overrides: float) -> EngineSettings:
    values = {
        "poll_interval": 3600.0,  # drain mode must not wait for a second poll
        "lag": 0,
        "max_window": 100,
        "start_at": NOW - 250,
        "concurrency": 4,
        "rescan_interval": 0.05,
        "retry": RetryPolicy(base=0.001, max_delay=0.005, max_tries=2),
        **overrides,
    }
    return EngineSettings(**values)  # type: ignore[arg-type]


def entry(key: str, n: int) -> NewEntry:
    return NewEntry(key=key, kind="item", fingerprint=f"{key}:{n}", payload=str(n))


def page_of(entries: list[NewEntry]) -> bytes:
    return json.dumps([[e.key, int(e.payload)] for e in entries]).encode()


def parse(body: bytes) -> Page:
    return Page([entry(key, n) for key, n in json.loads(body)], [])


class Windows:
    """A windowed source: one page per window, the window's items keyed by the window start."""

    name = "feed"

    def __init__(self, fail: bool = False) -> None:
        self.windows: list[tuple[float, float]] = []
        self.fail = fail

    async def fetch(self, start: float, end: float) -> AsyncIterator[Received]:
        if self.fail:
            raise TransientError("feed is not answering")
        self.windows.append((start, end))
        yield Received(page_of([entry(f"w{int(start)}", 1), entry(f"w{int(start)}", 2)]), True)

    def parse(self, body: bytes) -> Page:
        return parse(body)

    async def recover(self, reason: str, horizon: float) -> None:
        return None


class Folder:
    """A pending source: lists what it holds until the sink takes it out."""

    name = "folder"

    def __init__(self, items: dict[str, int]) -> None:
        self.items = dict(items)
        self.listings = 0

    async def fetch_pending(self) -> AsyncIterator[Received]:
        self.listings += 1
        yield Received(page_of([entry(key, n) for key, n in sorted(self.items.items())]))

    def parse(self, body: bytes) -> Page:
        return parse(body)


class Recorder:
    def __init__(self, folder: Folder | None = None, refuse: str | None = None) -> None:
        self.applied: list[tuple[str, str, int]] = []
        self.folder = folder
        self.refuse = refuse

    async def apply(self, entry: InboxEntry) -> None:
        if entry.key == self.refuse:
            raise PermanentError("refused", blocking=True)
        await asyncio.sleep(0)
        self.applied.append((entry.source, entry.key, int(entry.payload)))
        if self.folder is not None:
            self.folder.items.pop(entry.key, None)  # applying takes it out of the source


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    opened = SQLiteStore(tmp_path / "state.db")
    await opened.open()
    yield opened
    await opened.close()


async def drain(engine: Engine) -> bool:
    async with asyncio.timeout(10):
        return await engine.run(asyncio.Event(), once=True)


async def test_drain_mode_reads_every_window_up_to_now_applies_it_all_and_stops(
    store: SQLiteStore,
) -> None:
    feed, sink = Windows(), Recorder()
    engine = Engine(Flow(feed, sink), store, ManualClock(NOW), settings())

    assert await drain(engine)

    assert feed.windows == [(NOW - 250, NOW - 150), (NOW - 150, NOW - 50), (NOW - 50, NOW)]
    assert len(sink.applied) == 6 and engine.drain_problems == []
    assert (await store.status("feed")).inbox["pending"] == 0
    assert await store.get_cursor("feed") == NOW


async def test_a_pending_source_is_listed_once_per_poll_and_applied_items_leave_it(
    store: SQLiteStore,
) -> None:
    folder = Folder({"a": 1, "b": 2})
    sink = Recorder(folder)
    engine = Engine(Flow(folder, sink), store, ManualClock(NOW), settings())

    assert await drain(engine)

    assert sorted(sink.applied) == [("folder", "a", 1), ("folder", "b", 2)]
    assert folder.items == {} and folder.listings == 1


async def test_an_item_a_pending_source_still_lists_is_not_applied_twice(
    store: SQLiteStore,
) -> None:
    folder = Folder({"a": 1})
    sink = Recorder()  # never takes anything out of the folder
    for _ in range(2):
        engine = Engine(Flow(folder, sink), store, ManualClock(NOW), settings())
        assert await drain(engine)

    assert sink.applied == [("folder", "a", 1)]


async def test_two_flows_run_in_one_engine_and_equal_keys_of_two_sources_stay_apart(
    store: SQLiteStore,
) -> None:
    folder = Folder({f"w{int(NOW - 250)}": 7})  # the same key as the feed's first window
    feed_sink, folder_sink = Recorder(), Recorder(folder)
    engine = Engine(
        [Flow(Windows(), feed_sink), Flow(folder, folder_sink)],
        store,
        ManualClock(NOW),
        settings(),
        name="two",
    )

    assert await drain(engine)

    assert len(feed_sink.applied) == 6
    assert folder_sink.applied == [("folder", f"w{int(NOW - 250)}", 7)]
    assert await store.meta_get("running:two") is None  # a clean stop


async def test_a_key_behind_a_dead_letter_does_not_keep_the_drain_waiting(
    store: SQLiteStore,
) -> None:
    folder = Folder({"a": 1, "b": 2})
    sink = Recorder(folder, refuse="a")
    engine = Engine(Flow(folder, sink), store, ManualClock(NOW), settings())

    assert await drain(engine)

    assert sink.applied == [("folder", "b", 2)]
    [letter] = await store.dead_letters("folder")
    assert letter.key == "a" and letter.blocking


async def test_a_poll_that_fails_in_drain_mode_is_reported_and_the_rest_still_drains(
    store: SQLiteStore,
) -> None:
    folder = Folder({"a": 1})
    folder_sink = Recorder(folder)
    engine = Engine(
        [Flow(Windows(fail=True), Recorder()), Flow(folder, folder_sink)],
        store,
        ManualClock(NOW),
        settings(),
    )

    await drain(engine)

    assert folder_sink.applied == [("folder", "a", 1)]
    [problem] = engine.drain_problems
    assert "feed" in problem and "not answering" in problem


def test_two_flows_with_one_source_name_are_refused(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "state.db")
    with pytest.raises(ValueError, match="share a source name"):
        Engine(
            [Flow(Folder({}), Recorder()), Flow(Folder({}), Recorder())],
            store,
            ManualClock(NOW),
            settings(),
        )


class Feed:
    """A cursor source: changes numbered 1, 2, 3...; each page says the position after it."""

    name = "changes"

    def __init__(self, changes: int, page: int = 2) -> None:
        self.changes = changes
        self.page = page
        self.asked: list[float | None] = []

    async def fetch_after(self, position: float | None) -> AsyncIterator[Received]:
        self.asked.append(position)
        after = int(position or 0)
        while after < self.changes:
            upto = min(self.changes, after + self.page)
            items = [entry(f"c{n}", n) for n in range(after + 1, upto + 1)]
            yield Received(page_of(items), position=float(upto))
            after = upto

    def parse(self, body: bytes) -> Page:
        return parse(body)

    async def recover(self, reason: str, horizon: float) -> None:
        return None


async def test_a_cursor_source_is_read_from_its_stored_position_and_the_position_moves_with_pages(
    store: SQLiteStore,
) -> None:
    feed, sink = Feed(5), Recorder()
    assert await drain(Engine(Flow(feed, sink), store, ManualClock(NOW), settings()))
    assert await store.get_cursor("changes") == 5.0

    feed.changes = 7
    assert await drain(Engine(Flow(feed, sink), store, ManualClock(NOW), settings()))

    assert feed.asked == [None, 5.0]
    assert [n for _, _, n in sorted(sink.applied, key=lambda a: a[2])] == list(range(1, 8))


class Serial(Recorder):
    """Records how many entries of one key were being applied at once."""

    def __init__(self) -> None:
        super().__init__()
        self.running: dict[str, int] = {}
        self.most = 0

    async def apply(self, entry: InboxEntry) -> None:
        self.running[entry.key] = self.running.get(entry.key, 0) + 1
        self.most = max(self.most, self.running[entry.key])
        await asyncio.sleep(0.01)
        self.running[entry.key] -= 1
        self.applied.append((entry.source, entry.key, int(entry.payload)))


class Named(Folder):
    def __init__(self, name: str, items: dict[str, int]) -> None:
        super().__init__(items)
        self.name = name


async def test_flows_that_share_an_order_apply_one_key_one_entry_at_a_time(
    store: SQLiteStore,
) -> None:
    sink = Serial()
    left, right = Named("left", {"case-1": 1}), Named("right", {"case-1": 2})
    engine = Engine(
        [Flow(left, sink, order="cases"), Flow(right, sink, order="cases")],
        store,
        ManualClock(NOW),
        settings(),
    )

    assert await drain(engine)

    assert sorted(sink.applied) == [("left", "case-1", 1), ("right", "case-1", 2)]
    assert sink.most == 1


async def test_without_a_shared_order_equal_keys_of_two_flows_run_side_by_side(
    store: SQLiteStore,
) -> None:
    sink = Serial()
    left, right = Named("left", {"case-1": 1}), Named("right", {"case-1": 2})
    engine = Engine([Flow(left, sink), Flow(right, sink)], store, ManualClock(NOW), settings())

    assert await drain(engine)

    assert sink.most == 2


async def test_a_dead_letter_blocks_the_key_in_every_flow_of_the_order(
    store: SQLiteStore,
) -> None:
    refusing = Recorder(refuse="case-1")
    left, right = Named("left", {"case-1": 1}), Named("right", {"case-1": 2})
    first = Engine([Flow(left, refusing, order="cases")], store, ManualClock(NOW), settings())
    assert await drain(first)
    recorder = Recorder()

    second = Engine(
        [Flow(left, recorder, order="cases"), Flow(right, recorder, order="cases")],
        store,
        ManualClock(NOW),
        settings(),
    )
    assert await drain(second)

    assert recorder.applied == []  # right's case-1 waits behind left's dead letter
    assert [e.key for e in await store.pending("right", 0, 10)] == ["case-1"]

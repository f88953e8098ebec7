"""MongoDB going away: stopped in the middle of a drain and started again (same port, same
storage), the drain completes after reconnecting, with nothing lost or duplicated; while it is
away, what waits for it waits in the inbox, and each retry is one log line, never a traceback."""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path

import pytest
from pymongo.asynchronous.collection import AsyncCollection

from integration.connectors.erp_files.files import Inbox, Outbox
from integration.connectors.erp_files.models import ErpWorkOrder
from integration.connectors.tracos.availability import Availability
from integration.connectors.tracos.client import Doc, WorkOrderStore, connect
from integration.connectors.tracos.models import Status, TracosChanges
from integration.core.errors import TransientError
from integration.core.retry import RetryPolicy

from .conftest import (
    FAST_RETRY,
    Drains,
    FrozenClock,
    MongoServer,
    erp_order,
    free_port,
    own_server,
    start_server,
    tracos_doc,
)

ORDERS = 12
STOP_AFTER = 4


class Outage:
    """Stops the server at once, and starts it again a moment later from another thread."""

    def __init__(self, server: MongoServer) -> None:
        self.server = server
        self.restart: threading.Timer | None = None

    def now(self) -> None:
        self.server.stop()
        self.restart = threading.Timer(0.5, self.server.start)
        self.restart.start()

    def over(self) -> None:
        if self.restart is not None:
            self.restart.join()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[MongoServer]:
    server = start_server(tmp_path / "mongo")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def own_collection(server: MongoServer) -> AsyncIterator[AsyncCollection[Doc]]:
    client = connect(server.uri, timeout=1.0)
    try:
        yield client["tracos"]["workorders"]
    finally:
        await client.close()


class StoppingInbox(Inbox):
    def __init__(self, folder: Path, outage: Outage) -> None:
        super().__init__(folder, max_bytes=10_000, clock=FrozenClock())
        self.outage, self.moved = outage, 0

    def accept(self, name: str) -> Path:
        path = super().accept(name)
        self.moved += 1
        if self.moved == STOP_AFTER:
            self.outage.now()
        return path


class StoppingOutbox(Outbox):
    def __init__(self, folder: Path, outage: Outage) -> None:
        super().__init__(folder)
        self.outage, self.written = outage, 0

    def write(self, order: ErpWorkOrder) -> Path:
        path = super().write(order)
        self.written += 1
        if self.written == STOP_AFTER:
            self.outage.now()
        return path


@own_server
async def test_mongodb_restarted_during_inbound_loses_and_duplicates_nothing(
    server: MongoServer, own_collection: AsyncCollection[Doc], drains: Drains, tmp_path: Path
) -> None:
    outage = Outage(server)
    inbox = StoppingInbox(tmp_path / "in", outage)
    inbox.prepare()
    for n in range(1, ORDERS + 1):
        (inbox.folder / f"{n}.json").write_text(json.dumps(erp_order(n)))
    store = WorkOrderStore(own_collection, retry=FAST_RETRY)
    try:
        for _ in range(2):  # in, then back out
            engine = await drains.run(store=store, inbox=inbox, outbox=Outbox(tmp_path / "out"))
            assert (engine.drain_problems, engine.stats.dead_lettered) == ([], 0)
    finally:
        outage.over()
    numbers = [d["number"] async for d in own_collection.find({}, {"number": 1})]
    assert sorted(numbers) == list(range(1, ORDERS + 1))
    assert await own_collection.count_documents({"isSynced": True}) == ORDERS
    assert len(list(inbox.processed.iterdir())) == ORDERS


@own_server
async def test_mongodb_restarted_during_outbound_loses_and_duplicates_nothing(
    server: MongoServer, own_collection: AsyncCollection[Doc], drains: Drains, tmp_path: Path
) -> None:
    outage = Outage(server)
    await own_collection.insert_many([tracos_doc(n) for n in range(1, ORDERS + 1)])
    outbox = StoppingOutbox(tmp_path / "out", outage)
    store = WorkOrderStore(own_collection, retry=FAST_RETRY)
    try:
        engine = await drains.run(store=store, outbox=outbox)
    finally:
        outage.over()
    assert (engine.drain_problems, engine.stats.dead_lettered) == ([], 0)
    assert sorted(p.name for p in outbox.folder.iterdir()) == sorted(
        f"{n}.json" for n in range(1, ORDERS + 1)
    )
    assert await own_collection.count_documents({}) == ORDERS
    assert await own_collection.count_documents({"isSynced": True}) == ORDERS


@own_server
async def test_a_file_waits_in_the_inbox_while_mongodb_is_down_and_is_applied_when_it_is_back(
    server: MongoServer, own_collection: AsyncCollection[Doc], drains: Drains
) -> None:
    """MongoDB's own retries give up at once here; the engine's keep the entry waiting."""
    (drains.inbox.folder / "1.json").write_text(json.dumps(erp_order(1)))
    store = WorkOrderStore(own_collection, retry=RetryPolicy(base=0.01, max_tries=2))
    server.stop()
    back = threading.Timer(2.0, server.start)
    back.start()
    try:
        engine = await drains.inbound(store=store)
    finally:
        back.join()
    assert engine.stats.retries >= 1
    assert (engine.stats.applied, engine.stats.dead_lettered) == (1, 0)
    assert await own_collection.count_documents({"number": 1}) == 1
    assert (drains.inbox.processed / "1.json").exists()


def changes(number: int) -> TracosChanges:
    return TracosChanges(
        number=number,
        status=Status.PENDING,
        title="t",
        createdAt=datetime(2026, 1, 1),
        updatedAt=datetime(2026, 1, 1),
        deleted=False,
        deletedAt=None,
    )


def retry_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith("integration") and "attempt" in r.msg]


async def test_each_retry_is_one_debug_line_without_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = connect(f"mongodb://127.0.0.1:{free_port()}", timeout=0.2)
    store = WorkOrderStore(client["x"]["y"], retry=RetryPolicy(base=0.01, max_tries=3))
    caplog.set_level(logging.DEBUG, logger="integration")
    try:
        with pytest.raises(TransientError, match="connection refused"):
            await store.insert(changes(1))
    finally:
        await client.close()
    retries = retry_lines(caplog)
    assert len(retries) == 2
    for record in retries:
        line = record.getMessage()
        assert record.levelno == logging.DEBUG
        assert "\n" not in line and record.exc_info is None
        assert line.startswith("MongoDB insert order 1: connection refused; attempt ")


RETRY_LINE = re.compile(r"attempt (\d+) of 4 failed after ([\d.]+) s; next attempt in ([\d.]+) s$")


async def test_a_retry_line_says_how_long_the_attempt_waited_and_the_pause_after_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The gap between two retry lines is the pause the first announced plus the time the next
    attempt itself spent waiting for the server: both are said, so the log tells the truth."""
    client = connect(f"mongodb://127.0.0.1:{free_port()}", timeout=0.4)
    store = WorkOrderStore(client["x"]["y"], retry=RetryPolicy(base=0.2, max_tries=4))
    caplog.set_level(logging.DEBUG, logger="integration")
    try:
        with pytest.raises(TransientError):
            await store.find_by_number(1)
    finally:
        await client.close()
    retries = retry_lines(caplog)
    said = [RETRY_LINE.search(r.getMessage()) for r in retries]
    assert all(said), [r.getMessage() for r in retries]
    numbers = [(float(m[2]), float(m[3])) for m in said if m]
    assert [int(m[1]) for m in said if m] == [1, 2, 3]
    assert all(took >= 0.35 for took, _ in numbers)  # the server selection timeout, not 0
    for i in range(len(retries) - 1):
        gap = retries[i + 1].created - retries[i].created
        pause, took = numbers[i][1], numbers[i + 1][0]
        assert gap == pytest.approx(pause + took, abs=0.2)


@own_server
async def test_mongodb_going_away_is_one_warning_and_coming_back_one_info(
    server: MongoServer, own_collection: AsyncCollection[Doc], caplog: pytest.LogCaptureFixture
) -> None:
    store = WorkOrderStore(own_collection, retry=FAST_RETRY, availability=Availability("here"))
    assert await store.insert(changes(1))
    caplog.set_level(logging.DEBUG, logger="integration")
    outage = Outage(server)
    outage.now()  # back after half a second, while the calls below are retrying
    try:
        assert await store.find_by_number(1) is not None
        assert await store.insert(changes(2))
    finally:
        outage.over()
    told = [
        (r.levelname, r.getMessage())
        for r in caplog.records
        if r.name.startswith("integration") and r.levelno >= logging.INFO
    ]
    assert len(told) == 2, told
    assert told[0][0] == "WARNING" and told[0][1].startswith("here is not answering: ")
    assert told[1][0] == "INFO" and told[1][1].startswith("here is answering again")
    assert retry_lines(caplog)  # the retries themselves: DEBUG

"""MongoDB going away: stopped in the middle of a pass and started again (same port, same
storage), the pass completes after reconnecting, with nothing lost or duplicated; while it is
away, each retry is one log line, never a traceback."""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path

import pytest
from pymongo.asynchronous.collection import AsyncCollection

from integration.connectors.erp_files.files import Inbox, Outbox
from integration.connectors.erp_files.models import ErpWorkOrder
from integration.connectors.tracos.client import Doc, WorkOrderStore, connect
from integration.connectors.tracos.models import Status, TracosChanges
from integration.core.errors import TransientError
from integration.core.retry import RetryPolicy
from integration.pipelines.tracos_erp.sync import TracosSync, run_pass

from .conftest import (
    FAST_RETRY,
    FrozenClock,
    MongoServer,
    erp_order,
    free_port,
    start_server,
    tracos_doc,
)

own_server = pytest.mark.skipif(
    bool(os.environ.get("MONGO_URI")), reason="stops and starts a server of its own"
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
    server: MongoServer, own_collection: AsyncCollection[Doc], tmp_path: Path
) -> None:
    outage = Outage(server)
    inbox = StoppingInbox(tmp_path / "in", outage)
    inbox.prepare()
    for n in range(1, ORDERS + 1):
        (inbox.folder / f"{n}.json").write_text(json.dumps(erp_order(n)))
    sync = TracosSync(
        WorkOrderStore(own_collection, retry=FAST_RETRY),
        inbox,
        Outbox(tmp_path / "out"),
        FrozenClock(),
    )
    report = await run_pass(sync)
    outage.over()
    assert report.ok, report.summary()
    numbers = [d["number"] async for d in own_collection.find({}, {"number": 1})]
    assert sorted(numbers) == list(range(1, ORDERS + 1))
    assert await own_collection.count_documents({"isSynced": True}) == ORDERS
    assert len(list(inbox.processed.iterdir())) == ORDERS


@own_server
async def test_mongodb_restarted_during_outbound_loses_and_duplicates_nothing(
    server: MongoServer, own_collection: AsyncCollection[Doc], tmp_path: Path
) -> None:
    outage = Outage(server)
    await own_collection.insert_many([tracos_doc(n) for n in range(1, ORDERS + 1)])
    outbox = StoppingOutbox(tmp_path / "out", outage)
    inbox = Inbox(tmp_path / "in", max_bytes=10_000, clock=FrozenClock())
    clock = FrozenClock()
    sync = TracosSync(WorkOrderStore(own_collection, retry=FAST_RETRY), inbox, outbox, clock)
    report = await run_pass(sync)
    outage.over()
    assert report.ok, report.summary()
    assert sorted(p.name for p in outbox.folder.iterdir()) == sorted(
        f"{n}.json" for n in range(1, ORDERS + 1)
    )
    assert await own_collection.count_documents({}) == ORDERS
    assert await own_collection.count_documents({"isSynced": True}) == ORDERS


async def test_each_retry_is_one_log_line_without_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = connect(f"mongodb://127.0.0.1:{free_port()}", timeout=0.2)
    store = WorkOrderStore(client["x"]["y"], retry=RetryPolicy(base=0.01, max_tries=3))
    changes = TracosChanges(
        number=1,
        status=Status.PENDING,
        title="t",
        createdAt=datetime(2026, 1, 1),
        updatedAt=datetime(2026, 1, 1),
        deleted=False,
        deletedAt=None,
    )
    caplog.set_level(logging.WARNING, logger="integration")
    try:
        with pytest.raises(TransientError, match="Connect"):
            await store.insert(changes)
    finally:
        await client.close()
    retries = [r for r in caplog.records if r.name.startswith("integration")]
    assert len(retries) == 2
    for record in retries:
        line = record.getMessage()
        assert "\n" not in line and record.exc_info is None
        assert line.startswith("MongoDB insert order 1: ") and "; retrying in" in line

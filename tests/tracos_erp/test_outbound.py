"""Outbound, against a real MongoDB wire protocol: work orders not synced are written as
``{number}.json`` atomically, then marked synced; never marked when they changed meanwhile."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from pymongo.asynchronous.collection import AsyncCollection

from integration.connectors.erp_files.files import Outbox
from integration.connectors.erp_files.models import ErpWorkOrder
from integration.connectors.tracos.client import Doc, WorkOrderStore
from integration.pipelines.tracos_erp import TracosSettings

from .conftest import FAST_RETRY, NOW, Drains, FrozenClock, drain_sync, tracos_doc


def read(folder: Path, number: int) -> dict[str, Any]:
    order: dict[str, Any] = json.loads((folder / f"{number}.json").read_text())
    return order


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


async def test_an_order_without_is_synced_is_written_field_by_field(
    drains: Drains, collection: AsyncCollection[Doc], outbound_dir: Path
) -> None:
    await collection.insert_one(tracos_doc(31, status="on_hold"))
    await drains.outbound()
    assert read(outbound_dir, 31) == {
        "orderNo": 31,
        "isActive": False,
        "isCanceled": False,
        "isDeleted": False,
        "isDone": False,
        "isOnHold": True,
        "isPending": False,
        "isSynced": True,
        "summary": "Work order 31",
        "creationDate": "2026-01-05T08:00:00.000Z",
        "lastUpdateDate": "2026-02-20T16:45:30.250Z",
        "deletedDate": None,
    }


async def test_a_sent_order_is_marked_synced_at_now(
    drains: Drains, collection: AsyncCollection[Doc]
) -> None:
    await collection.insert_one(tracos_doc(31, isSynced=False))
    engine = await drains.outbound()
    doc = await collection.find_one({"number": 31})
    assert doc is not None
    assert (doc["isSynced"], doc["syncedAt"]) == (True, NOW)
    assert engine.stats.applied == 1


async def test_a_deleted_order_with_iso_string_dates_goes_out_in_utc(
    drains: Drains, collection: AsyncCollection[Doc], outbound_dir: Path
) -> None:
    await collection.insert_one(
        tracos_doc(
            32,
            status="cancelled",
            deleted=True,
            createdAt="2026-01-05T10:00:00+02:00",
            updatedAt=datetime(2026, 2, 3, 4, 5, 6),  # naive: UTC, as the driver reads it
            deletedAt="2026-02-03T01:05:06-03:00",
        )
    )
    await drains.outbound()
    order = read(outbound_dir, 32)
    assert (order["isCanceled"], order["isDeleted"]) == (True, True)
    assert order["creationDate"] == "2026-01-05T08:00:00.000Z"
    assert order["lastUpdateDate"] == "2026-02-03T04:05:06.000Z"
    assert order["deletedDate"] == "2026-02-03T04:05:06.000Z"


async def test_an_order_already_synced_is_not_sent(
    drains: Drains, collection: AsyncCollection[Doc], outbound_dir: Path
) -> None:
    await collection.insert_one(tracos_doc(33, isSynced=True, syncedAt=NOW))
    engine = await drains.outbound()
    assert names(outbound_dir) == []
    assert (engine.stats.fetched_new, engine.stats.applied) == (0, 0)


async def test_no_temporary_file_is_left_beside_the_written_ones(
    drains: Drains, collection: AsyncCollection[Doc], outbound_dir: Path
) -> None:
    await collection.insert_many([tracos_doc(n) for n in range(1, 6)])
    await drains.outbound()
    assert names(outbound_dir) == [f"{n}.json" for n in range(1, 6)]


def leave_torn_temp_file(folder: Path) -> None:
    folder.mkdir()
    (folder / ".4.json.abc123.tmp").write_text('{"orderNo": 4, "isAc')


async def test_temporary_files_a_crash_left_are_removed(
    settings: TracosSettings, clock: FrozenClock, outbound_dir: Path
) -> None:
    leave_torn_temp_file(outbound_dir)
    await drain_sync(settings, clock)
    assert names(outbound_dir) == []


class CrashAfterWrite(WorkOrderStore):
    """The process dies after the file is written and before the order is marked synced: the
    mark never returns, and the drain is cancelled while it waits (as a kill would stop it)."""

    def __init__(self, collection: AsyncCollection[Doc]) -> None:
        super().__init__(collection, retry=FAST_RETRY)
        self.crashed = asyncio.Event()

    async def mark_synced(self, doc: Doc, at: datetime) -> bool:
        self.crashed.set()
        await asyncio.Event().wait()
        raise AssertionError("never marked")


def sent(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if " sent as " in r.getMessage()]


async def test_a_crash_between_write_and_mark_resends_the_order(
    drains: Drains,
    collection: AsyncCollection[Doc],
    outbound_dir: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="integration")
    await collection.insert_one(tracos_doc(34, title="First"))
    crashing = CrashAfterWrite(collection)
    first = asyncio.create_task(drains.outbound(store=crashing))
    await crashing.crashed.wait()
    first.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await first
    assert read(outbound_dir, 34)["summary"] == "First"
    await collection.update_one({"number": 34}, {"$set": {"title": "Second"}})
    await drains.outbound()
    assert read(outbound_dir, 34)["summary"] == "Second"
    assert sent(caplog) == ["order 34 sent as 34.json"]
    assert await collection.count_documents({"isSynced": True}) == 1


class EditedWhileWriting(Outbox):
    """Someone edits the order in TracOS while its file is being written."""

    def __init__(self, folder: Path, edit: Any) -> None:
        super().__init__(folder)
        self.edit = edit

    def write(self, order: ErpWorkOrder) -> Path:
        path = super().write(order)
        self.edit()
        return path


async def test_an_order_changed_after_it_was_read_is_not_marked_synced(
    drains: Drains, collection: AsyncCollection[Doc], mongo_uri: str, db_name: str
) -> None:
    from pymongo import MongoClient

    await collection.insert_one(tracos_doc(35, title="Before"))
    other: MongoClient[Doc] = MongoClient(mongo_uri)
    edits = other[db_name]["workorders"]
    outbox = EditedWhileWriting(
        drains.outbox.folder,
        lambda: edits.update_one({"number": 35}, {"$set": {"title": "After"}}),
    )
    try:
        engine = await drains.outbound(outbox=outbox)
    finally:
        other.close()
    doc = await collection.find_one({"number": 35})
    assert doc is not None
    assert doc.get("isSynced") is not True
    assert engine.stats.applied == 1  # written; the changed order is listed again
    await drains.outbound()
    assert read(drains.outbox.folder, 35)["summary"] == "After"
    assert (await collection.find_one({"number": 35}) or {}).get("isSynced") is True


async def test_an_invalid_order_is_not_sent_and_the_others_are(
    drains: Drains, collection: AsyncCollection[Doc], outbound_dir: Path
) -> None:
    await collection.insert_many(
        [tracos_doc(1), tracos_doc(2, status="archived"), tracos_doc(3, title=None)]
    )
    engine = await drains.outbound()
    assert names(outbound_dir) == ["1.json"]
    assert (engine.stats.applied, engine.stats.rejected) == (1, 2)
    assert await collection.count_documents({"isSynced": {"$ne": True}}) == 2


async def test_many_orders_go_out_page_by_page(
    drains: Drains, collection: AsyncCollection[Doc], outbound_dir: Path
) -> None:
    await collection.insert_many([tracos_doc(n) for n in range(1, 251)])
    engine = await drains.outbound()
    assert engine.stats.applied == 250
    assert len(names(outbound_dir)) == 250
    assert await collection.count_documents({"isSynced": True, "syncedAt": NOW}) == 250

"""The sync end to end, in drain mode: ERP files and TracOS documents in, MongoDB and the outbound
folder checked field by field; the reverse direction; and a drain after everything settled that
changes nothing. A change that comes in from the ERP goes back out at the next poll: one drain
reads both sources at once, so the round trip takes two."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from pathlib import Path
from typing import Any

import pytest
from pymongo.asynchronous.collection import AsyncCollection

from integration.connectors.erp_files.files import Inbox
from integration.connectors.tracos.client import Doc, WorkOrderStore, connect
from integration.connectors.tracos.models import TracosWorkOrder
from integration.core.engine import Engine
from integration.core.retry import RetryPolicy
from integration.core.store import SQLiteStore
from integration.pipelines.tracos_erp import TracosSettings
from integration.pipelines.tracos_erp.mapping import tracos_to_erp
from integration.pipelines.tracos_erp.sample import file_bytes, sample_documents, sample_files

from .conftest import NOW, Drains, FrozenClock, drain_sync, erp_order, free_port, tracos_doc


def snapshot(*folders: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(p): (p.read_bytes(), p.stat().st_mtime_ns)
        for folder in folders
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def outbound(folder: Path) -> dict[int, dict[str, Any]]:
    return {int(p.stem): json.loads(p.read_text()) for p in folder.glob("*.json")}


def echo_back(outbound_dir: Path, inbound_dir: Path) -> None:
    """What the ERP might do: drop the files it picked up into its own outbox, ours inbound."""
    for path in outbound_dir.glob("*.json"):
        path.rename(inbound_dir / path.name)


async def documents(collection: AsyncCollection[Doc]) -> dict[int, Doc]:
    docs = await collection.find({}, {"_id": 0}).to_list()
    numbers = [d["number"] for d in docs]
    assert len(numbers) == len(set(numbers)), "a number held by two documents"
    return {d["number"]: d for d in docs}


async def test_erp_files_reach_mongodb_and_come_back_out_synced(
    drains: Drains, collection: AsyncCollection[Doc], inbound_dir: Path, outbound_dir: Path
) -> None:
    (inbound_dir / "1.json").write_text(json.dumps(erp_order(1)))
    done = erp_order(2, isPending=False, isDone=True, summary="Done", isActive=None)
    del done["isActive"], done["isSynced"]
    (inbound_dir / "2.json").write_text(json.dumps(done))
    for _ in range(2):
        engine = await drains.run()
        assert (engine.drain_problems, engine.stats.dead_lettered) == ([], 0)
    docs = await documents(collection)
    assert {n: (d["status"], d["isSynced"], d["syncedAt"]) for n, d in docs.items()} == {
        1: ("pending", True, NOW),
        2: ("completed", True, NOW),
    }
    files = outbound(outbound_dir)
    assert files[2] == {
        "orderNo": 2,
        "isActive": False,
        "isCanceled": False,
        "isDeleted": False,
        "isDone": True,
        "isOnHold": False,
        "isPending": False,
        "isSynced": True,
        "summary": "Done",
        "creationDate": "2026-02-01T07:00:00.000Z",
        "lastUpdateDate": "2026-02-10T12:30:00.000Z",
        "deletedDate": None,
    }
    assert files[1]["isPending"] is True


async def test_tracos_orders_reach_the_erp_folder(
    drains: Drains, collection: AsyncCollection[Doc], outbound_dir: Path
) -> None:
    await collection.insert_many(
        [
            tracos_doc(10, status="pending"),
            tracos_doc(11, status="in_progress", isSynced=False),
            tracos_doc(12, status="completed", isSynced=True),
        ]
    )
    engine = await drains.run()
    assert (engine.drain_problems, engine.stats.dead_lettered) == ([], 0)
    files = outbound(outbound_dir)
    assert sorted(files) == [10, 11]
    assert (files[10]["isPending"], files[11]["isActive"]) == (True, True)
    assert files[11]["summary"] == "Work order 11"


async def test_files_we_sent_echoed_back_by_the_erp_change_nothing(
    drains: Drains,
    collection: AsyncCollection[Doc],
    inbound_dir: Path,
    outbound_dir: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await collection.insert_many([tracos_doc(n) for n in (20, 21)])
    await drains.run()
    before = await documents(collection)
    echo_back(outbound_dir, inbound_dir)
    caplog.set_level(logging.INFO, logger="integration")
    engine = await drains.run()
    assert await documents(collection) == before
    said = [r.getMessage() for r in caplog.records if r.name == "integration.tracos"]
    assert sorted(said) == [
        "20.json: order 20 kept (TracOS is as new or newer)",
        "21.json: order 21 kept (TracOS is as new or newer)",
    ]
    assert (engine.stats.fetched_new, engine.stats.applied) == (2, 2)  # the files, nothing out


async def test_a_sample_mix_syncs_both_ways_consistently(
    settings: TracosSettings,
    clock: FrozenClock,
    collection: AsyncCollection[Doc],
    inbox: Inbox,  # the folder, created
    inbound_dir: Path,
    outbound_dir: Path,
) -> None:
    """Through the sync as the shell opens it: settings, assembly, one MongoDB client."""
    rng = random.Random(7)
    for order in sample_files(40, 1, NOW, rng):
        (inbound_dir / f"{order['orderNo']}.json").write_bytes(file_bytes(order))
    await collection.insert_many(sample_documents(40, 21, NOW, rng))
    for _ in range(2):
        engine = await drain_sync(settings, clock)
        assert (engine.drain_problems, engine.stats.dead_lettered) == ([], 0)
    docs = await documents(collection)
    assert sorted(docs) == list(range(1, 61))
    assert all(d["isSynced"] is True for d in docs.values())
    files = outbound(outbound_dir)
    for number, doc in docs.items():
        if number in files:  # sent: the file is the document's latest translation
            expected = tracos_to_erp(TracosWorkOrder.model_validate(doc))
            assert files[number] == expected.model_dump(mode="json"), number
    assert sorted(p.name for p in (inbound_dir / "processed").iterdir()) == sorted(
        f"{n}.json" for n in range(1, 41)
    )


async def test_a_drain_after_everything_settled_changes_nothing(
    drains: Drains, collection: AsyncCollection[Doc], inbound_dir: Path, outbound_dir: Path
) -> None:
    rng = random.Random(8)
    for order in sample_files(15, 1, NOW, rng):
        (inbound_dir / f"{order['orderNo']}.json").write_bytes(file_bytes(order))
    await collection.insert_many(sample_documents(15, 8, NOW, rng))
    for _ in range(2):
        await drains.run()
    docs, files = await documents(collection), snapshot(inbound_dir, outbound_dir)
    engine = await drains.run()
    assert await documents(collection) == docs
    assert snapshot(inbound_dir, outbound_dir) == files
    stats = engine.stats
    assert (stats.fetched_new, stats.applied, stats.dead_lettered, stats.rejected) == (0, 0, 0, 0)


async def test_an_unusable_inbound_folder_fails_the_drain_but_orders_still_go_out(
    drains: Drains, collection: AsyncCollection[Doc], tmp_path: Path, clock: FrozenClock
) -> None:
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    await collection.insert_one(tracos_doc(3))
    engine = await drains.run(inbox=Inbox(not_a_folder, max_bytes=100, clock=clock))
    [problem] = engine.drain_problems
    assert problem.startswith(f"poll tracos-inbound failed: inbound folder {not_a_folder} unusable")
    assert engine.stats.applied == 1


async def test_a_stop_during_an_outage_ends_the_sync_within_its_grace(
    drains: Drains, settings: TracosSettings, clock: FrozenClock
) -> None:
    client = connect(f"mongodb://127.0.0.1:{free_port()}", timeout=0.2)
    store = WorkOrderStore(client["x"]["y"], retry=RetryPolicy(base=1.0, max_tries=100))
    (drains.inbox.folder / "1.json").write_text(json.dumps(erp_order(1)))
    state = SQLiteStore(settings.state_db, clock=clock)
    await state.open()
    engine = Engine(
        drains.flows(store=store), state, clock, settings.engine_settings(), name="tracos"
    )
    stopping = asyncio.Event()
    asyncio.get_running_loop().call_later(0.3, stopping.set)
    started = time.monotonic()
    try:
        await asyncio.wait_for(engine.run(stopping), 5.0)
    finally:
        await state.close()
        await client.close()
    assert time.monotonic() - started < 2.0
    assert (drains.inbox.folder / "1.json").exists()  # left for the next run

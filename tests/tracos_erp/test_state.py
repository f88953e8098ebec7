"""What the sync's state says: a file or a document that cannot be applied is a dead letter
(once, however often it is listed), the status counts each flow's entries, and a file listed
twice before it is applied is applied once."""

from __future__ import annotations

import json
from pathlib import Path

from pymongo.asynchronous.collection import AsyncCollection

from integration.connectors.erp_files.files import Inbox
from integration.connectors.tracos.client import Doc, WorkOrderStore
from integration.connectors.tracos.models import TracosChanges
from integration.core.engine import Engine

from .conftest import FAST_RETRY, Drains, erp_order, tracos_doc


async def test_a_rejected_file_is_a_dead_letter_that_blocks_nothing(
    drains: Drains, inbound_dir: Path
) -> None:
    (inbound_dir / "broken.json").write_text("{broken")
    (inbound_dir / "3.json").write_text(json.dumps(erp_order(3)))
    await drains.inbound()
    await drains.inbound()  # the file is gone from the folder: nothing listed again
    state = await drains.state()
    try:
        [letter] = await state.dead_letters("tracos-inbound")
    finally:
        await state.close()
    assert (letter.key, letter.kind, letter.blocking) == ("broken.json", "file", False)
    assert letter.reason.startswith("invalid JSON")
    assert json.loads(letter.payload)["content"] == "{broken"
    assert (inbound_dir / "rejected" / "broken.json.error.txt").exists()


async def test_an_invalid_work_order_is_one_dead_letter_and_stays_not_synced(
    drains: Drains, collection: AsyncCollection[Doc]
) -> None:
    await collection.insert_one(tracos_doc(2, status="archived"))
    for _ in range(2):
        await drains.outbound()
    state = await drains.state()
    try:
        [letter] = await state.dead_letters("tracos-outbound")
    finally:
        await state.close()
    assert (letter.key, letter.kind, letter.blocking) == ("2", "invalid", False)
    assert letter.reason.startswith("work order 2 (_id ")
    assert "not sent: status: Input should be" in letter.reason
    doc = await collection.find_one({"number": 2})
    assert doc is not None and doc.get("isSynced") is not True


async def test_the_status_counts_each_flows_entries(
    drains: Drains, collection: AsyncCollection[Doc], inbound_dir: Path
) -> None:
    for n in (1, 2):
        (inbound_dir / f"{n}.json").write_text(json.dumps(erp_order(n)))
    (inbound_dir / "empty.json").write_text("")
    await collection.insert_many([tracos_doc(10), tracos_doc(11, title=None)])
    await drains.inbound()
    await drains.outbound()
    state = await drains.state()
    try:
        inbound = await state.status("tracos-inbound")
        outbound = await state.status("tracos-outbound")
    finally:
        await state.close()
    assert (inbound.inbox, inbound.dead_letters) == ({"pending": 0, "done": 2, "dead": 1}, 1)
    # Documents 1 and 2 came in from the files, not synced: they went out with 10.
    assert (outbound.inbox, outbound.dead_letters) == ({"pending": 0, "done": 3, "dead": 1}, 1)
    assert inbound.blocked_keys == outbound.blocked_keys == 0


class CountingStore(WorkOrderStore):
    def __init__(self, collection: AsyncCollection[Doc]) -> None:
        super().__init__(collection, retry=FAST_RETRY)
        self.inserted: list[int] = []

    async def insert(self, changes: TracosChanges) -> bool:
        self.inserted.append(changes.number)
        return await super().insert(changes)


async def test_a_file_listed_twice_before_it_is_applied_is_applied_once(
    drains: Drains, collection: AsyncCollection[Doc], inbox: Inbox
) -> None:
    (inbox.folder / "5.json").write_text(json.dumps(erp_order(5)))
    store = CountingStore(collection)
    flows = drains.flows(store=store)[:1]
    state = await drains.state()
    try:
        engine = Engine(flows, state, drains.clock, drains.settings.engine_settings(FAST_RETRY))
        await engine.poll_once(flow=flows[0])
        await engine.poll_once(flow=flows[0])
        assert (engine.stats.fetched_new, engine.stats.fetched_duplicate) == (1, 1)
    finally:
        await state.close()
    engine = await drains.inbound(store=store)
    assert engine.stats.fetched_duplicate == 1  # listed a third time, by the drain
    assert store.inserted == [5]
    assert [p.name for p in inbox.processed.iterdir()] == ["5.json"]

"""Inbound, against a real MongoDB wire protocol: ERP files upserted by number, newer side wins,
files moved to processed/ or set aside in rejected/ with their reason."""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pymongo.asynchronous.collection import AsyncCollection

from integration.connectors.tracos.client import Doc

from .conftest import Drains, erp_order, tracos_doc


def drop(folder: Path, name: str, content: dict[str, Any] | bytes) -> Path:
    data = content if isinstance(content, bytes) else json.dumps(content).encode()
    path = folder / name
    path.write_bytes(data)
    return path


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_file())


def kept(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().endswith("or newer)")]


async def only(collection: AsyncCollection[Doc], number: int) -> Doc:
    docs = await collection.find({"number": number}).to_list()
    assert len(docs) == 1, docs
    return docs[0]


async def test_a_new_order_is_inserted_field_by_field_and_left_not_synced(
    drains: Drains, collection: AsyncCollection[Doc], inbound_dir: Path
) -> None:
    drop(inbound_dir, "101.json", erp_order(101, summary="Replace bearing"))
    engine = await drains.inbound()
    doc = await only(collection, 101)
    doc.pop("_id")
    assert doc == {
        "number": 101,
        "status": "pending",
        "title": "Replace bearing",
        "description": "",
        "createdAt": datetime(2026, 2, 1, 7, 0, tzinfo=UTC),
        "updatedAt": datetime(2026, 2, 10, 12, 30, tzinfo=UTC),
        "deleted": False,
        "isSynced": False,
    }
    assert (engine.stats.applied, engine.stats.dead_lettered, engine.drain_problems) == (1, 0, [])


async def test_an_applied_file_is_moved_to_processed(drains: Drains, inbound_dir: Path) -> None:
    drop(inbound_dir, "101.json", erp_order(101))
    await drains.inbound()
    assert not (inbound_dir / "101.json").exists()
    assert json.loads((inbound_dir / "processed" / "101.json").read_text())["orderNo"] == 101


async def test_a_newer_erp_change_updates_the_order_and_keeps_its_description(
    drains: Drains, collection: AsyncCollection[Doc], inbound_dir: Path
) -> None:
    await collection.insert_one(tracos_doc(5, isSynced=True, syncedAt=datetime(2026, 2, 21)))
    drop(
        inbound_dir,
        "5.json",
        erp_order(
            5,
            isPending=False,
            isDeleted=True,
            summary="Renamed",
            lastUpdateDate="2026-02-25T00:00:00Z",
            deletedDate="2026-02-25T00:00:00Z",
        ),
    )
    await drains.inbound()
    doc = await only(collection, 5)
    assert doc["title"] == "Renamed"
    assert (doc["status"], doc["deleted"]) == ("cancelled", True)
    assert doc["deletedAt"] == datetime(2026, 2, 25, tzinfo=UTC)
    assert doc["updatedAt"] == datetime(2026, 2, 25, tzinfo=UTC)
    assert doc["description"] == "Description of 5"
    assert doc["isSynced"] is False  # so the change also goes back out


async def test_an_older_erp_change_does_not_overwrite_a_newer_tracos_order(
    drains: Drains,
    collection: AsyncCollection[Doc],
    inbound_dir: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="integration")
    await collection.insert_one(tracos_doc(5, isSynced=True))
    before = await only(collection, 5)
    drop(inbound_dir, "5.json", erp_order(5, summary="Stale", lastUpdateDate="2026-02-20T00:00Z"))
    await drains.inbound()
    assert await only(collection, 5) == before
    assert kept(caplog) == ["5.json: order 5 kept (TracOS is as new or newer)"]
    assert (inbound_dir / "processed" / "5.json").exists()


async def test_newer_wins_also_against_an_iso_string_update_time(
    drains: Drains, collection: AsyncCollection[Doc], inbound_dir: Path
) -> None:
    await collection.insert_one(tracos_doc(5, updatedAt="2026-02-20T18:00:00+02:00"))
    drop(inbound_dir, "5.json", erp_order(5, summary="Newer", lastUpdateDate="2026-02-20T17:00Z"))
    await drains.inbound()
    doc = await only(collection, 5)
    assert doc["title"] == "Newer"
    assert doc["updatedAt"] == datetime(2026, 2, 20, 17, tzinfo=UTC)


async def test_a_file_applied_twice_changes_nothing_the_second_time(
    drains: Drains,
    collection: AsyncCollection[Doc],
    inbound_dir: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A crash after the upsert and before the move: the file is read again next poll."""
    caplog.set_level(logging.INFO, logger="integration")
    drop(inbound_dir, "7.json", erp_order(7))
    await drains.inbound()
    first = await only(collection, 7)
    os.replace(inbound_dir / "processed" / "7.json", inbound_dir / "7.json")
    await drains.inbound()
    assert await only(collection, 7) == first
    assert kept(caplog) == ["7.json: order 7 kept (TracOS is as new or newer)"]
    assert (inbound_dir / "processed" / "7.json").exists()


async def test_a_name_sent_again_keeps_the_earlier_processed_file(
    drains: Drains, inbound_dir: Path
) -> None:
    drop(inbound_dir, "7.json", erp_order(7))
    await drains.inbound()
    drop(inbound_dir, "7.json", erp_order(7, lastUpdateDate="2026-02-28T00:00:00Z"))
    await drains.inbound()
    assert len(list((inbound_dir / "processed").glob("7*.json"))) == 2


BROKEN: dict[str, tuple[bytes | dict[str, Any], str]] = {
    "invalid-json": (b'{"orderNo": 3, "summary": ', "invalid JSON"),
    "missing-fields": (
        {k: v for k, v in erp_order(3).items() if k not in ("summary", "isDone")},
        "missing required fields: isDone, summary",
    ),
    "wrong-types": (erp_order(3, orderNo="3", isDone="no"), "wrong types: orderNo"),
    "bad-date": (erp_order(3, lastUpdateDate="yesterday"), "wrong type: lastUpdateDate"),
    "not-an-object": (b"[1, 2, 3]", "not a JSON object"),
    "empty": (b"", "empty file"),
    "whitespace-only": (b"  \n\t\n", "empty file"),
    "huge": (b'{"summary": "' + b"x" * 20_000 + b'"}', "too large: 20015 bytes (limit 10000)"),
    "not-utf8": (b'{"summary": "\xff\xfe"}', "invalid JSON"),
    "conflicting-flags": (erp_order(3, isDone=True), "conflicting status flags isPending, isDone"),
}


@pytest.mark.parametrize("kind", list(BROKEN))
async def test_a_broken_file_is_set_aside_with_its_reason_and_the_batch_goes_on(
    kind: str, drains: Drains, collection: AsyncCollection[Doc], inbound_dir: Path
) -> None:
    content, reason = BROKEN[kind]
    drop(inbound_dir, "1.json", erp_order(1))
    drop(inbound_dir, f"{kind}.json", content)
    drop(inbound_dir, "9.json", erp_order(9))
    engine = await drains.inbound()
    assert (inbound_dir / "rejected" / f"{kind}.json").exists()
    sidecar = (inbound_dir / "rejected" / f"{kind}.json.error.txt").read_text()
    assert reason in sidecar
    assert not (inbound_dir / f"{kind}.json").exists()
    assert files_in(inbound_dir / "processed") == ["1.json", "9.json"]
    assert await collection.count_documents({}) == 2
    assert (engine.stats.applied, engine.stats.dead_lettered, engine.drain_problems) == (2, 1, [])


async def test_a_symlink_is_set_aside_without_being_followed(
    drains: Drains, collection: AsyncCollection[Doc], inbound_dir: Path, tmp_path: Path
) -> None:
    outside = drop(tmp_path, "outside.json", erp_order(66))
    (inbound_dir / "66.json").symlink_to(outside)
    await drains.inbound()
    assert (inbound_dir / "rejected" / "66.json").is_symlink()
    assert "symbolic link" in (inbound_dir / "rejected" / "66.json.error.txt").read_text()
    assert outside.exists()
    assert await collection.count_documents({}) == 0


async def test_a_directory_named_like_a_file_is_set_aside(
    drains: Drains, inbound_dir: Path
) -> None:
    (inbound_dir / "12.json").mkdir()
    await drains.inbound()
    assert "not a regular file" in (inbound_dir / "rejected" / "12.json.error.txt").read_text()


async def test_a_file_name_outside_the_plain_pattern_is_set_aside_unread(
    drains: Drains, collection: AsyncCollection[Doc], inbound_dir: Path
) -> None:
    drop(inbound_dir, "order 1;rm.json", erp_order(1))
    await drains.inbound()
    assert (inbound_dir / "rejected" / "order 1;rm.json").exists()
    assert await collection.count_documents({}) == 0


async def test_hidden_and_non_json_files_are_left_alone(
    drains: Drains, collection: AsyncCollection[Doc], inbound_dir: Path
) -> None:
    drop(inbound_dir, ".2.json.partial", erp_order(2))
    drop(inbound_dir, ".3.json", erp_order(3))
    drop(inbound_dir, "notes.txt", b"hello")
    await drains.inbound()
    assert files_in(inbound_dir) == [
        ".2.json.partial",
        ".3.json",
        "notes.txt",
    ]
    assert await collection.count_documents({}) == 0


async def test_a_crafted_name_is_logged_quoted_on_one_line(
    drains: Drains, inbound_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="integration")
    drop(inbound_dir, "1.json\nINFO forged.json", erp_order(1))
    await drains.inbound()
    assert not [r for r in caplog.records if "\n" in r.getMessage()]
    [line] = [r.getMessage() for r in caplog.records if " rejected: " in r.getMessage()]
    assert line.startswith("'1.json\\nINFO forged.json' rejected: file name not accepted")

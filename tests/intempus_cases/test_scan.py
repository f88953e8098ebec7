"""The full scan concludes a delete only from a complete listing. A scan cut short by a failure
part-way (a page the stand-in cannot be made to fail on cue) is played by a client double."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from integration.connectors.intempus.client import CasePage
from integration.core.errors import TransientError
from integration.core.state import SQLiteStore
from integration.pipelines.intempus_cases.links import BY_INTEMPUS
from integration.pipelines.intempus_cases.source import IntempusChanges
from tests.helpers.clocks import ManualClock


def page(ids: list[int], last: bool) -> CasePage:
    rows = [{"id": i, "logical_timestamp": i * 2} for i in ids]
    body = json.dumps({"meta": {"next": None}, "objects": rows}).encode()
    return CasePage(body, rows, 100, 100, last)


class Scanning:
    """A client whose feed is empty and whose full listing is ``pages``, failing after the
    first when ``fails``."""

    def __init__(self, pages: list[CasePage], fails: bool) -> None:
        self.pages = pages
        self.fails = fails

    async def changed_after(self, lt: int | None, limit: int = 1000) -> AsyncIterator[CasePage]:
        yield page([], last=True)

    async def all_cases(self, limit: int = 1000) -> AsyncIterator[CasePage]:
        for n, listed in enumerate(self.pages):
            if self.fails and n == 1:
                raise TransientError("Intempus: 503 on the second page")
            yield listed


async def read(source: IntempusChanges) -> list[Any]:
    kinds = []
    async for received in source.fetch_after(10.0):  # a state that has read before
        kinds += [entry.kind for entry in source.parse(received.body).entries]
    return kinds


@pytest.fixture
async def linked(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    store = SQLiteStore(tmp_path / "state.db")
    await store.open()
    for iid in range(1, 21):
        await store.map_put(BY_INTEMPUS, str(iid), f"i{iid}")
    yield store
    await store.close()


def scanning(client: Scanning, store: SQLiteStore) -> IntempusChanges:
    return IntempusChanges(
        client,  # type: ignore[arg-type]
        store,
        ManualClock(1_000_000.0),
        full_scan_interval=60,
        max_delete_fraction=0.1,
    )


async def test_a_complete_scan_names_the_linked_case_it_did_not_list(
    linked: SQLiteStore,
) -> None:
    listing = [page(list(range(1, 11)), False), page(list(range(11, 20)), True)]  # 20 missing
    kinds = await read(scanning(Scanning(listing, fails=False), linked))
    assert kinds.count("intempus.absent") == 1


async def test_a_scan_that_fails_part_way_names_no_case_absent(linked: SQLiteStore) -> None:
    listing = [page(list(range(1, 11)), False), page(list(range(11, 20)), True)]
    source = scanning(Scanning(listing, fails=True), linked)
    kinds: list[str] = []
    with pytest.raises(TransientError):
        async for received in source.fetch_after(10.0):  # a state that has read before
            kinds += [entry.kind for entry in source.parse(received.body).entries]
    assert "intempus.absent" not in kinds


async def test_a_scan_missing_more_than_the_guard_allows_names_none(linked: SQLiteStore) -> None:
    listing = [page(list(range(1, 16)), True)]  # 5 of 20 gone: 25 % > 10 %
    source = scanning(Scanning(listing, fails=False), linked)
    assert "intempus.absent" not in await read(source)
    assert source.guard_tripped == 1


async def test_the_first_read_of_every_case_counts_as_the_first_full_scan(
    linked: SQLiteStore,
) -> None:
    listing = [page(list(range(1, 21)), True)]
    client = Scanning(listing, fails=False)
    source = scanning(client, linked)
    scanned: list[int] = []
    original = client.all_cases

    async def counted(limit: int = 1000) -> AsyncIterator[CasePage]:
        scanned.append(1)
        async for listed in original(limit):
            yield listed

    client.all_cases = counted  # type: ignore[method-assign]
    async for _ in source.fetch_after(None):
        pass
    assert scanned == []

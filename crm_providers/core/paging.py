"""Cursors over ordered results: live (the drift) or snapshotted.

A live cursor is an offset into the result as it is *when the next page is asked for*. If a record
on an earlier page is modified meanwhile, a modified-since listing ordered by modification time
moves it to the end (it is served twice) and everything after it shifts back one place (the first
record of the next page is skipped). That is how offset-style paging over a live table behaves,
and the sync must survive it. A snapshotted cursor fixes the list of ids at the first page.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

SNAPSHOTS_KEPT = 1_000


@dataclass(frozen=True)
class Token:
    offset: int
    snapshot: int | None = None


@dataclass(frozen=True)
class Page:
    ids: list[str]
    next: Token | None
    total: int


class Pager:
    def __init__(self) -> None:
        self._snapshots: OrderedDict[int, list[str]] = OrderedDict()
        self._next_id = 0

    def page(
        self, ids_now: Callable[[], list[str]], token: Token | None, size: int, *, drift: bool
    ) -> Page:
        """The page at ``token`` (the first when None) of at most ``size`` ids.

        Raises ``KeyError`` for a snapshot that is no longer kept.
        """
        offset = 0 if token is None else token.offset
        if token is not None and token.snapshot is not None:
            ids = self._snapshots[token.snapshot]
            snapshot: int | None = token.snapshot
        else:
            ids = ids_now()
            snapshot = None
            if not drift and len(ids) > size:
                snapshot = self._keep(ids)
        chunk = ids[offset : offset + size]
        following = offset + len(chunk)
        more = following < len(ids)
        return Page(chunk, Token(following, snapshot) if more else None, len(ids))

    def _keep(self, ids: list[str]) -> int:
        self._next_id += 1
        self._snapshots[self._next_id] = list(ids)
        while len(self._snapshots) > SNAPSHOTS_KEPT:
            self._snapshots.popitem(last=False)
        return self._next_id

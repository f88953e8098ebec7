"""What a sync must provide to run on the engine. Adding a sync means implementing these in a
pipeline package; the engine itself does not change."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol

from .store import InboxEntry, NewEntry, Rejected


@dataclass(frozen=True)
class Page:
    """One page of a window, validated: what to store, what to dead-letter, and whether it is
    the window's last page (the one whose storing advances the cursor)."""

    entries: list[NewEntry] = field(default_factory=list)
    rejects: list[Rejected] = field(default_factory=list)
    last: bool = False


class Pipeline(Protocol):
    name: str
    """Names the inbox source and the cursor."""

    def pages(self, start: float, end: float) -> AsyncIterator[Page]:
        """The window [start, end) of the source, page by page."""
        ...

    async def apply(self, entry: InboxEntry) -> None:
        """Apply one inbox entry to the target, idempotently. Raise ``TransientError`` to be
        retried, ``PermanentError`` to be dead-lettered."""
        ...

    async def recover(self, reason: str, horizon: float) -> None:
        """Heal after something may have been fetched but not stored (an unclean stop, a window
        that failed part-way): re-read what the source still holds into the inbox. Nothing that
        happened after ``horizon`` (when the last window was asked for) can have been lost."""
        ...

"""What a sync plugs into the engine: one or more flows, each a source read into the inbox and a
sink that applies the inbox's entries. Adding a sync means writing these; the engine does not
change.

Three kinds of source, because systems keep their changes in three ways:

- a **windowed** source is a feed of what happened, read in time windows from a cursor the
  engine keeps (BigChat's ``/events``, an API's "changed since" listing). What it served once it
  may never serve again, so each page is kept as received before anything else, and ``recover``
  re-reads what a crash may have lost;
- a **cursor** source is a feed read from a position the source itself hands out (a change
  feed's version, a logical timestamp, a replay id): each page says the position after it, and
  the engine stores that position in the same transaction as the page's entries. Like a windowed
  source, what it served may not be served again, so its pages are kept as received first, and
  it has a ``recover``;
- a **pending** source holds its work until it is handled (files in a folder, documents marked
  "not yet synced"): each poll lists everything outstanding, the inbox de-duplicates what it
  already has, and the sink's ``apply`` is what takes an item out of the source (moves the file,
  marks the document). Nothing can be lost between two polls, so it needs no cursor and no
  recovery.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from .journal import PageJournal
from .state import InboxEntry, NewEntry, Rejected


@dataclass(frozen=True)
class Received:
    """One page exactly as the source sent it, and whether it is the window's last (the one
    whose storing advances the cursor; a pending source's pages need not say)."""

    body: bytes
    last: bool = False
    position: float | None = None
    """A cursor source's position after this page (None: the position does not move)."""


@dataclass(frozen=True)
class Page:
    """A received page, validated: what to store and what to dead-letter."""

    entries: list[NewEntry] = field(default_factory=list)
    rejects: list[Rejected] = field(default_factory=list)


class Source(Protocol):
    name: str
    """Names the source's inbox entries, its cursor and its dead letters in the state store."""

    def parse(self, body: bytes) -> Page:
        """Validate a received page into inbox entries (and rejects with their reasons). A page
        left over from a crash is parsed on its own."""
        ...


@runtime_checkable
class WindowedSource(Source, Protocol):
    def fetch(self, start: float, end: float) -> AsyncIterator[Received]:
        """The window [start, end) of the source, page by page, as received; the last page
        says so (``Received.last``)."""
        ...

    async def recover(self, reason: str, horizon: float) -> None:
        """Heal after something may have been fetched but not stored (an unclean stop, a window
        that failed part-way): re-read what the source still holds into the inbox. Nothing that
        happened after ``horizon`` (when the last window was asked for) can have been lost."""
        ...


@runtime_checkable
class CursorSource(Source, Protocol):
    def fetch_after(self, position: float | None) -> AsyncIterator[Received]:
        """The changes after ``position`` (None: a new state; the source decides where it
        starts), page by page, each carrying the position after it, until there are no more."""
        ...

    async def recover(self, reason: str, horizon: float) -> None:
        """As a windowed source's: re-read what may have been received and not stored (a full
        scan, for instance)."""
        ...


@runtime_checkable
class PendingSource(Source, Protocol):
    def fetch_pending(self) -> AsyncIterator[Received]:
        """Everything the source holds that is not handled yet, page by page. Listed again at
        every poll until the sink's ``apply`` takes it out of the source."""
        ...


class Sink(Protocol):
    async def apply(self, entry: InboxEntry) -> None:
        """Apply one inbox entry to the target, idempotently. Raise ``TransientError`` to be
        retried, ``PermanentError`` to be dead-lettered."""
        ...


Pruner = Callable[[float], Awaitable[None]]
"""Forget the flow's own state about things older than the given time (see the engine's prune)."""


@dataclass(frozen=True)
class Flow:
    source: WindowedSource | CursorSource | PendingSource
    sink: Sink
    journal: PageJournal | None = None
    """Where a windowed source's pages go the moment they arrive (see ``journal.py``)."""
    prune: Pruner | None = None
    order: str | None = None
    """Flows with the same ``order`` share their keys: entries of one key from any of them are
    applied one at a time, and a dead letter that blocks the key blocks it in all of them (a
    two-way sync's two directions of one record). None: the flow's keys are its own."""

    forget: Callable[[], None] | None = None
    """Drop what the sink remembers of its target (caches of what it holds). Several workers:
    called when this worker takes partitions over, since their previous owners wrote meanwhile."""

    @property
    def name(self) -> str:
        return self.source.name

    @property
    def keyspace(self) -> str:
        return self.order or self.source.name

    @property
    def recoverable(self) -> bool:
        """Whether what it served may be lost by a crash (and so it has a ``recover``)."""
        return isinstance(self.source, WindowedSource | CursorSource)

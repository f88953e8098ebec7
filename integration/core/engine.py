"""The engine: poll a sync's sources into the inbox, apply the inbox through keyed dispatch, stop
cleanly, heal after an unclean stop, and (drain mode) stop by itself once everything there was is
applied.

Knows nothing of any particular system; a sync plugs in as one or more flows (``flow.py``).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .clock import Clock, iso
from .dispatch import KeyedDispatcher
from .errors import IntegrationError, PermanentError, TransientError
from .flow import CursorSource, Flow, Page, PendingSource, Received, WindowedSource
from .journal import PageJournal
from .retry import RetryPolicy, retrying
from .stats import Stats
from .store import InboxEntry, StateError, StateStore, StoredPage

if TYPE_CHECKING:
    from .distributed.coordinator import Coordinator

log = logging.getLogger("integration.engine")

DONE_BATCH = 256
DONE_FLUSH_SECONDS = 0.05

PRUNE_FIRST_DELAY = 5.0

RUNNING_MARK = "running:{name}"
FETCHING = "fetching:{name}"
RECOVERY_DUE = "recovery-due:{name}"
"""Set while a recovery that was needed has not completed: a clean stop does not clear it."""

POLL_BACKOFF_MAX = 300.0
"""Longest wait between two polls after unexpected failures in a row."""


class EngineFailed(Exception):
    """The engine cannot go on (the state store failed, or a background task died): the process
    must stop with a failure status so that its supervisor restarts it."""


@dataclass(frozen=True)
class EngineSettings:
    poll_interval: float = 10.0
    lag: float = 2.0
    """Seconds behind now that a window ends, so events recorded a little late are in it."""
    max_window: float = 300.0
    """After downtime, catch up in windows of at most this many seconds, not one huge one."""
    start_at: float | None = None
    """Where a brand-new state starts; None: now."""
    concurrency: int = 16
    shutdown_grace: float = 10.0
    rescan_interval: float = 5.0
    """How often pending entries are re-read from the start (dead letters put back by the CLI)."""
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    retention: float = 7 * 86400.0
    """Seconds the source can re-serve an event: finished inbox entries older than this are
    pruned (their fingerprints no longer de-duplicate). See ``SQLiteStore.prune``."""
    prune_interval: float = 600.0
    """Seconds between prunes; the first runs ``PRUNE_FIRST_DELAY`` after the start."""
    recovery_retry: float = 60.0
    """Seconds between attempts of a recovery that did not complete, while polls succeed (a
    worker may run for days without a failed poll or a restart to try it again)."""


@dataclass
class Tally:
    """One poll's pages and what became of their items."""

    pages: int = 0
    new: int = 0
    duplicate: int = 0
    rejected: int = 0

    def add(self, stored: StoredPage) -> None:
        self.pages += 1
        self.new += stored.new
        self.duplicate += stored.duplicate
        self.rejected += stored.rejected

    def __str__(self) -> str:
        return (
            f"{self.pages} page(s), {self.new} new, {self.duplicate} duplicate, "
            f"{self.rejected} rejected"
        )


def window_end(cursor: float, now: float, settings: EngineSettings) -> float:
    """End of the next window starting at ``cursor``: ``now - lag``, at most ``max_window``
    ahead, whole seconds (the source's timestamps are whole seconds)."""
    return float(math.floor(min(now - settings.lag, cursor + settings.max_window)))


async def wait_for_event(event: asyncio.Event, seconds: float) -> bool:
    """Wait for ``event`` at most ``seconds``; True if it was set.

    ``asyncio.timeout`` rather than ``asyncio.wait_for``: in Python 3.11, ``wait_for`` can
    swallow a cancellation that arrives just as the event is set, and a task cancelled at
    shutdown would then carry on forever.
    """
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        return False
    return True


Key = tuple[str, str]
"""A dispatch key: the flow's key space (its source's name unless flows share an ``order``) and
the entry's key, so two sources' keys collide only when they are meant to."""


def as_flows(flows: Flow | Sequence[Flow] | Any, journal: PageJournal | None = None) -> list[Flow]:
    """A sync's flows. One object that is both a windowed source and a sink (a small sync, or a
    test's scripted pipeline) is one flow; its optional ``prune`` is the flow's."""
    if isinstance(flows, Flow):
        return [flows]
    if isinstance(flows, Sequence):
        return list(flows)
    return [Flow(source=flows, sink=flows, journal=journal, prune=getattr(flows, "prune", None))]


class Engine:
    def __init__(
        self,
        flows: Flow | Sequence[Flow] | Any,
        store: StateStore,
        clock: Clock,
        settings: EngineSettings,
        stats: Stats | None = None,
        journal: PageJournal | None = None,
        *,
        name: str | None = None,
        coordinator: Coordinator | None = None,
    ) -> None:
        self.flows = as_flows(flows, journal)
        if not self.flows:
            raise ValueError("an engine needs at least one flow")
        names = [flow.name for flow in self.flows]
        if len(set(names)) != len(names):
            raise ValueError(f"two flows share a source name: {names}")
        self._space = {flow.name: flow.keyspace for flow in self.flows}
        self.name = name or self.flows[0].name
        """Names the running mark: one per sync."""
        self.store = store
        self.clock = clock
        self.settings = settings
        self.stats = stats or Stats()
        self._wake = store.inbox_changed
        self.coordinator = coordinator
        """Several workers (``INBOX_URL``): this worker's part; None for a lone process."""
        self._inflight_part: dict[int, int] = {}
        """Several workers: the partition of each entry in flight."""
        self._rescan_now = False
        self._leading = coordinator is None
        """Whether this process polls the sources (a lone process always does)."""
        self._inflight: set[int] = set()
        self._feeding_stopped = False
        self._finished: set[int] = set()
        self._blocked: set[Key] = set()
        self._failure: BaseException | None = None
        self._failed = asyncio.Event()
        self._shutting_down = False
        self._stopping = asyncio.Event()
        self._done: list[int] = []
        self._flush_soon = asyncio.Event()
        self._dispatcher: KeyedDispatcher[Key, InboxEntry] = KeyedDispatcher(
            self._handle,
            concurrency=settings.concurrency,
            max_queued=settings.concurrency * 64,
            on_dropped=self._forget,
            on_crash=self._crashed,
        )
        self._applies = {
            flow.name: retrying(settings.retry, on_retry=self._on_retry)(flow.sink.apply)
            for flow in self.flows
        }
        self.drained = False
        """Drain mode: True once everything applicable was applied (not stopped by a signal)."""
        self._recovery_tried: dict[str, float] = {}
        """Flows whose last recovery did not complete: when it was last tried (monotonic)."""
        self.drain_problems: list[str] = []
        """Drain mode: why the drain is incomplete (a poll that failed); empty when complete."""

    @property
    def sources(self) -> list[str]:
        return [flow.name for flow in self.flows]

    @property
    def pipeline(self) -> WindowedSource | CursorSource | PendingSource:
        """The first flow's source (a single-flow engine's, as tests and the demo see it)."""
        return self.flows[0].source

    # -- polling ---------------------------------------------------------------------------

    async def poll_once(
        self, stopping: asyncio.Event | None = None, flow: Flow | None = None
    ) -> bool:
        """Fetch and store what ``flow`` (the first when None) has next. Returns True when a
        windowed source has more to catch up.

        Asked to stop, it stops between two pages: the page in hand is stored and the next was
        never asked for, so nothing is lost; the cursor stays, and the window is asked again.
        """
        flow = flow or self.flows[0]
        if isinstance(flow.source, WindowedSource):
            return await self._poll_window(flow, flow.source, stopping)
        if isinstance(flow.source, CursorSource):
            await self._poll_cursor(flow, flow.source, stopping)
            return False
        assert isinstance(flow.source, PendingSource)
        await self._poll_pending(flow, flow.source, stopping)
        return False

    async def _poll_window(
        self, flow: Flow, source: WindowedSource, stopping: asyncio.Event | None
    ) -> bool:
        name = flow.name
        cursor = await self.store.get_cursor(name)
        now = self.clock.now()
        if cursor is None:
            start = self.settings.start_at
            cursor = float(math.floor(now - self.settings.lag if start is None else start))
            await self.store.set_cursor(name, cursor)
            log.info("new state: %s starts at %s", name, iso(cursor))
        self.stats.cursor = cursor
        end = window_end(cursor, now, self.settings)
        if end <= cursor:
            # Nothing due yet (a poll interval under a second): still a healthy poll.
            self.stats.last_poll_ok_at = now
            return False
        started = time.perf_counter()
        tally = Tally()
        last = False
        # Recorded before asking, so that after a crash recovery knows how late the events it
        # may have received and lost could be (the source may ignore end_at and serve up to now).
        await self.store.meta_put(FETCHING.format(name=name), str(now))
        async for received in source.fetch(cursor, end):
            await self._keep(flow, source, received, end if received.last else None, tally)
            if received.last:
                last = True
            elif stopping is not None and stopping.is_set():
                log.info("stop: window [%s, %s) left between pages", iso(cursor), iso(end))
                return False
        # The loop runs to the fetch's own end (not broken at the last page), so that what the
        # source does after its last page, such as healing a page that went unanswered, runs.
        if not last:
            raise TransientError(f"{name}: the window ended without a last page")
        if flow.journal is not None:
            flow.journal.clear()  # every page of the window is in the state store
        elapsed = time.perf_counter() - started
        self.stats.windows += 1
        self.stats.cursor = end
        self._poll_ok(elapsed)
        log.info("poll %s [%s, %s): %s, %.2fs", name, iso(cursor), iso(end), tally, elapsed)
        return window_end(end, self.clock.now(), self.settings) > end

    async def _poll_cursor(
        self, flow: Flow, source: CursorSource, stopping: asyncio.Event | None
    ) -> None:
        """Read the changes after the stored position; each page is kept as received first (as
        a window's), and its entries and the position after it are stored in one transaction."""
        name = flow.name
        position = start = await self.store.get_cursor(name)
        started = time.perf_counter()
        tally = Tally()
        await self.store.meta_put(FETCHING.format(name=name), str(self.clock.now()))
        async for received in source.fetch_after(position):
            await self._keep(flow, source, received, received.position, tally)
            if received.position is not None:
                position = received.position
                self.stats.cursor = position
            if stopping is not None and stopping.is_set():
                log.info("stop: %s feed left between pages", name)
                break
        if flow.journal is not None:
            flow.journal.clear()  # every page read is in the state store
        elapsed = time.perf_counter() - started
        self.stats.windows += 1
        self._poll_ok(elapsed)
        log.log(
            logging.INFO if tally.new or tally.rejected else logging.DEBUG,
            "poll %s after %s: %s, %.2fs",
            name,
            "the start" if start is None else f"{start:g}",
            tally,
            elapsed,
        )

    async def _poll_pending(
        self, flow: Flow, source: PendingSource, stopping: asyncio.Event | None
    ) -> None:
        """List what the source still holds; what the inbox has already is a duplicate. The
        source keeps every item until the sink takes it out, so a stop between pages, or a
        crash, loses nothing: the next poll lists it again."""
        started = time.perf_counter()
        tally = Tally()
        async for received in source.fetch_pending():
            page = source.parse(received.body)
            stored = await self.store.store_page(flow.name, page.entries, page.rejects)
            self._count(stored, tally)
            if stopping is not None and stopping.is_set():
                log.info("stop: %s listing left between pages", flow.name)
                return
        elapsed = time.perf_counter() - started
        self.stats.windows += 1
        self._poll_ok(elapsed)
        # Said at INFO only when something new came in: a folder polled every few seconds
        # would otherwise print the same "nothing new" line all day.
        log.log(
            logging.INFO if tally.new or tally.rejected else logging.DEBUG,
            "poll %s: %s, %.2fs",
            flow.name,
            tally,
            elapsed,
        )

    async def _keep(
        self,
        flow: Flow,
        source: WindowedSource | CursorSource,
        received: Received,
        cursor: float | None,
        tally: Tally,
    ) -> None:
        """Keep a page as received, before any other work: the source may never serve it
        again, so the time between receiving and keeping it must be as short as it can be.
        First the journal (one write, in the same step as the page's arrival: no other task runs
        in between), then the state store; the page's entries replace it there in one
        transaction, with the cursor's new value when the page moves it."""
        if flow.journal is not None:
            flow.journal.append(received.body)
        received_id = await self.store.receive(flow.name, received.body)
        page = source.parse(received.body)
        if self.coordinator is not None:
            stored = await self._publish(flow, page, cursor, received_id)
            self._count(stored, tally)
            return
        stored = await self.store.store_page(
            flow.name,
            page.entries,
            page.rejects,
            cursor=(flow.name, cursor) if cursor is not None else None,
            received_id=received_id,
        )
        self._count(stored, tally)

    async def _publish(
        self, flow: Flow, page: Page, cursor: float | None, received_id: int | None
    ) -> StoredPage:
        """Several workers: the page's entries go to their partitions in JetStream, every ack
        awaited, and only then do the cursor move and the page as received go, in one fenced
        transaction. A crash in between leaves the page as received (stored again at the next
        start) and the cursor where it was (the window read again); JetStream's duplicate window
        and the inbox table's fingerprints drop the repeats."""
        assert self.coordinator is not None
        new, duplicate = await self.coordinator.publish(flow.name, page.entries)
        stored = await self.store.store_page(
            flow.name,
            [],
            page.rejects,
            cursor=(flow.name, cursor) if cursor is not None else None,
            received_id=received_id,
        )
        return StoredPage(new=new, duplicate=duplicate, rejected=stored.rejected)

    def _count(self, stored: StoredPage, tally: Tally) -> None:
        # Counted page by page, so a long catch-up window shows its progress as it goes.
        tally.add(stored)
        self.stats.pages += 1
        self.stats.fetched_new += stored.new
        self.stats.fetched_duplicate += stored.duplicate
        self.stats.rejected += stored.rejected

    def _poll_ok(self, elapsed: float) -> None:
        self.stats.last_poll_ok_at = self.clock.now()
        self.stats.last_poll_error = None
        self.stats.last_poll_seconds = elapsed

    async def _poll_loop(self, flow: Flow, stopping: asyncio.Event) -> None:
        unexpected = 0
        failed = 0  # polls failed in a row: a service that is down fails every one of them
        while not stopping.is_set():
            more = False
            wait = self.settings.poll_interval
            try:
                more = await self.poll_once(stopping, flow)
                unexpected = 0
                if failed > 1:
                    log.info("%s: polling again after %d failed poll(s)", flow.name, failed)
                failed = 0
                tried = self._recovery_tried.get(flow.name)
                if tried is not None and time.monotonic() - tried >= self.settings.recovery_retry:
                    await self._recover(flow, "an earlier recovery did not complete")
            except IntegrationError as exc:
                failed += 1
                self._poll_failed(str(exc))
                # Said once per streak; the repeats (and the service's own "is not answering")
                # would otherwise be a line per poll interval while a service is down.
                log.log(
                    logging.WARNING if failed == 1 else logging.DEBUG,
                    "%s: poll failed, will retry next interval: %s%s",
                    flow.name,
                    exc,
                    " (further failures in a row at DEBUG)" if failed == 1 else "",
                )
                await self._recover(flow, "a window failed part-way", quiet=failed > 1)
            except StateError:
                raise  # the state cannot be written: nothing is safe any more (see run)
            except Exception as exc:
                # Not a failure the source foresaw (a bug, or a peer's answer nothing
                # anticipated). Retrying the window is safe, since whatever was stored is
                # de-duplicated; back off so that a failure repeating every poll does not spin.
                unexpected += 1
                wait = min(POLL_BACKOFF_MAX, self.settings.poll_interval * 2 ** min(unexpected, 10))
                self._poll_failed(f"{exc.__class__.__name__}: {exc}")
                log.error(
                    "%s: poll failed unexpectedly (%s: %s); retrying in %.0fs",
                    flow.name,
                    exc.__class__.__name__,
                    exc,
                    wait,
                    exc_info=log.isEnabledFor(logging.DEBUG),
                )
                await self._recover(flow, "a window failed unexpectedly")
            if more:
                continue
            await wait_for_event(stopping, wait)

    async def _drain_polls(self, flow: Flow, stopping: asyncio.Event) -> None:
        """Drain mode's poller: read what the source has up to now, once, then stop polling. A
        failed poll is not retried: the drain is incomplete, and says why."""
        try:
            while await self.poll_once(stopping, flow):
                if stopping.is_set():
                    return
        except StateError:
            raise
        except Exception as exc:
            reason = (
                f"{exc.__class__.__name__}: {exc}"
                if not isinstance(exc, IntegrationError)
                else str(exc)
            )
            self._poll_failed(reason)
            self.drain_problems.append(f"poll {flow.name} failed: {reason}")
            log.warning("%s: poll failed: %s", flow.name, reason)
            await self._recover(flow, "a window failed part-way")

    def _poll_failed(self, reason: str) -> None:
        self.stats.poll_failures += 1
        self.stats.last_poll_error = reason

    async def _recover(self, flow: Flow, reason: str, *, quiet: bool = False) -> None:
        source = flow.source
        if not isinstance(source, WindowedSource | CursorSource):
            return  # a pending source still holds everything not applied
        fetching = await self.store.meta_get(FETCHING.format(name=flow.name))
        horizon = float(fetching) if fetching else self.clock.now()
        try:
            await source.recover(reason, horizon)
        except StateError:
            raise
        except Exception as exc:
            # Recovery runs again at the next failed window, and at the next start (clean or
            # not) until one completes.
            log.log(
                logging.DEBUG if quiet else logging.WARNING,
                "recovery (%s) incomplete, will try again: %s: %s",
                reason,
                exc.__class__.__name__,
                exc,
            )
            await self.store.meta_put(RECOVERY_DUE.format(name=flow.name), reason)
            self._recovery_tried[flow.name] = time.monotonic()
        else:
            await self.store.meta_put(RECOVERY_DUE.format(name=flow.name), None)
            self._recovery_tried.pop(flow.name, None)
        self._wake.set()

    async def _store_leftovers(self, flow: Flow) -> None:
        """Pages received and kept as received (in the journal, or the state store), whose
        entries never were (the process died in between): their entries enter the inbox now.
        A page kept in both places is parsed once; storing is idempotent anyway."""
        name = flow.name
        journaled = flow.journal.records() if flow.journal is not None else []
        kept: dict[bytes, int | None] = dict.fromkeys(journaled)
        for stored_id, stored_body in await self.store.received(name):
            kept[stored_body] = stored_id
        for body, received_id in kept.items():
            try:
                page = flow.source.parse(body)
            except Exception as exc:  # a page we cannot read is no page to lose
                log.warning("%s: a page kept before the last stop cannot be read (%s)", name, exc)
                continue
            if self.coordinator is not None:
                stored = await self._publish(flow, page, None, received_id)
            else:
                stored = await self.store.store_page(
                    name, page.entries, page.rejects, received_id=received_id
                )
            self.stats.fetched_new += stored.new
            self.stats.rejected += stored.rejected
        if flow.journal is not None:
            flow.journal.clear()
        if kept:
            log.info("%s: stored %d page(s) received before the last stop", name, len(kept))

    # -- applying --------------------------------------------------------------------------

    async def _feed_loop(self) -> None:
        """Move pending inbox entries into the dispatcher, in inbox order, source by source."""
        watermarks = dict.fromkeys(self.sources, 0)
        last_rescan = self.clock.now()
        while not self._feeding_stopped:
            self._wake.clear()  # before reading, so nothing stored meanwhile is missed
            # Entries finishing from now on are remembered: the list read below goes stale while
            # submit() waits for room, and a finished entry must not be handed out again.
            self._finished.clear()
            full = False
            if self._rescan_now:
                self._rescan_now = False
                watermarks = dict.fromkeys(self.sources, 0)
            for source in self.sources:
                entries = await self._pending(source, watermarks[source], 500)
                for entry in entries:
                    watermarks[source] = max(watermarks[source], entry.seq)
                    key = (self._space[source], entry.key)
                    if (
                        entry.seq in self._inflight
                        or entry.seq in self._finished
                        or key in self._blocked
                    ):
                        continue
                    self._inflight.add(entry.seq)
                    if self.coordinator is not None:
                        self._inflight_part[entry.seq] = self.coordinator.partition(
                            entry.source, entry.key
                        )
                    await self._dispatcher.submit(key, entry)
                full = full or len(entries) == 500
            if full:
                continue
            await wait_for_event(self._wake, self.settings.rescan_interval)
            if self.clock.now() - last_rescan >= self.settings.rescan_interval:
                # Entries can become pending behind the watermark (a dead letter put back), and
                # keys unblocked (the same): start again from the store's own view.
                watermarks = dict.fromkeys(self.sources, 0)
                last_rescan = self.clock.now()
                self._blocked = await self._blocked_keys()

    async def _pending(self, source: str, after: int, limit: int) -> list[InboxEntry]:
        if self.coordinator is not None:
            return await self.coordinator.pending(source, after, limit)
        return await self.store.pending(source, after, limit)

    async def _blocked_keys(self) -> set[Key]:
        return {
            (self._space[source], key)
            for source in self.sources
            for key in await self.store.blocked_keys(source)
        }

    def _forget(self, entries: list[InboxEntry]) -> None:
        """Entries dropped from the dispatcher (their key blocked, or shutting down) stay
        pending in the store; the feeder may hand them out again later."""
        for entry in entries:
            self._inflight.discard(entry.seq)
            self._inflight_part.pop(entry.seq, None)

    async def _handle(self, key: Key, entry: InboxEntry) -> bool:
        if self.coordinator is not None and not self.coordinator.applies(entry):
            # Its partition is being given up (or was lost): the entry stays pending in the
            # store for the partition's next owner.
            self._release(entry.seq)
            return False
        if key in self._blocked:
            # Listed before its key was blocked (the feeder's list goes stale while it waits for
            # room): it waits in the store behind the dead letter, like the rest of its key.
            self._release(entry.seq)
            return False
        try:
            await self._applies[entry.source](entry)
        except PermanentError as exc:
            await self._dead_letter(entry, str(exc), blocking=exc.blocking)
            self._release(entry.seq)
            return not exc.blocking
        except TransientError as exc:  # only when the policy gives up
            await self._dead_letter(entry, f"gave up retrying: {exc}", blocking=True)
            self._release(entry.seq)
            return False
        except (asyncio.CancelledError, StateError):
            self._release(entry.seq)
            raise
        except Exception as exc:
            log.exception("bug: unexpected error applying %s entry %d", entry.kind, entry.seq)
            await self._dead_letter(
                entry, f"unexpected error: {exc.__class__.__name__}: {exc}", blocking=True
            )
            self._release(entry.seq)
            return False
        else:
            # Marked done in batches (see _flush_done): until then the entry stays "in flight",
            # so it is not handed out again; after a crash it is applied again, harmlessly.
            self._done.append(entry.seq)
            if len(self._done) >= DONE_BATCH:
                self._flush_soon.set()
            self.stats.applied += 1
            return True

    def _release(self, seq: int) -> None:
        self._inflight.discard(seq)
        self._inflight_part.pop(seq, None)
        self._finished.add(seq)

    # -- what a coordinator asks (several workers) -----------------------------------------

    def partition_busy(self, part: int) -> bool:
        return part in self._inflight_part.values()

    async def flush_done(self) -> None:
        await self._flush_done()

    def inbox_grew(self, *, rescan: bool) -> None:
        if rescan:
            self._rescan_now = True
        self._wake.set()

    def forget_cached(self) -> None:
        for flow in self.flows:
            if flow.forget is not None:
                flow.forget()

    async def _flush_done(self) -> None:
        """Mark applied entries done, many per transaction."""
        if not self._done:
            return
        seqs, self._done = self._done, []
        await self.store.mark_done(seqs)
        for seq in seqs:
            self._release(seq)

    async def _flush_loop(self) -> None:
        while True:
            await wait_for_event(self._flush_soon, DONE_FLUSH_SECONDS)
            self._flush_soon.clear()
            await self._flush_done()

    async def _dead_letter(self, entry: InboxEntry, reason: str, *, blocking: bool) -> None:
        if blocking:
            self._blocked.add((self._space[entry.source], entry.key))
        letter = await self.store.dead_letter(entry, reason, blocking=blocking)
        self.stats.dead_lettered += 1
        self.stats.dead_by_reason[reason.split(":", 1)[0][:60]] += 1
        log.warning(
            "dead letter %d: %s %s of %s: %s%s",
            letter,
            entry.source,
            entry.kind,
            entry.key,
            reason,
            " (its later events wait behind it)" if blocking else "",
        )

    def _on_retry(self, details: dict[str, object]) -> None:
        self.stats.retries += 1
        exc = details.get("exception")
        # DEBUG: a service that is down fails every call; the service's ``Availability`` says
        # so once (WARNING) and once when it is back (INFO), instead of a line per retry.
        log.debug(
            "retrying in %.1fs (try %s): %s", details.get("wait", 0), details.get("tries"), exc
        )

    # -- drain mode ------------------------------------------------------------------------

    async def _has_work(self) -> bool:
        """Anything applicable left: in flight, or pending and not behind a dead letter."""
        if self._inflight or self._done:
            return True
        for source in self.sources:
            after = 0
            while entries := await self.store.pending(source, after, 500):
                if any((self._space[source], e.key) not in self._blocked for e in entries):
                    return True
                after = entries[-1].seq
        return False

    async def _drain(self, stopping: asyncio.Event, polls: list[asyncio.Task[None]]) -> None:
        """Drain mode: once every source has been read up to now, wait until nothing
        applicable is left, then stop as if asked to."""
        await asyncio.gather(*polls, return_exceptions=True)
        while not stopping.is_set():
            self._wake.set()  # the feeder looks at the store now, not at its next rescan
            if not await self._has_work():
                # Twice, a beat apart: an entry between being listed and being handed out is
                # neither pending-unseen nor in flight for an instant.
                await asyncio.sleep(DONE_FLUSH_SECONDS)
                if not await self._has_work():
                    self.drained = True
                    break
            await wait_for_event(stopping, DONE_FLUSH_SECONDS * 2)
        stopping.set()

    # -- lifecycle -------------------------------------------------------------------------

    def _crashed(self, exc: BaseException) -> None:
        """A background task ended on its own: the engine cannot go on as it should."""
        if self._failure is None:
            self._failure = exc
        self._failed.set()

    def _watch(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or self._shutting_down:
            return
        exc = task.exception()
        if exc is None and (self._stopping.is_set() or task.get_name().startswith("drain")):
            return  # pollers end by themselves once asked to stop (or, draining, when done)
        self._crashed(exc or RuntimeError(f"the {task.get_name()} task ended on its own"))

    async def _until_stop_or_failure(self, stopping: asyncio.Event) -> None:
        waiters = [
            asyncio.create_task(stopping.wait(), name="stop-waiter"),
            asyncio.create_task(self._failed.wait(), name="failure-waiter"),
        ]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)

    async def run(self, stopping: asyncio.Event, *, once: bool = False) -> bool:
        """Run until ``stopping`` is set; then stop polling, finish what is in flight within the
        grace period, and return True if the stop was clean.

        ``once`` (drain mode, for tests, benchmarks and cron-style runs): read every source up
        to now, apply everything applicable, and stop by itself. ``drain_problems`` then says
        what could not be read.

        Raises ``EngineFailed`` when the engine cannot go on: the state store failed, or one of
        its background tasks died. Nothing dies unnoticed: the caller exits non-zero and the
        process supervisor starts a fresh process, whose recovery picks up where this one was.
        """
        self._stopping = stopping
        mark = RUNNING_MARK.format(name=self.name)
        if once and self.coordinator is not None:
            raise ValueError("drain mode runs one process: it has no several-worker form")
        if self.coordinator is None:
            await self._take_up_polling(mark)
        self._blocked = await self._blocked_keys()
        self._dispatcher.start()
        if self.coordinator is not None:
            try:
                await self.coordinator.start(self)
            except IntegrationError as exc:  # JetStream out of reach at the start
                raise EngineFailed(f"{self.name}: {exc}") from exc
            coordinator = self.coordinator

            async def lead(stopping: asyncio.Event) -> None:
                await self._take_up_polling(mark)
                self._leading = True
                await asyncio.gather(*(self._poll_loop(flow, stopping) for flow in self.flows))

            polls = [
                asyncio.create_task(coordinator.run_poller_role(stopping, lead), name="poller-role")
            ]
            background = [
                asyncio.create_task(self._prune_loop(stopping), name="pruner"),
                asyncio.create_task(coordinator.run_membership(stopping), name="membership"),
            ]
        elif once:
            polls = [
                asyncio.create_task(self._drain_polls(flow, stopping), name=f"drain-{flow.name}")
                for flow in self.flows
            ]
            background = [asyncio.create_task(self._drain(stopping, polls), name="drain")]
        else:
            polls = [
                asyncio.create_task(self._poll_loop(flow, stopping), name=f"poller-{flow.name}")
                for flow in self.flows
            ]
            background = [asyncio.create_task(self._prune_loop(stopping), name="pruner")]
        feeder = asyncio.create_task(self._feed_loop(), name="feeder")
        flusher = asyncio.create_task(self._flush_loop(), name="done-flusher")
        for task in (*polls, *background, feeder, flusher):
            task.add_done_callback(self._watch)
        try:
            await self._until_stop_or_failure(stopping)
        finally:
            self._shutting_down = True
            stopping.set()
            for task in background:
                # A prune cut short is harmless: each batch commits on its own.
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            clean = await self._shut_down(polls, feeder, flusher) and self._failure is None
            if clean and self._leading:
                await self.store.meta_put(mark, None)
            if self.coordinator is not None:
                await self._leave(clean)
        if self._failure is not None:
            failure = self._failure
            raise EngineFailed(f"{self.name}: {failure.__class__.__name__}: {failure}") from failure
        return clean

    async def _take_up_polling(self, mark: str) -> None:
        """Before the first poll: mark the run, store the pages received before an unclean
        stop, and recover what it may have lost."""
        previous = await self.store.meta_get(mark)
        await self.store.meta_put(mark, iso(self.clock.now()))
        for flow in self.flows:
            await self._store_leftovers(flow)
        for flow in self.flows:
            unfinished = await self.store.meta_get(RECOVERY_DUE.format(name=flow.name))
            if previous is not None and flow.recoverable:
                log.warning(
                    "%s: the previous run did not stop cleanly (started %s); reconciling",
                    flow.name,
                    previous,
                )
                await self._recover(flow, "unclean stop")
            elif unfinished is not None:
                await self._recover(flow, f"an earlier recovery did not complete ({unfinished})")

    async def _leave(self, clean: bool) -> None:
        """Several workers: give the partitions and the poller role up, so the others take
        over now rather than after the TTL. After a failure, best effort: the TTL frees them."""
        assert self.coordinator is not None
        try:
            await self.coordinator.stop()
        except Exception as exc:
            log.log(
                logging.WARNING if clean else logging.DEBUG,
                "stop: could not give the partitions up (%s: %s); the others take them over "
                "once this worker's heartbeat is older than the TTL",
                exc.__class__.__name__,
                exc,
            )

    async def _shut_down(
        self,
        polls: list[asyncio.Task[None]],
        feeder: asyncio.Task[None],
        flusher: asyncio.Task[None],
    ) -> bool:
        # A window being fetched is allowed to finish: cancelling between receiving a page
        # and storing it would lose events the source may never serve again.
        clean = True
        polling = asyncio.gather(*polls)
        try:
            async with asyncio.timeout(self.settings.shutdown_grace):
                await asyncio.shield(polling)
        except TimeoutError:
            clean = False
            for poller in polls:
                poller.cancel()
            await asyncio.gather(*polls, return_exceptions=True)
            log.warning("stop: the poll in progress did not finish in time; cancelled it")
        except Exception as exc:  # a poller's failure is the engine's failure
            if self._failure is None:
                self._failure = exc
        self._feeding_stopped = True
        feeder.cancel()
        await asyncio.gather(feeder, return_exceptions=True)
        dropped = await self._dispatcher.drop_queued()
        log.info(
            "stop: polling stopped; finishing %d event(s) in flight (%d queued stay pending)",
            self._dispatcher.queued,
            dropped,
        )
        if not await self._dispatcher.stop(self.settings.shutdown_grace):
            log.warning("stop: in-flight events did not finish in time; they stay pending")
        flusher.cancel()
        await asyncio.gather(flusher, return_exceptions=True)
        try:
            await self._flush_done()
        except StateError as exc:
            if self._failure is None:
                self._failure = exc
        return clean

    # -- pruning (bounded growth) ----------------------------------------------------------

    async def _prune_loop(self, stopping: asyncio.Event) -> None:
        """Prune shortly after the start, then every ``prune_interval``, until ``stopping``."""
        delay = min(PRUNE_FIRST_DELAY, self.settings.prune_interval)
        while not await wait_for_event(stopping, delay):
            await self.prune_once()
            delay = self.settings.prune_interval

    async def prune_once(self) -> int:
        """Delete finished inbox entries older than the retention, and let each flow drop its
        own state of that age (``Flow.prune``). Returns how many inbox entries went; a failure
        is logged and left for the next time."""
        before = self.clock.now() - self.settings.retention
        removed = 0
        try:
            for flow in self.flows:
                removed += await self.store.prune(flow.name, before, finished_before=before)
                if flow.prune is not None:
                    await flow.prune(before)
        except StateError:
            raise  # the state cannot be written: the engine stops (see run)
        except Exception:
            log.exception("prune failed; will try again in %gs", self.settings.prune_interval)
            return removed
        if removed:
            log.info("pruned %s finished entries older than %s", f"{removed:,}", iso(before))
        return removed

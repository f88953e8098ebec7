"""The engine: poll a source in windows into the inbox, apply the inbox through keyed dispatch,
stop cleanly, and heal after an unclean stop.

Knows nothing of any particular system; a sync plugs in as a ``Pipeline``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass, field

from .clock import Clock, iso
from .dispatch import KeyedDispatcher
from .errors import IntegrationError, PermanentError, TransientError
from .pipeline import Pipeline
from .retry import RetryPolicy, retrying
from .stats import Stats
from .store import InboxEntry, SQLiteStore

log = logging.getLogger("integration.engine")

DONE_BATCH = 256
DONE_FLUSH_SECONDS = 0.05

RUNNING_MARK = "running:{name}"
FETCHING = "fetching:{name}"


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


class Engine:
    def __init__(
        self,
        pipeline: Pipeline,
        store: SQLiteStore,
        clock: Clock,
        settings: EngineSettings,
        stats: Stats | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.store = store
        self.clock = clock
        self.settings = settings
        self.stats = stats or Stats()
        self._wake = store.inbox_changed
        self._inflight: set[int] = set()
        self._feeding_stopped = False
        self._finished: set[int] = set()
        self._done: list[int] = []
        self._flush_soon = asyncio.Event()
        self._dispatcher: KeyedDispatcher[str, InboxEntry] = KeyedDispatcher(
            self._handle,
            concurrency=settings.concurrency,
            max_queued=settings.concurrency * 64,
            on_dropped=self._forget,
        )
        self._apply = retrying(settings.retry, on_retry=self._on_retry)(pipeline.apply)

    # -- polling ---------------------------------------------------------------------------

    async def poll_once(self, stopping: asyncio.Event | None = None) -> bool:
        """Fetch and store the next window. Returns True when there is more to catch up.

        Asked to stop, it stops between two pages: the page in hand is stored and the next was
        never asked for, so nothing is lost; the cursor stays, and the window is asked again.
        """
        name = self.pipeline.name
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
        pages = new = duplicate = rejected = 0
        # Recorded before asking, so that after a crash recovery knows how late the events it
        # may have received and lost could be (the source may ignore end_at and serve up to now).
        await self.store.meta_put(FETCHING.format(name=name), str(now))
        async for page in self.pipeline.pages(cursor, end):
            stored = await self.store.store_page(
                name, page.entries, page.rejects, cursor=(name, end) if page.last else None
            )
            pages += 1
            new += stored.new
            duplicate += stored.duplicate
            rejected += stored.rejected
            # Counted page by page, so a long catch-up window shows its progress as it goes.
            self.stats.pages += 1
            self.stats.fetched_new += stored.new
            self.stats.fetched_duplicate += stored.duplicate
            self.stats.rejected += stored.rejected
            if page.last:
                break
            if stopping is not None and stopping.is_set():
                log.info("stop: window [%s, %s) left between pages", iso(cursor), iso(end))
                return False
        else:
            raise TransientError(f"{name}: the window ended without a last page")
        elapsed = time.perf_counter() - started
        self.stats.windows += 1
        self.stats.cursor = end
        self.stats.last_poll_ok_at = self.clock.now()
        self.stats.last_poll_error = None
        self.stats.last_poll_seconds = elapsed
        log.info(
            "poll %s [%s, %s): %d page(s), %d new, %d duplicate, %d rejected, %.2fs",
            name,
            iso(cursor),
            iso(end),
            pages,
            new,
            duplicate,
            rejected,
            elapsed,
        )
        return window_end(end, self.clock.now(), self.settings) > end

    async def _poll_loop(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            more = False
            try:
                more = await self.poll_once(stopping)
            except IntegrationError as exc:
                self.stats.poll_failures += 1
                self.stats.last_poll_error = str(exc)
                log.warning("poll failed, will retry next interval: %s", exc)
                await self._recover("a window failed part-way")
            if more:
                continue
            await wait_for_event(stopping, self.settings.poll_interval)

    async def _recover(self, reason: str) -> None:
        fetching = await self.store.meta_get(FETCHING.format(name=self.pipeline.name))
        horizon = float(fetching) if fetching else self.clock.now()
        try:
            await self.pipeline.recover(reason, horizon)
        except IntegrationError as exc:
            log.warning("recovery (%s) incomplete, will try again: %s", reason, exc)
            await self.store.meta_put(RUNNING_MARK.format(name=self.pipeline.name), "dirty")
        self._wake.set()

    # -- applying --------------------------------------------------------------------------

    async def _feed_loop(self) -> None:
        """Move pending inbox entries into the dispatcher, in inbox order."""
        watermark = 0
        last_rescan = self.clock.now()
        while not self._feeding_stopped:
            self._wake.clear()  # before reading, so nothing stored meanwhile is missed
            # Entries finishing from now on are remembered: the list read below goes stale while
            # submit() waits for room, and a finished entry must not be handed out again.
            self._finished.clear()
            entries = await self.store.pending(self.pipeline.name, watermark, 500)
            for entry in entries:
                watermark = max(watermark, entry.seq)
                if entry.seq in self._inflight or entry.seq in self._finished:
                    continue
                self._inflight.add(entry.seq)
                await self._dispatcher.submit(entry.key, entry)
            if len(entries) == 500:
                continue
            await wait_for_event(self._wake, self.settings.rescan_interval)
            if self.clock.now() - last_rescan >= self.settings.rescan_interval:
                # Entries can become pending behind the watermark (a dead letter put back).
                watermark = 0
                last_rescan = self.clock.now()

    def _forget(self, entries: list[InboxEntry]) -> None:
        """Entries dropped from the dispatcher (their key blocked, or shutting down) stay
        pending in the store; the feeder may hand them out again later."""
        for entry in entries:
            self._inflight.discard(entry.seq)

    async def _handle(self, key: str, entry: InboxEntry) -> bool:
        try:
            await self._apply(entry)
        except PermanentError as exc:
            await self._dead_letter(entry, str(exc), blocking=exc.blocking)
            self._release(entry.seq)
            return not exc.blocking
        except TransientError as exc:  # only when the policy gives up
            await self._dead_letter(entry, f"gave up retrying: {exc}", blocking=True)
            self._release(entry.seq)
            return False
        except asyncio.CancelledError:
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
        self._finished.add(seq)

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
        letter = await self.store.dead_letter(entry, reason, blocking=blocking)
        self.stats.dead_lettered += 1
        self.stats.dead_by_reason[reason.split(":", 1)[0][:60]] += 1
        log.warning(
            "dead letter %d: %s %s of %s: %s%s",
            letter,
            self.pipeline.name,
            entry.kind,
            entry.key,
            reason,
            " (its later events wait behind it)" if blocking else "",
        )

    def _on_retry(self, details: dict[str, object]) -> None:
        self.stats.retries += 1
        exc = details.get("exception")
        log.info(
            "retrying in %.1fs (try %s): %s", details.get("wait", 0), details.get("tries"), exc
        )

    # -- lifecycle -------------------------------------------------------------------------

    async def run(self, stopping: asyncio.Event) -> bool:
        """Run until ``stopping`` is set; then stop polling, finish what is in flight within the
        grace period, and return True if the stop was clean."""
        mark = RUNNING_MARK.format(name=self.pipeline.name)
        previous = await self.store.meta_get(mark)
        await self.store.meta_put(mark, iso(self.clock.now()))
        if previous is not None:
            log.warning(
                "%s: the previous run did not stop cleanly (started %s); reconciling",
                self.pipeline.name,
                previous,
            )
            await self._recover("unclean stop")
        self._dispatcher.start()
        poller = asyncio.create_task(self._poll_loop(stopping), name="poller")
        feeder = asyncio.create_task(self._feed_loop(), name="feeder")
        flusher = asyncio.create_task(self._flush_loop(), name="done-flusher")
        try:
            await stopping.wait()
        finally:
            # A window being fetched is allowed to finish: cancelling between receiving a page
            # and storing it would lose events the source may never serve again.
            clean = True
            try:
                async with asyncio.timeout(self.settings.shutdown_grace):
                    await asyncio.shield(poller)
            except TimeoutError:
                clean = False
                poller.cancel()
                await asyncio.gather(poller, return_exceptions=True)
                log.warning("stop: the poll in progress did not finish in time; cancelled it")
            except Exception:  # the poller's own failure was already logged
                pass
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
            await self._flush_done()
            if clean:
                await self.store.meta_put(mark, None)
        return clean

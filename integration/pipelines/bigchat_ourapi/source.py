"""The BigChat source of BigChat → OurAPI: fetch windows of /events page by page, parse each
page into inbox entries, and heal from conversations' histories after anything may have been
lost (BigChat serves an event once)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterable

from ...connectors.bigchat.client import BigChatClient
from ...connectors.bigchat.models import Conversation
from ...core.clock import Clock, iso
from ...core.flow import Page, Received
from ...core.retry import RetryPolicy, retrying
from ...core.store import Rejected, StateStore
from .mapping import to_entries
from .records import SOURCE
from .state import HISTORY_RETRY, ConversationStates, take_history

log = logging.getLogger("integration.bigchat")


class BigChatSource:
    """BigChat's ``/events`` read into the inbox, and conversations' histories after a loss."""

    name = SOURCE

    def __init__(
        self,
        bigchat: BigChatClient,
        store: StateStore,
        clock: Clock,
        states: ConversationStates,
        *,
        retention: float = 7 * 86400.0,
        probe_limit: int = 500,
        recover_concurrency: int = 8,
        recover_retry: RetryPolicy | None = None,
    ) -> None:
        self.bigchat = bigchat
        self.store = store
        self.clock = clock
        self.states = states
        """Read for the conversations seen; its cached states are dropped after a recovery."""
        self.retention = retention
        """Events older than this are no longer in the inbox (pruned): recovery leaves them."""
        self.probe_limit = probe_limit
        self.recover_concurrency = recover_concurrency
        self._fetch_history = retrying(recover_retry or HISTORY_RETRY)(self.bigchat.conversation)
        self._occurrences: Counter[str] | None = None
        """Fingerprints seen in the window being fetched (None between fetches): numbers
        identical events."""

    # -- fetching ----------------------------------------------------------------------------

    async def fetch(self, start: float, end: float) -> AsyncIterator[Received]:
        self._occurrences = Counter()  # the pages of one window are one answer
        try:
            async for body, last in self.bigchat.event_pages(start, end):
                yield Received(body, last)
        finally:
            self._occurrences = None
        lost = self.bigchat.take_unanswered()
        if lost:
            # A page request that got no answer may have been served all the same, and BigChat
            # serves an event once: what it held can only be found in conversations' histories.
            await self.recover(f"{lost} page request(s) of the window went unanswered", end)

    def parse(self, body: bytes) -> Page:
        try:
            events = json.loads(body)["events"]
            if not isinstance(events, list):
                raise TypeError("events is not a list")
        except (ValueError, TypeError, KeyError) as exc:
            # The client checked the page's shape before handing it over; a page stored by an
            # older version that is broken is kept as one reject rather than lost silently.
            text = body[:10_000].decode("utf-8", "replace")
            digest = hashlib.blake2b(body, digest_size=16).hexdigest()
            return Page([], [Rejected("?", f"page:{digest}", text, f"unreadable page: {exc}")])
        # Outside a fetch (a page kept before a crash), a page is numbered on its own: the same
        # page kept twice (journal and store) must number its events the same way both times.
        seen = self._occurrences if self._occurrences is not None else Counter()
        entries, rejects = to_entries(events, self.clock.now(), seen)
        return Page(entries, rejects)

    # -- healing -----------------------------------------------------------------------------

    async def recover(self, reason: str, horizon: float) -> None:
        """Re-read from BigChat every conversation that could have lost events: any one still
        within the retention period (a conversation that ended long ago may still emit a MESSAGE
        after its END, so none can be ruled out), gaps in the ids seen, and new ids past the
        highest seen (ids are allocated in increasing order) up to the first that began after
        ``horizon``, whose events cannot have been served yet. Events already in the inbox are
        de-duplicated; events older than the retention period are left alone (they were applied
        and then pruned). Memory stays bounded: ids are read in batches."""
        started = time.monotonic()
        since = self.clock.now() - self.retention
        known = await self.states.seen()
        if not known:
            known = sorted(_ids(await self.store.active_keys(self.name, 0)))
        if not known:
            log.debug("recovery (%s): nothing seen yet, nothing to re-read", reason)
            return
        # Ids are allocated in order: one missing between two known may have lost every event.
        # Only from the oldest conversation still active within the retention period: below it,
        # a missing id is most likely one whose state was pruned.
        recent = _ids(await self.store.active_keys(self.name, since)) & set(known)
        low = min(recent) if recent else known[0]
        gaps = sorted(set(range(low, known[-1] + 1)) - set(known))
        semaphore = asyncio.Semaphore(self.recover_concurrency)
        added = thin = read = 0

        seen = set(known)

        async def heal(cid: int) -> Conversation | None:
            nonlocal added, thin, read
            async with semaphore:
                conversation: Conversation | None = await self._fetch_history(cid)
            if conversation is None:
                return None
            read += 1
            events = conversation.events
            if cid in seen:  # its events older than the retention period were applied, then pruned
                events = [e for e in events if _event_at(e) >= since]
            _, stored = await take_history(self.store, self.name, events, self.clock.now())
            added += stored.new
            # A conversation the worker has seen for a while whose history shows only its START:
            # BigChat keeps no later events for it, so what it lost cannot be found there.
            thin += cid in seen and _lists_only_start(conversation.events, horizon - 300)
            return conversation

        batch = 1_000
        ids = [*gaps, *known]
        for first in range(0, len(ids), batch):
            await asyncio.gather(*(heal(cid) for cid in ids[first : first + batch]))
        probed = 0
        next_id = known[-1] + 1
        while probed < self.probe_limit:
            conversation = await heal(next_id)
            if conversation is None or _began_after(conversation, horizon):
                break
            probed += 1
            next_id += 1
        self.states.forget_cached()  # recovered events may change what a state should say
        log.info(
            "recovery (%s): re-read %d conversation(s) from BigChat (all %d seen since %s, %d "
            "gap(s), %d new) in %.1fs: %d event(s) were missing%s",
            reason,
            read,
            len(known),
            iso(since),
            len(gaps),
            probed,
            time.monotonic() - started,
            added,
            f"; {thin} seen for minutes list only their START (BigChat keeps no later events for "
            "them), so events they lost cannot be found there"
            if thin
            else "",
        )


def _event_at(raw: object) -> float:
    at = raw.get("event_at") if isinstance(raw, dict) else None
    return float(at) if isinstance(at, int | float) else float("inf")


def _lists_only_start(events: list[object], before: float) -> bool:
    starts = [e for e in events if isinstance(e, dict) and e.get("event_name") == "START"]
    return len(starts) == len(events) == 1 and _event_at(starts[0]) < before


def _ids(keys: Iterable[str]) -> set[int]:
    return {int(k) for k in keys if k.isdigit()}


def _began_after(conversation: Conversation, horizon: float) -> bool:
    times = [e.get("event_at") for e in conversation.events if isinstance(e, dict)]
    first = min((t for t in times if isinstance(t, int)), default=None)
    return first is None or first > horizon

"""``verify --repair``: restore what the worker was due to have applied and OurAPI lacks, through
the worker's own inbox, ledger and intents, so a later worker run can never add a second copy.

Nothing is created or PATCHed here directly. For each conversation with a due difference:
- events BigChat lists (due) that the inbox lacks are stored in the inbox, as the worker would;
- inbox entries already done whose effect OurAPI lacks are put back in the queue WITH their
  intent set, so the pipeline reads the chat back before it posts and never posts twice;
- that conversation's pending due entries are then applied in inbox order by the worker's own
  pipeline, each marked done or dead-lettered as the engine does.

The caller holds the state lock: no worker applies the same entries meanwhile.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from ...connectors.bigchat.client import BigChatClient
from ...connectors.ourapi.client import OurApiClient
from ...core.clock import Clock
from ...core.errors import PermanentError, TransientError
from ...core.retry import RetryPolicy, retrying
from ...core.store import InboxEntry, SQLiteStore, StateStore
from .mapping import entry_for
from .records import SOURCE, inbox_rows
from .sink import OurApiSink
from .state import ConversationStates
from .verify import Known, Report

_PAGE = 500


@dataclass
class Repairs:
    done: list[str] = field(default_factory=list)
    """One line per conversation repaired, e.g. ``12: applied 2 event(s) ...``."""
    impossible: list[str] = field(default_factory=list)
    """What cannot be fixed this way (OurAPI's contract has no way to delete)."""


async def repair(
    bigchat: BigChatClient,
    ourapi: OurApiClient,
    store: SQLiteStore,
    report: Report,
    *,
    clock: Clock,
    retry: RetryPolicy | None = None,
    concurrency: int = 8,
    landing_horizon: float = 30.0,
) -> Repairs:
    """Repair the due differences ``report`` found (its ``gaps``), and say what cannot be.
    ``store`` is the SQLite store itself, not any ``StateStore``: the inbox rows are read from
    its file (``records.py``), as ``verify`` reads them."""
    result = Repairs()
    for email, count in sorted(report.duplicated_agents.items()):
        result.impossible.append(f"{count} agents share the e-mail {email}")
    for f in report.findings:
        if not f.repairable:
            result.impossible.append(f"{f.conversation_id}: {f.problem} ({f.detail})")
    if not report.gaps:
        return result
    rows = await inbox_rows(store.path, list(report.gaps))
    taken = reopened = 0
    for cid, gaps in sorted(report.gaps.items()):
        by_fingerprint = {r.fingerprint: r for r in rows.get(cid, [])}
        lacking = _unique(k for k in gaps if k.fingerprint not in by_fingerprint)
        stored = await store.store_page(
            SOURCE, [replace(entry_for(k.event), fingerprint=k.fingerprint) for k in lacking]
        )
        taken += stored.new
        done = {by_fingerprint[k.fingerprint].seq for k in gaps if k.fingerprint in by_fingerprint}
        reopened += await store.reopen(SOURCE, sorted(done))
        for k in gaps:
            row = by_fingerprint.get(k.fingerprint)
            if row is not None and row.state == "dead":
                result.impossible.append(
                    f"{cid}: its {k.event.event_name.value} of {k.at} is dead-lettered "
                    "(see dead-letters; --retry puts it back)"
                )
    # The worker's own sink, so a repair creates chats and agents and posts exactly as it does.
    sink = OurApiSink(
        bigchat,
        ourapi,
        store,
        NotBefore(clock, report.until or 0.0),
        ConversationStates(store),
        inbox=SOURCE,
        landing_horizon=landing_horizon,
    )
    apply: Callable[[InboxEntry], Any] = retrying(
        retry or RetryPolicy(base=0.2, max_delay=5.0, max_tries=8)
    )(sink.apply)
    queues = await _pending(store, set(report.gaps), report.until)
    gate = asyncio.Semaphore(concurrency)

    async def one(cid: int, entries: list[InboxEntry]) -> None:
        async with gate:
            applied, failure = await _apply_in_order(store, apply, entries)
        if applied:
            result.done.append(f"{cid}: applied {applied} event(s) from the worker's inbox")
        if failure:
            result.impossible.append(f"{cid}: {failure}")

    await asyncio.gather(*(one(cid, entries) for cid, entries in sorted(queues.items())))
    result.done.sort(key=lambda line: int(line.split(":", 1)[0]))
    if taken or reopened:
        result.done.insert(
            0,
            f"inbox: {taken} event(s) BigChat lists taken in, {reopened} applied entry(ies) "
            "put back with their intent",
        )
    return result


class NotBefore:
    """A clock never behind ``at`` (the worker's cursor): the worker's own clock had reached the
    cursor when it accepted the events now due, so none of them may be judged "in the future"
    by a machine whose clock lags the worker's."""

    def __init__(self, clock: Clock, at: float) -> None:
        self.clock = clock
        self.at = at

    def now(self) -> float:
        return max(self.clock.now(), self.at)

    async def sleep(self, seconds: float) -> None:
        await self.clock.sleep(seconds)


def _unique(known: Iterable[Known]) -> list[Known]:
    seen: dict[str, Known] = {}
    for k in known:
        seen.setdefault(k.fingerprint, k)
    return list(seen.values())


async def _pending(
    store: StateStore, conversation_ids: set[int], until: float | None
) -> dict[int, list[InboxEntry]]:
    """The due pending entries of ``conversation_ids``, in inbox order (blocked ones left out:
    they wait behind a dead letter, as in the worker)."""
    keys = {str(cid) for cid in conversation_ids}
    queues: dict[int, list[InboxEntry]] = {}
    after = 0
    while True:
        page = await store.pending(SOURCE, after, _PAGE)
        for entry in page:
            due = until is None or entry.occurred_at is None or entry.occurred_at < until
            if entry.key in keys and due:
                queues.setdefault(int(entry.key), []).append(entry)
        if len(page) < _PAGE:
            return queues
        after = page[-1].seq


async def _apply_in_order(
    store: StateStore, apply: Callable[[InboxEntry], Any], entries: list[InboxEntry]
) -> tuple[int, str | None]:
    """Apply one conversation's entries in order, as the engine does: done when applied;
    dead-lettered when refused, and a blocking failure stops the conversation there."""
    applied = 0
    failures: list[str] = []
    for entry in entries:
        try:
            await apply(entry)
        except Exception as exc:
            if isinstance(exc, PermanentError):
                reason, blocking = str(exc), exc.blocking
            elif isinstance(exc, TransientError):
                reason, blocking = f"gave up retrying: {exc}", True
            else:
                reason, blocking = f"unexpected error: {exc.__class__.__name__}: {exc}", True
            letter = await store.dead_letter(entry, reason, blocking=blocking)
            failures.append(f"dead letter #{letter}: {entry.kind}: {reason}")
            if blocking:
                break  # what follows waits behind it, as in the worker
            continue
        await store.mark_done([entry.seq])
        applied += 1
    return applied, "; ".join(failures) or None

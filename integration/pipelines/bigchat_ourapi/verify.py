"""Reconcile OurAPI with what the worker was due to have applied, using only calls in the
contract, so it can be pointed at the real services.

Two records say what happened in a conversation: BigChat's history (``/conversations/{id}``),
where BigChat still lists it, and the worker's inbox (what it received). Neither is enough alone:
the real BigChat may list only a conversation's START, and an inbox may lack what the worker
never fetched. OurAPI is checked against their union, and each finding says which record it
rests on (``bigchat``, ``inbox`` or ``both``). A record that lists fewer events is "thinner":
what it lacks is never taken as proof that OurAPI holds too much.

Only what is due is judged: events dated before ``until`` (by default the worker's cursor, set
by the caller). BigChat keeps moving after a worker stops; what it produced since is "not yet
due", counted apart, and is no difference.
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import ValidationError

from ...connectors.bigchat.client import BigChatClient
from ...connectors.bigchat.models import Conversation, Event, EventName
from ...connectors.ourapi.client import OurApiClient
from ...connectors.ourapi.models import Chat, Message
from ...core.retry import RetryPolicy, retrying
from ...core.store import DeadLetter, SQLiteStore
from .mapping import (
    MessageKey,
    external_id,
    fingerprint,
    held_messages,
    message_key,
    text_is_acceptable,
)
from .records import SOURCE, InboxRow, inbox_rows

Record = Literal["bigchat", "inbox", "both"]


def record_of(in_bigchat: bool, in_inbox: bool) -> Record:
    if in_bigchat and in_inbox:
        return "both"
    return "bigchat" if in_bigchat else "inbox"


@dataclass(frozen=True)
class Known:
    """One event, as the union of both records lists it."""

    event: Event
    fingerprint: str
    in_bigchat: bool
    in_inbox: bool
    order: tuple[int, int]
    """The conversation's own order: (0, index in BigChat's history) where BigChat lists the
    event, else (1, inbox seq)."""
    inbox_state: str | None = None
    """pending, done or dead: where the worker is with it (None: not in the inbox)."""

    @property
    def record(self) -> Record:
        return record_of(self.in_bigchat, self.in_inbox)

    @property
    def at(self) -> int:
        return self.event.event_at

    def named(self, name: EventName) -> bool:
        return self.event.event_name is name


def _records(known: Iterable[Known]) -> Record:
    items = list(known)
    return record_of(any(k.in_bigchat for k in items), any(k.in_inbox for k in items))


def _messages(events: Iterable[Event]) -> Counter[MessageKey]:
    return Counter(
        message_key(e)
        for e in events
        # OurAPI refuses (422) a shorter text: such a message can never be there.
        if e.event_name is EventName.MESSAGE and text_is_acceptable(e.message)
    )


@dataclass(frozen=True)
class History:
    """Both records of one conversation, combined (union by fingerprint)."""

    conversation_id: int
    advisor_id: int | None
    """The advisor the conversation started with (only BigChat says it)."""
    bigchat_complete: bool
    """BigChat lists more than the START: its history is the whole conversation."""
    inbox_complete: bool
    """The inbox holds the conversation from its START (nothing of it was pruned)."""
    events: list[Known]
    bigchat_messages: Counter[MessageKey]
    inbox_messages: Counter[MessageKey]

    @property
    def expected_messages(self) -> Counter[MessageKey]:
        # The union of two multisets: as many copies as the record listing more.
        return self.bigchat_messages | self.inbox_messages

    def complete_records(self) -> Record | None:
        """The records that can show an event is absent (None: neither can)."""
        if not (self.bigchat_complete or self.inbox_complete):
            return None
        return record_of(self.bigchat_complete, self.inbox_complete)


def combine(
    conversation_id: int, conversation: Conversation | None, rows: Sequence[InboxRow]
) -> History | None:
    """The union of BigChat's history and the inbox rows (None: neither knows the conversation).
    Events BigChat lists that do not validate are left out: the worker cannot apply them."""
    if conversation is None and not rows:
        return None
    listed: list[Event] = []
    for raw in conversation.events if conversation is not None else []:
        try:
            listed.append(Event.model_validate(raw))
        except ValidationError:
            continue
    known: dict[str, Known] = {}
    occurrences: Counter[str] = Counter()
    for index, event in enumerate(listed):
        # Numbered as the worker numbers identical events of one answer, so that "ok" typed
        # twice in one second is two events here too.
        plain = fingerprint(event)
        fp = fingerprint(event, occurrences[plain])
        occurrences[plain] += 1
        known.setdefault(fp, Known(event, fp, True, False, (0, index)))
    for row in rows:
        if row.fingerprint in known:
            k = known[row.fingerprint]
            known[row.fingerprint] = Known(
                k.event, k.fingerprint, k.in_bigchat, True, k.order, row.state
            )
        else:
            known[row.fingerprint] = Known(
                row.event, row.fingerprint, False, True, (1, row.seq), row.state
            )
    return History(
        conversation_id=conversation_id,
        advisor_id=conversation.advisor_id if conversation is not None else None,
        bigchat_complete=any(e.event_name is not EventName.START for e in listed),
        inbox_complete=any(r.event.event_name is EventName.START for r in rows),
        events=list(known.values()),
        bigchat_messages=_messages(listed),
        inbox_messages=_messages(r.event for r in rows),
    )


@dataclass
class Finding:
    conversation_id: int
    problem: str
    """missing chat | started_at | ended_at | agent | agent problem | missing messages |
    duplicated messages | unexpected messages"""
    detail: str
    repairable: bool
    record: Record = "bigchat"
    """The record the finding rests on."""
    counted: bool = True
    """False: listed, but known already (an open dead letter) and not a difference."""


@dataclass
class Judgement:
    """One conversation judged."""

    due: bool
    findings: list[Finding] = field(default_factory=list)
    gaps: list[Known] = field(default_factory=list)
    """Due events whose effect OurAPI lacks, and which applying them again would restore."""
    expected: int = 0
    held: int = 0
    later_messages: int = 0
    later: bool = False
    """Anything of it is not yet due."""


def _ts(value: datetime) -> int:
    return int(value.timestamp())


def judge(
    history: History,
    chat: Chat | None,
    messages: Sequence[Message],
    agent_of: dict[int, UUID | None],
    until: float | None,
    dead_letters: Sequence[DeadLetter] = (),
) -> Judgement:
    """What differs between what ``history`` says OurAPI should hold by ``until`` (None: every
    event listed is due) and what OurAPI holds."""
    limit = math.inf if until is None else until
    cid = history.conversation_id
    events = history.events
    if not events:
        return Judgement(due=False)
    held = held_messages(messages)
    want_all = history.expected_messages
    starts = [k for k in events if k.named(EventName.START)]
    begin = min(k.at for k in (starts or events))
    if begin >= limit:
        # Its START is not yet due: the whole conversation is not.
        keys = set(want_all) | set(held)
        return Judgement(
            due=False, later=True, later_messages=sum(max(want_all[k], held[k]) for k in keys)
        )
    later_keys = {k for k in set(want_all) | set(held) if k[0] >= limit}
    result = Judgement(
        due=True,
        later_messages=sum(max(want_all[k], held[k]) for k in later_keys),
        later=bool(later_keys) or any(k.at >= limit for k in events),
    )
    want = Counter({k: n for k, n in want_all.items() if k[0] < limit})
    held_due = Counter({k: n for k, n in held.items() if k[0] < limit})
    result.expected = sum(want.values())
    result.held = sum(held_due.values())
    due = [k for k in events if k.at < limit]
    if chat is None:
        first = [k for k in starts if k.at == begin] or due
        result.findings.append(
            Finding(cid, "missing chat", f"no chat with external_id {cid}", True, _records(first))
        )
        result.gaps.extend(due)
        return result
    _judge_start(result, cid, chat, [k for k in starts if k.at == begin] if starts else [])
    _judge_end(result, history, chat, due, limit)
    _judge_agent(result, history, chat, agent_of, limit, dead_letters)
    _judge_messages(result, history, want, held_due, due)
    return result


def _where(lacking: Iterable[Known]) -> str:
    """Where the worker is with what is missing: still queued, or given up on."""
    states = Counter(k.inbox_state for k in lacking)
    parts = [
        f"{states[state]} {label}"
        for state, label in (("pending", "pending in the inbox"), ("dead", "dead-lettered"))
        if states[state]
    ]
    return f" ({', '.join(parts)})" if parts else ""


def _judge_start(result: Judgement, cid: int, chat: Chat, first: list[Known]) -> None:
    if not first:
        return  # no START in either record: the worker dates the chat itself
    begin = first[0].at
    if _ts(chat.started_at) != begin:
        result.findings.append(
            Finding(
                cid, "started_at", f"OurAPI {_ts(chat.started_at)}, START {begin}", True,
                _records(first),
            )
        )  # fmt: skip
        result.gaps.extend(first)


def _judge_end(
    result: Judgement, history: History, chat: Chat, due: list[Known], limit: float
) -> None:
    cid = history.conversation_id
    held_end = _ts(chat.ended_at) if chat.ended_at is not None else None
    ends = [k for k in due if k.named(EventName.END)]
    if ends:
        first = min(k.at for k in ends)
        deciding = [k for k in ends if k.at == first]
        if held_end != first:
            result.findings.append(
                Finding(
                    cid, "ended_at", f"OurAPI {held_end}, first END {first}", True,
                    _records(deciding),
                )
            )  # fmt: skip
            result.gaps.extend(deciding)
        return
    if held_end is None or held_end >= limit:
        return  # not ended, or ended by an END not yet due (applied ahead of the cursor)
    complete = history.complete_records()
    if complete is not None:
        result.findings.append(
            Finding(cid, "ended_at", f"OurAPI {held_end}, no END before it", False, complete)
        )


def _judge_agent(
    result: Judgement,
    history: History,
    chat: Chat,
    agent_of: dict[int, UUID | None],
    limit: float,
    dead_letters: Sequence[DeadLetter],
) -> None:
    cid = history.conversation_id
    transfers = sorted(
        (k for k in history.events if k.named(EventName.TRANSFER)), key=lambda k: (k.at, k.order)
    )
    due = [k for k in transfers if k.at < limit]
    if due:
        advisor = due[-1].event.transfer.new_advisor_id
        record: Record = due[-1].record
        deciding = [due[-1]]
    else:
        complete = history.complete_records()
        if history.advisor_id is None or complete is None:
            return  # a thinner record may lack the TRANSFER that decided it
        advisor, record = history.advisor_id, complete
        deciding = [k for k in history.events if k.named(EventName.START) and k.at < limit]
    agent = agent_of.get(advisor)
    if chat.agent_id == agent:
        return
    if transfers and transfers[-1].at >= limit:
        ahead = agent_of.get(transfers[-1].event.transfer.new_advisor_id)
        if chat.agent_id == ahead:
            return  # a TRANSFER not yet due, applied ahead of the cursor
    letter = next(
        (d for d in dead_letters if d.key == str(cid) and "agent" in d.reason.lower()), None
    )
    if letter is not None:
        result.findings.append(
            Finding(
                cid, "agent problem", f"dead letter #{letter.id}: {letter.reason}", False, record,
                counted=False,
            )
        )  # fmt: skip
        return
    result.findings.append(
        Finding(cid, "agent", f"OurAPI {chat.agent_id}, advisor {advisor}'s {agent}", True, record)
    )
    result.gaps.extend(deciding)


def _judge_messages(
    result: Judgement,
    history: History,
    want: Counter[MessageKey],
    held: Counter[MessageKey],
    due: list[Known],
) -> None:
    cid = history.conversation_id

    def record(key: MessageKey) -> Record:
        return record_of(key in history.bigchat_messages, key in history.inbox_messages)

    missing = want - held
    lacking = [k for k in due if k.named(EventName.MESSAGE) and message_key(k.event) in missing]
    by_record: Counter[Record] = Counter()
    for key, n in missing.items():
        by_record[record(key)] += n
    for rec, n in sorted(by_record.items()):
        mine = [k for k in lacking if record(message_key(k.event)) == rec]
        result.findings.append(
            Finding(cid, "missing messages", f"{n} missing{_where(mine)}", True, rec)
        )
    result.gaps.extend(lacking)
    extra: Counter[Record] = Counter()
    for key, n in held.items():
        if key in want and n > want[key]:
            extra[record(key)] += n - want[key]
    for rec, n in sorted(extra.items()):
        result.findings.append(Finding(cid, "duplicated messages", f"{n} extra copies", False, rec))
    complete = history.complete_records()
    if not history.bigchat_complete or complete is None:
        return  # only a complete BigChat history can show a message never happened
    unknown = sum(n for key, n in held.items() if key not in want)
    if unknown:
        where = {"bigchat": "not in BigChat", "inbox": "not in the inbox"}.get(
            complete, "in neither record"
        )
        result.findings.append(
            Finding(cid, "unexpected messages", f"{unknown} {where}", False, complete)
        )


@dataclass
class Report:
    conversations: int = 0
    """Conversations judged (those whose START is due)."""
    chats: int = 0
    messages_expected: int = 0
    messages_held: int = 0
    findings: list[Finding] = field(default_factory=list)
    duplicated_agents: dict[str, int] = field(default_factory=dict)
    until: float | None = None
    """Events dated before this were due (None: every event listed)."""
    until_from: str = ""
    """Where ``until`` came from, for the report: the worker's cursor, --until."""
    later_messages: int = 0
    later_conversations: int = 0
    gaps: dict[int, list[Known]] = field(default_factory=dict)
    """By conversation: due events whose effect OurAPI lacks (what ``repair`` applies again)."""

    @property
    def ok(self) -> bool:
        return not any(f.counted for f in self.findings) and not self.duplicated_agents

    def count(self, problem: str) -> int:
        return sum(1 for f in self.findings if f.problem == problem)


async def verify(
    bigchat: BigChatClient,
    ourapi: OurApiClient,
    conversation_ids: list[int],
    *,
    concurrency: int = 8,
    retry: RetryPolicy | None = None,
    store: SQLiteStore | None = None,
    until: float | None = None,
) -> Report:
    """Judge ``conversation_ids`` against BigChat's histories and, given the worker's ``store``,
    its inbox; only events dated before ``until`` are due (None: all). Every read is retried on
    transient failures (the services verified are the same ones that misbehave)."""
    report = Report(until=until)
    again = retrying(retry or RetryPolicy(base=0.2, max_delay=5.0, max_tries=8))
    # Each read decorated once, not once per call (see bench/verification.py).
    fetch_conversation = again(bigchat.conversation)
    fetch_advisor = again(bigchat.advisor)
    find_chat = again(ourapi.find_chat)
    fetch_messages = again(ourapi.messages)
    gate = asyncio.Semaphore(concurrency)
    inbox = await inbox_rows(store.path, conversation_ids) if store is not None else {}
    letters = await store.dead_letters(SOURCE) if store is not None else []
    agents_by_email: dict[str, list[UUID]] = {}
    for agent in await again(ourapi.find_agents)():
        agents_by_email.setdefault(agent.email.lower(), []).append(agent.agent_id)
    report.duplicated_agents = {e: len(ids) for e, ids in agents_by_email.items() if len(ids) > 1}
    agent_of: dict[int, UUID | None] = {}
    lookups: dict[int, asyncio.Task[None]] = {}

    async def lookup(advisor_id: int) -> None:
        advisor = await fetch_advisor(advisor_id)
        ids = agents_by_email.get(advisor.email_address.strip().lower(), []) if advisor else []
        agent_of[advisor_id] = ids[0] if ids else None

    async def advisor_agents(history: History) -> None:
        # One lookup per advisor, shared by every conversation that needs it.
        wanted = {
            k.event.transfer.new_advisor_id for k in history.events if k.named(EventName.TRANSFER)
        }
        if history.advisor_id is not None:
            wanted.add(history.advisor_id)
        for advisor_id in wanted:
            if advisor_id not in lookups:
                lookups[advisor_id] = asyncio.create_task(lookup(advisor_id))
        await asyncio.gather(*(lookups[a] for a in wanted))

    async def one(cid: int) -> None:
        async with gate:
            history = combine(cid, await fetch_conversation(cid), inbox.get(cid, []))
            if history is None:
                return
            await advisor_agents(history)
            chat = await find_chat(external_id(cid))
            messages = await fetch_messages(chat.chat_id) if chat else []
        mine = [d for d in letters if d.key == str(cid)]
        result = judge(history, chat, messages, agent_of, until, mine)
        report.later_messages += result.later_messages
        report.later_conversations += result.later
        if not result.due:
            return
        report.conversations += 1
        report.chats += chat is not None
        report.messages_expected += result.expected
        report.messages_held += result.held
        report.findings.extend(result.findings)
        if result.gaps:
            report.gaps[cid] = result.gaps

    await asyncio.gather(*(one(cid) for cid in conversation_ids))
    report.findings.sort(key=lambda f: (f.conversation_id, f.problem, f.record))
    return report

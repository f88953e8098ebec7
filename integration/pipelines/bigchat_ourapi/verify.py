"""Reconcile BigChat with OurAPI, using only calls in the contract, so it can be pointed at the
real services: what each conversation's history says OurAPI should hold, against what it holds.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from uuid import UUID

from ...connectors.bigchat.client import BigChatClient
from ...connectors.bigchat.models import Conversation, Event, EventName
from ...connectors.ourapi.client import OurApiClient
from ...connectors.ourapi.models import (
    AgentCreate,
    Chat,
    ChatCreate,
    ChatUpdate,
    Message,
    MessageCreate,
)
from ...core.clock import utc
from ...core.errors import PermanentError
from ...core.retry import RetryPolicy, retrying
from .mapping import external_id


@dataclass(frozen=True)
class Expected:
    """What OurAPI should hold for one conversation."""

    conversation_id: int
    started_at: int | None
    ended_at: int | None
    advisor_id: int
    messages: Counter[tuple[int, str]]


def expected(conversation: Conversation) -> Expected:
    events = [Event.model_validate(raw) for raw in conversation.events]
    starts = [e.event_at for e in events if e.event_name is EventName.START]
    ends = [e.event_at for e in events if e.event_name is EventName.END]
    transfers = sorted(
        (e for e in events if e.event_name is EventName.TRANSFER), key=lambda e: e.event_at
    )
    return Expected(
        conversation_id=conversation.conversation_id,
        started_at=min(starts) if starts else None,
        ended_at=min(ends) if ends else None,
        advisor_id=transfers[-1].transfer.new_advisor_id if transfers else conversation.advisor_id,
        messages=Counter(
            (e.event_at, e.message.strip()) for e in events if e.event_name is EventName.MESSAGE
        ),
    )


@dataclass
class Finding:
    conversation_id: int
    problem: str
    """missing chat | started_at | ended_at | agent | missing messages | duplicated messages"""
    detail: str
    repairable: bool


def compare(
    want: Expected, chat: Chat | None, messages: list[Message], agent_of: dict[int, UUID | None]
) -> list[Finding]:
    """Differences between what a conversation says and what OurAPI holds."""
    cid = want.conversation_id
    if chat is None:
        return [Finding(cid, "missing chat", f"no chat with external_id {cid}", True)]
    found: list[Finding] = []
    if want.started_at is not None and int(chat.started_at.timestamp()) != want.started_at:
        found.append(
            Finding(cid, "started_at", f"{chat.started_at:%F %T} != {want.started_at}", True)
        )
    held_end = int(chat.ended_at.timestamp()) if chat.ended_at else None
    if held_end != want.ended_at:
        found.append(Finding(cid, "ended_at", f"{held_end} != {want.ended_at}", True))
    agent = agent_of.get(want.advisor_id)
    if chat.agent_id != agent:
        found.append(
            Finding(cid, "agent", f"{chat.agent_id} != advisor {want.advisor_id}'s {agent}", True)
        )
    held = Counter((int(m.sent_at.timestamp()), m.text) for m in messages if m.agent_id is None)
    missing = want.messages - held
    extra = held - want.messages
    if missing:
        found.append(Finding(cid, "missing messages", f"{sum(missing.values())} missing", True))
    duplicated = sum(n - 1 for key, n in held.items() if n > 1 and key in want.messages)
    if duplicated:
        found.append(Finding(cid, "duplicated messages", f"{duplicated} extra copies", False))
    unknown = sum(v for k, v in extra.items() if k not in want.messages)
    if unknown:
        found.append(Finding(cid, "unexpected messages", f"{unknown} not in BigChat", False))
    return found


@dataclass
class Report:
    conversations: int = 0
    chats: int = 0
    messages_expected: int = 0
    messages_held: int = 0
    findings: list[Finding] = field(default_factory=list)
    duplicated_agents: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.findings and not self.duplicated_agents

    def count(self, problem: str) -> int:
        return sum(1 for f in self.findings if f.problem == problem)


async def verify(
    bigchat: BigChatClient,
    ourapi: OurApiClient,
    conversation_ids: list[int],
    *,
    concurrency: int = 8,
    retry: RetryPolicy | None = None,
) -> Report:
    """Compare ``conversation_ids``; every read is retried on transient failures (the services
    verified are the same ones that misbehave)."""
    report = Report()
    again = retrying(retry or RetryPolicy(base=0.2, max_delay=5.0, max_tries=8))
    gate = asyncio.Semaphore(concurrency)
    agent_of: dict[int, UUID | None] = {}
    agents_by_email: dict[str, list[UUID]] = {}
    for agent in await again(ourapi.find_agents)():
        agents_by_email.setdefault(agent.email.lower(), []).append(agent.agent_id)
    report.duplicated_agents = {e: len(ids) for e, ids in agents_by_email.items() if len(ids) > 1}

    lookups: dict[int, asyncio.Task[None]] = {}

    async def lookup(advisor_id: int) -> None:
        advisor = await again(bigchat.advisor)(advisor_id)
        ids = agents_by_email.get(advisor.email_address.strip().lower(), []) if advisor else []
        agent_of[advisor_id] = ids[0] if ids else None

    async def advisor_agent(advisor_id: int) -> None:
        # One lookup per advisor, shared by every conversation that needs it.
        if advisor_id not in lookups:
            lookups[advisor_id] = asyncio.create_task(lookup(advisor_id))
        await lookups[advisor_id]

    async def one(cid: int) -> None:
        async with gate:
            conversation = await again(bigchat.conversation)(cid)
            if conversation is None:
                return
            want = expected(conversation)
            await advisor_agent(want.advisor_id)
            chat = await again(ourapi.find_chat)(external_id(cid))
            messages = await again(ourapi.messages)(chat.chat_id) if chat else []
        report.conversations += 1
        report.chats += chat is not None
        report.messages_expected += sum(want.messages.values())
        report.messages_held += len(messages)
        report.findings.extend(compare(want, chat, messages, agent_of))

    await asyncio.gather(*(one(cid) for cid in conversation_ids))
    report.findings.sort(key=lambda f: (f.conversation_id, f.problem))
    return report


@dataclass
class Repairs:
    done: list[str] = field(default_factory=list)
    """One line per change made, e.g. ``12: posted 2 missing message(s)``."""
    impossible: list[str] = field(default_factory=list)
    """What cannot be fixed through the contract (it has no way to delete)."""


async def repair(
    bigchat: BigChatClient,
    ourapi: OurApiClient,
    report: Report,
    *,
    retry: RetryPolicy | None = None,
) -> Repairs:
    """Fix, idempotently, what ``report`` found: missing chats, wrong fields, missing messages.
    Duplicates are reported, not fixed: OurAPI's contract has no way to delete.

    Meant to run while the worker is stopped: a worker applying the same conversation at the
    same moment could post a message this also finds missing.
    """
    again = retrying(retry or RetryPolicy(base=0.2, max_delay=5.0, max_tries=8))
    result = Repairs()
    for email, count in report.duplicated_agents.items():
        result.impossible.append(f"{count} agents share the e-mail {email}")
    agents: dict[int, UUID] = {}

    async def agent_for(advisor_id: int) -> UUID:
        if advisor_id not in agents:
            advisor = await again(bigchat.advisor)(advisor_id)
            if advisor is None:
                raise PermanentError(f"BigChat has no advisor {advisor_id}")
            email = advisor.email_address.strip()
            found = await again(ourapi.find_agents)(email=email)
            if not found:
                created = await again(ourapi.create_agent)(
                    AgentCreate(name=advisor.name.strip(), email=email)
                )
                found = [created]
                result.done.append(f"created agent {email}")
            agents[advisor_id] = found[0].agent_id
        return agents[advisor_id]

    for cid in sorted({f.conversation_id for f in report.findings}):
        problems = {f.problem for f in report.findings if f.conversation_id == cid}
        for f in report.findings:
            if f.conversation_id == cid and not f.repairable:
                result.impossible.append(f"{cid}: {f.problem} ({f.detail})")
        if not problems & REPAIRABLE:
            continue
        conversation = await again(bigchat.conversation)(cid)
        if conversation is None:
            continue
        want = expected(conversation)
        agent = await agent_for(want.advisor_id)
        chat = await again(ourapi.find_chat)(external_id(cid))
        if chat is None:
            start = want.started_at
            if start is None:
                start = min(e["event_at"] for e in conversation.events)
            chat = await again(ourapi.create_chat)(
                ChatCreate(
                    external_id=external_id(cid),
                    started_at=utc(start),
                    ended_at=utc(want.ended_at) if want.ended_at is not None else None,
                    agent_id=agent,
                )
            )
            result.done.append(f"{cid}: created the missing chat")
        update = ChatUpdate()
        if want.started_at is not None and int(chat.started_at.timestamp()) != want.started_at:
            update.started_at = utc(want.started_at)
        held_end = int(chat.ended_at.timestamp()) if chat.ended_at else None
        if want.ended_at is not None and held_end != want.ended_at:
            update.ended_at = utc(want.ended_at)
        if chat.agent_id != agent:
            update.agent_id = agent
        if update.model_fields_set:
            await again(ourapi.update_chat)(chat.chat_id, update)
            result.done.append(f"{cid}: set {', '.join(sorted(update.model_fields_set))}")
        held = Counter(
            (int(m.sent_at.timestamp()), m.text)
            for m in await again(ourapi.messages)(chat.chat_id)
            if m.agent_id is None
        )
        missing = want.messages - held
        for (at, text), count in sorted(missing.items()):
            for _ in range(count):
                await again(ourapi.post_message)(
                    chat.chat_id, MessageCreate(sent_at=utc(at), text=text, agent_id=None)
                )
        if missing:
            result.done.append(f"{cid}: posted {sum(missing.values())} missing message(s)")
    return result


REPAIRABLE = {"missing chat", "started_at", "ended_at", "agent", "missing messages"}

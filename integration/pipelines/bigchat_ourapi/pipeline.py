"""BigChat → OurAPI on the engine: fetch pages of events, apply each event idempotently, heal
from conversations' histories after anything may have been lost.

Idempotence, effect by effect:
- chat: created at most once per conversation, found by ``external_id``; an intent is recorded
  before POST /chats, and after an ambiguous failure the chat is looked up before any new POST;
- agent: found by e-mail before it is created, and again after OurAPI's ambiguous 500;
- message: a ledger entry (intent) is committed before the POST; a retry after a failure that
  may have been applied reads the chat's messages back before posting again;
- started_at / ended_at / agent: PATCHes that set a value, safe to repeat, skipped when OurAPI
  already holds the value (a repeated END costs nothing).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterable
from uuid import UUID

from ...connectors.bigchat.client import BigChatClient
from ...connectors.bigchat.models import Conversation, Event, EventName
from ...connectors.ourapi.client import ChatExists, OurApiClient, agent_clash
from ...connectors.ourapi.models import AgentCreate, Chat, ChatUpdate
from ...core.clock import Clock, utc
from ...core.errors import InvalidInput, PermanentError, TransientError
from ...core.pipeline import Page
from ...core.retry import RetryPolicy, retrying
from ...core.store import InboxEntry, NewEntry, Rejected, SQLiteStore
from .mapping import (
    ConversationState,
    chat_create,
    external_id,
    initial_state,
    message_create,
    parse_event,
    text_is_acceptable,
    to_entry,
)

log = logging.getLogger("integration.bigchat")

STATES = "conversation"
AGENTS = "agent"
CHAT_LEDGER = "chat"

_CACHE_SIZE = 2_000
"""Conversations whose state is kept in memory; others are read back from the state store."""


class BigChatToOurApi:
    name = "bigchat"

    def __init__(
        self,
        bigchat: BigChatClient,
        ourapi: OurApiClient,
        store: SQLiteStore,
        clock: Clock,
        *,
        recent_margin: float = 120.0,
        probe_limit: int = 500,
        recover_concurrency: int = 8,
        recover_retry: RetryPolicy | None = None,
    ) -> None:
        self.bigchat = bigchat
        self.ourapi = ourapi
        self.store = store
        self.clock = clock
        self.recent_margin = recent_margin
        self.probe_limit = probe_limit
        self.recover_concurrency = recover_concurrency
        self._fetch_history = retrying(
            recover_retry or RetryPolicy(base=0.2, max_delay=5.0, max_tries=6)
        )(self.bigchat.conversation)
        self._states: OrderedDict[int, ConversationState] = OrderedDict()
        self._agents: dict[int, UUID] = {}
        self._agent_locks: dict[int, asyncio.Lock] = {}
        self._read_back: OrderedDict[UUID, set[tuple[int, str]]] = OrderedDict()
        self._intents: set[int] = set()
        """Entries whose POST this process started and has not seen succeed or fail cleanly."""

    # -- fetching ----------------------------------------------------------------------------

    async def pages(self, start: float, end: float) -> AsyncIterator[Page]:
        async for raw_events, last in self.bigchat.event_pages(start, end):
            entries, rejects = self._entries(raw_events)
            yield Page(entries, rejects, last)

    def _entries(self, raw_events: Iterable[object]) -> tuple[list[NewEntry], list[Rejected]]:
        now = self.clock.now()
        entries: list[NewEntry] = []
        rejects: list[Rejected] = []
        for raw in raw_events:
            item = to_entry(raw, now)
            (entries if isinstance(item, NewEntry) else rejects).append(item)  # type: ignore[arg-type]
        return entries, rejects

    # -- applying ----------------------------------------------------------------------------

    async def apply(self, entry: InboxEntry) -> None:
        try:
            event = parse_event(json.loads(entry.payload), self.clock.now())
        except (ValueError, TypeError) as exc:
            raise InvalidInput(str(exc)) from None
        state = await self._ensure_chat(await self._state(event.conversation_id))
        match event.event_name:
            case EventName.START:
                await self._start(state, event)
            case EventName.MESSAGE:
                await self._message(state, event, entry)
            case EventName.TRANSFER:
                await self._transfer(state, event)
            case EventName.END:
                await self._end(state, event)

    async def _start(self, state: ConversationState, event: Event) -> None:
        if state.start_known:
            return  # the chat was created with this START's time
        assert state.chat_id is not None
        await self.ourapi.update_chat(state.chat_id, ChatUpdate(started_at=utc(event.event_at)))
        await self._save(
            state.model_copy(update={"started_at": event.event_at, "start_known": True})
        )

    async def _message(self, state: ConversationState, event: Event, entry: InboxEntry) -> None:
        if not text_is_acceptable(event.message):
            raise InvalidInput(
                "message text is shorter than 2 characters once trimmed; OurAPI refuses such "
                "messages"
            )
        chat_id = state.chat_id
        assert chat_id is not None
        # The entry's inbox row is this message's ledger entry: its intent is committed before
        # the POST, so any later attempt (a retry, or a restart after a crash) knows the POST
        # may have landed and reads the chat back before posting again.
        maybe_posted = entry.intent or entry.seq in self._intents
        if (maybe_posted or state.adopted) and await self._already_posted(chat_id, event):
            self._intents.discard(entry.seq)
            return
        await self.store.mark_intent(entry.seq)
        self._intents.add(entry.seq)
        try:
            await self.ourapi.post_message(chat_id, message_create(event))
        except TransientError as exc:
            if exc.maybe_applied:
                # What we know of this chat's messages may now be wrong: read it afresh.
                self._read_back.pop(chat_id, None)
            else:
                await self._no_intent(entry)
            raise
        except PermanentError:
            await self._no_intent(entry)  # refused: nothing was stored
            raise
        self._intents.discard(entry.seq)
        known = self._read_back.get(chat_id)
        if known is not None:
            known.add((event.event_at, event.message.strip()))

    async def _no_intent(self, entry: InboxEntry) -> None:
        """The POST provably did not happen: the next attempt need not read back."""
        await self.store.mark_intent(entry.seq, started=False)
        self._intents.discard(entry.seq)

    async def _already_posted(self, chat_id: UUID, event: Event) -> bool:
        known = self._read_back.get(chat_id)
        if known is None:
            messages = await self.ourapi.messages(chat_id)
            known = {(int(m.sent_at.timestamp()), m.text) for m in messages if m.agent_id is None}
            self._read_back[chat_id] = known
            while len(self._read_back) > 1_000:
                self._read_back.popitem(last=False)
        return (event.event_at, event.message.strip()) in known

    async def _transfer(self, state: ConversationState, event: Event) -> None:
        if event.event_at < state.agent_since:
            return  # a later assignment is already in force; this one arrived late
        advisor = event.transfer.new_advisor_id
        agent = await self._agent_for(advisor)
        assert state.chat_id is not None
        if agent != state.chat_agent_id:
            await self.ourapi.update_chat(state.chat_id, ChatUpdate(agent_id=agent))
        await self._save(
            state.model_copy(
                update={
                    "advisor_id": advisor,
                    "agent_since": event.event_at,
                    "chat_agent_id": agent,
                }
            )
        )

    async def _end(self, state: ConversationState, event: Event) -> None:
        ended = event.event_at if state.ended_at is None else min(state.ended_at, event.event_at)
        if ended == state.chat_ended_at:
            if ended != state.ended_at:
                await self._save(state.model_copy(update={"ended_at": ended}))
            return  # a repeated END: nothing changes
        assert state.chat_id is not None
        await self.ourapi.update_chat(state.chat_id, ChatUpdate(ended_at=utc(ended)))
        await self._save(state.model_copy(update={"ended_at": ended, "chat_ended_at": ended}))

    # -- conversations and chats -------------------------------------------------------------

    async def _state(self, conversation_id: int) -> ConversationState:
        state = self._states.get(conversation_id)
        if state is not None:
            self._states.move_to_end(conversation_id)
            return state
        stored = await self.store.map_get(STATES, str(conversation_id))
        if stored is not None:
            state = ConversationState.model_validate_json(stored)
        else:
            # First sight of this conversation: its START may never be served, and its advisor
            # is only here. Take its whole history into the inbox (de-duplicated), so whatever
            # /events missed is applied too.
            conversation = await self.bigchat.conversation(conversation_id)
            if conversation is None:
                raise PermanentError(f"BigChat has no conversation {conversation_id}")
            state = await self._adopt_history(conversation)
        self._remember(state)
        return state

    async def _adopt_history(self, conversation: Conversation) -> ConversationState:
        entries, rejects = self._entries(conversation.events)
        await self.store.store_page(self.name, entries, rejects)
        events = [parse_event(json.loads(e.payload), self.clock.now()) for e in entries]
        state = initial_state(conversation.conversation_id, conversation.advisor_id, events)
        await self._save(state)
        return state

    async def _save(self, state: ConversationState) -> None:
        await self.store.map_put(STATES, str(state.conversation_id), state.model_dump_json())
        self._remember(state)

    def _remember(self, state: ConversationState) -> None:
        self._states[state.conversation_id] = state
        self._states.move_to_end(state.conversation_id)
        while len(self._states) > _CACHE_SIZE:
            self._states.popitem(last=False)

    async def _ensure_chat(self, state: ConversationState) -> ConversationState:
        """The conversation's state, with its chat in OurAPI found or created."""
        if state.chat_id is not None:
            return state
        ext = external_id(state.conversation_id)
        agent = await self._agent_for(state.advisor_id)
        chat: Chat | None = None
        adopted = False
        if await self.store.ledger_get(CHAT_LEDGER, ext) is not None:
            chat = await self.ourapi.find_chat(ext)  # an earlier attempt may have created it
        if chat is None:
            await self.store.ledger_put(CHAT_LEDGER, ext, "intent")
            try:
                chat = await self.ourapi.create_chat(chat_create(state, agent))
            except ChatExists:
                chat = await self.ourapi.find_chat(ext)
                if chat is None:
                    raise TransientError(
                        f"OurAPI says chat {ext} exists but does not list it"
                    ) from None
                adopted = True
            except PermanentError as exc:
                if "agent does not exist" in str(exc):
                    # Our map points at an agent OurAPI no longer has: look it up again next time.
                    self._agents.pop(state.advisor_id, None)
                    await self.store.map_put(AGENTS, str(state.advisor_id), "")
                raise
        else:
            adopted = True
        state = state.model_copy(
            update={
                "chat_id": chat.chat_id,
                "chat_agent_id": chat.agent_id,
                "chat_ended_at": int(chat.ended_at.timestamp()) if chat.ended_at else None,
                "adopted": state.adopted or adopted,
            }
        )
        if adopted:
            state = await self._align(state, chat, agent)
        await self._save(state)
        await self.store.ledger_put(CHAT_LEDGER, ext, "done")
        return state

    async def _align(self, state: ConversationState, chat: Chat, agent: UUID) -> ConversationState:
        """A chat that already existed (created by an earlier attempt, or before this state
        existed): bring its fields to what the conversation says."""
        update = ChatUpdate()
        if int(chat.started_at.timestamp()) != state.started_at:
            update.started_at = utc(state.started_at)
        if chat.agent_id is None and state.agent_since == state.started_at:
            update.agent_id = agent
        if update.model_fields_set:
            assert state.chat_id is not None
            await self.ourapi.update_chat(state.chat_id, update)
        if "agent_id" in update.model_fields_set:
            state = state.model_copy(update={"chat_agent_id": agent})
        return state

    async def _agent_for(self, advisor_id: int) -> UUID:
        agent = self._agents.get(advisor_id)
        if agent is not None:
            return agent
        lock = self._agent_locks.setdefault(advisor_id, asyncio.Lock())
        async with lock:  # one lookup per advisor, however many conversations ask at once
            agent = self._agents.get(advisor_id)
            if agent is None:
                stored = await self.store.map_get(AGENTS, str(advisor_id))
                agent = UUID(stored) if stored else await self._resolve_agent(advisor_id)
                if not stored:
                    await self.store.map_put(AGENTS, str(advisor_id), str(agent))
                self._agents[advisor_id] = agent
        return agent

    async def _resolve_agent(self, advisor_id: int) -> UUID:
        advisor = await self.bigchat.advisor(advisor_id)
        if advisor is None:
            raise PermanentError(f"BigChat has no advisor {advisor_id}")
        name, email = advisor.name.strip(), advisor.email_address.strip()
        found = await self.ourapi.find_agents(email=email)
        if found:
            return found[0].agent_id
        try:
            return (await self.ourapi.create_agent(AgentCreate(name=name, email=email))).agent_id
        except TransientError:
            # OurAPI's 500 may be a clash or a write that did land: look before trying again.
            found = await self.ourapi.find_agents(email=email)
            if found:
                return found[0].agent_id
            clash = agent_clash(name, email, await self.ourapi.find_agents(name=name))
            if clash is not None:
                raise clash from None
            raise

    # -- healing -----------------------------------------------------------------------------

    async def recover(self, reason: str, horizon: float) -> None:
        """Re-read from BigChat the conversations that could have lost events: those not ended,
        those active in the last ``recent_margin`` seconds before the cursor, gaps in the ids
        seen, and new ids past the highest seen (ids are allocated in increasing order) up to
        the first that began after ``horizon``, whose events cannot have been served yet."""
        states = {
            int(k): ConversationState.model_validate_json(v)
            for k, v in (await self.store.map_items(STATES)).items()
        }
        cursor = await self.store.get_cursor(self.name) or self.clock.now()
        recent = _ids(await self.store.active_keys(self.name, cursor - self.recent_margin))
        known = set(states) | _ids(await self.store.active_keys(self.name, 0))
        if not known:
            return
        suspects = {cid for cid, s in states.items() if s.ended_at is None} | recent
        # Ids are allocated in order: one missing between two known may have lost every event.
        suspects |= set(range(min(known), max(known) + 1)) - known
        semaphore = asyncio.Semaphore(self.recover_concurrency)
        added = 0

        async def heal(cid: int) -> Conversation | None:
            nonlocal added
            async with semaphore:
                conversation: Conversation | None = await self._fetch_history(cid)
            if conversation is None:
                return None
            entries, rejects = self._entries(conversation.events)
            stored = await self.store.store_page(self.name, entries, rejects)
            added += stored.new
            return conversation

        await asyncio.gather(*(heal(cid) for cid in sorted(suspects)))
        probed = 0
        next_id = max(known) + 1
        while probed < self.probe_limit:
            conversation = await heal(next_id)
            if conversation is None or _began_after(conversation, horizon):
                break
            probed += 1
            next_id += 1
        log.info(
            "recovery (%s): re-read %d conversation(s) from BigChat, %d event(s) were missing",
            reason,
            len(suspects) + probed,
            added,
        )


def _ids(keys: Iterable[str]) -> set[int]:
    return {int(k) for k in keys if k.isdigit()}


def _began_after(conversation: Conversation, horizon: float) -> bool:
    times = [e.get("event_at") for e in conversation.events if isinstance(e, dict)]
    first = min((t for t in times if isinstance(t, int)), default=None)
    return first is None or first > horizon

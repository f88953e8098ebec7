"""The OurAPI sink of BigChat → OurAPI: apply each inbox entry idempotently, and forget what
retention lets go.

Idempotence, effect by effect:
- chat: created at most once per conversation, found by ``external_id``; an intent is recorded
  before POST /chats, and after an ambiguous failure the chat is looked up before any new POST;
- agent: found by e-mail before it is created, and again after OurAPI's ambiguous 500;
- message: a ledger entry (intent) is committed before the POST; an attempt after a failure that
  may have been applied first waits until that write can no longer land (``landing_horizon``),
  then reads the chat back and compares counts: the POST is repeated only if OurAPI holds fewer
  copies of that message than the conversation's earlier entries account for;
- started_at / ended_at / agent: PATCHes that set a value, safe to repeat, skipped when OurAPI
  already holds the value (a repeated END costs nothing).

An agent problem (an advisor BigChat does not know, or one OurAPI refuses) never holds back the
conversation: the chat keeps the last agent that could be set, and the problem is a dead letter
that does not block.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter, OrderedDict
from uuid import UUID

from ...connectors.bigchat.client import BigChatClient
from ...connectors.bigchat.models import Conversation, Event, EventName, TransferData
from ...connectors.ourapi.client import ChatExists, OurApiClient
from ...connectors.ourapi.models import Chat, ChatUpdate
from ...core.clock import Clock, iso, utc
from ...core.errors import InvalidInput, PermanentError, TransientError
from ...core.retry import RetryPolicy, retrying
from ...core.store import InboxEntry, StateStore
from .agents import AgentProblem, Agents
from .mapping import (
    ConversationState,
    MessageKey,
    chat_create,
    external_id,
    held_messages,
    initial_state,
    message_create,
    message_key,
    parse_event,
    text_is_acceptable,
)
from .state import HISTORY_RETRY, ConversationStates, take_history

log = logging.getLogger("integration.bigchat")

CHAT_LEDGER = "chat"


class OurApiSink:
    """Applies BigChat events from the inbox to OurAPI (``apply``), and forgets the state of
    conversations retention lets go (``prune``)."""

    def __init__(
        self,
        bigchat: BigChatClient,
        ourapi: OurApiClient,
        store: StateStore,
        clock: Clock,
        states: ConversationStates,
        *,
        inbox: str,
        landing_horizon: float = 30.0,
        history_retry: RetryPolicy | None = None,
    ) -> None:
        # BigChat is read here, not only by the source: a conversation met for the first time
        # has its history taken into the inbox (its START may never be served, and its advisor is
        # only there), two TRANSFERs in one second are ordered by that history, and an advisor's
        # name and e-mail make its agent.
        self.bigchat = bigchat
        self.ourapi = ourapi
        self.store = store
        self.clock = clock
        self.states = states
        self.inbox = inbox
        """The inbox source whose entries this sink applies (and whose histories it takes in)."""
        self.landing_horizon = landing_horizon
        """Seconds after which a write OurAPI received can no longer be applied: a write whose
        outcome is unknown is read back only once this has passed since it was sent."""
        self.agents = Agents(bigchat, ourapi, store)
        self._fetch_history = retrying(history_retry or HISTORY_RETRY)(bigchat.conversation)
        self._held: OrderedDict[UUID, Counter[MessageKey]] = OrderedDict()
        """OurAPI's customer messages per chat, counted by (sent_at, text), once read back."""
        self._unsettled: dict[int, float] = {}
        """Conversations with a write whose outcome is unknown: when it was sent (monotonic)."""
        self._intents: set[int] = set()
        """Entries whose POST this process sent and saw fail without knowing if it landed."""

    def forget_cached(self) -> None:
        """Forget what was read of OurAPI and the conversation states: another worker applied
        these conversations meanwhile (several workers, a partition taken over)."""
        self._held.clear()
        self.states.forget_cached()

    async def apply(self, entry: InboxEntry) -> None:
        try:
            event = parse_event(json.loads(entry.payload), self.clock.now())
        except (ValueError, TypeError) as exc:
            raise InvalidInput(str(exc)) from None
        cid = event.conversation_id
        await self._settle(cid)
        try:
            state = await self._state(cid)
            if entry.intent and event.event_name is not EventName.MESSAGE:
                state = await self._refresh(state)
            state = await self._ensure_chat(state, entry)
            match event.event_name:
                case EventName.START:
                    state = await self._start(state, event)
                case EventName.MESSAGE:
                    await self._message(state, event, entry)
                case EventName.TRANSFER:
                    state = await self._transfer(state, event, entry)
                case EventName.END:
                    state = await self._end(state, event)
            await self._agent_still_pending(state, entry)
        except TransientError as exc:
            if exc.maybe_applied:
                self._unsettled[cid] = time.monotonic()
            raise

    async def _refresh(self, state: ConversationState) -> ConversationState:
        """Read the chat back instead of trusting what was saved of it: an entry put back with
        its intent (by ``verify --repair``) says OurAPI may not hold what the state says."""
        if state.chat_id is None:
            return state
        chat = await self.ourapi.get_chat(state.chat_id)
        if chat is None:
            # Gone from OurAPI: created again (once) by _ensure_chat.
            await self.store.ledger_delete(CHAT_LEDGER, external_id(state.conversation_id))
            return await self.states.save(
                state.model_copy(update={"chat_id": None, "chat_agent_id": None})
            )
        if state.start_known and int(chat.started_at.timestamp()) != state.started_at:
            await self.ourapi.update_chat(
                state.chat_id, ChatUpdate(started_at=utc(state.started_at))
            )
        return await self.states.save(
            state.model_copy(
                update={
                    "chat_agent_id": chat.agent_id,
                    "chat_ended_at": int(chat.ended_at.timestamp()) if chat.ended_at else None,
                    # Whether the agent is the assignment's is settled by _agent_still_pending.
                    "agent_pending": True,
                }
            )
        )

    async def _settle(self, cid: int) -> None:
        """After a write to this conversation's chat whose outcome is unknown, wait until it
        can no longer land before doing anything else to the chat: a read-back sooner could miss
        it (and post a second copy), and a later PATCH could be overtaken by it."""
        sent = self._unsettled.get(cid)
        if sent is None:
            return
        remaining = self.landing_horizon - (time.monotonic() - sent)
        if remaining > 0:
            log.debug("conversation %d: waiting %.1fs for an earlier write to land", cid, remaining)
            # Real time, not the injected clock: a request in flight ages in real time.
            await asyncio.sleep(remaining)
        self._unsettled.pop(cid, None)

    async def _start(self, state: ConversationState, event: Event) -> ConversationState:
        if state.start_known:
            return state  # the chat was created with this START's time
        assert state.chat_id is not None
        await self.ourapi.update_chat(state.chat_id, ChatUpdate(started_at=utc(event.event_at)))
        return await self.states.save(
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
        if entry.intent or entry.seq in self._intents or state.adopted:
            if entry.intent_at is not None and entry.seq not in self._intents:
                await self._wait_for_landing(entry.intent_at)
            if await self._already_posted(chat_id, event, entry):
                self._intents.discard(entry.seq)
                return
        await self.store.mark_intent(entry.seq)
        try:
            await self.ourapi.post_message(chat_id, message_create(event))
        except TransientError as exc:
            if exc.maybe_applied:
                self._intents.add(entry.seq)
                self._held.pop(chat_id, None)  # what we counted of this chat may now be wrong
            else:
                await self._no_intent(entry)
            raise
        except PermanentError:
            await self._no_intent(entry)  # refused: nothing was stored
            raise
        self._intents.discard(entry.seq)
        held = self._held.get(chat_id)
        if held is not None:
            held[message_key(event)] += 1

    async def _no_intent(self, entry: InboxEntry) -> None:
        """The POST provably did not happen: the next attempt need not read back."""
        await self.store.mark_intent(entry.seq, started=False)
        self._intents.discard(entry.seq)

    async def _wait_for_landing(self, intent_at: float) -> None:
        """An intent left by an earlier process: its POST may still land until the horizon."""
        remaining = self.landing_horizon - (self.clock.now() - intent_at)
        if remaining > 0:
            log.debug("waiting %.1fs for a POST sent before the restart to land", remaining)
            await asyncio.sleep(min(remaining, self.landing_horizon))

    async def _already_posted(self, chat_id: UUID, event: Event, entry: InboxEntry) -> bool:
        """Whether OurAPI holds more copies of this message than the conversation's earlier
        entries account for: then this entry's POST is one of them."""
        held = self._held.get(chat_id)
        if held is None:
            held = held_messages(await self.ourapi.messages(chat_id))
            self._held[chat_id] = held
            while len(self._held) > 1_000:
                self._held.popitem(last=False)
        key = message_key(event)
        earlier = 0
        for other in await self.store.applied_before(entry.source, entry.key, entry.seq):
            if other.kind == EventName.MESSAGE.value:
                try:
                    seen = parse_event(json.loads(other.payload), self.clock.now())
                except (ValueError, TypeError):
                    continue
                earlier += message_key(seen) == key
        return held[key] > earlier

    async def _transfer(
        self, state: ConversationState, event: Event, entry: InboxEntry
    ) -> ConversationState:
        data = event.transfer
        pair = (data.old_advisor_id, data.new_advisor_id)
        if state.agent_since is not None:
            if event.event_at < state.agent_since:
                return state  # a later assignment is already in force; this one arrived late
            if event.event_at == state.agent_since:
                if pair == state.agent_transfer:
                    return state  # the same TRANSFER again
                if not await self._later(state, event.event_at, pair, entry.seq):
                    return state
        state = await self.states.save(
            state.model_copy(
                update={
                    "advisor_id": data.new_advisor_id,
                    "agent_since": event.event_at,
                    "agent_transfer": pair,
                    "agent_seq": entry.seq,
                    "agent_pending": True,
                    "agent_problem_seq": None,  # a new assignment: a new problem, if any
                }
            )
        )
        return await self._set_agent(state, entry)

    async def _later(
        self, state: ConversationState, at: int, pair: tuple[int, int], seq: int
    ) -> bool:
        """Two TRANSFERs in the same second: is ``pair`` after the one in force? The
        conversation's own order decides: its history on BigChat when that lists them, else the
        chain of advisors (A→B then B→C), else the order they reached the inbox."""
        current = state.agent_transfer
        assert current is not None
        conversation = await self._fetch_history(state.conversation_id)
        if conversation is not None:
            order = _transfer_order(conversation.events, at)
            if pair in order and current in order:
                return order.index(pair) > order.index(current)
        if pair[0] == current[1] and current[0] != pair[1]:
            return True
        if current[0] == pair[1] and pair[0] != current[1]:
            return False
        return state.agent_seq is None or seq > state.agent_seq

    async def _end(self, state: ConversationState, event: Event) -> ConversationState:
        ended = event.event_at if state.ended_at is None else min(state.ended_at, event.event_at)
        if ended == state.chat_ended_at:
            if ended != state.ended_at:
                return await self.states.save(state.model_copy(update={"ended_at": ended}))
            return state  # a repeated END: nothing changes
        assert state.chat_id is not None
        await self.ourapi.update_chat(state.chat_id, ChatUpdate(ended_at=utc(ended)))
        return await self.states.save(
            state.model_copy(update={"ended_at": ended, "chat_ended_at": ended})
        )

    # -- agents ------------------------------------------------------------------------------

    async def _set_agent(self, state: ConversationState, entry: InboxEntry) -> ConversationState:
        """Give the chat the agent of the assignment in force. If that advisor cannot be made an
        agent, the chat keeps the agent it has, and this entry carries the problem."""
        try:
            agent = await self.agents.agent_for(state.advisor_id)
        except AgentProblem:
            carrier = state.agent_problem_seq if state.agent_problem_seq is not None else entry.seq
            return await self.states.save(
                state.model_copy(update={"agent_pending": True, "agent_problem_seq": carrier})
            )
        assert state.chat_id is not None
        if agent != state.chat_agent_id:
            await self.ourapi.update_chat(state.chat_id, ChatUpdate(agent_id=agent))
        return await self.states.save(
            state.model_copy(
                update={"chat_agent_id": agent, "agent_pending": False, "agent_problem_seq": None}
            )
        )

    async def _agent_still_pending(self, state: ConversationState, entry: InboxEntry) -> None:
        """After the entry's own effects: if the chat still lacks the agent it should have, try
        again (an advisor fixed since), and dead-letter the entry that carries the problem, once;
        the entries after it go on, never blocked by it."""
        state = await self._state(state.conversation_id)  # the latest saved
        if not state.agent_pending:
            return
        state = await self._set_agent(state, entry)
        if state.agent_pending and state.agent_problem_seq == entry.seq:
            reason = self.agents.last_problem(state.advisor_id)
            raise AgentProblem(
                f"agent problem: {reason}; chat {state.conversation_id} keeps "
                f"{'no agent' if state.chat_agent_id is None else 'its previous agent'}"
            )

    # -- conversations and chats -------------------------------------------------------------

    async def _state(self, conversation_id: int) -> ConversationState:
        state = await self.states.get(conversation_id)
        if state is not None:
            return state
        # First sight of this conversation: its START may never be served, and its advisor is
        # only here. Take its whole history into the inbox (de-duplicated), so whatever /events
        # missed is applied too.
        conversation = await self.bigchat.conversation(conversation_id)
        if conversation is None:
            raise PermanentError(f"BigChat has no conversation {conversation_id}")
        return await self._adopt_history(conversation)

    async def _adopt_history(self, conversation: Conversation) -> ConversationState:
        events, _ = await take_history(
            self.store, self.inbox, conversation.events, self.clock.now()
        )
        state = initial_state(conversation.conversation_id, conversation.advisor_id, events)
        return await self.states.save(state)

    async def _ensure_chat(self, state: ConversationState, entry: InboxEntry) -> ConversationState:
        """The conversation's state, with its chat in OurAPI found or created."""
        if state.chat_id is not None:
            return state
        ext = external_id(state.conversation_id)
        try:
            agent: UUID | None = await self.agents.agent_for(state.advisor_id)
        except AgentProblem:
            agent = None  # the chat is created all the same; an entry carries the problem
            carrier = state.agent_problem_seq if state.agent_problem_seq is not None else entry.seq
            state = state.model_copy(update={"agent_pending": True, "agent_problem_seq": carrier})
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
                    await self.agents.forget(state.advisor_id)
                    raise TransientError(str(exc), maybe_applied=False) from None
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
        state = await self.states.save(state)
        await self.store.ledger_put(CHAT_LEDGER, ext, "done")
        return state

    async def _align(
        self, state: ConversationState, chat: Chat, agent: UUID | None
    ) -> ConversationState:
        """A chat that already existed (created by an earlier attempt, or before this state
        existed): bring its fields to what the conversation says."""
        update = ChatUpdate()
        if int(chat.started_at.timestamp()) != state.started_at:
            update.started_at = utc(state.started_at)
        # Only a chat without an agent gets one here: a chat met again (its state was pruned)
        # may carry a TRANSFER's agent that this state, built from the history, cannot see.
        if agent is not None and chat.agent_id is None and state.agent_since is None:
            update.agent_id = agent
        if update.model_fields_set:
            assert state.chat_id is not None
            await self.ourapi.update_chat(state.chat_id, update)
        if "agent_id" in update.model_fields_set:
            state = state.model_copy(update={"chat_agent_id": agent})
        return state

    # -- retention ---------------------------------------------------------------------------

    async def prune(self, before: float) -> None:
        """Forget ended conversations with no event since ``before`` (their inbox entries are
        pruned by the engine at the same horizon): their state and chat ledger row. A
        conversation that comes back later is met as new, finds its chat exists and reads it
        back before posting, so nothing is posted twice."""
        active = set(await self.store.active_keys(self.inbox, before))
        removed = await self.states.forget_ended(before, active)
        await self.store.ledger_prune(CHAT_LEDGER, before)
        if removed:
            log.info("pruned the state of %d conversation(s) idle since %s", removed, iso(before))


def _transfer_order(events: list[object], at: int) -> list[tuple[int, int]]:
    """The TRANSFERs of second ``at`` in a history, as (old, new), in the history's order."""
    order = []
    for raw in events:
        if not isinstance(raw, dict) or raw.get("event_name") != "TRANSFER":
            continue
        if raw.get("event_at") != at:
            continue
        try:
            data = TransferData.model_validate(raw.get("data"))
        except ValueError:
            continue
        order.append((data.old_advisor_id, data.new_advisor_id))
    return order

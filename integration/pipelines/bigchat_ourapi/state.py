"""What the BigChat source and the OurAPI sink share in the state store.

- Each conversation's state: the sink keeps it as it applies events; the source's recovery reads
  which conversations were seen from it, and drops the cached copies once it has taken in events
  that may change what a state should say.
- A conversation's history taken into the inbox: the source does it on recovery, the sink when it
  first meets a conversation (its START may never be served). Both number the history's
  identical events the same way, so the two de-duplicate against each other.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Iterable

from ...connectors.bigchat.models import Event
from ...core.retry import RetryPolicy
from ...core.store import StateStore, StoredPage
from .mapping import ConversationState, to_events

STATES = "conversation"

HISTORY_RETRY = RetryPolicy(base=0.2, max_delay=5.0, max_tries=6)
"""How a conversation's history is fetched again after a transient failure, by default."""

_CACHE_SIZE = 2_000
"""Conversations whose state is kept in memory; others are read back from the state store."""


class ConversationStates:
    """Each conversation's state in the store, the most recently used ones also in memory."""

    def __init__(self, store: StateStore) -> None:
        self.store = store
        self._cached: OrderedDict[int, ConversationState] = OrderedDict()

    async def get(self, conversation_id: int) -> ConversationState | None:
        """The conversation's state, or None if it has none (never met, or pruned)."""
        state = self._cached.get(conversation_id)
        if state is not None:
            self._cached.move_to_end(conversation_id)
            return state
        stored = await self.store.map_get(STATES, str(conversation_id))
        if stored is None:
            return None
        state = ConversationState.model_validate_json(stored)
        self._remember(state)
        return state

    async def save(self, state: ConversationState) -> ConversationState:
        await self.store.map_put(STATES, str(state.conversation_id), state.model_dump_json())
        self._remember(state)
        return state

    async def seen(self) -> list[int]:
        """Ids of the conversations that have a state, in increasing order."""
        return sorted(int(k) for k in await self.store.map_keys(STATES) if k.isdigit())

    def forget_cached(self) -> None:
        """Read every state from the store again: events taken into the inbox since may change
        what a state should say."""
        self._cached.clear()

    async def forget_ended(self, before: float, keep: set[str]) -> int:
        """Delete the states of conversations that ended before ``before`` (all but the
        ``keep`` keys); one still going is never forgotten mid-way. Returns how many."""
        stale: list[str] = []
        async for key, value in self.store.map_iter(STATES):
            if key in keep:
                continue
            state = ConversationState.model_validate_json(value)
            if state.ended_at is not None and max(state.started_at, state.ended_at) < before:
                stale.append(key)
        removed = await self.store.map_delete(STATES, stale)
        for key in stale:
            self._cached.pop(int(key), None)
        return removed

    def _remember(self, state: ConversationState) -> None:
        self._cached[state.conversation_id] = state
        self._cached.move_to_end(state.conversation_id)
        while len(self._cached) > _CACHE_SIZE:
            self._cached.popitem(last=False)


async def take_history(
    store: StateStore, source: str, raw_events: Iterable[object], now: float
) -> tuple[list[Event], StoredPage]:
    """A conversation's history (or part of it) into the inbox of ``source``, de-duplicated
    against what is there: its valid events (those it made entries of), and what storing them
    did. A history is one answer: its identical events are numbered from the first."""
    entries, rejects, events = to_events(raw_events, now, Counter())
    return events, await store.store_page(source, entries, rejects)

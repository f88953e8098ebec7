"""What the server and the fault injector ask of a world, generated (``World``) or scripted.

A protocol rather than a base class: the generated world and ``ScriptedWorld`` share no code,
only these queries. Times are Unix seconds; ``now`` is always passed in (no world reads a clock).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol

from big_chat.models import Advisor, Conversation
from big_chat.world import Quirk, Script, ScriptEvent


class WorldView(Protocol):
    """The queries the BigChat stand-in answers from."""

    @property
    def epoch(self) -> float:
        """When the world began (reported by ``/_standin/clock``)."""
        ...

    def advisor(self, advisor_id: int) -> Advisor | None: ...

    def conversation(self, conversation_id: int, now: float) -> Conversation | None:
        """The full history visible by ``now`` in the conversation's own order, or None."""
        ...

    def conversation_ids(self, now: float) -> Sequence[int]:
        """Ids of the conversations that exist by ``now``, ascending."""
        ...

    def events_between(
        self, start: float, end: float, now: float, *, feed_only: bool = True
    ) -> list[ScriptEvent]:
        """Events visible by ``now`` with ``start <= event_at < end``, sorted by ``sort_key``."""
        ...

    def late_visible(self, since: float, now: float) -> list[ScriptEvent]:
        """Feed events dated before they became visible, that became visible in (since, now]."""
        ...

    def quirks(self, now: float) -> list[Quirk]: ...

    def script(self, conversation_id: int) -> Script:
        """A conversation's whole script (KeyError or ValueError if there is none)."""
        ...

    def iter_scripts(self, now: float) -> Iterator[Script]:
        """Scripts of the conversations that exist by ``now``."""
        ...

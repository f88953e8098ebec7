"""A world scripted event by event, served by the stand-in in place of the generated one.

Tests that need an EXACT world (two identical messages in one second, a TRANSFER dated before the
START, an event that only shows up late, an advisor who does not exist) write it down as a
``WorldScript`` and hand ``ScriptedWorld.from_model(script)`` to ``create_app(..., world=...)``,
``PUT /_standin/world`` or ``python -m big_chat --script FILE.json``. The stand-in then serves it
with all its paging and fault machinery, exactly as it serves a generated world.

The script is free on purpose: events need not be sorted, may repeat, may share a second or come
before the START; advisors may share names; an advisor that is not listed answers 404. Each
conversation needs one START (the first one in its own order is its start).

- ``visible_at`` (default: ``event_at``): ``/events`` serves the event, and the history lists it,
  only once the clock has reached it. Later than ``event_at`` makes the event LATE: it is served
  by the next window that contains it, or, when its time is already before a window's start, by
  the first window asked for after it became visible. (An event already visible when the world
  starts being served is plain history: make ``visible_at`` later than the clock at start.)
- ``in_feed: false``: ``/events`` never serves it; the history still lists it.
- A conversation exists (``/conversations/{id}`` answers 200) once its START is visible.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from big_chat.models import Advisor, Conversation, EventName, MessageData, TransferData
from big_chat.world import Quirk, Script, ScriptEvent


class ScriptedEvent(BaseModel):
    """One event as the script gives it; ``data`` must fit ``event_name`` (as in the contract)."""

    model_config = ConfigDict(extra="forbid")

    event_name: EventName
    event_at: int = Field(description="Unix seconds, UTC")
    data: MessageData | TransferData | None = None
    visible_at: float | None = Field(
        None, description="when /events may serve it and the history lists it (default event_at)"
    )
    in_feed: bool = Field(True, description="false: /events never serves it")

    @model_validator(mode="after")
    def _data_fits_the_name(self) -> Self:
        wanted = {"MESSAGE": MessageData, "TRANSFER": TransferData}.get(self.event_name)
        if wanted is None and self.data is not None:
            raise ValueError(f"a {self.event_name} carries no data")
        if wanted is not None and not isinstance(self.data, wanted):
            raise ValueError(f"a {self.event_name} needs data of the shape {wanted.__name__}")
        return self


class ScriptedConversation(BaseModel):
    """A conversation: its advisor as ``/conversations/{id}`` gives it, and its events in its own
    order (the order its history lists them)."""

    model_config = ConfigDict(extra="forbid")

    conversation_id: int = Field(ge=1)
    advisor_id: int
    events: list[ScriptedEvent] = Field(min_length=1)

    @model_validator(mode="after")
    def _has_a_start(self) -> Self:
        if not any(e.event_name == "START" for e in self.events):
            raise ValueError(f"conversation {self.conversation_id} has no START")
        return self


class WorldScript(BaseModel):
    """A whole scripted world (the body of ``PUT /_standin/world`` and ``--script`` files)."""

    model_config = ConfigDict(extra="forbid")

    advisors: list[Advisor] = Field(default_factory=list)
    conversations: list[ScriptedConversation] = Field(default_factory=list)
    epoch: float | None = Field(
        None, description="reported as the world's start (default: its earliest event_at)"
    )

    @model_validator(mode="after")
    def _ids_are_unique(self) -> Self:
        for what, ids in (
            ("advisor_id", [a.advisor_id for a in self.advisors]),
            ("conversation_id", [c.conversation_id for c in self.conversations]),
        ):
            if len(ids) != len(set(ids)):
                raise ValueError(f"each {what} may be listed once")
        return self


# Shorthands for Python tests: ``ScriptedConversation(conversation_id=1, advisor_id=1,
# events=[start(T), message(T + 1, "ok"), message(T + 1, "ok", visible_at=T + 60), end(T + 2)])``.


def start(at: int, *, visible_at: float | None = None, in_feed: bool = True) -> ScriptedEvent:
    return ScriptedEvent(event_name="START", event_at=at, visible_at=visible_at, in_feed=in_feed)


def end(at: int, *, visible_at: float | None = None, in_feed: bool = True) -> ScriptedEvent:
    return ScriptedEvent(event_name="END", event_at=at, visible_at=visible_at, in_feed=in_feed)


def message(
    at: int, text: str, *, visible_at: float | None = None, in_feed: bool = True
) -> ScriptedEvent:
    return ScriptedEvent(
        event_name="MESSAGE",
        event_at=at,
        data=MessageData(message=text),
        visible_at=visible_at,
        in_feed=in_feed,
    )


def transfer(
    at: int, old: int, new: int, *, visible_at: float | None = None, in_feed: bool = True
) -> ScriptedEvent:
    return ScriptedEvent(
        event_name="TRANSFER",
        event_at=at,
        data=TransferData(old_advisor_id=old, new_advisor_id=new),
        visible_at=visible_at,
        in_feed=in_feed,
    )


def _script(conversation: ScriptedConversation) -> Script:
    events: list[ScriptEvent] = []
    for position, e in enumerate(conversation.events):
        message = e.data.message if isinstance(e.data, MessageData) else None
        transfer = e.data if isinstance(e.data, TransferData) else None
        events.append(
            ScriptEvent(
                conversation.conversation_id,
                position,
                e.event_name,
                e.event_at,
                message=message,
                old_advisor_id=transfer.old_advisor_id if transfer else None,
                new_advisor_id=transfer.new_advisor_id if transfer else None,
                in_feed=e.in_feed,
                visible_at=e.visible_at,
            )
        )
    start = next(e for e in events if e.event_name == "START")
    return Script(
        conversation.conversation_id, conversation.advisor_id, start.event_at, tuple(events), ()
    )


class ScriptedWorld:
    """A fixed world: the queries of ``WorldView`` answered from the given scripts."""

    def __init__(
        self, scripts: Iterable[Script], advisors: Iterable[Advisor], epoch: float
    ) -> None:
        self.epoch = epoch
        self._scripts = {
            s.conversation_id: s for s in sorted(scripts, key=lambda s: s.conversation_id)
        }
        self._advisors = {a.advisor_id: a for a in advisors}
        # A conversation exists once its START (the first in its own order) is visible.
        self._opens = {
            cid: next(e for e in s.events if e.event_name == "START").available_at
            for cid, s in self._scripts.items()
        }
        everything = [e for s in self._scripts.values() for e in s.events]
        self._by_time = sorted(everything, key=lambda e: e.sort_key)
        self._times = [e.event_at for e in self._by_time]
        self._late = sorted((e for e in everything if e.is_late), key=lambda e: e.available_at)
        self._late_times = [e.available_at for e in self._late]

    @classmethod
    def from_model(cls, model: WorldScript) -> ScriptedWorld:
        scripts = [_script(c) for c in model.conversations]
        times = [e.event_at for s in scripts for e in s.events]
        epoch = model.epoch if model.epoch is not None else float(min(times, default=0))
        return cls(scripts, model.advisors, epoch)

    @classmethod
    def from_file(cls, path: Path) -> ScriptedWorld:
        """Read a JSON ``WorldScript`` (raises OSError, ValueError or a ValidationError)."""
        return cls.from_model(WorldScript.model_validate(json.loads(path.read_text("utf-8"))))

    # -- WorldView --------------------------------------------------------------------------

    def advisor(self, advisor_id: int) -> Advisor | None:
        return self._advisors.get(advisor_id)

    def conversation_ids(self, now: float) -> Sequence[int]:
        return [cid for cid, opens in self._opens.items() if opens <= now]

    def conversation(self, conversation_id: int, now: float) -> Conversation | None:
        script = self._scripts.get(conversation_id)
        if script is None or self._opens[conversation_id] > now:
            return None
        return Conversation(
            conversation_id=conversation_id,
            advisor_id=script.advisor_id,
            events=[e.to_model() for e in script.happened(now)],
        )

    def events_between(
        self, start: float, end: float, now: float, *, feed_only: bool = True
    ) -> list[ScriptEvent]:
        lo = bisect.bisect_left(self._times, start)
        hi = bisect.bisect_left(self._times, end)
        return [
            e
            for e in self._by_time[lo:hi]
            if (e.in_feed or not feed_only) and e.available_at <= now
        ]

    def late_visible(self, since: float, now: float) -> list[ScriptEvent]:
        lo = bisect.bisect_right(self._late_times, since)
        hi = bisect.bisect_right(self._late_times, now)
        return [e for e in self._late[lo:hi] if e.in_feed]

    def quirks(self, now: float) -> list[Quirk]:
        return []  # the script itself says what is odd about it

    def script(self, conversation_id: int) -> Script:
        return self._scripts[conversation_id]

    def iter_scripts(self, now: float) -> Iterator[Script]:
        for cid in self.conversation_ids(now):
            yield self._scripts[cid]

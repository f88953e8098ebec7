"""The benchmark's workload: a BigChat world with a constant epoch and a frozen clock, so every
run (and every bench) replays exactly the same history, and nothing waits on the clock.

The world is pure and deterministic (``big_chat.world``), so the ground truth a run is checked
against (how many events, chats, messages, agents) is computed here, in-process, from the same
code the stand-in serves it with.
"""

from __future__ import annotations

from collections.abc import Iterable

from big_chat.settings import WorldSettings
from big_chat.world import ScriptEvent, World

from .models import Workload

EPOCH = 1_767_225_600.0
"""2026-01-01T00:00:00Z: the world's start, the same for every bench."""

EVENTS_PER_CONVERSATION = 7.75
"""START + 5 messages + 0.75 transfers + END on average, with the stand-in's defaults: a first
guess at the conversation rate, refined by counting."""

_RATE_TRIES = 8


def _count(settings: WorldSettings, epoch: float, frozen_at: float) -> list[ScriptEvent]:
    world = World(settings, epoch)
    return world.events_between(epoch, frozen_at + 1, frozen_at)


def build(events: int, *, seed: int = 1, history: float = 3600.0, page_size: int = 100) -> Workload:
    """A workload of about ``events`` events over ``history`` seconds: the conversation rate is
    refined (a bounded number of times) until the world holds close to that many."""
    if events < 1:
        raise ValueError("a workload needs at least one event")
    frozen_at = EPOCH + history
    rate = min(1000.0, events / (EVENTS_PER_CONVERSATION * history))
    best: tuple[float, float, list[ScriptEvent]] | None = None
    for _ in range(_RATE_TRIES):
        found = _count(WorldSettings(seed=seed, conversation_rate=rate), EPOCH, frozen_at)
        miss = abs(len(found) - events) / events
        if best is None or miss < best[0]:
            best = (miss, rate, found)
        if miss < 0.01 or not found:
            break
        rate = min(1000.0, rate * events / len(found))
    assert best is not None
    _, rate, found = best
    world = World(WorldSettings(seed=seed, conversation_rate=rate), EPOCH)
    return summarise(seed, rate, page_size, frozen_at, world, found)


def summarise(
    seed: int,
    rate: float,
    page_size: int,
    frozen_at: float,
    world: World,
    found: Iterable[ScriptEvent],
) -> Workload:
    events = list(found)
    conversations = world.started_count(frozen_at)
    advisors = {world.script(cid).advisor_id for cid in range(1, conversations + 1)}
    advisors |= {e.new_advisor_id for e in events if e.new_advisor_id is not None}

    def kind(name: str) -> int:
        return sum(1 for e in events if e.event_name == name)

    return Workload(
        seed=seed,
        epoch=world.epoch,
        frozen_at=frozen_at,
        conversation_rate=rate,
        page_size=page_size,
        events=len(events),
        conversations=conversations,
        starts=kind("START"),
        messages=kind("MESSAGE"),
        transfers=kind("TRANSFER"),
        ends=kind("END"),
        advisors=len(advisors),
    )

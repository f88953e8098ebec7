"""The simulated BigChat world: pure, deterministic, lazily generated.

Conversations start one after another from ``epoch`` (Poisson arrivals at ``conversation_rate``)
and get ids 1, 2, 3, ... in start order. Each conversation's script follows from
``(seed, conversation_id)`` alone, so it can be generated in any order, on demand, and identically
after a restart. Nothing here reads the clock: every query takes ``now`` and an event "has
happened" when ``event_at <= now``.

The world also carries the data quirks of the real service (extra ENDs, messages after the END, a
START that the feed never serves, TRANSFERs with a wrong ``old_advisor_id``); each one injected is
recorded as a ``Quirk`` so tests can tell them from bugs. Harsher ones (repeated texts,
same-second events, a TRANSFER dated before the START, a MESSAGE long after the END) are off by
default and draw from their own random stream, so that with them off a seed gives the world it
always gave.

A script lists its events in the conversation's OWN ORDER (``position``), which is the order
``/conversations/{id}`` shows. It is the time order except for a TRANSFER dated before its START,
which keeps its place after the START. An event can only be served once it is *visible*
(``available_at``): its ``event_at`` as a rule, the START for a TRANSFER dated before it.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
import unicodedata
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from big_chat.models import Advisor, Conversation, Event, EventName, MessageData, TransferData
from big_chat.settings import WorldSettings

QuirkKind = Literal[
    "repeat_end",
    "after_end",
    "missing_start",
    "wrong_old_advisor",
    "repeat_text",
    "same_second",
    "transfer_before_start",
]

# Enough to hold every conversation of a few hours at a few per second; older scripts are dropped
# and regenerated (identically) if asked for again.
_SCRIPT_CACHE_SIZE = 50_000


@dataclass(frozen=True, slots=True)
class ScriptEvent:
    """One event of a conversation's script. Slots, not pydantic: a world holds many of these."""

    conversation_id: int
    position: int  # index in the conversation's own order (the order of its history)
    event_name: EventName
    event_at: int
    message: str | None = None
    old_advisor_id: int | None = None
    new_advisor_id: int | None = None
    in_feed: bool = True  # False: /events never serves it (a START hidden by a quirk)
    visible_at: float | None = None  # None: visible from event_at on

    @property
    def available_at(self) -> float:
        """When the event becomes visible: /events serves it, the history lists it."""
        return self.event_at if self.visible_at is None else self.visible_at

    @property
    def is_late(self) -> bool:
        """Visible only after its own time: served late, possibly after its window was asked."""
        return self.visible_at is not None and self.visible_at > self.event_at

    @property
    def key(self) -> tuple[int, int]:
        """Identifies the event within the world (the contract gives clients no event id)."""
        return (self.conversation_id, self.position)

    @property
    def sort_key(self) -> tuple[int, int, int]:
        """The default order of /events pages."""
        return (self.event_at, self.conversation_id, self.position)

    def to_model(self) -> Event:
        data: MessageData | TransferData | None = None
        if self.event_name == "MESSAGE":
            assert self.message is not None
            data = MessageData(message=self.message)
        elif self.event_name == "TRANSFER":
            assert self.old_advisor_id is not None and self.new_advisor_id is not None
            data = TransferData(
                old_advisor_id=self.old_advisor_id, new_advisor_id=self.new_advisor_id
            )
        return Event(
            conversation_id=self.conversation_id,
            event_name=self.event_name,
            event_at=self.event_at,
            data=data,
        )

    def as_json(self) -> dict[str, Any]:
        return self.to_model().model_dump(mode="json")


@dataclass(frozen=True, slots=True)
class Quirk:
    """A data quirk of the real service that the world injected."""

    kind: QuirkKind
    conversation_id: int
    event: ScriptEvent

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "conversation_id": self.conversation_id,
            "event": self.event.as_json(),
        }


@dataclass(frozen=True, slots=True)
class Script:
    """A conversation's whole life, including events that have not happened yet.

    ``events`` is in the conversation's own order (``position``); ``by_time`` and ``times`` are
    the same events sorted by ``(event_at, position)``, for window queries.
    """

    conversation_id: int
    advisor_id: int  # the initial advisor
    start_at: int
    events: tuple[ScriptEvent, ...]
    quirks: tuple[Quirk, ...]
    by_time: tuple[ScriptEvent, ...] = field(init=False)
    times: tuple[int, ...] = field(init=False)

    def __post_init__(self) -> None:
        times = [e.event_at for e in self.events]
        ordered = self.events
        if times != sorted(times):  # rare: worlds are generated by the thousand, keep it cheap
            ordered = tuple(sorted(self.events, key=lambda e: (e.event_at, e.position)))
            times = [e.event_at for e in ordered]
        object.__setattr__(self, "by_time", ordered)
        object.__setattr__(self, "times", tuple(times))

    def happened(self, now: float) -> tuple[ScriptEvent, ...]:
        """The events visible by ``now``, in the conversation's own order."""
        return tuple(e for e in self.events if e.available_at <= now)

    def between(self, start: float, end: float) -> tuple[ScriptEvent, ...]:
        """Events with ``start <= event_at < end``, by time."""
        lo = bisect.bisect_left(self.times, start)
        hi = bisect.bisect_left(self.times, end)
        return self.by_time[lo:hi]


_FIRST_NAMES = (
    "Alice", "Bruno", "Chloé", "Dmitri", "Emma", "Farid", "Grace", "Hiroshi", "Inès", "José",
    "Karin", "Liam", "Łukasz", "Maya", "Noah", "Olga", "Priya", "Quentin", "Rosa", "Siobhán",
    "Tariq", "Ulla", "Zoë", "Yusuf",
)  # fmt: skip
_LAST_NAMES = (
    "Andersen", "Bianchi", "Costa", "Dubois", "Eriksen", "Fischer", "García", "Haddad", "Ivanova",
    "Jansen", "Kowalski", "López", "Müller", "Nakamura", "O'Brien", "Petrov", "Quinn", "Rossi",
    "Schmidt", "Tanaka", "Usman", "Varga", "Weber", "Núñez",
)  # fmt: skip

# Conversation lines. Placeholders make most of them vary; uniqueness within a conversation is
# still enforced when the script is built. Some are non-ASCII on purpose: clients must cope.
_LINES = (
    "Hello, I have a question about order {order}.",
    "Hi! My parcel {order} has not arrived yet.",
    "Could you check the status of ticket {ticket}, please?",
    "I was charged twice for order {order}.",
    "Can I change the delivery address for {order}?",
    "Let me look into that for you.",
    "One moment please, I am checking order {order}.",
    "I can see order {order} left our warehouse on day {day}.",
    "I have issued a refund of {amount} EUR.",
    "Is there anything else I can help you with?",
    "Thanks, that solves it!",
    "That did not work, the page still shows error {code}.",
    "I'll transfer you to a colleague who knows more about {topic}.",
    "Do you have a tracking number for {order}?",
    "The {topic} settings are under Account > Preferences.",
    "Merci beaucoup, c'est réglé !",
    "Danke schön für die schnelle Hilfe.",
    "¿Puedo pagar el pedido {order} en dos plazos?",
    "Great, thank you 😊",
    "ok 👍",
    "Привет, у меня вопрос по заказу {order}.",  # noqa: RUF001 - Cyrillic on purpose
    "ありがとうございます!",
    "My voucher {ticket} is rejected 🙁",
    "Could you resend the invoice for {order} to my other e-mail?",
)
_TOPICS = ("billing", "shipping", "returns", "vouchers", "accounts", "invoices")
# Texts customers really repeat: the repeat_text quirk draws from these and earlier lines.
SHORT_TEXTS = ("ok", "yes", "thanks", "no", "hi")
# How a repeated text is padded: OurAPI strips texts, so all of these collide once stored.
_PADDINGS = ("{}", " {}", "{}  ", "\t{}", "{}\n", "  {} ")
# A TRANSFER dated before its START is at most this many seconds early.
BEFORE_START_MAX_S = 60


def _uniform_int(rng: random.Random, low: int, high: int) -> int:
    """Like ``rng.randint`` (up to float granularity) at a fraction of its cost."""
    return low + int(rng.random() * (high - low + 1))


def _ascii_slug(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(ch for ch in folded.lower() if ch.isalnum())


class _Lines:
    """Draws conversation lines, never the same text twice within one conversation."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._used: set[str] = set()

    def draw(self, rng: random.Random | None = None) -> str:
        """A new line, drawn from ``rng`` (default: the conversation's own stream)."""
        rng = rng or self._rng
        # One draw feeds every placeholder: scripts are generated by the thousand.
        bits = rng.getrandbits(64)
        text = _LINES[bits % len(_LINES)].format(
            order=f"#{10_000 + (bits >> 5) % 90_000}",
            ticket=f"T-{100 + (bits >> 22) % 900}",
            day=1 + (bits >> 32) % 28,
            amount=f"{5 + (bits >> 37) % 496}.{(bits >> 46) % 100:02d}",
            code=400 + (bits >> 53) % 200,
            topic=_TOPICS[(bits >> 61) % len(_TOPICS)],
        )
        for n in itertools.count(2):
            candidate = text if n == 2 else f"{text} ({n - 1})"
            if candidate not in self._used:
                self._used.add(candidate)
                return candidate
        raise AssertionError("unreachable")


class World:
    """Ground truth of the stand-in. Deterministic in ``(settings, epoch)``; no I/O, no clock."""

    def __init__(self, settings: WorldSettings, epoch: float) -> None:
        self.settings = settings
        self.epoch = epoch
        s = settings
        # No conversation lasts longer than this (each step waits at most the largest gap): lets
        # a window query look only at conversations that started shortly before the window.
        transfers = s.messages_max if s.transfer_probability > 0 and s.advisors > 1 else 0
        steps = s.messages_max + transfers + 1
        steps += s.repeat_end_max if s.repeat_end_rate > 0 else 0
        steps += 1 if s.after_end_rate > 0 else 0
        self.max_duration: int = steps * s.message_gap_max_s
        if s.after_end_rate > 0 and s.after_end_delay_s is not None:
            self.max_duration += s.after_end_delay_s
        # Events can also be dated this long before their conversation's START.
        self._lead: int = BEFORE_START_MAX_S if s.transfer_before_start_rate > 0 else 0
        self._hostile = bool(
            s.repeat_text_rate or s.same_second_rate or s.transfer_before_start_rate
        )
        self._arrivals = random.Random(f"{s.seed}:arrivals")
        self._clock_cursor = epoch  # start time (float) of the last generated conversation
        self._starts: list[int] = []  # start event_at of conversation i+1
        self._scripts: OrderedDict[int, Script] = OrderedDict()
        self._advisors = self._make_advisors()

    # -- advisors --------------------------------------------------------------------------

    def _make_advisors(self) -> dict[int, Advisor]:
        """Unique names and e-mails: OurAPI refuses duplicates of either."""
        combos = list(itertools.product(_FIRST_NAMES, _LAST_NAMES))
        random.Random(f"{self.settings.seed}:advisors").shuffle(combos)
        advisors: dict[int, Advisor] = {}
        for aid in range(1, self.settings.advisors + 1):
            lap, index = divmod(aid - 1, len(combos))
            first, last = combos[index]
            name = f"{first} {last}" + (f" {lap + 1}" if lap else "")
            local = f"{_ascii_slug(first)}.{_ascii_slug(last)}" + (str(lap + 1) if lap else "")
            advisors[aid] = Advisor(
                advisor_id=aid, name=name, email_address=f"{local}@bigchat.example"
            )
        return advisors

    def advisor(self, advisor_id: int) -> Advisor | None:
        return self._advisors.get(advisor_id)

    # -- arrivals --------------------------------------------------------------------------

    def _extend_until(self, t: float) -> None:
        """Generate start times until one lies beyond ``t``."""
        rate = self.settings.conversation_rate
        while not self._starts or self._starts[-1] <= t:
            self._clock_cursor += self._arrivals.expovariate(rate)
            self._starts.append(math.floor(self._clock_cursor))

    def start_at(self, conversation_id: int) -> int:
        """When a conversation starts (its START's event_at), whether or not it has yet."""
        if conversation_id < 1:
            raise ValueError("conversation ids start at 1")
        while len(self._starts) < conversation_id:
            self._extend_until(self._starts[-1] if self._starts else self.epoch)
        return self._starts[conversation_id - 1]

    def started_count(self, now: float) -> int:
        """How many conversations have started by ``now``."""
        self._extend_until(now)
        return bisect.bisect_right(self._starts, math.floor(now))

    def conversation_ids(self, now: float) -> range:
        """Ids of the conversations that have started by ``now``, in start order."""
        return range(1, self.started_count(now) + 1)

    def _ids_starting_in(self, lo: float, hi: float) -> range:
        """Ids of the conversations whose start lies in ``[lo, hi)``."""
        self._extend_until(hi)
        first = bisect.bisect_left(self._starts, lo)
        last = bisect.bisect_left(self._starts, hi)
        return range(first + 1, last + 1)

    # -- scripts ---------------------------------------------------------------------------

    def script(self, conversation_id: int) -> Script:
        cached = self._scripts.get(conversation_id)
        if cached is not None:
            self._scripts.move_to_end(conversation_id)
            return cached
        script = self._build_script(conversation_id)
        self._scripts[conversation_id] = script
        if len(self._scripts) > _SCRIPT_CACHE_SIZE:
            self._scripts.popitem(last=False)
        return script

    def _build_script(self, cid: int) -> Script:
        s = self.settings
        rng = random.Random(f"{s.seed}:conversation:{cid}")
        # Quirks draw from their own stream so that switching one on does not reshuffle the
        # ordinary script: the same seed gives the same conversations plus the quirks.
        qrng = random.Random(f"{s.seed}:quirks:{cid}")
        u_repeat, u_after, u_missing = qrng.random(), qrng.random(), qrng.random()
        # The harsher quirks draw from a third stream, and only when one is on; they override
        # draws of the main stream but never skip one, so the rest of the script stays put.
        hrng = random.Random(f"{s.seed}:hostile:{cid}") if self._hostile else None
        same_seconds = hrng if s.same_second_rate else None
        repeats = hrng if s.repeat_text_rate else None
        lines = _Lines(rng)
        said: list[str] = []  # stripped texts so far, for repeats

        def gap() -> tuple[int, QuirkKind | None]:
            drawn = _uniform_int(rng, s.message_gap_min_s, s.message_gap_max_s)
            if same_seconds is not None and same_seconds.random() < s.same_second_rate:
                return 0, "same_second"
            return drawn, None

        def text() -> tuple[str, QuirkKind | None]:
            drawn = lines.draw()
            if repeats is None:
                return drawn, None
            if repeats.random() >= s.repeat_text_rate:
                said.append(drawn.strip())
                return drawn, None
            base = repeats.choice([*said, *SHORT_TEXTS])
            repeated = base in said
            said.append(base)
            padded = repeats.choice(_PADDINGS).format(base)
            return padded, "repeat_text" if repeated else None

        # (event_name, event_at, fields, quirk kind or None), in script order.
        raw: list[tuple[EventName, int, dict[str, Any], QuirkKind | None]] = []
        start = self.start_at(cid)
        advisor = _uniform_int(rng, 1, s.advisors)
        current = advisor
        t = start
        missing_start = u_missing < s.missing_start_rate
        raw.append(
            ("START", t, {"in_feed": not missing_start}, "missing_start" if missing_start else None)
        )
        for _ in range(_uniform_int(rng, s.messages_min, s.messages_max)):
            step, same = gap()
            t += step
            message, repeated = text()
            raw.append(("MESSAGE", t, {"message": message}, repeated or same))
            if s.advisors > 1 and rng.random() < s.transfer_probability:
                step, same = gap()
                t += step
                # Uniform over the other advisors, without building a list of them.
                new = _uniform_int(rng, 1, s.advisors - 1)
                new += new >= current
                old: int = current
                quirk: QuirkKind | None = same
                if qrng.random() < s.wrong_old_advisor_rate:
                    wrong = [a for a in range(1, s.advisors + 1) if a not in (current, new)]
                    others = wrong or [a for a in range(1, s.advisors + 1) if a != current]
                    old, quirk = qrng.choice(others), "wrong_old_advisor"
                raw.append(("TRANSFER", t, {"old_advisor_id": old, "new_advisor_id": new}, quirk))
                current = new
        t += _uniform_int(rng, s.message_gap_min_s, s.message_gap_max_s)
        end_at = t
        raw.append(("END", end_at, {}, None))
        if u_repeat < s.repeat_end_rate:
            later = end_at
            for _ in range(qrng.randint(1, s.repeat_end_max)):
                later += qrng.randint(s.message_gap_min_s, s.message_gap_max_s)
                raw.append(("END", later, {}, "repeat_end"))
        if u_after < s.after_end_rate:
            at = end_at + qrng.randint(s.message_gap_min_s, s.message_gap_max_s)
            at += s.after_end_delay_s or 0
            raw.append(("MESSAGE", at, {"message": lines.draw(qrng)}, "after_end"))
        if (
            hrng is not None
            and s.advisors > 1
            and s.transfer_before_start_rate
            and hrng.random() < s.transfer_before_start_rate
        ):
            raw = [r for r in raw if r[0] != "TRANSFER"]
            new = _uniform_int(hrng, 1, s.advisors - 1)
            new += new >= advisor
            transfer: dict[str, Any] = {
                "old_advisor_id": advisor,
                "new_advisor_id": new,
                "visible_at": start,  # it cannot be seen before its conversation exists
            }
            at = start - hrng.randint(1, BEFORE_START_MAX_S)
            raw.insert(1, ("TRANSFER", at, transfer, "transfer_before_start"))

        # Stable: equal times keep script order, and an event dated before the START keeps its
        # place right after it (the conversation's own order is not the time order then).
        raw.sort(key=lambda r: r[1] if r[1] >= start else start)
        events: list[ScriptEvent] = []
        quirks: list[Quirk] = []
        for position, (name, at, fields, quirk) in enumerate(raw):
            event = ScriptEvent(cid, position, name, at, **fields)
            events.append(event)
            if quirk is not None:
                quirks.append(Quirk(quirk, cid, event))
        return Script(cid, advisor, start, tuple(events), tuple(quirks))

    # -- queries ---------------------------------------------------------------------------

    def conversation(self, conversation_id: int, now: float) -> Conversation | None:
        """The conversation as ``/conversations/{id}`` shows it, or None before it starts."""
        # Compared with the count started by now, not start_at(id): a huge id must not make the
        # world generate arrivals up to it.
        if not 1 <= conversation_id <= self.started_count(now):
            return None
        script = self.script(conversation_id)
        return Conversation(
            conversation_id=conversation_id,
            advisor_id=script.advisor_id,
            events=[e.to_model() for e in script.happened(now)],
        )

    def events_between(
        self, start: float, end: float, now: float, *, feed_only: bool = True
    ) -> list[ScriptEvent]:
        """Happened events with ``start <= event_at < end``, in the default /events order.

        ``feed_only`` leaves out what /events never serves (a START hidden by a quirk).
        """
        end = min(end, math.floor(now) + 1)  # event_at <= now, event_at being whole seconds
        if end <= start:
            return []
        found: list[ScriptEvent] = []
        for cid in self._ids_starting_in(start - self.max_duration, end + self._lead):
            found.extend(
                e
                for e in self.script(cid).between(start, end)
                if (e.in_feed or not feed_only) and e.available_at <= now
            )
        found.sort(key=lambda e: e.sort_key)
        return found

    def late_visible(self, since: float, now: float) -> list[ScriptEvent]:
        """Feed events that became visible in ``(since, now]`` after their own time.

        Only a TRANSFER dated before its START is such an event here: it becomes visible with
        the START. The fault injector serves these to windows that have already gone by.
        """
        if not self._lead:
            return []
        lo = -math.inf if since == -math.inf else math.floor(since) + 1
        found: list[ScriptEvent] = []
        for cid in self._ids_starting_in(lo, math.floor(now) + 1):
            found.extend(
                e
                for e in self.script(cid).events
                if e.in_feed and e.is_late and since < e.available_at <= now
            )
        return found

    def quirks(self, now: float) -> list[Quirk]:
        """Every quirk injected into the conversations started by ``now`` (happened or not)."""
        s = self.settings
        if not (
            s.repeat_end_rate
            or s.after_end_rate
            or s.missing_start_rate
            or s.wrong_old_advisor_rate
            or self._hostile
        ):
            return []
        return [q for cid in self.conversation_ids(now) for q in self.script(cid).quirks]

    def iter_scripts(self, now: float) -> Iterator[Script]:
        """Scripts of the conversations started by ``now`` (for tests and tooling)."""
        for cid in self.conversation_ids(now):
            yield self.script(cid)

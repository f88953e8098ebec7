"""Whether a service answers, told once per outage rather than once per retry.

A service that is down makes every call to it fail and retry: logged per retry, one outage of
OurAPI was 415 lines in 24 s. ``Availability`` watches one service's request outcomes and says
twice per outage: a WARNING when it stops answering (with how many calls wait for it) and an
INFO when it answers again (after how long). Per-call retries stay at DEBUG.

A single failure is not an outage: the real BigChat answers a few percent of requests with a
5xx. A service counts as down after ``DOWN_AFTER_FAILURES`` failures in a row (no answer in
between) spanning at least ``DOWN_AFTER_SECONDS``; it is up again at its first answer.
"""

from __future__ import annotations

import asyncio
import logging
import weakref

from .clock import Clock, SystemClock

log = logging.getLogger("integration.availability")

DOWN_AFTER_FAILURES = 3
DOWN_AFTER_SECONDS = 2.0


class Availability:
    """One service's state, fed by ``HttpService`` after each request.

    "Calls waiting" are the tasks whose last request to the service failed and that have not yet
    had an answer from it: each is a caller (a conversation being applied, the poller) that is
    retrying. Counted by task, since a call and its retries run in one task.
    """

    def __init__(self, label: str, url: str, clock: Clock | None = None) -> None:
        self.label = label
        self.url = url
        self._clock = clock or SystemClock()
        self.down = False
        self._streak = 0
        self._streak_started = 0.0
        self._failed_while_down = 0
        self._waiting: weakref.WeakSet[asyncio.Task[object]] = weakref.WeakSet()

    @property
    def waiting(self) -> int:
        return sum(1 for task in self._waiting if not task.done())

    def failed(self, reason: str) -> None:
        """A request got no answer (cannot connect, timed out, cut off) or a 5xx."""
        task = asyncio.current_task()
        if task is not None:
            self._waiting.add(task)
        now = self._clock.now()
        if self._streak == 0:
            self._streak_started = now
        self._streak += 1
        if self.down:
            self._failed_while_down += 1
            return
        if self._streak >= DOWN_AFTER_FAILURES and now - self._streak_started >= DOWN_AFTER_SECONDS:
            self.down = True
            self._failed_while_down = self._streak
            log.warning(
                "%s (%s) is not answering: %s; %d call(s) waiting, retrying",
                self.label,
                self.url,
                reason,
                self.waiting,
            )

    def answered(self) -> None:
        """A request got an answer that is not a 5xx (a 4xx is the service answering)."""
        task = asyncio.current_task()
        if task is not None:
            self._waiting.discard(task)
        if self.down:
            log.info(
                "%s is answering again after %.1f s (%d failed request(s) meanwhile)",
                self.label,
                self._clock.now() - self._streak_started,
                self._failed_while_down,
            )
            self.down = False
            self._waiting.clear()
        self._streak = 0

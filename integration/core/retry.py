"""Retry policy: exponential backoff with jitter that honours ``Retry-After``.

The waiting is done by the ``backoff`` library; this module supplies its wait generator. backoff
sends each caught exception into the generator, which lets the next wait respect the peer's
``Retry-After`` instead of guessing. Jitter is applied here (not by backoff) because backoff's
full jitter would shorten a wait below the peer's ``Retry-After``.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

import backoff

from .errors import TransientError


@dataclass(frozen=True)
class RetryPolicy:
    base: float = 0.5
    factor: float = 2.0
    max_delay: float = 30.0
    max_tries: int | None = None
    """None: transient failures are retried until they stop (or the worker stops)."""
    rng: random.Random = field(default_factory=random.Random, compare=False)

    def delays(self) -> Generator[float, BaseException | None, None]:
        """Wait generator for ``backoff``: the n-th wait, given the exception that caused it."""
        exc = yield 0.0  # backoff primes the generator with send(None)
        attempt = 0
        while True:
            ceiling = min(self.max_delay, self.base * self.factor**attempt)
            # "Equal jitter": half fixed, half random, so waits never collapse to zero.
            delay = ceiling / 2 + self.rng.uniform(0, ceiling / 2)
            hint = exc.retry_after if isinstance(exc, TransientError) else None
            if hint is not None:
                delay = max(delay, min(hint, self.max_delay * 4))
            attempt += 1
            exc = yield delay


def retrying(
    policy: RetryPolicy,
    *,
    on_retry: Callable[[Any], None] | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate a coroutine function so ``TransientError`` is retried under ``policy``.

    The returned decorator may be applied to many functions: each gets a backoff decorator of its
    own, because one backoff decorator applied again re-registers its handlers every time (its
    handler list grows with each use, and every retry then runs them all).
    """

    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        def with_backoff(target: Callable[..., Any]) -> Callable[..., Any]:
            wrapped: Callable[..., Any] = backoff.on_exception(
                policy.delays,
                TransientError,
                max_tries=policy.max_tries,
                jitter=None,
                on_backoff=[on_retry] if on_retry else [],
                raise_on_giveup=True,
                logger=None,  # the engine logs retries itself, in one line
            )(target)
            return wrapped

        @functools.wraps(function)
        async def first_try(*args: Any, **kwargs: Any) -> Any:
            # The first try is a plain call: backoff's bookkeeping (a wait generator, a details
            # dict, timestamps) costs more than a whole event's own work in the engine, and most
            # calls succeed at once. Only a failure enters backoff, which sees that failure as
            # its own first try: the same tries, waits and handler calls as before.
            try:
                return await function(*args, **kwargs)
            except TransientError as exc:
                failed: list[TransientError] = [exc]

            @functools.wraps(function)
            async def again(*args: Any, **kwargs: Any) -> Any:
                if failed:
                    raise failed.pop()
                return await function(*args, **kwargs)

            return await with_backoff(again)(*args, **kwargs)

        return first_try

    return decorate

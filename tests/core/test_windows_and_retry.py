"""Window arithmetic and the retry policy."""

from __future__ import annotations

import random

import pytest

from integration.core.engine import EngineSettings, window_end
from integration.core.errors import TransientError
from integration.core.http import parse_retry_after
from integration.core.retry import RetryPolicy, retrying


def test_a_window_ends_lag_seconds_before_now() -> None:
    assert window_end(1000, now=1100.7, settings=EngineSettings(lag=2)) == 1098


def test_after_downtime_windows_are_bounded_by_max_window() -> None:
    assert window_end(1000, now=99_999, settings=EngineSettings(lag=2, max_window=300)) == 1300


def test_a_window_never_ends_on_a_fraction_of_a_second() -> None:
    assert window_end(1000.0, now=1010.9, settings=EngineSettings(lag=0)).is_integer()


def test_no_window_is_due_while_now_minus_lag_has_not_passed_the_cursor() -> None:
    assert window_end(1000, now=1001.5, settings=EngineSettings(lag=2)) <= 1000


def delays(policy: RetryPolicy, errors: list[BaseException | None]) -> list[float]:
    gen = policy.delays()
    next(gen)
    return [gen.send(e) for e in errors]


def test_backoff_grows_exponentially_up_to_the_cap_with_jitter_in_the_upper_half() -> None:
    policy = RetryPolicy(base=1, factor=2, max_delay=8, rng=random.Random(1))

    waits = delays(policy, [TransientError("x")] * 6)

    ceilings = [1, 2, 4, 8, 8, 8]
    for wait, ceiling in zip(waits, ceilings, strict=True):
        assert ceiling / 2 <= wait <= ceiling


def test_retry_after_is_a_lower_bound_on_the_next_wait() -> None:
    policy = RetryPolicy(base=0.1, max_delay=10, rng=random.Random(1))

    (wait,) = delays(policy, [TransientError("429", retry_after=3)])

    assert wait >= 3


@pytest.mark.parametrize(
    "header, expected", [("3", 3.0), ("0", 0.0), ("-5", 0.0), ("soon", None), (None, None)]
)
def test_retry_after_in_seconds_is_parsed(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header, now=0) == expected


def test_retry_after_as_an_http_date_is_seconds_from_now() -> None:
    assert parse_retry_after("Thu, 01 Jan 1970 00:01:40 GMT", now=40) == 60


async def test_transient_errors_are_retried_until_the_call_succeeds() -> None:
    calls = 0

    @retrying(RetryPolicy(base=0.001, max_delay=0.002))
    async def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls < 4:
            raise TransientError("try again")
        return "done"

    assert await flaky() == "done"
    assert calls == 4


async def test_other_errors_are_not_retried() -> None:
    calls = 0

    @retrying(RetryPolicy(base=0.001))
    async def broken() -> None:
        nonlocal calls
        calls += 1
        raise ValueError("bug")

    with pytest.raises(ValueError):
        await broken()
    assert calls == 1


async def test_a_policy_with_max_tries_gives_up_with_the_last_error() -> None:
    @retrying(RetryPolicy(base=0.001, max_tries=3))
    async def always() -> None:
        raise TransientError("still down")

    with pytest.raises(TransientError, match="still down"):
        await always()


async def test_reusing_a_retry_decorator_does_not_pile_up_handlers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[object] = []
    again = retrying(RetryPolicy(base=0.001, max_delay=0.002), on_retry=seen.append)
    failures = 0

    async def flaky_once() -> None:
        nonlocal failures
        failures += 1
        if failures % 2:
            raise TransientError("once")

    with caplog.at_level("INFO", logger="backoff"):
        for _ in range(20):
            await again(flaky_once)()

    # One hook call per retry; backoff's own log handlers (which used to pile up, one more per
    # use of the decorator: 1 + 2 + ... + 20 calls) are not installed at all.
    assert len(seen) == 20
    assert [r for r in caplog.records if r.name == "backoff"] == []

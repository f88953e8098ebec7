"""Rate limits (contract section 10) on a manual clock: a sliding minute and a UTC day."""

from __future__ import annotations

from intempus.ratelimit import RateLimiter
from tests.helpers.clocks import ManualClock
from tests.intempus_standin.conftest import StartIntempus


def test_the_minute_window_slides_rather_than_resetting() -> None:
    clock = ManualClock(1000.0)
    limiter = RateLimiter(clock.now)
    assert [limiter.check("u", 3, None) for _ in range(3)] == [None, None, None]
    clock.at += 30
    assert limiter.check("u", 3, None) == 30  # served once the first request is 60 s old
    clock.at += 30
    # The three first left; the refused one still counts: two in the window, this one served.
    assert limiter.check("u", 3, None) is None


def test_refused_requests_count_so_hammering_keeps_a_client_out() -> None:
    clock = ManualClock(0.0)
    limiter = RateLimiter(clock.now)
    for _ in range(2):
        limiter.check("u", 2, None)
    for _ in range(5):
        clock.at += 10
        assert limiter.check("u", 2, None) is not None
    clock.at += 60
    assert limiter.check("u", 2, None) is None


def test_users_are_counted_apart() -> None:
    limiter = RateLimiter(ManualClock(0.0).now)
    assert limiter.check("a", 1, None) is None
    assert limiter.check("b", 1, None) is None
    assert limiter.check("a", 1, None) is not None


def test_the_day_limit_resets_at_utc_midnight() -> None:
    clock = ManualClock(86_400 * 100 + 86_000)  # 400 s before midnight UTC
    limiter = RateLimiter(clock.now)
    assert limiter.check("u", None, 1) is None
    assert limiter.check("u", None, 1) == 400
    clock.at += 400
    assert limiter.check("u", None, 1) is None


async def test_the_server_answers_429_with_retry_after_and_serves_again_after_it(
    start_intempus: StartIntempus,
) -> None:
    intempus = await start_intempus(rate_per_minute=3)
    statuses = [(await intempus.call("GET", "/web/v1/case/")).status for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    limited = await intempus.call("GET", "/web/v1/case/")
    wait = int(limited.headers["Retry-After"])
    intempus.clock.at += wait
    assert (await intempus.call("GET", "/web/v1/case/")).status == 200
    assert len(intempus.service.faults.of_kind("rate_limit")) == 2


async def test_failed_authentications_count_against_the_limit(
    start_intempus: StartIntempus,
) -> None:
    intempus = await start_intempus(rate_per_minute=2)
    bad = {"Authorization": "ApiKey sync@example.com:wrong"}
    assert (await intempus.call("GET", "/web/v1/case/", headers=bad)).status == 401
    assert (await intempus.call("GET", "/web/v1/case/")).status == 200
    assert (await intempus.call("GET", "/web/v1/case/")).status == 429


async def test_the_limits_can_be_changed_and_counts_reset_at_run_time(
    start_intempus: StartIntempus,
) -> None:
    intempus = await start_intempus(rate_per_minute=1)
    await intempus.call("GET", "/web/v1/case/")
    assert (await intempus.call("GET", "/web/v1/case/")).status == 429
    await intempus.call("POST", "/_standin/stats/reset", headers={})
    assert (await intempus.call("GET", "/web/v1/case/")).status == 200
    await intempus.switch(rate_per_minute=None)
    assert (await intempus.call("GET", "/web/v1/case/")).status == 200

"""The provider circuit breaker: its shared states and each replica's failure window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from switchboard_shared.domain.breakers import (
    BreakerPolicy,
    BreakerState,
    FailureWindow,
    ProviderBreaker,
    closed,
    decide,
    opened,
)

POLICY = BreakerPolicy(
    failure_threshold=3,
    failure_ratio=0.5,
    window=timedelta(seconds=10),
    cool_down=timedelta(seconds=30),
    probe_timeout=timedelta(seconds=20),
)
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def seconds(n: float) -> datetime:
    return T0 + timedelta(seconds=n)


def test_the_window_trips_on_enough_failures_that_are_also_most_outcomes() -> None:
    window = FailureWindow(POLICY)
    assert not window.record(seconds(0), failed=True)
    assert not window.record(seconds(1), failed=True)
    assert window.record(seconds(2), failed=True)


def test_a_few_failures_among_many_successes_do_not_trip_it() -> None:
    window = FailureWindow(POLICY)
    for t in range(6):
        window.record(seconds(t * 0.1), failed=False)
    for t in range(5):  # 3 of 9, ..., 5 of 11: under half
        assert not window.record(seconds(1 + t * 0.1), failed=True)
    assert window.record(seconds(2), failed=True)  # 6 of 12: half


def test_outcomes_older_than_the_window_fall_out() -> None:
    window = FailureWindow(POLICY)
    window.record(seconds(0), failed=True)
    window.record(seconds(1), failed=True)
    assert not window.record(seconds(10.5), failed=True)  # the first fell out at t=10
    assert len(window.outcomes) == 2


def test_open_refuses_until_the_cool_down_then_one_probe_at_a_time() -> None:
    breaker = opened(ProviderBreaker(provider="vocode"), seconds(0), "connection refused")
    assert breaker.state is BreakerState.OPEN
    assert breaker.last_error == "connection refused"
    assert not decide(breaker, POLICY, seconds(29)).allowed
    probe = decide(breaker, POLICY, seconds(30))
    assert probe.allowed
    assert probe.claim is not None
    assert probe.claim.state is BreakerState.HALF_OPEN
    assert probe.claim.probe_started_at == seconds(30)
    assert probe.claim.changed_at == seconds(30)
    # Others are refused while the probe is in flight, and may probe once it timed out.
    assert not decide(probe.claim, POLICY, seconds(49)).allowed
    retaken = decide(probe.claim, POLICY, seconds(50))
    assert retaken.allowed
    assert retaken.claim is not None
    assert retaken.claim.probe_started_at == seconds(50)


def test_a_successful_probe_closes_the_breaker_and_a_failed_one_reopens_it() -> None:
    probe = decide(
        opened(ProviderBreaker(provider="vocode"), seconds(0), "5xx"), POLICY, seconds(31)
    )
    assert probe.claim is not None
    now_closed = closed(probe.claim, seconds(32))
    assert now_closed is not None
    assert now_closed.state is BreakerState.CLOSED
    assert now_closed.opened_at is None
    assert now_closed.probe_started_at is None
    assert decide(now_closed, POLICY, seconds(32)) == decide(
        ProviderBreaker(provider="x"), POLICY, seconds(0)
    )

    reopened = opened(probe.claim, seconds(32), "5xx")
    assert reopened.state is BreakerState.OPEN
    assert not decide(reopened, POLICY, seconds(61)).allowed
    assert decide(reopened, POLICY, seconds(62)).allowed


def test_closing_a_closed_breaker_writes_nothing() -> None:
    assert closed(ProviderBreaker(provider="vocode"), seconds(0)) is None

"""The per-tenant token bucket, on an explicit clock."""

from __future__ import annotations

import pytest

from switchboard_api.rate_limit import TenantRateLimiter


def test_a_burst_is_allowed_then_the_rate_applies() -> None:
    limiter = TenantRateLimiter(per_second=2, burst=3)
    assert [limiter.take("t", now=0.0) for _ in range(3)] == [None, None, None]
    assert limiter.take("t", now=0.0) == pytest.approx(0.5)
    assert limiter.take("t", now=0.5) is None  # one token back after 1/rate seconds
    assert limiter.take("t", now=0.5) == pytest.approx(0.5)


def test_tenants_have_their_own_buckets() -> None:
    limiter = TenantRateLimiter(per_second=1, burst=1)
    assert limiter.take("a", now=0.0) is None
    assert limiter.take("a", now=0.0) is not None
    assert limiter.take("b", now=0.0) is None


def test_an_idle_bucket_refills_only_up_to_the_burst() -> None:
    limiter = TenantRateLimiter(per_second=10, burst=2)
    limiter.take("t", now=0.0)
    assert [limiter.take("t", now=100.0) for _ in range(3)][-1] is not None


@pytest.mark.parametrize(("rate", "burst"), [(0, 1), (-1, 1), (1, 0)])
def test_a_limit_must_be_positive(rate: float, burst: int) -> None:
    with pytest.raises(ValueError, match="positive"):
        TenantRateLimiter(per_second=rate, burst=burst)

"""Per-tenant request rate limit: a token bucket per tenant, in this API process.

Each replica limits on its own, so N replicas allow N times the rate; the limit is a
guard against a runaway client, not a billing quota.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

# Beyond this many tenants seen, buckets that are full again are forgotten.
_MAX_BUCKETS = 10_000


@dataclass
class _Bucket:
    tokens: float
    updated: float


class TenantRateLimiter:
    def __init__(self, per_second: float, burst: int) -> None:
        if per_second <= 0 or burst < 1:
            raise ValueError("the rate must be positive and the burst at least 1")
        self._rate = per_second
        self._burst = float(burst)
        self._buckets: dict[str, _Bucket] = {}

    def take(self, tenant_id: str, now: float | None = None) -> float | None:
        """Spend one request of `tenant_id`'s budget: None when allowed, else the seconds
        until the next request would be."""
        moment = time.monotonic() if now is None else now
        bucket = self._buckets.get(tenant_id)
        if bucket is None:
            self._forget_idle(moment)
            bucket = self._buckets[tenant_id] = _Bucket(self._burst, moment)
        bucket.tokens = min(self._burst, bucket.tokens + (moment - bucket.updated) * self._rate)
        bucket.updated = moment
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return None
        return (1 - bucket.tokens) / self._rate

    def _forget_idle(self, now: float) -> None:
        if len(self._buckets) < _MAX_BUCKETS:
            return
        full_after = self._burst / self._rate
        self._buckets = {
            tenant: bucket
            for tenant, bucket in self._buckets.items()
            if now - bucket.updated < full_after
        }

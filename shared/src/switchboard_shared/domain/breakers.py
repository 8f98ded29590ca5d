"""A circuit breaker per provider, its state shared by every dialer replica (the store).

closed ──(the failure window trips)──▶ open ──(cool-down over)──▶ half_open
half_open: one dialer at a time sends a probe (a real call); success closes the breaker,
failure opens it again for another cool-down. A probe whose dialer died is given up
after `probe_timeout`, and another dialer may probe.

Each replica counts its own outcomes (`FailureWindow`, in memory: the happy path writes
nothing); the state it moves the breaker to is written with a compare-and-set on
`version`, so replicas never overwrite each other's view. The functions are pure.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True)
class BreakerPolicy:
    # The window trips when it holds at least `failure_threshold` failures and they are at
    # least `failure_ratio` of its outcomes: a few bad numbers among many good calls do
    # not open it, a provider refusing everything does.
    failure_threshold: int
    failure_ratio: float
    window: timedelta
    cool_down: timedelta  # open this long before a probe is allowed
    probe_timeout: timedelta  # a probe not settled by then is given up


class ProviderBreaker(BaseModel):
    provider: str
    state: BreakerState = BreakerState.CLOSED
    opened_at: datetime | None = None
    probe_started_at: datetime | None = None  # half_open: the probe in flight
    changed_at: datetime | None = None
    last_error: str | None = None  # why it opened (our words, for operators)
    version: int = 0  # compare-and-set token; 0: never stored


@dataclass
class FailureWindow:
    """One replica's recent create outcomes for one provider."""

    policy: BreakerPolicy
    outcomes: deque[tuple[datetime, bool]] = field(default_factory=deque)

    def record(self, now: datetime, *, failed: bool) -> bool:
        """Add an outcome; True when the window trips."""
        self.outcomes.append((now, failed))
        while self.outcomes and now - self.outcomes[0][0] >= self.policy.window:
            self.outcomes.popleft()
        failures = sum(1 for _, f in self.outcomes if f)
        return (
            failures >= self.policy.failure_threshold
            and failures >= self.policy.failure_ratio * len(self.outcomes)
        )

    def clear(self) -> None:
        self.outcomes.clear()


@dataclass(frozen=True)
class Decision:
    allowed: bool
    # The state to store first (this dialer takes the half-open probe); None: no write.
    claim: ProviderBreaker | None = None

    @property
    def is_probe(self) -> bool:
        return self.claim is not None


def decide(breaker: ProviderBreaker, policy: BreakerPolicy, now: datetime) -> Decision:
    """May a dialer send a create to this provider now?"""
    if breaker.state is BreakerState.CLOSED:
        return Decision(True)
    since = breaker.opened_at if breaker.state is BreakerState.OPEN else breaker.probe_started_at
    wait = policy.cool_down if breaker.state is BreakerState.OPEN else policy.probe_timeout
    if since is not None and now - since < wait:
        return Decision(False)  # cooling down, or another dialer's probe is in flight
    return Decision(
        True,
        breaker.model_copy(
            update={
                "state": BreakerState.HALF_OPEN,
                "probe_started_at": now,
                "changed_at": now if breaker.state is BreakerState.OPEN else breaker.changed_at,
            }
        ),
    )


def opened(breaker: ProviderBreaker, now: datetime, reason: str) -> ProviderBreaker:
    """The breaker after its window tripped, or after a failed probe."""
    return breaker.model_copy(
        update={
            "state": BreakerState.OPEN,
            "opened_at": now,
            "probe_started_at": None,
            "changed_at": now,
            "last_error": reason,
        }
    )


def closed(breaker: ProviderBreaker, now: datetime) -> ProviderBreaker | None:
    """The breaker after an accepted create; None when it is closed already."""
    if breaker.state is BreakerState.CLOSED:
        return None
    return breaker.model_copy(
        update={
            "state": BreakerState.CLOSED,
            "opened_at": None,
            "probe_started_at": None,
            "changed_at": now,
        }
    )

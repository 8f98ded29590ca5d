"""Concurrency limits: slots a call holds from its dial until its attempt ends, counted in
the store so every dialer replica sees the same numbers.

Each limit is a scope of slots (a *lane*): `tenant:<id>` (the tenant's
`max_concurrent_calls`), `batch:<id>` (the batch's `max_concurrency`) and
`provider:<name>` (the provider's `max_concurrent_calls` setting). Before its dial claim
a call takes a slot in each lane that limits it. A lane without a free slot makes the
call wait: it stays `queued`, marked with the lane and the time (`waiting_lane`,
`waiting_since`), holding no slot, and its message is acked, so neither the broker nor a
process holds it. When an attempt ends, its slots are given back and the calls waiting
longest in those lanes are handed on: a slot is taken for each on its behalf (so no
newcomer takes it first) and its `call.requested` published again through the outbox.
`SlotSweep` (services/dialer) frees the slots of calls that are no longer placing or
live (a dialer that died) and hands on waiters a lost wake-up left behind.

A provider's calls-per-second limit uses slots too: one scope per provider and second
(`rate:<name>:<second>`), swept once the second is long past.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from switchboard_shared.calls.outbox import publish_call_event
from switchboard_shared.domain.call_changes import CallChanges, CallGuard
from switchboard_shared.domain.calls import Call, CallStatus, utcnow
from switchboard_shared.observability.metrics import CALLS_HANDED_ON, CALLS_WAITING_FOR_SLOT
from switchboard_shared.ports import Bus, Store

log = logging.getLogger(__name__)

QUEUED_ONLY = frozenset({CallStatus.QUEUED})
TENANT, BATCH, PROVIDER, RATE = "tenant", "batch", "provider", "rate"
# Waiters read at once, and rounds of them at most per hand-on (a lane's room is
# usually one slot; an unlimited lane is drained over several hand-ons).
_HAND_ON_ROUND = 100
_HAND_ON_ROUNDS = 10


def lane(kind: str, name: str) -> str:
    return f"{kind}:{name}"


def lane_kind(scope: str) -> str:
    return scope.partition(":")[0]


def still_needs_slot(call: Call | None) -> bool:
    """Whether a call keeps the slots it holds: placed or live, or queued to be dialed
    (its message, or a retry of it, is on the way). Ended, waiting for a redial, or
    waiting in a lane, it holds none."""
    if call is None or call.status.is_terminal or call.status is CallStatus.SCHEDULED:
        return False
    return call.waiting_lane is None


@dataclass(frozen=True)
class Limit:
    """`limit` slots in `lane`."""

    lane: str
    limit: int


class Admission:
    """Takes and gives back a call's slots, parks calls that find no room and hands
    waiting calls on; `provider_limits` is each provider's concurrent-call limit (None:
    none), `provider_rates` its calls per second (None: none)."""

    def __init__(
        self,
        store: Store,
        bus: Bus,
        *,
        provider_limits: Mapping[str, int | None],
        provider_rates: Mapping[str, float | None] | None = None,
    ) -> None:
        self._store = store
        self._bus = bus
        self._provider_limits = dict(provider_limits)
        self._provider_rates = dict(provider_rates or {})

    # --- limits ---------------------------------------------------------------------
    async def call_limits(
        self, call: Call, known: dict[str, int | None] | None = None
    ) -> list[Limit]:
        """The tenant's and (for a batch call with a `max_concurrency`) the batch's;
        `known` keeps the limits read, for a caller looking at many calls at once."""
        known = {} if known is None else known
        scopes = [lane(TENANT, call.tenant_id)]
        if call.batch_id is not None:
            scopes.append(lane(BATCH, call.batch_id))
        limits = []
        for scope in scopes:
            if scope not in known:
                known[scope] = await self.limit_of(scope)
            limit = known[scope]
            if limit is not None:
                limits.append(Limit(scope, limit))
        return limits

    def provider_limit(self, provider: str) -> Limit | None:
        limit = self._provider_limits.get(provider)
        return Limit(lane(PROVIDER, provider), limit) if limit is not None else None

    async def limit_of(self, scope: str) -> int | None:
        """The limit of a lane as it stands now; None when nothing limits it (a tenant or
        batch gone, a provider without a limit)."""
        kind, _, name = scope.partition(":")
        if kind == TENANT:
            tenant = await self._store.get_tenant(name)
            return tenant.max_concurrent_calls if tenant is not None else None
        if kind == BATCH:
            batch = await self._store.get_batch(name)
            return batch.max_concurrency if batch is not None else None
        if kind == PROVIDER:
            return self._provider_limits.get(name)
        return None

    # --- slots ----------------------------------------------------------------------
    async def take(self, holder: str, limits: list[Limit]) -> Limit | None:
        """Take a slot of each limit for `holder`, in order; all or none: the limit that
        had no room (the slots taken before it given back), or None when all were taken."""
        taken: list[str] = []
        for limit in limits:
            if not await self._store.take_slot(limit.lane, holder, limit.limit):
                for scope in taken:
                    await self._store.release_slot(scope, holder)
                await self.hand_on_all(taken)
                return limit
            taken.append(limit.lane)
        return None

    async def give_back(self, holder: str, scope: str) -> None:
        """Give back one slot (a route that did not take the call) and hand it on."""
        if await self._store.release_slot(scope, holder):
            await self.hand_on(scope)

    async def release(self, call_id: str) -> list[str]:
        """Give back every slot of the call (its attempt ended, or it waits) and hand each
        on to the longest waiting call of that lane; returns the lanes."""
        scopes = await self._store.release_slots(call_id)
        await self.hand_on_all(scopes)
        return scopes

    async def pace(self, provider: str) -> None:
        """Wait for a slot of the provider's calls-per-second limit (shared by every
        replica: a scope per second); returns at once without one."""
        rate = self._provider_rates.get(provider)
        if not rate:
            return
        per_second = max(1, int(rate))
        holder = uuid.uuid4().hex
        while True:
            second = int(time.time())
            if await self._store.take_slot(lane(RATE, f"{provider}:{second}"), holder, per_second):
                return
            await asyncio.sleep(max(0.0, second + 1 - time.time()) + 0.001)

    # --- waiting --------------------------------------------------------------------
    async def wait(self, call: Call, scope: str) -> bool:
        """Park the queued call in `scope`'s lane, holding no slot; False when it moved
        meanwhile (dialed, canceled, or parked already)."""
        await self.release(call.call_id)
        parked = await self._store.update_call(
            call.call_id,
            CallChanges(waiting_lane=scope, waiting_since=utcnow()),
            guard=CallGuard(statuses=QUEUED_ONLY, dial_claim=None, waiting_lane=None),
        )
        if parked is None:
            return False
        CALLS_WAITING_FOR_SLOT.labels(lane_kind(scope)).inc()
        # A slot freed between our refusal and the park woke nobody: look once more.
        await self.hand_on(scope)
        return True

    async def park_due(self, call: Call, scope: str) -> bool:
        """Queue a due `scheduled` call straight into `scope`'s lane (no room there), with
        nothing published; False when it moved meanwhile."""
        parked = await self._store.update_call(
            call.call_id,
            CallChanges(
                status=CallStatus.QUEUED,
                next_attempt_at=None,
                waiting_lane=scope,
                waiting_since=utcnow(),
            ),
            guard=CallGuard(
                statuses=frozenset({CallStatus.SCHEDULED}), next_attempt_at=call.next_attempt_at
            ),
        )
        if parked is not None:
            CALLS_WAITING_FOR_SLOT.labels(lane_kind(scope)).inc()
        return parked is not None

    async def hand_on_all(self, scopes: list[str]) -> None:
        for scope in scopes:
            await self.hand_on(scope)

    async def hand_on(self, scope: str) -> int:
        """Hand the lane's free slots to its longest waiting calls; returns how many."""
        limit = await self.limit_of(scope)
        handed = 0
        for _ in range(_HAND_ON_ROUNDS):
            room = _HAND_ON_ROUND
            if limit is not None:
                room = min(room, limit - await self._store.count_slots(scope))
            if room <= 0:
                return handed
            waiting = await self._store.find_calls(waiting_lane=scope, limit=room)
            for call in waiting:
                if limit is not None and not await self._store.take_slot(
                    scope, call.call_id, limit
                ):
                    return handed  # taken by a newcomer meanwhile: the lane is full
                if await self._wake(call):
                    handed += 1
                elif limit is not None and not still_needs_slot(
                    await self._store.get_call(call.call_id)
                ):
                    # Not woken by us: if another hand-on woke it first, the slot is the
                    # one that hand-on took for it (a holder has one), and stays.
                    await self._store.release_slot(scope, call.call_id)
            if len(waiting) < room:
                return handed
        return handed

    async def _wake(self, call: Call) -> bool:
        """Clear the call's wait and publish its `call.requested` again (a new sequence:
        the outbox publishes it even if we die now)."""
        woken = await self._store.update_call(
            call.call_id,
            CallChanges(waiting_lane=None, waiting_since=None),
            guard=CallGuard(
                statuses=QUEUED_ONLY,
                waiting_lane=call.waiting_lane,
                waiting_since=call.waiting_since,
            ),
            bump_sequence=True,
        )
        if woken is None:
            return False  # woken by another hand-on, or no longer queued
        CALLS_HANDED_ON.labels(lane_kind(call.waiting_lane or "")).inc()
        await publish_call_event(self._store, self._bus, woken)
        return True

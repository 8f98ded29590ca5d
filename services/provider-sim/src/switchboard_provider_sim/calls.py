"""The simulated calls, in memory: their state, idempotency keys and create attempts."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from switchboard_provider_sim.scenarios import Scenario

# Enough for a long benchmark; beyond it the oldest calls are forgotten.
MAX_CALLS = 100_000


class SimStatus(StrEnum):
    """The simulator's own statuses; each dialect renders them in its vocabulary."""

    QUEUED = "queued"
    RINGING = "ringing"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    CANCELED = "canceled"

    @property
    def is_final(self) -> bool:
        return self not in (SimStatus.QUEUED, SimStatus.RINGING, SimStatus.IN_PROGRESS)


def now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


@dataclass
class SimCall:
    id: str
    dialect: str  # "simulator", "vocode" or "voxpria": the API that created it
    to_number: str
    from_number: str | None
    agent_id: str
    variables: dict[str, Any]
    callback_url: str | None
    scenario: Scenario
    status: SimStatus = SimStatus.QUEUED
    created_at: datetime = field(default_factory=now)
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    transcript: str | None = None
    duration: int | None = None
    ended_reason: str | None = None
    # The timeline task, and the last callback delivery (the next one waits for it).
    timeline: asyncio.Task[None] | None = None
    delivery: asyncio.Task[None] | None = None


class CallBook:
    """Every call by id, plus idempotency keys and failed-create counters."""

    def __init__(self, max_calls: int = MAX_CALLS) -> None:
        self._calls: OrderedDict[str, SimCall] = OrderedDict()
        self._by_key: dict[str, str] = {}
        self._key_of: dict[str, str] = {}
        self._attempts: dict[str, int] = {}
        self._max_calls = max_calls

    def get(self, call_id: str) -> SimCall | None:
        return self._calls.get(call_id)

    def all(self) -> list[SimCall]:
        """Every remembered call, oldest first."""
        return list(self._calls.values())

    def by_idempotency_key(self, key: str | None) -> SimCall | None:
        call_id = self._by_key.get(key) if key else None
        return self._calls.get(call_id) if call_id else None

    def add(self, call: SimCall, idempotency_key: str | None) -> None:
        self._calls[call.id] = call
        if idempotency_key:
            self._by_key[idempotency_key] = call.id
            self._key_of[call.id] = idempotency_key
        while len(self._calls) > self._max_calls:
            _, oldest = self._calls.popitem(last=False)
            if oldest.timeline:
                oldest.timeline.cancel()
            if key := self._key_of.pop(oldest.id, None):
                self._by_key.pop(key, None)

    def count_attempt(self, key: str) -> int:
        """Count one create attempt under `key`; returns how many there have been."""
        if len(self._attempts) > self._max_calls:
            self._attempts.clear()
        self._attempts[key] = self._attempts.get(key, 0) + 1
        return self._attempts[key]

    def __len__(self) -> int:
        return len(self._calls)

"""The simulated calls, in memory: their state, idempotency keys, references and create
attempts."""

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
    # What the caller created it with: its idempotency key (native: the header, else
    # `reference`) and the native `reference`. Either finds it by reference.
    idempotency_key: str | None = None
    reference: str | None = None
    status: SimStatus = SimStatus.QUEUED
    created_at: datetime = field(default_factory=now)
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    transcript: str | None = None
    duration: int | None = None
    # How the call ended, in the simulator's words; each dialect renders its own code.
    ended_by: str | None = None
    recording: bool = False  # a recording of the call can be fetched
    # Where the simulator was reached when the call was created: recording URLs use it.
    base_url: str = ""
    inline_agent: dict[str, Any] | None = None  # Vocode: the agent sent in the create
    # The timeline task, and the last callback delivery (the next one waits for it).
    timeline: asyncio.Task[None] | None = None
    delivery: asyncio.Task[None] | None = None


class CallBook:
    """Every call by id, plus idempotency keys, references and failed-create counters."""

    def __init__(self, max_calls: int = MAX_CALLS) -> None:
        self._calls: OrderedDict[str, SimCall] = OrderedDict()
        self._by_key: dict[str, str] = {}
        # Reference or idempotency key -> ids of the calls created with it, oldest first.
        self._by_reference: dict[str, list[str]] = {}
        self._attempts: dict[str, int] = {}
        self._first_attempts: dict[str, float] = {}
        self._max_calls = max_calls

    def get(self, call_id: str) -> SimCall | None:
        return self._calls.get(call_id)

    def all(self) -> list[SimCall]:
        """Every remembered call, oldest first."""
        return list(self._calls.values())

    def by_idempotency_key(self, key: str | None) -> SimCall | None:
        call_id = self._by_key.get(key) if key else None
        return self._calls.get(call_id) if call_id else None

    def by_reference(self, reference: str) -> list[SimCall]:
        """The calls created with `reference` as their reference or idempotency key,
        oldest first (at most one when the caller always sends the same value as both)."""
        return [self._calls[call_id] for call_id in self._by_reference.get(reference, [])]

    def add(self, call: SimCall) -> None:
        self._calls[call.id] = call
        if call.idempotency_key:
            self._by_key[call.idempotency_key] = call.id
        for reference in _references(call):
            self._by_reference.setdefault(reference, []).append(call.id)
        while len(self._calls) > self._max_calls:
            _, oldest = self._calls.popitem(last=False)
            if oldest.timeline:
                oldest.timeline.cancel()
            if oldest.idempotency_key and self._by_key.get(oldest.idempotency_key) == oldest.id:
                del self._by_key[oldest.idempotency_key]
            for reference in _references(oldest):
                ids = self._by_reference.get(reference, [])
                if oldest.id in ids:
                    ids.remove(oldest.id)
                if not ids:
                    self._by_reference.pop(reference, None)

    def count_attempt(self, key: str) -> int:
        """Count one create attempt under `key`; returns how many there have been."""
        if len(self._attempts) > self._max_calls:
            self._attempts.clear()
        self._attempts[key] = self._attempts.get(key, 0) + 1
        return self._attempts[key]

    def first_attempt(self, key: str, at: float) -> float:
        """When the first create attempt under `key` came (`at`, for the first one)."""
        if len(self._first_attempts) > self._max_calls:
            self._first_attempts.clear()
        return self._first_attempts.setdefault(key, at)

    def __len__(self) -> int:
        return len(self._calls)


def _references(call: SimCall) -> set[str]:
    return {key for key in (call.idempotency_key, call.reference) if key}

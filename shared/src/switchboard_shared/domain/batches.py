"""A batch: many calls of one agent sharing their options (schedule, window, retry).

The calls are ordinary calls carrying the `batch_id`; the batch keeps what they share
and the batch's own state. Its public status is read from its calls: `scheduled` while
its first call is not due yet and none has been dialed, `running` after, `completed`
once every call is terminal; `paused` and `canceled` are the customer's.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from switchboard_shared.domain.calls import TERMINAL_STATUSES, CallStatus, utcnow

MAX_BATCH_ROWS = 100_000
# How many bad rows a refusal lists.
MAX_REPORTED_ROWS = 100


class BatchState(StrEnum):
    """What the customer made of the batch (stored)."""

    ACTIVE = "active"
    PAUSED = "paused"
    CANCELED = "canceled"


class BatchStatus(StrEnum):
    """The batch's public status."""

    SCHEDULED = "scheduled"
    RUNNING = "running"
    PAUSED = "paused"
    CANCELED = "canceled"
    COMPLETED = "completed"


class Batch(BaseModel):
    batch_id: str = Field(default_factory=lambda: str(uuid.uuid4()))
    tenant_id: str
    agent: str
    name: str | None = None
    state: BatchState = BatchState.ACTIVE
    total: int
    skipped_blocked: int = 0
    scheduled_at: datetime | None = None
    # When its first call is due, if later than its creation (else None: at once).
    first_due: datetime | None = None
    calling_window: dict[str, Any] | None = None
    retry: dict[str, Any] | None = None
    max_concurrency: int | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    # Set once, by the first dial of any of its calls (compare-and-set: first wins).
    started_at: datetime | None = None
    # Set once every call is terminal, when its `batch.completed` was published.
    completed_at: datetime | None = None
    idempotency_key: str | None = None
    request_fingerprint: str | None = None


@dataclass(frozen=True)
class BatchCall:
    """What one call of a batch has of its own; the rest is the batch's call template."""

    phone: str
    variables: dict[str, Any]
    metadata: dict[str, Any]
    next_attempt_at: datetime
    scheduled_at: datetime | None = None  # when due later than its creation
    call_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def fields(self) -> dict[str, Any]:
        """The call fields this row sets on the template."""
        return {
            "call_id": self.call_id,
            "phone": self.phone,
            "variables": self.variables,
            "metadata": self.metadata,
            "next_attempt_at": self.next_attempt_at,
            "scheduled_at": self.scheduled_at,
        }


class BatchProgress(BaseModel):
    """What the batch's calls say: how many are in each status (every status listed)
    and how many attempts ended."""

    counts: dict[str, int]
    attempts: int

    @classmethod
    def of(cls, groups: dict[str, int], attempts: int) -> BatchProgress:
        return cls(counts={s.value: groups.get(s.value, 0) for s in CallStatus}, attempts=attempts)

    @property
    def all_terminal(self) -> bool:
        terminal = {s.value for s in TERMINAL_STATUSES}
        return all(n == 0 for s, n in self.counts.items() if s not in terminal)

    @property
    def any_dialed(self) -> bool:
        waiting = {CallStatus.SCHEDULED.value}
        return self.attempts > 0 or any(n for s, n in self.counts.items() if s not in waiting)


def batch_status(batch: Batch, progress: BatchProgress) -> BatchStatus:
    """The public status of `batch` given its calls' `progress`."""
    if batch.state is BatchState.CANCELED:
        return BatchStatus.COMPLETED if progress.all_terminal else BatchStatus.CANCELED
    if progress.all_terminal and batch.total:
        return BatchStatus.COMPLETED
    if batch.state is BatchState.PAUSED:
        return BatchStatus.PAUSED
    waiting = batch.first_due is not None and batch.first_due > utcnow()
    return BatchStatus.SCHEDULED if waiting and not progress.any_dialed else BatchStatus.RUNNING


def recorded_status(batch: Batch, now: datetime) -> BatchStatus:
    """The public status read from the batch record alone (no call counted): what the
    listing shows and filters on. It follows `batch_status` except in the seconds between
    the last call ending and `batch.completed` being sent (still the earlier status)."""
    if batch.completed_at is not None:
        return BatchStatus.COMPLETED
    if batch.state is BatchState.CANCELED:
        return BatchStatus.CANCELED
    if batch.state is BatchState.PAUSED:
        return BatchStatus.PAUSED
    waiting = batch.first_due is not None and batch.first_due > now
    return BatchStatus.SCHEDULED if waiting and batch.started_at is None else BatchStatus.RUNNING


class BatchFilter(BaseModel):
    """Filters of `GET /v1/batches`; all optional, combined with AND."""

    status: BatchStatus | None = None
    agent: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


class BatchPage(BaseModel):
    batches: list[Batch]
    next_cursor: str | None


class BatchSummary(BaseModel):
    """One batch of `GET /v1/batches`: the batch without its call counts (read those
    with `GET /v1/batches/{id}`)."""

    batch_id: str
    status: BatchStatus
    name: str | None = None
    agent: str
    total: int = Field(description="Calls created.")
    skipped_blocked: int = Field(description="Rows skipped as blocked numbers.")
    scheduled_at: datetime | None = None
    max_concurrency: int | None = None
    created_at: datetime
    started_at: datetime | None = Field(
        default=None, description="When the first call of the batch was dialed."
    )
    finished_at: datetime | None = Field(
        default=None, description="When every call of the batch was terminal."
    )
    metadata: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def of(cls, batch: Batch, now: datetime) -> BatchSummary:
        return cls(
            batch_id=batch.batch_id,
            status=recorded_status(batch, now),
            name=batch.name,
            agent=batch.agent,
            total=batch.total,
            skipped_blocked=batch.skipped_blocked,
            scheduled_at=batch.scheduled_at,
            max_concurrency=batch.max_concurrency,
            created_at=batch.created_at,
            started_at=batch.started_at,
            finished_at=batch.completed_at,
            metadata=batch.metadata,
        )


class BatchView(BaseModel):
    """`GET /v1/batches/{id}`."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "batch_id": "0b7e3c1a-2f4d-4e5a-9b6c-7d8e9f0a1b2c",
                    "status": "running",
                    "name": "March reminders",
                    "agent": "altynai",
                    "total": 2,
                    "skipped_blocked": 0,
                    "counts": {
                        "scheduled": 0,
                        "queued": 1,
                        "dialing": 0,
                        "ringing": 0,
                        "in_progress": 0,
                        "completed": 1,
                        "failed": 0,
                        "no_answer": 0,
                        "busy": 0,
                        "canceled": 0,
                    },
                    "attempts": 1,
                    "created_at": "2026-01-15T09:30:00Z",
                    "started_at": "2026-01-15T09:30:01Z",
                    "metadata": {"campaign": "march"},
                }
            ]
        }
    )

    batch_id: str
    status: BatchStatus
    name: str | None = None
    agent: str
    total: int = Field(description="Calls created.")
    skipped_blocked: int = Field(description="Rows skipped as blocked numbers.")
    counts: dict[str, int] = Field(description="The batch's calls by status, every status.")
    attempts: int = Field(description="Attempts that ended, redials included.")
    scheduled_at: datetime | None = None
    max_concurrency: int | None = None
    created_at: datetime
    started_at: datetime | None = Field(
        default=None, description="When the first call of the batch was dialed."
    )
    finished_at: datetime | None = Field(
        default=None, description="When every call of the batch was terminal."
    )
    metadata: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def of(cls, batch: Batch, progress: BatchProgress) -> BatchView:
        return cls(
            batch_id=batch.batch_id,
            status=batch_status(batch, progress),
            name=batch.name,
            agent=batch.agent,
            total=batch.total,
            skipped_blocked=batch.skipped_blocked,
            counts=progress.counts,
            attempts=progress.attempts,
            scheduled_at=batch.scheduled_at,
            max_concurrency=batch.max_concurrency,
            created_at=batch.created_at,
            started_at=batch.started_at,
            finished_at=batch.completed_at,
            metadata=batch.metadata,
        )

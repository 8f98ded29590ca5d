"""How both stores keep a value, so a record read back equals the record written.

MongoDB keeps datetimes to the millisecond, so every stored datetime is cut to whole
milliseconds in UTC by both adapters: a call read back is equal to the call returned by
the write, whichever store is behind it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from enum import Enum
from typing import Any, TypeVar

from pydantic import BaseModel

from switchboard_shared.domain.batches import BatchCall
from switchboard_shared.domain.calls import Call, utcnow
from switchboard_shared.domain.webhooks import DeliveryStatus

M = TypeVar("M", bound=BaseModel)


def stored_value(value: Any) -> Any:
    """`value` as both stores keep it: datetimes in UTC cut to milliseconds (naive ones
    taken as UTC), enums as their values, containers walked."""
    if isinstance(value, datetime):
        moment = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return moment.replace(microsecond=moment.microsecond // 1000 * 1000)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, BaseModel):
        return stored_value(value.model_dump())
    if isinstance(value, Mapping):
        return {str(k): stored_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [stored_value(v) for v in value]
    return value


def stored_now() -> datetime:
    """The current time as stored: UTC, whole milliseconds."""
    now: datetime = stored_value(utcnow())
    return now


def stored_document(model: BaseModel) -> dict[str, Any]:
    """Every field of `model`, as stored (see `stored_value`)."""
    document: dict[str, Any] = stored_value(model.model_dump())
    return document


def as_stored(model: M) -> M:
    """A copy of `model` equal to what reading it back from a store gives."""
    return type(model).model_validate(stored_document(model))


def stored_due(status: DeliveryStatus, next_attempt_at: datetime | None) -> datetime | None:
    """The `next_attempt_at` a delivery keeps after an attempt: only a pending one has a
    next attempt."""
    if status is not DeliveryStatus.PENDING or next_attempt_at is None:
        return None
    due: datetime = stored_value(next_attempt_at)
    return due


def batch_call_documents(template: Call, calls: Iterable[BatchCall]) -> Iterator[dict[str, Any]]:
    """The stored document of each call of a batch: the template's, stored once, with
    each row's own fields (read back, each equals `template` with those fields)."""
    shared = stored_document(template)
    for call in calls:
        yield shared | stored_value(call.fields())

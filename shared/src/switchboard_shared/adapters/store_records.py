"""What both stores share beyond paging: how a value is stored, which changes and guards
are valid, and the idempotency rule of `insert_call`.

MongoDB keeps datetimes to the millisecond, so every stored datetime is cut to whole
milliseconds in UTC by both adapters: a call read back is equal to the call returned by
the write, whichever store is behind it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from enum import Enum
from functools import cache
from typing import Any, TypeVar

from pydantic import BaseModel, TypeAdapter

from switchboard_shared.domain.calls import Call, CallStatus, utcnow
from switchboard_shared.ports import IdempotencyConflict

M = TypeVar("M", bound=BaseModel)

# Fields a caller may not change through `update_call`: identity, and what the store
# itself maintains.
_FROZEN_CALL_FIELDS = frozenset({"call_id", "tenant_id", "created_at"})


def stored_value(value: Any) -> Any:
    """`value` as both stores keep it: datetimes in UTC cut to milliseconds (naive ones
    taken as UTC), enums as their values, containers walked."""
    if isinstance(value, datetime):
        moment = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return moment.replace(microsecond=moment.microsecond // 1000 * 1000)
    if isinstance(value, Enum):
        return value.value
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
    return stored_value(model.model_dump())


def as_stored(model: M) -> M:
    """A copy of `model` equal to what reading it back from a store gives."""
    return type(model).model_validate(stored_document(model))


@cache
def _field_adapter(model: type[BaseModel], name: str) -> TypeAdapter[Any]:
    return TypeAdapter(model.model_fields[name].annotation)


def _check_field(model: type[BaseModel], name: str) -> None:
    if name not in model.model_fields:
        raise ValueError(f"{model.__name__} has no field {name!r}")


def stored_changes(changes: Mapping[str, Any]) -> dict[str, Any]:
    """`changes` to a call validated against the call's field types and made storable.

    Raises ValueError for an unknown or frozen field, or a value of the wrong type.
    """
    result: dict[str, Any] = {}
    for name, value in changes.items():
        _check_field(Call, name)
        if name in _FROZEN_CALL_FIELDS:
            raise ValueError(f"the call's {name!r} cannot change")
        result[name] = stored_value(_field_adapter(Call, name).validate_python(value))
    return result


def stored_expectations(expected: Mapping[str, Any] | None) -> dict[str, Any]:
    """The `expected` guard of `update_call` with values as stored; None stays None
    (it matches a missing or null field). Raises ValueError for an unknown field."""
    result: dict[str, Any] = {}
    for name, value in (expected or {}).items():
        _check_field(Call, name)
        result[name] = None if value is None else stored_value(value)
    return result


def guards_hold(
    document: Mapping[str, Any],
    expected_statuses: frozenset[CallStatus] | None,
    expected: Mapping[str, Any],
) -> bool:
    """Whether a stored call `document` passes the guards of `update_call` (for a store
    that checks them in code rather than in its query)."""
    if expected_statuses is not None and document.get("status") not in {
        s.value for s in expected_statuses
    }:
        return False
    return all(document.get(name) == value for name, value in expected.items())


def holder_keeps_key(holder: Call, new_call: Call, ttl_seconds: float, now: datetime) -> bool:
    """The idempotency rule, for a `holder` that has the key `new_call` asks for.

    True: the holder is still within the TTL and the request is the same, so the caller
    returns the holder. False: the holder is older than the TTL and gives the key up.
    Raises IdempotencyConflict for a live key reused with a different request.
    """
    if now - holder.created_at >= timedelta(seconds=ttl_seconds):
        return False
    if holder.request_fingerprint != new_call.request_fingerprint:
        raise IdempotencyConflict("this Idempotency-Key was already used with a different request")
    return True

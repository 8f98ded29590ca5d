"""The typed changes and guard of `update_call`: what they accept, and what they refuse
when built (the stores never see a misspelt, frozen or mistyped field)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from switchboard_shared.domain.call_changes import CallChanges, CallGuard
from switchboard_shared.domain.calls import Call, CallStatus

IDENTITY = {"call_id", "tenant_id", "created_at"}
QUEUED = frozenset({CallStatus.QUEUED})
LIVE = frozenset({CallStatus.DIALING, CallStatus.RINGING})


@pytest.mark.parametrize("model", [CallChanges, CallGuard])
def test_an_unknown_field_is_refused(model: type[CallChanges | CallGuard]) -> None:
    with pytest.raises(ValidationError, match="colour"):
        model(colour="red")  # type: ignore[call-arg]  # the misspelling mypy also refuses


@pytest.mark.parametrize("field", sorted(IDENTITY))
def test_an_identity_field_cannot_change(field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        CallChanges.model_validate({field: "other"})


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("status", "on_fire"),
        ("status", None),  # a call always has a status
        ("duration", "long"),
        ("dialing_at", "yesterday"),
        ("cancel_requested", "perhaps"),
        ("variables", ["not", "a", "mapping"]),
    ],
)
def test_a_value_of_the_wrong_type_is_refused(field: str, value: Any) -> None:
    with pytest.raises(ValidationError, match=field):
        CallChanges.model_validate({field: value})
    with pytest.raises(ValidationError, match=field):
        CallGuard.model_validate({field: value})


def test_only_the_fields_given_are_changes_and_an_explicit_none_is_one() -> None:
    assert CallChanges().changed() == {}
    assert CallChanges(dial_claim=None).changed() == {"dial_claim": None}
    at = datetime(2024, 5, 1, tzinfo=UTC)
    assert CallChanges(status=CallStatus.DIALING, dialing_at=at).changed() == {
        "status": CallStatus.DIALING,
        "dialing_at": at,
    }
    # values are validated by the call's own types
    assert CallChanges.model_validate({"status": "ringing"}).changed() == {
        "status": CallStatus.RINGING
    }


def test_later_changes_win_over_earlier_ones() -> None:
    earlier = CallChanges(ended_reason="completed", transcript=None)
    merged = earlier.plus(CallChanges(ended_reason="dial_busy", duration=3))
    assert merged.changed() == {"ended_reason": "dial_busy", "transcript": None, "duration": 3}
    assert earlier.changed() == {"ended_reason": "completed", "transcript": None}


def test_changes_and_guards_are_immutable() -> None:
    changes = CallChanges(dial_claim="token")
    with pytest.raises(ValidationError, match="frozen"):
        changes.dial_claim = "other"  # type: ignore[misc]  # what the test checks


def test_a_guard_compares_the_fields_given_and_keeps_none() -> None:
    guard = CallGuard(statuses=QUEUED, dial_claim=None, status=CallStatus.QUEUED)
    assert guard.statuses == QUEUED
    assert guard.equalities() == {"dial_claim": None, "status": CallStatus.QUEUED}
    assert CallGuard().equalities() == {}
    assert CallGuard().statuses is None


def test_requiring_statuses_narrows_the_guard() -> None:
    assert CallGuard(dial_claim="t").requiring(QUEUED) == CallGuard(statuses=QUEUED, dial_claim="t")
    narrowed = CallGuard(statuses=LIVE | QUEUED).requiring(LIVE)
    assert narrowed.statuses == LIVE
    assert narrowed.equalities() == {}


def test_every_field_but_the_identity_is_changeable_with_the_calls_type() -> None:
    changeable = set(Call.model_fields) - IDENTITY
    assert set(CallChanges.model_fields) == changeable
    assert set(CallGuard.model_fields) == changeable | {"statuses"}
    for name in changeable:
        assert CallChanges.model_fields[name].annotation == Call.model_fields[name].annotation
        assert CallGuard.model_fields[name].annotation == Call.model_fields[name].annotation

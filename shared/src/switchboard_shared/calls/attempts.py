"""The end of an attempt: the call ends, or its retry policy schedules a redial.

A call is dialed one attempt at a time. When an attempt ends with a status its `retry`
policy redials (and attempts remain, and the customer did not cancel), the call goes
back to `scheduled`, due `delay_seconds` later inside its calling window, with the
ended attempt appended to `attempts` and the dial's fields cleared for the next one;
its event is `call.attempt_ended`. Otherwise the call takes the terminal status, with
the final attempt appended, and its event is the one `call.completed`.
"""

from __future__ import annotations

from datetime import datetime

from switchboard_shared.domain.call_changes import CallChanges
from switchboard_shared.domain.calls import Call, CallAttempt, CallStatus
from switchboard_shared.domain.scheduling import CallingWindow, RetryPolicy, redial_at

_NOT_DIALED = frozenset({CallStatus.SCHEDULED, CallStatus.QUEUED})

# What one dial leaves on the call; a redial starts from none of it.
_DIAL_FIELDS_CLEARED = CallChanges(
    provider=None,
    provider_call_id=None,
    dial_claim=None,
    dialing_at=None,
    dialed_at=None,
    ringing_at=None,
    max_duration_seconds=None,
    watchdog_deadline=None,
    transcript=None,
    duration=None,
    ended_reason=None,
    ended_reason_raw=None,
    outcome=None,
    analysis=None,
    recording_available=False,
    started_at=None,
    ended_at=None,
)


def ended_attempt(call: Call, ended: CallChanges, status: CallStatus) -> CallAttempt:
    """The record of the call's current attempt ending as `status` with `ended`."""
    after = call.model_copy(update=ended.changed())
    return CallAttempt(
        attempt=call.attempt,
        status=status,
        ended_reason=after.ended_reason,
        started_at=after.started_at,
        ended_at=after.ended_at,
        duration=after.duration,
    )


def next_attempt_due(call: Call, status: CallStatus, ended_at: datetime) -> datetime | None:
    """When the call's next attempt is due after the current one ended `status`; None
    when this attempt is the last (no policy, not a redialed outcome, attempts used up,
    canceled, or a window that never opens again)."""
    if call.retry is None or call.cancel_requested or status is CallStatus.CANCELED:
        return None
    window = CallingWindow.model_validate(call.calling_window) if call.calling_window else None
    return redial_at(
        RetryPolicy.model_validate(call.retry),
        window,
        window.zones_for(call.phone) if window else [],
        attempts_made=call.attempt,
        ended_as=status.value,
        ended_at=ended_at,
    )


def attempt_end_changes(
    call: Call, status: CallStatus, ended: CallChanges
) -> tuple[CallStatus, CallChanges]:
    """The status and changes that end the call's current attempt as `status`: a redial
    (`scheduled`) or the end of the call (`status`, with `ended` kept)."""
    attempt = ended_attempt(call, ended, status)
    # A call canceled before its attempt was dialed has no attempt to record.
    never_dialed = status is CallStatus.CANCELED and call.status in _NOT_DIALED
    attempts = call.attempts if never_dialed else [*call.attempts, attempt]
    due = next_attempt_due(call, status, attempt.ended_at or call.updated_at)
    if due is None:
        return status, ended.plus(CallChanges(attempts=attempts, next_attempt_at=None))
    redial = _DIAL_FIELDS_CLEARED.plus(
        CallChanges(
            status=CallStatus.SCHEDULED,
            attempt=call.attempt + 1,
            attempts=attempts,
            next_attempt_at=due,
            notify_pending=False,
        )
    )
    return CallStatus.SCHEDULED, redial

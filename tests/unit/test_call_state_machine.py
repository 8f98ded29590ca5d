"""The forward-only call state machine, table-driven."""

from __future__ import annotations

import pytest

from switchboard_shared.domain.calls import (
    TERMINAL_STATUSES,
    CallStatus,
    can_transition,
    statuses_that_may_become,
)

S = CallStatus

ALLOWED = [
    (S.SCHEDULED, S.QUEUED),  # its time came
    (S.SCHEDULED, S.CANCELED),
    (S.QUEUED, S.DIALING),
    (S.QUEUED, S.CANCELED),
    (S.QUEUED, S.FAILED),
    (S.QUEUED, S.RINGING),  # a provider callback may overtake the dialer's own update
    (S.DIALING, S.RINGING),
    (S.DIALING, S.IN_PROGRESS),
    (S.DIALING, S.BUSY),
    (S.DIALING, S.NO_ANSWER),
    (S.RINGING, S.IN_PROGRESS),
    (S.RINGING, S.NO_ANSWER),
    (S.IN_PROGRESS, S.COMPLETED),
    (S.IN_PROGRESS, S.CANCELED),
    (S.IN_PROGRESS, S.FAILED),
]

REFUSED = [
    (S.IN_PROGRESS, S.RINGING),  # late ringing
    (S.RINGING, S.DIALING),
    (S.DIALING, S.QUEUED),
    (S.RINGING, S.RINGING),  # duplicate non-terminal
    (S.COMPLETED, S.COMPLETED),  # duplicate terminal
    (S.COMPLETED, S.FAILED),  # second, different terminal
    (S.CANCELED, S.IN_PROGRESS),
    (S.BUSY, S.COMPLETED),
    # A scheduled call waits for its dispatch: a late callback of an earlier attempt
    # (ringing, in progress, an end) never moves it.
    (S.SCHEDULED, S.DIALING),
    (S.SCHEDULED, S.RINGING),
    (S.SCHEDULED, S.IN_PROGRESS),
    (S.SCHEDULED, S.NO_ANSWER),
    (S.SCHEDULED, S.COMPLETED),
    (S.QUEUED, S.SCHEDULED),
    (S.NO_ANSWER, S.SCHEDULED),  # a redial is not a transition (calls/attempts.py)
]


@pytest.mark.parametrize(("current", "new"), ALLOWED)
def test_forward_transitions_are_allowed(current: CallStatus, new: CallStatus) -> None:
    assert can_transition(current, new)


@pytest.mark.parametrize(("current", "new"), REFUSED)
def test_backward_duplicate_and_post_terminal_transitions_are_refused(
    current: CallStatus, new: CallStatus
) -> None:
    assert not can_transition(current, new)


@pytest.mark.parametrize("terminal", sorted(TERMINAL_STATUSES))
def test_nothing_leaves_a_terminal_status(terminal: CallStatus) -> None:
    assert all(not can_transition(terminal, new) for new in CallStatus)


def test_guard_sets_match_the_transition_table() -> None:
    assert statuses_that_may_become(S.IN_PROGRESS) == {S.QUEUED, S.DIALING, S.RINGING}
    assert statuses_that_may_become(S.COMPLETED) == {S.QUEUED, S.DIALING, S.RINGING, S.IN_PROGRESS}
    assert statuses_that_may_become(S.QUEUED) == {S.SCHEDULED}
    assert statuses_that_may_become(S.SCHEDULED) == frozenset()
    assert statuses_that_may_become(S.CANCELED) == {
        S.SCHEDULED,
        S.QUEUED,
        S.DIALING,
        S.RINGING,
        S.IN_PROGRESS,
    }

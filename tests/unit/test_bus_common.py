"""Pure helpers every Bus adapter shares: topic matching, retry schedule, attempt header."""

from __future__ import annotations

import pytest

from switchboard_shared.adapters.bus.common import (
    ATTEMPT_HEADER,
    attempt_of,
    dead_letter_queue,
    retry_delay,
    topic_matches,
)


@pytest.mark.parametrize(
    ("pattern", "key", "matches"),
    [
        ("call.requested", "call.requested", True),
        ("call.requested", "call.completed", False),
        ("call.*", "call.completed", True),
        ("call.*", "call", False),
        ("call.*", "call.completed.late", False),
        ("*.completed", "call.completed", True),
        ("#", "call.completed", True),
        ("#", "", True),
        ("call.#", "call", True),
        ("call.#", "call.a.b", True),
        ("call.#", "webhook.test", False),
        ("#.completed", "call.completed", True),
        ("#.completed", "completed", True),
        ("a.#.z", "a.z", True),
        ("a.#.z", "a.b.c.z", True),
        ("a.#.z", "a.b.c", False),
        ("a.*.#", "a", False),
        ("a.*.#", "a.b", True),
        ("webhook.#", "webhook.replay_requested", True),
    ],
)
def test_topic_matches(pattern: str, key: str, matches: bool) -> None:
    assert topic_matches(pattern, key) is matches


@pytest.mark.parametrize(
    ("failed_attempt", "requested", "expected"),
    [
        (1, None, 1.0),
        (2, None, 5.0),
        (3, None, 30.0),
        (4, None, None),  # attempt 4 == max_attempts: dead-letter
        (1, 2.0, 5.0),  # smallest delay >= 2
        (1, 5.0, 5.0),
        (1, 0.0, 1.0),
        (2, 0.5, 1.0),  # a requested delay may pick a shorter queue than the schedule's
        (1, 3600.0, 30.0),  # longer than any: the largest
        (4, 1.0, None),  # still exhausted
    ],
)
def test_retry_delay(failed_attempt: int, requested: float | None, expected: float | None) -> None:
    assert retry_delay((1.0, 5.0, 30.0), failed_attempt, requested) == expected


def test_no_retry_delays_means_no_retry() -> None:
    assert retry_delay((), 1) is None
    assert retry_delay((), 1, 5.0) is None


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, 1),
        ({ATTEMPT_HEADER: 3}, 3),
        ({ATTEMPT_HEADER: "2"}, 2),
        ({ATTEMPT_HEADER: b"4"}, 4),
        ({ATTEMPT_HEADER: "junk"}, 1),
        ({ATTEMPT_HEADER: 0}, 1),
        ({ATTEMPT_HEADER: None}, 1),
    ],
)
def test_attempt_of(headers: dict[str, object], expected: int) -> None:
    assert attempt_of(headers) == expected


def test_dead_letter_queue_name() -> None:
    assert dead_letter_queue("dialer.call-requested") == "dialer.call-requested.dlq"

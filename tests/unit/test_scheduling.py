"""Window arithmetic: zones, DST changes, windows that open tomorrow, weekdays, redials."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from switchboard_shared.domain.calls import dial_reference, read_dial_reference
from switchboard_shared.domain.scheduling import (
    CallingWindow,
    RetryPolicy,
    first_attempt_at,
    next_opening,
    redial_at,
    zones_for_number,
)

NEW_YORK = ZoneInfo("America/New_York")
BISHKEK = ZoneInfo("Asia/Bishkek")
WEEKDAYS = ["mon", "tue", "wed", "thu", "fri"]


def window(start: str = "09:00", end: str = "20:00", **extra: object) -> CallingWindow:
    return CallingWindow.model_validate({"start": start, "end": end, **extra})


def local(zone: ZoneInfo, *args: int) -> datetime:
    return datetime(*args, tzinfo=zone)  # type: ignore[misc]  # year, month, day, hour[, minute]


def test_inside_the_window_is_now() -> None:
    at = local(BISHKEK, 2026, 3, 4, 12, 30)  # a Wednesday
    assert next_opening(window(), ["Asia/Bishkek"], at) == at


def test_before_the_start_waits_for_the_start_the_same_day() -> None:
    at = local(BISHKEK, 2026, 3, 4, 7, 15)
    assert next_opening(window(), ["Asia/Bishkek"], at) == local(BISHKEK, 2026, 3, 4, 9, 0)


def test_after_the_end_opens_tomorrow() -> None:
    at = local(BISHKEK, 2026, 3, 4, 20, 0)  # the end itself is already closed
    assert next_opening(window(), ["Asia/Bishkek"], at) == local(BISHKEK, 2026, 3, 5, 9, 0)


def test_friday_evening_waits_for_monday_on_weekdays() -> None:
    at = local(BISHKEK, 2026, 3, 6, 21, 0)  # Friday
    opening = next_opening(window(days=WEEKDAYS), ["Asia/Bishkek"], at)
    assert opening == local(BISHKEK, 2026, 3, 9, 9, 0)  # Monday
    assert opening is not None
    assert opening.astimezone(BISHKEK).strftime("%a") == "Mon"


def test_saturday_only_window() -> None:
    at = local(BISHKEK, 2026, 3, 9, 10, 0)  # Monday
    assert next_opening(window(days=["sat"]), ["Asia/Bishkek"], at) == local(
        BISHKEK, 2026, 3, 14, 9, 0
    )


def test_the_answer_is_in_utc() -> None:
    opening = next_opening(window(), ["Asia/Bishkek"], datetime(2026, 3, 4, 0, 0, tzinfo=UTC))
    assert opening == datetime(2026, 3, 4, 3, 0, tzinfo=UTC)  # 09:00 at UTC+6
    assert opening is not None
    assert opening.tzinfo is UTC


def test_spring_forward_keeps_the_local_start() -> None:
    # New York moves to EDT on Sunday 2026-03-08: 09:00 is 13:00 UTC there, 14:00 the day before.
    saturday_night = local(NEW_YORK, 2026, 3, 7, 21, 0)
    assert next_opening(window(), ["America/New_York"], saturday_night) == datetime(
        2026, 3, 8, 13, 0, tzinfo=UTC
    )
    assert next_opening(window(), ["America/New_York"], local(NEW_YORK, 2026, 3, 6, 21, 0)) == (
        datetime(2026, 3, 7, 14, 0, tzinfo=UTC)
    )


def test_a_start_in_the_skipped_hour_never_opens_early() -> None:
    # 02:30 does not exist on 2026-03-08 in New York; the window opens at 03:30 EDT.
    opening = next_opening(
        window("02:30", "05:00"), ["America/New_York"], local(NEW_YORK, 2026, 3, 8, 0, 0)
    )
    assert opening == datetime(2026, 3, 8, 7, 30, tzinfo=UTC)
    assert opening is not None
    assert opening.astimezone(NEW_YORK).hour == 3


def test_fall_back_keeps_the_local_end() -> None:
    # EST again from 2026-11-01: 20:00 local is 01:00 UTC the next day.
    just_before_end = datetime(2026, 11, 2, 0, 59, tzinfo=UTC)  # 19:59 EST on Sunday
    assert next_opening(window(), ["America/New_York"], just_before_end) == just_before_end
    after_end = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)
    assert next_opening(window(), ["America/New_York"], after_end) == datetime(
        2026, 11, 2, 14, 0, tzinfo=UTC
    )


def test_a_window_in_a_repeated_hour_takes_its_first_occurrence() -> None:
    opening = next_opening(
        window("01:10", "01:50"), ["America/New_York"], local(NEW_YORK, 2026, 11, 1, 0, 0)
    )
    assert opening == datetime(
        2026, 11, 1, 5, 10, tzinfo=UTC
    )  # 01:10 EDT, before the clocks go back


def test_several_zones_use_the_overlap() -> None:
    zones = ["America/New_York", "America/Los_Angeles"]
    # 09:00 in Los Angeles is 12:00 in New York: the later start wins.
    morning = local(NEW_YORK, 2026, 3, 4, 9, 0)
    assert next_opening(window(), zones, morning) == local(NEW_YORK, 2026, 3, 4, 12, 0)
    # 20:00 in New York closes it, though Los Angeles is still at 17:00.
    evening = local(NEW_YORK, 2026, 3, 4, 20, 30)
    assert next_opening(window(), zones, evening) == local(NEW_YORK, 2026, 3, 5, 12, 0)


def test_zones_that_never_overlap_have_no_opening() -> None:
    zones = ["Pacific/Honolulu", "Pacific/Guam"]  # 20 hours apart
    assert next_opening(window("09:00", "12:00"), zones, datetime(2026, 3, 4, tzinfo=UTC)) is None


def test_zones_for_a_number() -> None:
    assert zones_for_number("+996700000000") == ["Asia/Bishkek"]
    assert zones_for_number("+12125550100") == ["America/New_York"]
    assert len(zones_for_number("+18005550100")) > 10  # toll-free: the whole plan


def test_auto_reads_the_number_and_a_named_zone_wins() -> None:
    assert window().zones_for("+996700000000") == ["Asia/Bishkek"]
    assert window(timezone="Europe/Berlin").zones_for("+996700000000") == ["Europe/Berlin"]


@pytest.mark.parametrize(
    "bad",
    [
        {"start": "20:00", "end": "09:00"},  # crosses midnight
        {"start": "09:00", "end": "09:00"},
        {"start": "09:00", "end": "20:00", "timezone": "Mars/Olympus"},
        {"start": "09:00", "end": "20:00", "days": []},
        {"start": "09:00", "end": "20:00", "days": ["mon", "mon"]},
        {"start": "09:00", "end": "20:00", "days": ["monday"]},
        {"start": "9am", "end": "20:00"},
        {"start": "09:00", "end": "20:00", "extra": 1},
    ],
)
def test_invalid_windows_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        CallingWindow.model_validate(bad)


@pytest.mark.parametrize(
    "bad",
    [
        {"max_attempts": 0},
        {"max_attempts": 11},
        {"delay_seconds": 59},
        {"delay_seconds": 7 * 24 * 3600 + 1},
        {"on": []},
        {"on": ["completed"]},
    ],
)
def test_retry_limits(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        RetryPolicy.model_validate(bad)


def test_first_attempt_is_now_when_not_scheduled_or_past() -> None:
    now = datetime(2026, 3, 4, 6, 0, tzinfo=UTC)
    assert first_attempt_at(None, None, [], now) == now
    assert first_attempt_at(now - timedelta(hours=1), None, [], now) == now
    later = now + timedelta(hours=5)
    assert first_attempt_at(later, None, [], now) == later


def test_first_attempt_moves_into_the_window() -> None:
    now = datetime(2026, 3, 4, 0, 0, tzinfo=UTC)  # 06:00 in Bishkek
    assert first_attempt_at(None, window(), ["Asia/Bishkek"], now) == datetime(
        2026, 3, 4, 3, 0, tzinfo=UTC
    )


def test_redial_after_the_delay_inside_the_window() -> None:
    policy = RetryPolicy(on=["no_answer"], max_attempts=3, delay_seconds=1800)
    ended = local(BISHKEK, 2026, 3, 4, 10, 0)
    due = redial_at(policy, None, [], attempts_made=1, ended_as="no_answer", ended_at=ended)
    assert due == ended + timedelta(minutes=30)
    late = local(BISHKEK, 2026, 3, 4, 19, 45)  # the delay ends after 20:00: tomorrow at 09:00
    assert redial_at(
        policy, window(), ["Asia/Bishkek"], attempts_made=1, ended_as="no_answer", ended_at=late
    ) == local(BISHKEK, 2026, 3, 5, 9, 0)


def test_no_redial_when_used_up_not_covered_or_no_policy() -> None:
    policy = RetryPolicy(on=["no_answer"], max_attempts=3, delay_seconds=60)
    ended = datetime(2026, 3, 4, tzinfo=UTC)
    assert (
        redial_at(policy, None, [], attempts_made=3, ended_as="no_answer", ended_at=ended) is None
    )
    assert redial_at(policy, None, [], attempts_made=1, ended_as="busy", ended_at=ended) is None
    assert (
        redial_at(policy, None, [], attempts_made=1, ended_as="completed", ended_at=ended) is None
    )
    assert redial_at(None, None, [], attempts_made=1, ended_as="no_answer", ended_at=ended) is None


def test_dial_references_tell_attempts_apart() -> None:
    call_id = "6f1c2d3e-8a4b-4c5d-9e6f-7a8b9c0d1e2f"
    assert dial_reference(call_id, 1) == call_id  # as before redials existed
    assert dial_reference(call_id, 3) == f"{call_id}-a3"
    for attempt in (1, 2, 10):
        assert read_dial_reference(dial_reference(call_id, attempt)) == (call_id, attempt)
    assert read_dial_reference("not-a-call") == ("not-a-call", 1)

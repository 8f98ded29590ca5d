"""When a call may be dialed: `scheduled_at`, the recipient's calling window, redials.

Pure arithmetic on aware datetimes, no I/O. A window is local wall-clock time
(`09:00` to `20:00` on chosen weekdays) in one IANA zone, or in the zones of the number
(`timezone: "auto"`). A number whose numbering-plan block spans several zones (a US
toll-free number, a Russian mobile) may only be called when it is inside the window in
*every* one of them: the most restrictive overlap. When those zones never overlap (the
window is shorter than their spread), no opening exists and the call is refused at
create; naming the zone explicitly resolves it.

DST: a window edge that falls in a spring-forward gap is read with the offset in force
before the change (02:30 on the night New York skips to 03:00 becomes 03:30 EDT); an
edge in a fall-back hour is its first occurrence. Either way a call never starts before
the local start time nor after the local end.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone as phone_zones
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# Beyond two weeks a weekly window with any DST shift has repeated: nothing later opens.
_HORIZON = timedelta(days=15)
_UNKNOWN_ZONE = "Etc/Unknown"

MAX_ATTEMPTS_LIMIT = 10
MIN_RETRY_DELAY_SECONDS = 60
MAX_RETRY_DELAY_SECONDS = 7 * 24 * 3600


class Weekday(StrEnum):
    MON = "mon"
    TUE = "tue"
    WED = "wed"
    THU = "thu"
    FRI = "fri"
    SAT = "sat"
    SUN = "sun"

    @property
    def number(self) -> int:
        """Monday is 0, as `date.weekday()` counts."""
        return list(Weekday).index(self)


class CallingWindow(BaseModel):
    """Local hours in which a call may start: `start` < `end`, on `days`, in `timezone`."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra={
            "examples": [
                {
                    "start": "09:00",
                    "end": "20:00",
                    "days": ["mon", "tue", "wed", "thu", "fri"],
                    "timezone": "auto",
                }
            ]
        },
    )

    start: time = Field(description="Local time the window opens (HH:MM).")
    end: time = Field(description="Local time the window closes (HH:MM), after `start`.")
    days: list[Weekday] = Field(
        default_factory=lambda: list(Weekday),
        min_length=1,
        description="Weekdays the window opens on; every day when left out.",
    )
    timezone: str = Field(
        default="auto",
        description="An IANA zone, or `auto`: the recipient's zones, from the number.",
    )

    @field_validator("start", "end")
    @classmethod
    def _naive_wall_clock(cls, value: time) -> time:
        if value.tzinfo is not None:
            raise ValueError("a window time is local wall-clock time, without an offset")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        if value == "auto":
            return value
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}: use an IANA name or 'auto'") from exc
        return value

    @model_validator(mode="after")
    def _start_before_end(self) -> CallingWindow:
        if not self.start < self.end:
            raise ValueError("start must be before end: a window never crosses midnight")
        if len(set(self.days)) != len(self.days):
            raise ValueError("days must not repeat")
        return self

    def zones_for(self, phone: str) -> list[str]:
        """The zones this window is read in for `phone` (E.164)."""
        return [self.timezone] if self.timezone != "auto" else zones_for_number(phone)


RetryOutcome = Literal["no_answer", "busy", "failed"]


def _default_retry_outcomes() -> list[RetryOutcome]:
    return ["no_answer", "busy"]


class RetryPolicy(BaseModel):
    """Redial a call that ended `on` one of these statuses, up to `max_attempts` in all,
    `delay_seconds` after the attempt ended (and inside the calling window)."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra={
            "examples": [{"on": ["no_answer", "busy"], "max_attempts": 3, "delay_seconds": 1800}]
        },
    )

    on: list[RetryOutcome] = Field(default_factory=_default_retry_outcomes, min_length=1)
    max_attempts: int = Field(default=3, ge=1, le=MAX_ATTEMPTS_LIMIT)
    delay_seconds: int = Field(default=1800, ge=MIN_RETRY_DELAY_SECONDS, le=MAX_RETRY_DELAY_SECONDS)


def zones_for_number(phone: str) -> list[str]:
    """The IANA zones of the number's block (`phonenumbers`' data); UTC when unknown."""
    zones = phone_zones.time_zones_for_number(phonenumbers.parse(phone, None))
    known = sorted(zone for zone in zones if zone != _UNKNOWN_ZONE)
    return known or ["UTC"]


def _local_instant(day: date, wall: time, zone: ZoneInfo) -> datetime:
    # fold=0: a gap time reads with the offset before the change, a repeated hour's
    # first occurrence is taken (see the module docstring).
    return datetime.combine(day, wall, tzinfo=zone).astimezone(UTC)


def _openings(
    window: CallingWindow, zone_name: str, since: datetime
) -> list[tuple[datetime, datetime]]:
    """The window's openings in one zone, as UTC intervals, from `since` over the horizon."""
    zone = ZoneInfo(zone_name)
    first_day = since.astimezone(zone).date() - timedelta(days=1)
    weekdays = {day.number for day in window.days}
    intervals = []
    for offset in range(_HORIZON.days + 2):
        day = first_day + timedelta(days=offset)
        if day.weekday() not in weekdays:
            continue
        opens = _local_instant(day, window.start, zone)
        closes = _local_instant(day, window.end, zone)
        if closes > since and closes > opens:
            intervals.append((opens, closes))
    return intervals


def _overlap(
    left: list[tuple[datetime, datetime]], right: list[tuple[datetime, datetime]]
) -> list[tuple[datetime, datetime]]:
    """Where both sorted interval lists are open at once."""
    result = []
    i = j = 0
    while i < len(left) and j < len(right):
        start = max(left[i][0], right[j][0])
        end = min(left[i][1], right[j][1])
        if start < end:
            result.append((start, end))
        if left[i][1] < right[j][1]:
            i += 1
        else:
            j += 1
    return result


def next_opening(window: CallingWindow, zones: list[str], at: datetime) -> datetime | None:
    """The earliest instant at or after `at` that is inside the window in every zone:
    `at` itself when it already is. None when the zones never share an opening."""
    if at.tzinfo is None:
        raise ValueError("at must be an aware datetime")
    common: list[tuple[datetime, datetime]] | None = None
    for zone in zones:
        openings = _openings(window, zone, at)
        common = openings if common is None else _overlap(common, openings)
    for opens, closes in common or []:
        if closes > at:
            return max(opens, at).astimezone(UTC)
    return None


def first_attempt_at(
    scheduled_at: datetime | None,
    window: CallingWindow | None,
    zones: list[str],
    now: datetime,
) -> datetime | None:
    """When the first attempt is due: `scheduled_at` (now when absent or past), moved to
    the window's next opening. None when the window never opens for these zones."""
    due = now if scheduled_at is None or scheduled_at < now else scheduled_at
    return due if window is None else next_opening(window, zones, due)


def redial_at(
    policy: RetryPolicy | None,
    window: CallingWindow | None,
    zones: list[str],
    *,
    attempts_made: int,
    ended_as: str,
    ended_at: datetime,
) -> datetime | None:
    """When the next attempt is due after one that ended `ended_as`, or None when the
    call is over: no policy, an outcome the policy does not redial, attempts used up."""
    if policy is None or ended_as not in policy.on or attempts_made >= policy.max_attempts:
        return None
    due = ended_at + timedelta(seconds=policy.delay_seconds)
    return due if window is None else next_opening(window, zones, due)

"""The opaque paging cursor: round trips at millisecond precision, refuses the rest."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from switchboard_shared.adapters.store.common.paging import (
    Position,
    decode_cursor,
    encode_cursor,
    from_millis,
    to_millis,
)
from switchboard_shared.adapters.store.common.records import stored_value
from switchboard_shared.ports import InvalidCursor


def test_cursor_round_trips_to_the_millisecond() -> None:
    moment = datetime(2024, 5, 1, 12, 30, 15, 123999, tzinfo=UTC)
    cursor = encode_cursor("calls", Position(moment, "3f1c-id"))
    assert cursor.isascii()
    assert "=" not in cursor
    assert "/" not in cursor
    assert "+" not in cursor
    assert decode_cursor("calls", cursor) == Position(moment.replace(microsecond=123000), "3f1c-id")


def test_a_cursor_belongs_to_its_listing() -> None:
    cursor = encode_cursor("deliveries", Position(datetime(2024, 1, 1, tzinfo=UTC), "dlv_1"))
    with pytest.raises(InvalidCursor):
        decode_cursor("calls", cursor)


@pytest.mark.parametrize(
    "cursor", ["", "a", "!!", "W10", "WyJjIiwxLCIiXQ", "WyJjIiwxLjUsImlkIl0", "x" * 600]
)
def test_garbage_is_an_invalid_cursor(cursor: str) -> None:
    with pytest.raises(InvalidCursor):
        decode_cursor("calls", cursor)


def test_millis_round_down_like_bson_dates_and_read_naive_as_utc() -> None:
    before_epoch = datetime(1969, 12, 31, 23, 59, 59, 999500, tzinfo=UTC)
    assert to_millis(before_epoch) == -1
    assert to_millis(datetime(1970, 1, 1, 0, 0, 1)) == 1000
    assert from_millis(1500) == datetime(1970, 1, 1, 0, 0, 1, 500000, tzinfo=UTC)


def test_stored_datetimes_are_utc_milliseconds() -> None:
    bishkek = timezone(timedelta(hours=6))
    local = datetime(2024, 5, 1, 18, 0, 0, 987654, tzinfo=bishkek)
    assert stored_value(local) == datetime(2024, 5, 1, 12, 0, 0, 987000, tzinfo=UTC)
    assert stored_value({"at": [local]}) == {"at": [stored_value(local)]}

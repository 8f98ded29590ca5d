"""What an HTTP answer means for a webhook delivery, and reading Retry-After."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from switchboard_shared.webhooks.sender import AttemptResult, classify, parse_retry_after

NOW = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("status", "result"),
    [
        (200, AttemptResult.DELIVERED),
        (201, AttemptResult.DELIVERED),
        (204, AttemptResult.DELIVERED),
        (301, AttemptResult.FAILED),
        (302, AttemptResult.FAILED),
        (307, AttemptResult.FAILED),
        (400, AttemptResult.FAILED),
        (401, AttemptResult.FAILED),
        (404, AttemptResult.FAILED),
        (410, AttemptResult.FAILED),
        (408, AttemptResult.RETRY),
        (429, AttemptResult.RETRY),
        (500, AttemptResult.RETRY),
        (502, AttemptResult.RETRY),
        (503, AttemptResult.RETRY),
        (504, AttemptResult.RETRY),
    ],
)
def test_classify(status: int, result: AttemptResult) -> None:
    assert classify(status) is result


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        (None, None),
        ("", None),
        ("120", 120.0),
        (" 5 ", 5.0),
        ("0", 0.0),
        ("soon", None),
        ("-3", None),
        (format_datetime(NOW + timedelta(seconds=90), usegmt=True), 90.0),
        (format_datetime(NOW - timedelta(seconds=90), usegmt=True), 0.0),
        ("Wed, 01 Jan 2025 12:01:00 GMT", 60.0),
    ],
)
def test_parse_retry_after(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header, now=NOW) == seconds

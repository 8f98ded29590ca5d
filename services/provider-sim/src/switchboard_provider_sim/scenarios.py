"""The simulator's test numbers: like test card numbers, each one plays one outcome."""

from __future__ import annotations

from enum import StrEnum


class Scenario(StrEnum):
    NORMAL = "normal"
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    FAILED = "failed"
    SLOW_ANSWER = "slow_answer"
    CREATE_ERROR = "create_error"
    SILENT = "silent"
    FLAKY_CREATE = "flaky_create"
    INVALID_NUMBER = "invalid_number"


TEST_NUMBERS: dict[str, Scenario] = {
    "+15005550001": Scenario.BUSY,
    "+15005550002": Scenario.NO_ANSWER,
    "+15005550003": Scenario.FAILED,
    "+15005550004": Scenario.SLOW_ANSWER,
    "+15005550005": Scenario.CREATE_ERROR,
    "+15005550006": Scenario.SILENT,
    "+15005550007": Scenario.FLAKY_CREATE,
    "+15005550008": Scenario.INVALID_NUMBER,
}

# A FLAKY_CREATE number fails this many create attempts (per call) before it succeeds.
FLAKY_CREATE_FAILURES = 2


def scenario_for(to_number: str) -> Scenario:
    """The outcome a call to `to_number` plays; any number not listed completes."""
    return TEST_NUMBERS.get(to_number, Scenario.NORMAL)

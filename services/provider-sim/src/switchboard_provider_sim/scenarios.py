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
    OUTAGE = "outage"
    ACCEPTED_THEN_TIMEOUT = "accepted_then_timeout"
    VOICEMAIL = "voicemail"
    NO_RECORDING = "no_recording"


TEST_NUMBERS: dict[str, Scenario] = {
    "+15005550001": Scenario.BUSY,
    "+15005550002": Scenario.NO_ANSWER,
    "+15005550003": Scenario.FAILED,
    "+15005550004": Scenario.SLOW_ANSWER,
    "+15005550005": Scenario.CREATE_ERROR,
    "+15005550006": Scenario.SILENT,
    "+15005550007": Scenario.FLAKY_CREATE,
    "+15005550008": Scenario.INVALID_NUMBER,
    "+15005550009": Scenario.OUTAGE,
    "+15005550010": Scenario.ACCEPTED_THEN_TIMEOUT,
    "+15005550011": Scenario.VOICEMAIL,
    "+15005550012": Scenario.NO_RECORDING,
}
# Provider down (connection refused) needs no number: point a provider's base URL at a
# port nothing listens on. OUTAGE answers 503 to every create for that number (per
# idempotency key) for `sim_outage_seconds` after its first attempt, then accepts.
# ACCEPTED_THEN_TIMEOUT places the call, then holds the answer for
# `sim_accept_timeout_seconds` (longer than a client's timeout): the caller cannot
# know the call exists, and a retry with the same idempotency key returns it at once.

# A FLAKY_CREATE number fails this many create attempts (per call) before it succeeds.
FLAKY_CREATE_FAILURES = 2


def scenario_for(to_number: str) -> Scenario:
    """The outcome a call to `to_number` plays; any number not listed completes."""
    return TEST_NUMBERS.get(to_number, Scenario.NORMAL)

"""What every adapter does with a provider's ending: its raw reason code mapped into our
taxonomy, its outcome label and analysis put in one shape."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from switchboard_shared.adapters.providers.http import optional_str
from switchboard_shared.domain.calls import CallAnalysis, CallStatus
from switchboard_shared.domain.ended_reasons import EndedReason, default_reason
from switchboard_shared.ports import MalformedCallback

_MAX_OUTCOME = 64
_NOT_A_WORD = re.compile(r"[^a-z0-9]+")


def ended_reason(
    status: CallStatus, raw: str | None, table: Mapping[str, EndedReason]
) -> EndedReason | None:
    """Our reason for a provider's raw code: the table's entry, else what the terminal
    status implies; None while the call is live."""
    if not status.is_terminal:
        return None
    return table.get(raw or "") or default_reason(status)


def outcome_label(value: Any) -> str | None:
    """A provider's outcome as a short snake_case label ("Appointment booked" ->
    "appointment_booked"); None when it sent none or nothing usable."""
    text = optional_str(value, "outcome")
    if not text:
        return None
    label = _NOT_A_WORD.sub("_", text.lower()).strip("_")[:_MAX_OUTCOME]
    return label or None


def success_flag(value: Any) -> bool | None:
    """A success evaluation as a boolean: true/false, or the words providers use for
    them ("true", "pass", "successful"...); None for scores and anything unclear."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        word = value.strip().lower()
        if word in {"true", "yes", "pass", "passed", "success", "successful"}:
            return True
        if word in {"false", "no", "fail", "failed", "unsuccessful"}:
            return False
    return None


def analysis_of(summary: Any, successful: Any, fields: Any) -> CallAnalysis | None:
    """The analysis in our shape; None when the provider sent none of its parts."""
    if summary is None and successful is None and not fields:
        return None
    if fields is not None and not isinstance(fields, dict):
        raise MalformedCallback("analysis fields are not an object")
    return CallAnalysis(
        summary=optional_str(summary, "summary") or None,
        successful=success_flag(successful),
        fields=dict(fields or {}),
    )

"""Why a call ended: one taxonomy for every provider, and our own words for a failure.

Provider adapters map their raw codes (Vapi's `endedReason`, Retell's
`disconnection_reason`, Vocode's telephony status, ...) into these values; the raw code
is kept on the call for operators and never shown to customers.
"""

from __future__ import annotations

from enum import StrEnum


class EndedReason(StrEnum):
    # answered, then ended
    COMPLETED = "completed"  # ended normally; the provider did not say who hung up
    CUSTOMER_HANGUP = "customer_hangup"
    AGENT_HANGUP = "agent_hangup"
    TRANSFERRED = "transferred"
    VOICEMAIL_REACHED = "voicemail_reached"
    MAX_DURATION_REACHED = "max_duration_reached"
    SILENCE_TIMEOUT = "silence_timeout"
    # never answered
    DIAL_NO_ANSWER = "dial_no_answer"
    DIAL_BUSY = "dial_busy"
    DIAL_FAILED = "dial_failed"
    INVALID_NUMBER = "invalid_number"
    # canceled
    CANCELED_BY_CUSTOMER = "canceled_by_customer"
    CANCELED = "canceled"  # ended by the provider or an operator, not at the customer's request
    # Switchboard or the provider could not carry the call
    PROVIDER_ERROR = "provider_error"
    PROVIDER_TIMEOUT = "provider_timeout"
    PROVIDER_REJECTED = "provider_rejected"
    PROVIDER_UNAVAILABLE = "provider_unavailable"
    PROVIDER_NOT_CONFIGURED = "provider_not_configured"
    ALL_PROVIDERS_UNAVAILABLE = "all_providers_unavailable"
    AGENT_UNAVAILABLE = "agent_unavailable"
    DIAL_UNCONFIRMED = "dial_unconfirmed"


# The reason a terminal status implies when the provider gave none we could map. Keyed
# by the status value (`CallStatus` is a StrEnum, so its members look up the same):
# `calls` imports this module, not the other way round.
DEFAULT_FOR_STATUS: dict[str, EndedReason] = {
    "completed": EndedReason.COMPLETED,
    "busy": EndedReason.DIAL_BUSY,
    "no_answer": EndedReason.DIAL_NO_ANSWER,
    "failed": EndedReason.PROVIDER_ERROR,
    "canceled": EndedReason.CANCELED,
}

# Values stored before this taxonomy existed, read as their successors.
LEGACY: dict[str, EndedReason] = {
    "hangup": EndedReason.COMPLETED,
    "busy": EndedReason.DIAL_BUSY,
    "no_answer": EndedReason.DIAL_NO_ANSWER,
}

# `error` of a failed call: what happened, in words a customer's support team can use.
ERROR_MESSAGES: dict[EndedReason, str] = {
    EndedReason.DIAL_FAILED: "The call could not be connected to the number.",
    EndedReason.INVALID_NUMBER: "The number cannot be called.",
    EndedReason.PROVIDER_ERROR: "The voice provider failed during the call.",
    EndedReason.PROVIDER_TIMEOUT: "The voice provider stopped reporting on the call.",
    EndedReason.PROVIDER_REJECTED: "The voice provider refused to place the call.",
    EndedReason.PROVIDER_UNAVAILABLE: "The voice provider could not be reached.",
    EndedReason.PROVIDER_NOT_CONFIGURED: "The agent's voice provider is not configured.",
    EndedReason.ALL_PROVIDERS_UNAVAILABLE: "No voice provider of the agent could be reached.",
    EndedReason.AGENT_UNAVAILABLE: "The agent does not exist or is disabled.",
    EndedReason.DIAL_UNCONFIRMED: "The voice provider never confirmed placing the call.",
}
GENERIC_ERROR = "The call failed."


def default_reason(status: str) -> EndedReason:
    """The reason a terminal `status` implies on its own."""
    return DEFAULT_FOR_STATUS[status]


def read_reason(value: object) -> EndedReason | None:
    """A stored or received reason as the taxonomy value: legacy names translated,
    anything else unknown is None."""
    if isinstance(value, EndedReason) or value is None:
        return value
    if not isinstance(value, str):
        return None
    if value in LEGACY:
        return LEGACY[value]
    try:
        return EndedReason(value)
    except ValueError:
        return None


def error_message(status: str, reason: EndedReason | None) -> str | None:
    """Our human message for a failed call; None for any other status."""
    if status != "failed":
        return None
    return ERROR_MESSAGES.get(reason, GENERIC_ERROR) if reason else GENERIC_ERROR

"""Phone numbers: strict E.164 input, checked against the numbering plan."""

from __future__ import annotations

import re
from functools import lru_cache

import phonenumbers

# E.164: a '+', a country code that does not start with 0, at most 15 digits in all.
_E164_SHAPE = re.compile(r"^\+[1-9][0-9]{1,14}$")


class InvalidPhoneNumber(ValueError):
    """The value is not a valid, dialable E.164 phone number."""


def normalize_e164(raw: str) -> str:
    """Return `raw` in E.164 form (`+<country code><number>`).

    Accepts only '+' followed by digits (no spaces, dashes or national formats), and
    only numbers `phonenumbers` considers valid for their region. Raises
    InvalidPhoneNumber with a human-readable reason otherwise.
    """
    if not isinstance(raw, str) or not _E164_SHAPE.fullmatch(raw):
        raise InvalidPhoneNumber("phone must be in E.164 format: '+' followed by 2 to 15 digits")
    return _checked_e164(raw)


# Numbers checked recently: the same lists are posted again (daily reminders, a batch
# retried), and parsing is most of a batch row's check. Bounded (about 15 MB when full);
# an invalid number raises, and errors are not cached.
@lru_cache(maxsize=100_000)
def _checked_e164(raw: str) -> str:
    try:
        parsed = phonenumbers.parse(raw, None)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhoneNumber(f"phone is not a parsable E.164 number: {exc}") from exc
    if not phonenumbers.is_valid_number(parsed):
        raise InvalidPhoneNumber("phone is not a valid number for its country")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def is_e164(raw: str) -> bool:
    """True when `raw` is a valid E.164 number already in normalized form."""
    try:
        return normalize_e164(raw) == raw
    except InvalidPhoneNumber:
        return False

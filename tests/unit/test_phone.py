"""E.164 validation: strict shape, real numbering plans, normalized output."""

from __future__ import annotations

import pytest

from switchboard_shared.domain.phone import InvalidPhoneNumber, is_e164, normalize_e164


@pytest.mark.parametrize(
    "raw",
    [
        "+996700000000",  # the quickstart number (Kyrgyzstan mobile)
        "+14155552671",  # US
        "+442071838750",  # UK
        "+79161234567",  # Russia mobile
    ],
)
def test_valid_e164_numbers_are_returned_unchanged(raw: str) -> None:
    assert normalize_e164(raw) == raw
    assert is_e164(raw)


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "+",
        "996700000000",  # no '+'
        "+996 700 000 000",  # spaces
        "+996-700-000-000",  # dashes
        "(415) 555-2671",  # national format
        "+0996700000000",  # country codes never start with 0
        "+1234567890123456",  # 16 digits: longer than E.164 allows
        "+99670000000a",  # a letter
        "+1415555267",  # too short for the US plan
        "+99600000000",  # not a number in Kyrgyzstan's plan
        " +996700000000",  # surrounding whitespace is not E.164 either
        "+996700000000\n",
    ],
)
def test_anything_else_is_rejected_with_a_reason(raw: str) -> None:
    with pytest.raises(InvalidPhoneNumber) as info:
        normalize_e164(raw)
    assert str(info.value)
    assert not is_e164(raw)


def test_non_strings_are_rejected() -> None:
    with pytest.raises(InvalidPhoneNumber):
        normalize_e164(996700000000)  # type: ignore[arg-type]

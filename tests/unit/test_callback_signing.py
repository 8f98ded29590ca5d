"""The HMAC scheme of provider callbacks: what verifies, what does not."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from switchboard_shared.calls import callback_signing
from switchboard_shared.calls.callback_signing import SWITCHBOARD, VOCODE, VOXPRIA
from switchboard_shared.ports import InvalidCallback

SECRET = "callback-secret"
BODY = b'{"event_type":"call.completed","provider_call_id":"sim_1","status":"completed"}'
NOW = 1_700_000_000


def test_signature_is_hex_hmac_sha256_of_timestamp_dot_body() -> None:
    headers = callback_signing.sign(SECRET, BODY, timestamp=NOW)

    expected = hmac.new(SECRET.encode(), f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert headers == {
        "X-Switchboard-Timestamp": str(NOW),
        "X-Switchboard-Signature": f"v1={expected}",
    }


def test_signed_body_verifies() -> None:
    headers = callback_signing.sign(SECRET, BODY, timestamp=NOW)

    callback_signing.verify(SECRET, headers, BODY, tolerance_seconds=300, now=NOW + 10)


def test_sign_defaults_to_now() -> None:
    headers = callback_signing.sign(SECRET, BODY)

    callback_signing.verify(SECRET, headers, BODY, tolerance_seconds=5)


def test_header_names_are_case_insensitive() -> None:
    headers = {k.lower(): v for k, v in callback_signing.sign(SECRET, BODY, NOW).items()}

    callback_signing.verify(SECRET, headers, BODY, tolerance_seconds=300, now=NOW)


@pytest.mark.parametrize(
    ("secret", "body"),
    [
        (SECRET, BODY.replace(b"completed", b"failed")),
        (SECRET, BODY + b" "),
        ("another-secret", BODY),
    ],
    ids=["tampered", "trailing-byte", "wrong-secret"],
)
def test_wrong_body_or_secret_is_refused(secret: str, body: bytes) -> None:
    headers = callback_signing.sign(SECRET, BODY, timestamp=NOW)

    with pytest.raises(InvalidCallback, match="does not match"):
        callback_signing.verify(secret, headers, body, tolerance_seconds=300, now=NOW)


@pytest.mark.parametrize("offset", [301, -301, 10_000_000])
def test_timestamp_outside_tolerance_is_refused(offset: int) -> None:
    headers = callback_signing.sign(SECRET, BODY, timestamp=NOW)

    with pytest.raises(InvalidCallback, match="tolerance"):
        callback_signing.verify(SECRET, headers, BODY, tolerance_seconds=300, now=NOW + offset)


@pytest.mark.parametrize("offset", [300, -300, 0])
def test_timestamp_at_the_edge_of_tolerance_is_accepted(offset: int) -> None:
    headers = callback_signing.sign(SECRET, BODY, timestamp=NOW)

    callback_signing.verify(SECRET, headers, BODY, tolerance_seconds=300, now=NOW + offset)


def test_timestamp_cannot_be_swapped_without_the_secret() -> None:
    headers = callback_signing.sign(SECRET, BODY, timestamp=NOW - 3600)
    headers["X-Switchboard-Timestamp"] = str(NOW)  # a replay dressed up as fresh

    with pytest.raises(InvalidCallback, match="does not match"):
        callback_signing.verify(SECRET, headers, BODY, tolerance_seconds=300, now=NOW)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Switchboard-Timestamp": str(NOW)},
        {"X-Switchboard-Signature": "v1=00"},
        {"X-Switchboard-Timestamp": "yesterday", "X-Switchboard-Signature": "v1=00"},
        {"X-Switchboard-Timestamp": str(NOW), "X-Switchboard-Signature": ""},
    ],
    ids=["none", "no-signature", "no-timestamp", "bad-timestamp", "empty-signature"],
)
def test_missing_or_unreadable_headers_are_refused(headers: dict[str, str]) -> None:
    with pytest.raises(InvalidCallback):
        callback_signing.verify(SECRET, headers, BODY, tolerance_seconds=300, now=NOW)


def test_signature_without_its_version_is_refused() -> None:
    headers = callback_signing.sign(SECRET, BODY, timestamp=NOW)
    headers["X-Switchboard-Signature"] = headers["X-Switchboard-Signature"].removeprefix("v1=")

    with pytest.raises(InvalidCallback):
        callback_signing.verify(SECRET, headers, BODY, tolerance_seconds=300, now=NOW)


def test_one_matching_signature_among_several_is_enough() -> None:
    # A sender rotating its secret signs with the old and the new one.
    old = callback_signing.sign("old-secret", BODY, NOW)["X-Switchboard-Signature"]
    new = callback_signing.sign(SECRET, BODY, NOW)["X-Switchboard-Signature"]
    headers = {"X-Switchboard-Timestamp": str(NOW), "X-Switchboard-Signature": f"{old}, {new}"}

    callback_signing.verify(SECRET, headers, BODY, tolerance_seconds=300, now=NOW)
    callback_signing.verify("old-secret", headers, BODY, tolerance_seconds=300, now=NOW)


def test_an_empty_secret_never_verifies() -> None:
    headers = callback_signing.sign("", BODY, timestamp=NOW)

    with pytest.raises(InvalidCallback, match="no callback secret"):
        callback_signing.verify("", headers, BODY, tolerance_seconds=300, now=NOW)


def test_provider_schemes_use_their_own_headers() -> None:
    assert set(VOCODE.sign(SECRET, BODY, NOW)) == {"X-Vocode-Timestamp", "X-Vocode-Signature"}
    assert set(VOXPRIA.sign(SECRET, BODY, NOW)) == {"X-Voxpria-Timestamp", "X-Voxpria-Signature"}


@pytest.mark.parametrize(("signer", "verifier"), [(VOCODE, SWITCHBOARD), (SWITCHBOARD, VOXPRIA)])
def test_one_scheme_headers_do_not_pass_another(
    signer: callback_signing.SignatureScheme, verifier: callback_signing.SignatureScheme
) -> None:
    headers = signer.sign(SECRET, BODY, NOW)

    with pytest.raises(InvalidCallback, match="missing"):
        verifier.verify(SECRET, headers, BODY, tolerance_seconds=300, now=NOW)


def test_every_scheme_computes_the_same_signature() -> None:
    values = [
        scheme.sign(SECRET, BODY, NOW)[scheme.signature_header]
        for scheme in (SWITCHBOARD, VOCODE, VOXPRIA)
    ]
    assert len(set(values)) == 1

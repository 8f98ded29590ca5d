"""HMAC signatures on provider callbacks.

One primitive, several header spellings: Switchboard's own scheme (the simulator and the
generic `/v1/webhooks/call-completed` endpoint) and each provider's native headers.

    <Timestamp-Header>: <unix seconds>
    <Signature-Header>: v1=<hex HMAC-SHA256(secret, "<timestamp>.<raw body>")>

The signature header may carry several comma-separated `v1=` entries (a sender in the
middle of a secret rotation signs with both); one match is enough.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from switchboard_shared.ports import InvalidCallback

VERSION = "v1"


def timestamped_digest(secret: str, timestamp: str, body: bytes) -> str:
    """Hex HMAC-SHA256(secret, "<timestamp>.<raw body>"): the signature of every
    timestamped scheme here (ours, Vocode's, Voxpria's, ElevenLabs')."""
    message = timestamp.encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


class CallbackSigner(Protocol):
    """How one sender authenticates its callbacks: the headers it adds, and their check."""

    def sign(self, secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
        """Headers authenticating `body` (timestamped `timestamp`, unix seconds)."""
        ...

    def verify(
        self,
        secret: str,
        headers: Mapping[str, str],
        body: bytes,
        tolerance_seconds: float,
        now: float | None = None,
    ) -> None:
        """Returns when authentic; raises InvalidCallback otherwise."""
        ...


def header_value(headers: Mapping[str, str], name: str) -> str | None:
    """The header `name` in any letter case, from a plain dict or a headers object."""
    return _header(headers, name)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    # Works for plain dicts as well as case-insensitive header objects.
    value = headers.get(name)
    if value is not None:
        return value
    wanted = name.lower()
    for key, candidate in headers.items():
        if key.lower() == wanted:
            return candidate
    return None


@dataclass(frozen=True)
class SignatureScheme:
    """Where a sender puts the timestamp and the signature; the HMAC is always the same."""

    timestamp_header: str
    signature_header: str

    def sign(self, secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
        """Headers authenticating `body`, timestamped `timestamp` (default: now)."""
        ts = str(int(time.time()) if timestamp is None else int(timestamp))
        return {
            self.timestamp_header: ts,
            self.signature_header: f"{VERSION}={timestamped_digest(secret, ts, body)}",
        }

    def verify(
        self,
        secret: str,
        headers: Mapping[str, str],
        body: bytes,
        tolerance_seconds: float,
        now: float | None = None,
    ) -> None:
        """Returns when `body` was signed with `secret` within `tolerance_seconds` of `now`.

        Raises InvalidCallback for a missing secret, header or signature, a signature
        that does not match, or a timestamp further than the tolerance in the past or
        the future.
        """
        if not secret:
            raise InvalidCallback("no callback secret is configured for this sender")
        ts = _header(headers, self.timestamp_header)
        signature = _header(headers, self.signature_header)
        if not ts or not signature:
            raise InvalidCallback(
                f"missing {self.timestamp_header} or {self.signature_header} header"
            )
        try:
            sent_at = int(ts.strip())
        except ValueError:
            raise InvalidCallback(f"{self.timestamp_header} is not unix seconds") from None
        current = time.time() if now is None else now
        if abs(current - sent_at) > tolerance_seconds:
            raise InvalidCallback("callback timestamp is outside the tolerance window")
        expected = timestamped_digest(secret, ts.strip(), body)
        candidates = [
            value.strip()
            for version, _, value in (part.strip().partition("=") for part in signature.split(","))
            if version == VERSION
        ]
        # compare_digest against every entry, so timing says nothing about which matched.
        matches = [hmac.compare_digest(expected, candidate) for candidate in candidates]
        if not any(matches):
            raise InvalidCallback("callback signature does not match")


SWITCHBOARD = SignatureScheme("X-Switchboard-Timestamp", "X-Switchboard-Signature")
VOCODE = SignatureScheme("X-Vocode-Timestamp", "X-Vocode-Signature")
VOXPRIA = SignatureScheme("X-Voxpria-Timestamp", "X-Voxpria-Signature")


def sign(secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """Switchboard-scheme headers (`X-Switchboard-Timestamp`, `X-Switchboard-Signature`)."""
    return SWITCHBOARD.sign(secret, body, timestamp)


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    tolerance_seconds: float,
    now: float | None = None,
) -> None:
    """Verify Switchboard-scheme headers; raises InvalidCallback (see SignatureScheme)."""
    SWITCHBOARD.verify(secret, headers, body, tolerance_seconds, now)


# --- our reference in a callback URL ------------------------------------------------------
# The dialer gives each provider call a callback URL carrying our call id, signed with
# that provider's callback secret, so a callback that overtakes the dialer's write (or
# follows a dialer crash) still finds its call, and nobody can point one at another call.
REFERENCE_PARAMETER = "ref"


def _reference_digest(secret: str, call_id: str) -> str:
    message = f"callback-reference.{call_id}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()[:32]


def callback_reference(secret: str, call_id: str) -> str:
    """`<call_id>.<signature>`, the value of the `ref` query parameter of a callback URL."""
    return f"{call_id}.{_reference_digest(secret, call_id)}"


def read_callback_reference(secret: str, reference: str) -> str | None:
    """The call id a `callback_reference` carries; None when it was not signed with
    `secret` (forged, garbled, or no secret configured)."""
    call_id, dot, signature = reference.rpartition(".")
    if not secret or not dot or not call_id:
        return None
    if not hmac.compare_digest(_reference_digest(secret, call_id), signature):
        return None
    return call_id

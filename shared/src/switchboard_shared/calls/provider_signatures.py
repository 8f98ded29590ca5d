"""Callback authentication of the providers that do not use the `v1=` HMAC scheme of
`callback_signing`: Vapi's shared server secret, Retell's `x-retell-signature` and
ElevenLabs' `ElevenLabs-Signature`."""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass

from switchboard_shared.calls.callback_signing import header_value, timestamped_digest
from switchboard_shared.ports import InvalidCallback


@dataclass(frozen=True)
class SharedSecretHeader:
    """Vapi's server-URL authentication: the secret itself in a header
    (`x-vapi-secret`). It signs nothing and carries no time, so a captured message
    can be replayed: the ingest's duplicate handling is what makes a replay harmless."""

    header: str

    def sign(self, secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
        return {self.header: secret}

    def verify(
        self,
        secret: str,
        headers: Mapping[str, str],
        body: bytes,
        tolerance_seconds: float,
        now: float | None = None,
    ) -> None:
        if not secret:
            raise InvalidCallback("no callback secret is configured for this sender")
        sent = header_value(headers, self.header)
        if not sent:
            raise InvalidCallback(f"missing {self.header} header")
        if not hmac.compare_digest(sent.encode(), secret.encode()):
            raise InvalidCallback(f"{self.header} does not match")


_RETELL_SIGNATURE = re.compile(r"v=(\d+),d=(.*)")


@dataclass(frozen=True)
class RetellSignature:
    """`x-retell-signature: v=<unix ms>,d=<hex HMAC-SHA256(key, body + "<unix ms>")>`,
    keyed by the Retell API key: what the `verify` of Retell's SDKs checks
    (retell-typescript-sdk `src/lib/webhook_auth.ts`, retell-python-sdk
    `src/retell/lib/webhook_auth.py`), with our tolerance instead of their fixed 5 min."""

    header: str = "x-retell-signature"

    def sign(self, secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
        millis = int(time.time() * 1000) if timestamp is None else int(timestamp) * 1000
        return {self.header: f"v={millis},d={_retell_digest(secret, body, millis)}"}

    def verify(
        self,
        secret: str,
        headers: Mapping[str, str],
        body: bytes,
        tolerance_seconds: float,
        now: float | None = None,
    ) -> None:
        if not secret:
            raise InvalidCallback("no Retell API key is configured to verify with")
        signature = header_value(headers, self.header)
        match = _RETELL_SIGNATURE.search(signature or "")
        if match is None:
            raise InvalidCallback(f"missing or malformed {self.header} header")
        millis = int(match.group(1))
        current = time.time() if now is None else now
        if abs(current * 1000 - millis) > tolerance_seconds * 1000:
            raise InvalidCallback("callback timestamp is outside the tolerance window")
        expected = _retell_digest(secret, body, millis)
        if not hmac.compare_digest(expected.encode(), match.group(2).strip().encode()):
            raise InvalidCallback("callback signature does not match")


def _retell_digest(secret: str, body: bytes, millis: int) -> str:
    return hmac.new(secret.encode(), body + str(millis).encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class ElevenLabsSignature:
    """`ElevenLabs-Signature: t=<unix s>,v0=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`,
    keyed by the webhook's shared secret (docs/providers.md cites ElevenLabs' webhook
    docs; their examples refuse a timestamp older than 30 minutes)."""

    header: str = "ElevenLabs-Signature"

    def sign(self, secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
        ts = str(int(time.time()) if timestamp is None else int(timestamp))
        return {self.header: f"t={ts},v0={timestamped_digest(secret, ts, body)}"}

    def verify(
        self,
        secret: str,
        headers: Mapping[str, str],
        body: bytes,
        tolerance_seconds: float,
        now: float | None = None,
    ) -> None:
        if not secret:
            raise InvalidCallback("no ElevenLabs webhook secret is configured to verify with")
        parts = dict(
            part.strip().partition("=")[::2]
            for part in (header_value(headers, self.header) or "").split(",")
        )
        ts, sent = parts.get("t", ""), parts.get("v0", "")
        if not ts.isdigit() or not sent:
            raise InvalidCallback(f"missing or malformed {self.header} header")
        current = time.time() if now is None else now
        if abs(current - int(ts)) > tolerance_seconds:
            raise InvalidCallback("callback timestamp is outside the tolerance window")
        if not hmac.compare_digest(timestamped_digest(secret, ts, body).encode(), sent.encode()):
            raise InvalidCallback("callback signature does not match")


VAPI = SharedSecretHeader("x-vapi-secret")
RETELL = RetellSignature()
ELEVENLABS = ElevenLabsSignature()
# ElevenLabs' webhook docs refuse signatures older than this.
ELEVENLABS_TOLERANCE_SECONDS = 30 * 60

"""Signatures on customer webhooks: Standard Webhooks, plus a plain body HMAC.

Every webhook carries

    webhook-id: <event id>            (the same on every retry and replay: dedupe on it)
    webhook-timestamp: <unix seconds>
    webhook-signature: v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<body>")>
    X-Signature: <hex HMAC-SHA256(secret, body)>

The Standard Webhooks key is the base64-decoded part of the `whsec_…` secret, so the
public `standardwebhooks` library verifies it unchanged; during a secret rotation the
signature header lists one `v1,` entry per live secret, space-separated, newest first.
`X-Signature` is for receivers without that library: its key is the whole secret string,
as shown to the customer (`whsec_` included), and only the current secret signs it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime

from standardwebhooks import Webhook

from switchboard_shared.domain.calls import utcnow
from switchboard_shared.domain.webhooks import WebhookEndpoint

SECRET_PREFIX = "whsec_"  # noqa: S105 (a format prefix, not a secret)
_SECRET_BYTES = 32

ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
BODY_SIGNATURE_HEADER = "X-Signature"


def generate_secret() -> str:
    """A new random signing secret, `whsec_<base64 of 32 random bytes>`."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(_SECRET_BYTES)).decode()


def body_signature(secret: str, body: bytes) -> str:
    """The `X-Signature` value: hex HMAC-SHA256 of `body` keyed with the secret string."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def live_secrets(endpoint: WebhookEndpoint, now: datetime | None = None) -> list[str]:
    """The secrets that sign right now: the current one first, then the previous one
    while its rotation window is open."""
    current = now or utcnow()
    live = [endpoint.secret]
    if (
        endpoint.previous_secret
        and endpoint.previous_secret_expires_at is not None
        and endpoint.previous_secret_expires_at > current
    ):
        live.append(endpoint.previous_secret)
    return live


def sign(
    message_id: str,
    body: bytes,
    secrets_: Sequence[str],
    timestamp: datetime | None = None,
) -> dict[str, str]:
    """The signature headers for `body`, sent as message `message_id` at `timestamp`
    (default: now). `secrets_[0]` is the current secret; every secret given adds one
    Standard Webhooks signature, and the current one alone signs `X-Signature`."""
    if not secrets_:
        raise ValueError("at least one signing secret is needed")
    # Whole seconds in UTC: the library floors the timestamp it signs, the header must match.
    sent_at = datetime.fromtimestamp(int((timestamp or utcnow()).timestamp()), tz=UTC)
    text = body.decode()
    signatures = [Webhook(secret).sign(message_id, sent_at, text) for secret in secrets_]
    return {
        ID_HEADER: message_id,
        TIMESTAMP_HEADER: str(int(sent_at.timestamp())),
        SIGNATURE_HEADER: " ".join(signatures),
        BODY_SIGNATURE_HEADER: body_signature(secrets_[0], body),
    }

"""Customer webhook signatures verify with the public standardwebhooks library."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import timedelta

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from switchboard_shared.domain.calls import utcnow
from switchboard_shared.domain.webhooks import WebhookEndpoint
from switchboard_shared.webhooks.signing import (
    BODY_SIGNATURE_HEADER,
    generate_secret,
    live_secrets,
    sign,
)

BODY = json.dumps({"type": "call.completed", "id": "evt_1", "data": {"status": "completed"}})


def test_generated_secrets_are_whsec_with_32_random_bytes() -> None:
    secret = generate_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    assert generate_secret() != secret


def test_signature_verifies_with_the_public_library() -> None:
    secret = generate_secret()
    headers = sign("evt_1", BODY.encode(), [secret])
    assert headers["webhook-id"] == "evt_1"
    assert headers["webhook-timestamp"].isdigit()
    assert headers["webhook-signature"].startswith("v1,")
    assert " " not in headers["webhook-signature"]
    assert Webhook(secret).verify(BODY.encode(), headers) == json.loads(BODY)


def test_x_signature_is_hex_hmac_of_the_body_keyed_with_the_secret_string() -> None:
    secret = generate_secret()
    headers = sign("evt_1", BODY.encode(), [secret])
    expected = hmac.new(secret.encode(), BODY.encode(), hashlib.sha256).hexdigest()
    assert headers[BODY_SIGNATURE_HEADER] == expected


def test_another_secret_or_a_changed_body_does_not_verify() -> None:
    secret = generate_secret()
    headers = sign("evt_1", BODY.encode(), [secret])
    with pytest.raises(WebhookVerificationError):
        Webhook(generate_secret()).verify(BODY.encode(), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY.encode() + b" ", headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY.encode(), {**headers, "webhook-id": "evt_2"})


def test_during_rotation_both_secrets_sign_and_either_verifies() -> None:
    new, old = generate_secret(), generate_secret()
    headers = sign("evt_1", BODY.encode(), [new, old])
    assert len(headers["webhook-signature"].split(" ")) == 2
    Webhook(new).verify(BODY.encode(), headers)
    Webhook(old).verify(BODY.encode(), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(generate_secret()).verify(BODY.encode(), headers)
    # X-Signature is the current secret's only.
    assert (
        headers[BODY_SIGNATURE_HEADER]
        == hmac.new(new.encode(), BODY.encode(), hashlib.sha256).hexdigest()
    )


def test_timestamp_is_the_given_moment_in_whole_seconds() -> None:
    moment = utcnow().replace(microsecond=999_999)
    headers = sign("evt_1", BODY.encode(), [generate_secret()], timestamp=moment)
    assert headers["webhook-timestamp"] == str(int(moment.timestamp()))


def test_a_stale_timestamp_is_refused_by_receivers() -> None:
    secret = generate_secret()
    headers = sign("evt_1", BODY.encode(), [secret], timestamp=utcnow() - timedelta(hours=1))
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY.encode(), headers)


def test_no_secret_is_an_error() -> None:
    with pytest.raises(ValueError, match="secret"):
        sign("evt_1", BODY.encode(), [])


def test_previous_secret_signs_only_inside_its_window() -> None:
    now = utcnow()
    endpoint = WebhookEndpoint(
        tenant_id="t",
        url=None,
        secret="whsec_new",
        previous_secret="whsec_old",
        previous_secret_expires_at=now + timedelta(hours=1),
    )
    assert live_secrets(endpoint, now) == ["whsec_new", "whsec_old"]
    assert live_secrets(endpoint, now + timedelta(hours=2)) == ["whsec_new"]
    without = endpoint.model_copy(update={"previous_secret": None})
    assert live_secrets(without, now) == ["whsec_new"]

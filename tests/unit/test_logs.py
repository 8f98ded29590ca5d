"""JSON log lines: their fields, the call and trace they belong to, and masking."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider

from switchboard_shared.calls.events import Event, EventType
from switchboard_shared.observability.logs import (
    JsonFormatter,
    RedactingFilter,
    call_scope,
    configure_logging,
    mask_phone,
    redact,
    redact_field,
    with_call_scope,
)
from switchboard_shared.ports import MessageContext
from switchboard_shared.runtime.settings import Settings

CALL_ID = "3f1c2a9e-8d4b-4e0a-9a51-2b7c9d0e1f23"


@pytest.fixture
def capture() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger writing through the production filter and formatter into a buffer."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(JsonFormatter("dialer"))
    logger = logging.getLogger(f"test_logs.{id(stream)}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    yield logger, stream
    logger.removeHandler(handler)


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


# --- fields ----------------------------------------------------------------------------


def test_a_line_is_one_json_object_with_the_service_and_the_extra_fields(
    capture: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = capture
    logger.warning("dial %s failed", "twice", extra={"call_id": CALL_ID, "queue": "dialer"})
    (line,) = lines(stream)
    assert line["service"] == "dialer"
    assert line["level"] == "WARNING"
    assert line["logger"] == logger.name
    assert line["message"] == "dial twice failed"
    assert line["call_id"] == CALL_ID
    assert line["queue"] == "dialer"
    assert line["time"].endswith("+00:00")
    assert "trace_id" not in line  # no span is current


def test_call_id_comes_from_the_call_being_handled_unless_extra_names_one(
    capture: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = capture
    with call_scope(CALL_ID):
        logger.info("inside")
        logger.info("about another call", extra={"call_id": "other"})
    logger.info("outside")
    inside, other, outside = lines(stream)
    assert inside["call_id"] == CALL_ID
    assert other["call_id"] == "other"
    assert "call_id" not in outside


async def test_a_consumer_handler_logs_with_its_messages_call_id(
    capture: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = capture

    async def handler(event: Event, context: MessageContext) -> None:
        logger.info("handling %s", event.type)

    event = Event(type=EventType.CALL_REQUESTED, tenant_id="t1", call_id=CALL_ID, sequence=1)
    context = MessageContext(attempt=1, max_attempts=3, redelivered=False, headers={})
    await with_call_scope(handler)(event, context)
    logger.info("after")
    handled, after = lines(stream)
    assert handled["call_id"] == CALL_ID
    assert "call_id" not in after


def test_trace_id_and_span_id_are_the_current_spans(
    capture: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = capture
    tracer = TracerProvider().get_tracer(__name__)
    with tracer.start_as_current_span("handling") as span:
        logger.info("in a span")
    (line,) = lines(stream)
    context = span.get_span_context()
    assert line["trace_id"] == f"{context.trace_id:032x}"
    assert line["span_id"] == f"{context.span_id:016x}"


def test_exceptions_are_kept_and_masked(capture: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = capture
    try:
        raise ConnectionError("cannot reach amqp://switchboard:hunter2@rabbit:5672/")
    except ConnectionError:
        logger.exception("broker down")
    (line,) = lines(stream)
    assert "ConnectionError" in line["exception"]
    assert "hunter2" not in stream.getvalue()
    assert "amqp://switchboard:***@rabbit:5672/" in line["exception"]


def test_configure_logging_writes_masked_json_lines_to_stdout(
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        configure_logging(Settings(log_json=True, log_level="INFO"), "notifier")
        logging.getLogger("switchboard.test").info(
            "webhook to %s", "https://x.test/h", extra={"authorization": "Bearer sk_abcdefghijkl"}
        )
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    (line,) = [json.loads(out) for out in capsys.readouterr().out.splitlines()]
    assert line["service"] == "notifier"
    assert line["message"] == "webhook to https://x.test/h"
    assert line["authorization"] == "***"


# --- masking -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("dialing +996700001234 now", "dialing +********1234 now"),
        ("to +1 415 555 0100", "to +* *** *** 0100"),
        ('{"phone": "996700001234"}', '{"phone": "********1234"}'),
        ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.x", "Authorization: Bearer ***"),
        ("Authorization: Basic dXNlcjpwYXNz", "Authorization: Basic ***"),
        ("key sk_Zx81kQ_p2LmN0aBcD9eF rejected", "key sk_*** rejected"),
        ("secret whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2La", "secret whsec_***"),
        ("amqp://guest:guest@rabbit:5672/", "amqp://guest:***@rabbit:5672/"),
        ("mongodb://app:s3cr%40t@db1,db2/sb", "mongodb://app:***@db1,db2/sb"),
        ("redis://:pw@cache:6379", "redis://:***@cache:6379"),
        ("GET /login?user=a&password=hunter2&x=1", "GET /login?user=a&password=***&x=1"),
        ('{"callback_secret": "abc123"}', '{"callback_secret": "***"}'),
        ("api_key: live-123", "api_key: ***"),
    ],
)
def test_secrets_and_phone_numbers_are_masked(text: str, masked: str) -> None:
    assert redact(text) == masked
    assert redact(masked) == masked  # masking twice changes nothing


@pytest.mark.parametrize(
    "text",
    [
        f"call {CALL_ID} moved to ringing",
        "event evt_3f1c2a9e_4 published at 2024-05-01T10:00:00+05:00",
        "Basic settings loaded; webhook_secret_rotation_hours=24",
        "retry 3 of 7 in 120s, max_tokens=5",
        "key hint sk_Zx81 (7 characters) is not the key",
        "amqp://rabbit:5672/ has no password",
    ],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert redact(text) == text


def test_a_phone_number_keeps_its_last_four_digits() -> None:
    assert mask_phone("+996700001234") == "+********1234"
    assert mask_phone("+1 (415) 555-0100") == "+* (***) ***-0100"


def test_fields_are_masked_by_name_and_by_content() -> None:
    fields = {
        "phone": "996700001234",
        "to_number": "+996700001234",
        "password": "hunter2",
        "api_key": "anything",
        "headers": {"Authorization": "Token abc", "Accept": "application/json"},
        "urls": ["amqp://u:p@h/", "https://example.test/"],
        "attempt": 3,
        "note": "customer +996700001234 asked for sk_Zx81kQ_p2LmN0aBcD9eF",
        "sent_at": "2024-05-01",
    }
    assert redact_field("extra", fields) == {
        "phone": "********1234",
        "to_number": "+********1234",
        "password": "***",
        "api_key": "***",
        "headers": {"Authorization": "***", "Accept": "application/json"},
        "urls": ["amqp://u:***@h/", "https://example.test/"],
        "attempt": 3,
        "note": "customer +********1234 asked for sk_***",
        "sent_at": "2024-05-01",
    }


def test_the_filter_masks_the_message_its_arguments_and_extra_fields(
    capture: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = capture
    logger.info(
        "calling %s with %s",
        "+996700001234",
        "Bearer abcdef123456",
        extra={"phone": "+996700001234", "broker": "amqp://sb:pw@rabbit/"},
    )
    (line,) = lines(stream)
    assert line["message"] == "calling +********1234 with Bearer ***"
    assert line["phone"] == "+********1234"
    assert line["broker"] == "amqp://sb:***@rabbit/"
    for secret in ("700001234", "abcdef123456", ":pw@"):
        assert secret not in stream.getvalue()

"""What every Bus adapter shares: topic matching, the retry schedule, trace context in
message headers, and running a handler to a verdict (ack, retry or dead-letter).

Adapters only move bytes: they hand a delivery to `process` and carry out the verdict.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer, TracerProvider
from opentelemetry.util.types import AttributeValue
from pydantic import ValidationError

from switchboard_shared.calls.events import Event
from switchboard_shared.observability.metrics import (
    CONSUMER_LAG_SECONDS,
    HANDLER_SECONDS,
    MESSAGES_DEAD_LETTERED,
    MESSAGES_RETRIED,
)
from switchboard_shared.ports import MessageContext, Reject, RetryLater, Subscription

log = logging.getLogger(__name__)

# The delivery attempt (1-based) travels with the message, so a retry republished by any
# consumer instance continues the count.
ATTEMPT_HEADER = "x-switchboard-attempt"
# Why a message was dead-lettered; set on the copy in `<queue>.dlq`.
DEAD_LETTER_REASON_HEADER = "x-switchboard-dead-letter-reason"


def dead_letter_queue(queue: str) -> str:
    """The dead-letter queue of a work queue."""
    return f"{queue}.dlq"


# Headers the broker adds when it dead-letters a message; a republished copy starts clean.
_BROKER_HEADER_PREFIXES = ("x-death", "x-first-death-", "x-last-death-", "x-delivery-count")


def without_broker_headers(headers: Mapping[str, Any]) -> dict[str, Any]:
    """`headers` minus what the broker added on dead-lettering and redelivery."""
    return {k: v for k, v in headers.items() if not k.startswith(_BROKER_HEADER_PREFIXES)}


def replay_headers(headers: Mapping[str, Any]) -> dict[str, Any]:
    """The headers of a dead letter sent back to its queue: a fresh first attempt."""
    return {
        k: v
        for k, v in without_broker_headers(headers).items()
        if k not in (ATTEMPT_HEADER, DEAD_LETTER_REASON_HEADER)
    }


@dataclass(frozen=True)
class DeadLetter:
    """A message in a dead-letter queue, as an operator inspects it."""

    body: bytes
    headers: Mapping[str, Any]

    @property
    def reason(self) -> str:
        raw = self.headers.get(DEAD_LETTER_REASON_HEADER)
        if isinstance(raw, bytes):
            return raw.decode(errors="replace")
        # No reason header: the broker dead-lettered it (delivery limit reached).
        return str(raw) if raw is not None else "delivery limit reached"

    @property
    def event(self) -> Event | None:
        """The event, or None for a body that does not parse."""
        try:
            return Event.from_bytes(self.body)
        except ValueError:
            return None


def get_tracer(tracer_provider: TracerProvider | None = None) -> Tracer:
    """The bus tracer; the global provider unless one is given (tests pass their own)."""
    return trace.get_tracer("switchboard_shared.bus", tracer_provider=tracer_provider)


# --- routing ---------------------------------------------------------------------------


def topic_matches(pattern: str, routing_key: str) -> bool:
    """AMQP topic semantics: words split by `.`, `*` is exactly one word, `#` zero or more."""
    return _match(pattern.split("."), routing_key.split("."))


def _match(pattern: Sequence[str], words: Sequence[str]) -> bool:
    if not pattern:
        return not words
    head, rest = pattern[0], pattern[1:]
    if head == "#":
        # `#` swallows 0..n words; try every split.
        return any(_match(rest, words[i:]) for i in range(len(words) + 1))
    if not words:
        return False
    return (head == "*" or head == words[0]) and _match(rest, words[1:])


# --- retry schedule --------------------------------------------------------------------


def retry_delay(
    retry_delays: Sequence[float], failed_attempt: int, requested: float | None = None
) -> float | None:
    """Seconds to wait before retrying after `failed_attempt` (1-based) failed, or None
    when the schedule is exhausted and the message must be dead-lettered.

    Without `requested`, retry n waits `retry_delays[n-1]`. With it (a handler's
    `RetryLater(delay=...)`), the smallest configured delay >= `requested` is chosen,
    the largest one when none is that long: only configured delays have retry queues.
    """
    if failed_attempt > len(retry_delays):
        return None
    if requested is None:
        return retry_delays[failed_attempt - 1]
    long_enough = [d for d in retry_delays if d >= requested]
    return min(long_enough) if long_enough else max(retry_delays)


def attempt_of(headers: Mapping[str, Any]) -> int:
    """The attempt number carried in `headers`; 1 when missing or unreadable."""
    raw = headers.get(ATTEMPT_HEADER)
    if isinstance(raw, bytes):
        raw = raw.decode(errors="replace")
    try:
        attempt = int(raw) if raw is not None else 1
    except (TypeError, ValueError):
        return 1
    return max(attempt, 1)


# --- trace context ---------------------------------------------------------------------


@contextlib.contextmanager
def publish_span(
    tracer: Tracer,
    event: Event,
    headers: Mapping[str, Any] | None,
    *,
    system: str,
    destination: str,
) -> Iterator[dict[str, Any]]:
    """Open a PRODUCER span for publishing `event`; yields the message headers: a copy of
    `headers` with the span's W3C trace context injected, so consumers continue the trace.
    """
    attributes = {
        "messaging.system": system,
        "messaging.operation.type": "send",
        "messaging.destination.name": destination,
        "messaging.message.id": event.id,
        "switchboard.event_type": str(event.type),
    }
    if event.call_id:
        attributes["switchboard.call_id"] = event.call_id
    with tracer.start_as_current_span(
        f"publish {event.type}", kind=SpanKind.PRODUCER, attributes=attributes
    ):
        carrier: dict[str, Any] = dict(headers or {})
        propagate.inject(carrier)
        yield carrier


def _text_headers(headers: Mapping[str, Any]) -> dict[str, str]:
    # AMQP may hand header values back as bytes; the propagator wants text.
    return {
        k: v.decode(errors="replace") if isinstance(v, bytes) else str(v)
        for k, v in headers.items()
        if isinstance(v, str | bytes | int)
    }


# --- handling a delivery ---------------------------------------------------------------


class Action(StrEnum):
    ACK = "ack"
    RETRY = "retry"
    DEAD_LETTER = "dead_letter"


@dataclass(frozen=True)
class Verdict:
    """What the adapter must do with a delivery once its handler ran."""

    action: Action
    delay: float = 0.0  # seconds, for RETRY
    reason: str = ""  # for RETRY and DEAD_LETTER: kept in logs and the dead-letter header


def _after_failure(
    subscription: Subscription, attempt: int, requested: float | None, reason: str
) -> Verdict:
    delay = retry_delay(subscription.retry_delays, attempt, requested)
    if delay is None:
        return Verdict(Action.DEAD_LETTER, reason=f"retries exhausted: {reason}")
    return Verdict(Action.RETRY, delay=delay, reason=reason)


async def process(
    subscription: Subscription,
    queue: str,
    body: bytes,
    headers: Mapping[str, Any],
    *,
    redelivered: bool,
    tracer: Tracer,
    system: str,
) -> Verdict:
    """Parse `body`, run the subscription's handler in a CONSUMER span whose parent is
    the publisher's trace context, and decide what becomes of the message.

    Never raises for a handler failure or a bad body; cancellation propagates, leaving
    the message unsettled (the broker returns it to the queue).
    """
    started = time.perf_counter()
    attempt = attempt_of(headers)
    try:
        event = Event.from_bytes(body)
    except (ValidationError, ValueError) as exc:
        verdict = Verdict(Action.DEAD_LETTER, reason=f"unparseable body: {exc.__class__.__name__}")
        HANDLER_SECONDS.labels(queue, verdict.action).observe(time.perf_counter() - started)
        return verdict

    if attempt == 1:  # a retry waits on purpose: that is not lag
        occurred = event.occurred_at
        if occurred.tzinfo is None:  # publishers write UTC; tolerate a bare timestamp
            occurred = occurred.replace(tzinfo=UTC)
        lag = (datetime.now(UTC) - occurred).total_seconds()
        CONSUMER_LAG_SECONDS.labels(queue).observe(max(lag, 0.0))
    context = MessageContext(
        attempt=attempt,
        max_attempts=1 + len(subscription.retry_delays),
        redelivered=redelivered,
        headers=dict(headers),
    )
    attributes: dict[str, AttributeValue] = {
        "messaging.system": system,
        "messaging.operation.type": "process",
        "messaging.destination.name": queue,
        "messaging.message.id": event.id,
        "switchboard.event_type": str(event.type),
        "switchboard.attempt": attempt,
    }
    if event.call_id:
        attributes["switchboard.call_id"] = event.call_id
    with tracer.start_as_current_span(
        f"process {event.type}",
        context=propagate.extract(_text_headers(headers)),
        kind=SpanKind.CONSUMER,
        attributes=attributes,
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        try:
            await subscription.handler(event, context)
            verdict = Verdict(Action.ACK)
        except Reject as exc:
            verdict = Verdict(Action.DEAD_LETTER, reason=f"rejected: {exc}")
        except RetryLater as exc:
            verdict = _after_failure(subscription, attempt, exc.delay, f"retry later: {exc}")
        except Exception as exc:
            span.record_exception(exc)
            log.exception(
                "handler failed",
                extra={"queue": queue, "event_id": event.id, "call_id": event.call_id},
            )
            verdict = _after_failure(subscription, attempt, None, repr(exc))
        if verdict.action is not Action.ACK:
            span.set_status(Status(StatusCode.ERROR, verdict.reason))
            span.set_attribute("switchboard.outcome", str(verdict.action))
    HANDLER_SECONDS.labels(queue, verdict.action).observe(time.perf_counter() - started)
    if verdict.action is Action.RETRY:
        log.warning(
            "message will be retried in %.3gs: %s",
            verdict.delay,
            verdict.reason,
            extra={"queue": queue, "event_id": event.id, "call_id": event.call_id},
        )
    return verdict


def record_settled(queue: str, verdict: Verdict) -> None:
    """Count a retry or dead-letter once the adapter carried it out."""
    if verdict.action is Action.RETRY:
        MESSAGES_RETRIED.labels(queue).inc()
    elif verdict.action is Action.DEAD_LETTER:
        MESSAGES_DEAD_LETTERED.labels(queue).inc()
        log.error(
            "message dead-lettered to %s: %s",
            dead_letter_queue(queue),
            verdict.reason,
            extra={"queue": queue},
        )

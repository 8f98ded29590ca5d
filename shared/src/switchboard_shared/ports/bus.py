"""What business logic needs of the message bus: publish events, consume a queue with
retries and dead-lettering."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from switchboard_shared.calls.events import Event


class PublishError(Exception):
    """The broker did not confirm the message (down, unroutable, nacked)."""


class RetryLater(Exception):
    """Raised by a handler: try this message again after a delay (None: the schedule's)."""

    def __init__(self, reason: str = "", delay: float | None = None) -> None:
        super().__init__(reason)
        self.delay = delay


class Reject(Exception):
    """Raised by a handler: this message can never succeed; dead-letter it now."""


@dataclass(frozen=True)
class MessageContext:
    """What a handler knows about the delivery of the message it handles."""

    attempt: int  # 1 for the first delivery, 2 for the first retry, ...
    max_attempts: int  # 1 + len(retry_delays)
    redelivered: bool  # the broker redelivered it after a crash or nack
    headers: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_last_attempt(self) -> bool:
        return self.attempt >= self.max_attempts


Handler = Callable[[Event, MessageContext], Awaitable[None]]


@dataclass(frozen=True)
class Subscription:
    """A consumer's queue: bound to `routing_keys` on the events exchange.

    Retry n (1-based) waits `retry_delays[n-1]`; a `RetryLater(delay=d)` waits the
    smallest configured delay >= d. After the last retry, or on `Reject` or an
    unparseable body, the message goes to the dead-letter queue `<queue>.dlq`.
    """

    queue: str
    routing_keys: tuple[str, ...]
    handler: Handler
    retry_delays: tuple[float, ...] = (1.0, 5.0, 30.0)
    prefetch: int = 50


class Bus(Protocol):
    async def start(self) -> None:
        """Connect and declare the exchange."""

    async def close(self) -> None:
        """Stop consuming, let in-flight handlers finish (their messages are acked or
        returned to the queue), then disconnect."""

    async def ping(self) -> None:
        """Raises PublishError when the broker is unreachable (readiness)."""

    async def publish(self, event: Event, headers: Mapping[str, str] | None = None) -> None:
        """Persist `event` on the exchange with routing key `event.type`; returns once
        the broker confirmed it. Raises PublishError otherwise."""

    async def subscribe(self, subscription: Subscription) -> None:
        """Declare the queue, its retry queues and dead-letter queue, and start consuming.
        At-least-once: a message is acked only after its handler returned."""

    async def stop_consuming(self) -> None:
        """Stop taking new messages (SIGTERM); in-flight handlers go on."""

    async def queue_depth(self, queue: str) -> int:
        """Messages ready in `queue` (as given to `subscribe`) that no consumer has taken
        yet; 0 for a queue not declared. Raises PublishError when the broker is
        unreachable."""

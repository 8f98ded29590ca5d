"""The Bus inside one process (all-in-one mode): asyncio queues with RabbitMQ's semantics.

Topic routing, at-least-once handling, delayed retries, dead-letter queues and the
prefetch bound behave as with `RabbitBus`, so the same services run on either. Two
differences, both because nothing outlives the process: messages (queued, waiting for a
retry, or dead-lettered) are lost when it stops, and an event no queue is bound to is
accepted and dropped, where RabbitMQ's mandatory publish raises PublishError.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.trace import TracerProvider

from switchboard_shared.adapters.bus.common import (
    ATTEMPT_HEADER,
    DEAD_LETTER_REASON_HEADER,
    Action,
    DeadLetter,
    Verdict,
    attempt_of,
    get_tracer,
    process,
    publish_span,
    record_settled,
    replay_headers,
    topic_matches,
)
from switchboard_shared.calls.events import Event
from switchboard_shared.ports import PublishError, Subscription

log = logging.getLogger(__name__)

_SYSTEM = "inprocess"


@dataclass(frozen=True)
class _Message:
    body: bytes
    headers: Mapping[str, Any]
    redelivered: bool = False


@dataclass
class _Queue:
    name: str
    routing_keys: set[str] = field(default_factory=set)
    messages: asyncio.Queue[_Message] = field(default_factory=asyncio.Queue)
    dead: list[_Message] = field(default_factory=list)


@dataclass
class _Consumer:
    subscription: Subscription
    slots: asyncio.Semaphore  # the prefetch bound: handlers running at once
    task: asyncio.Task[None] | None = None


class InProcessBus:
    """A `Bus` backed by asyncio queues. Publishing needs no `start()`; after `close()`
    it raises PublishError."""

    def __init__(
        self, *, close_timeout: float = 30.0, tracer_provider: TracerProvider | None = None
    ) -> None:
        self._close_timeout = close_timeout
        self._tracer = get_tracer(tracer_provider)
        self._queues: dict[str, _Queue] = {}
        self._consumers: list[_Consumer] = []
        self._in_flight: set[asyncio.Task[None]] = set()
        self._retry_timers: set[asyncio.TimerHandle] = set()
        self._consuming = True
        self._closed = False

    # --- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Nothing to connect to; (re)opens a closed bus."""
        self._closed = False
        self._consuming = True

    async def ping(self) -> None:
        """Raises PublishError once the bus is closed."""
        if self._closed:
            raise PublishError("in-process bus is closed")

    async def stop_consuming(self) -> None:
        """No new deliveries start; running handlers finish and settle their messages."""
        self._consuming = False
        for consumer in self._consumers:
            if consumer.task:
                consumer.task.cancel()
        await asyncio.gather(*(c.task for c in self._consumers if c.task), return_exceptions=True)
        for consumer in self._consumers:
            consumer.task = None

    async def close(self) -> None:
        """Stop consuming, wait up to `close_timeout` for running handlers, then cancel the
        rest (their messages go back to their queue) and drop scheduled retries."""
        await self.stop_consuming()
        if self._in_flight:
            _, pending = await asyncio.wait(set(self._in_flight), timeout=self._close_timeout)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        for timer in self._retry_timers:
            timer.cancel()
        self._retry_timers.clear()
        self._closed = True

    # --- publishing --------------------------------------------------------------------

    async def publish(self, event: Event, headers: Mapping[str, str] | None = None) -> None:
        """Route `event` to every queue bound to `event.type` at this moment."""
        if self._closed:
            raise PublishError("in-process bus is closed")
        with publish_span(
            self._tracer, event, headers, system=_SYSTEM, destination="in-process"
        ) as carrier:
            message = _Message(body=event.to_bytes(), headers=carrier)
            for queue in self._queues.values():
                if any(topic_matches(key, event.type) for key in queue.routing_keys):
                    queue.messages.put_nowait(message)

    async def deliver_raw(
        self, queue: str, body: bytes, headers: Mapping[str, Any] | None = None
    ) -> None:
        """Put raw bytes straight into a declared queue, bypassing routing: how a replay
        tool (or a test) hands a queue a message, even one that does not parse."""
        self._queues[queue].messages.put_nowait(_Message(body=body, headers=dict(headers or {})))

    # --- consuming ---------------------------------------------------------------------

    async def subscribe(self, subscription: Subscription) -> None:
        """Declare the queue with its bindings and start a consumer on it. Several
        subscriptions to one queue compete for its messages, as on RabbitMQ."""
        queue = self._queues.setdefault(subscription.queue, _Queue(subscription.queue))
        queue.routing_keys.update(subscription.routing_keys)
        consumer = _Consumer(subscription, asyncio.Semaphore(max(subscription.prefetch, 1)))
        self._consumers.append(consumer)
        if self._consuming:
            consumer.task = asyncio.create_task(
                self._consume(queue, consumer), name=f"bus-consume-{queue.name}"
            )

    async def _consume(self, queue: _Queue, consumer: _Consumer) -> None:
        while True:
            await consumer.slots.acquire()
            try:
                message = await queue.messages.get()
            except asyncio.CancelledError:
                consumer.slots.release()
                raise
            task = asyncio.create_task(self._handle(queue, consumer, message))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)

    async def _handle(self, queue: _Queue, consumer: _Consumer, message: _Message) -> None:
        try:
            verdict = await process(
                consumer.subscription,
                queue.name,
                message.body,
                message.headers,
                redelivered=message.redelivered,
                tracer=self._tracer,
                system=_SYSTEM,
            )
        except asyncio.CancelledError:
            # Unsettled, like a closed channel on RabbitMQ: back to the queue.
            queue.messages.put_nowait(_Message(message.body, message.headers, redelivered=True))
            raise
        finally:
            consumer.slots.release()
        self._settle(queue, message, verdict)

    def _settle(self, queue: _Queue, message: _Message, verdict: Verdict) -> None:
        if verdict.action is Action.RETRY:
            attempt = attempt_of(message.headers)
            retry = _Message(message.body, {**message.headers, ATTEMPT_HEADER: attempt + 1})
            timer: asyncio.TimerHandle | None = None

            def requeue() -> None:
                if timer is not None:
                    self._retry_timers.discard(timer)
                queue.messages.put_nowait(retry)

            timer = asyncio.get_running_loop().call_later(verdict.delay, requeue)
            self._retry_timers.add(timer)
        elif verdict.action is Action.DEAD_LETTER:
            queue.dead.append(
                _Message(
                    message.body, {**message.headers, DEAD_LETTER_REASON_HEADER: verdict.reason}
                )
            )
        record_settled(queue.name, verdict)

    async def queue_depth(self, queue: str) -> int:
        declared = self._queues.get(queue)
        return declared.messages.qsize() if declared else 0

    # --- dead letters ------------------------------------------------------------------

    async def peek_dead_letters(self, queue: str, limit: int = 100) -> list[DeadLetter]:
        """Up to `limit` dead letters of `queue`, oldest first; they stay."""
        declared = self._queues.get(queue)
        dead = declared.dead[:limit] if declared else []
        return [DeadLetter(m.body, dict(m.headers)) for m in dead]

    async def replay_dead_letters(self, queue: str, limit: int | None = None) -> int:
        """Send dead letters of `queue` back to it as fresh first attempts, oldest first;
        returns how many."""
        declared = self._queues.get(queue)
        if declared is None:
            return 0
        count = len(declared.dead) if limit is None else min(limit, len(declared.dead))
        replayed, declared.dead = declared.dead[:count], declared.dead[count:]
        for message in replayed:
            declared.messages.put_nowait(_Message(message.body, replay_headers(message.headers)))
        return count

"""What happens to a delivered message once its handler decided (`common.process`): acked,
forwarded to a retry queue with its attempt count, or forwarded to the dead-letter queue
with the reason, each copy confirmed before the original is acked."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from aio_pika import DeliveryMode, Message
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustChannel, AbstractRobustQueue
from opentelemetry.trace import Tracer

from switchboard_shared.adapters.bus.common import (
    ATTEMPT_HEADER,
    DEAD_LETTER_REASON_HEADER,
    Action,
    Verdict,
    attempt_of,
    dead_letter_queue,
    process,
    record_settled,
    without_broker_headers,
)
from switchboard_shared.adapters.bus.rabbitmq_topology import retry_queue
from switchboard_shared.ports import PublishError, Subscription

log = logging.getLogger(__name__)

_SYSTEM = "rabbitmq"


@dataclass
class Consumer:
    """One subscription as declared on the broker: its queue, channel and consumer tag."""

    subscription: Subscription
    queue_name: str
    channel: AbstractRobustChannel | None = None
    queue: AbstractRobustQueue | None = None
    consumer_tag: str | None = None


class RabbitSettling:
    """The consuming half of `RabbitBus`: run the handler, settle the message."""

    _tracer: Tracer
    _publish_channel: AbstractRobustChannel | None

    def _is_connected(self) -> bool:
        raise NotImplementedError

    @property
    def _safe_url(self) -> str:
        raise NotImplementedError

    async def _confirmed(self, publishing: Any, what: str) -> None:
        raise NotImplementedError

    async def _handle(self, consumer: Consumer, message: AbstractIncomingMessage) -> None:
        headers = dict(message.headers or {})
        verdict = await process(
            consumer.subscription,
            consumer.queue_name,
            message.body,
            headers,
            redelivered=bool(message.redelivered),
            tracer=self._tracer,
            system=_SYSTEM,
        )
        try:
            await self._settle(consumer.queue_name, message, headers, verdict)
        except Exception as exc:
            log.warning(
                "could not settle a message on %s; the broker will redeliver it: %r",
                consumer.queue_name,
                exc,
                extra={"queue": consumer.queue_name, "event_id": message.message_id},
            )

    async def _settle(
        self,
        queue: str,
        message: AbstractIncomingMessage,
        headers: dict[str, Any],
        verdict: Verdict,
    ) -> None:
        if verdict.action is Action.ACK:
            await message.ack()
            return
        if verdict.action is Action.RETRY:
            retry_headers = {**headers, ATTEMPT_HEADER: attempt_of(headers) + 1}
            try:
                await self._forward(message, retry_headers, retry_queue(queue, verdict.delay))
            except PublishError as exc:
                log.warning("retry not scheduled, requeueing on %s: %s", queue, exc)
                await message.nack(requeue=True)
                return
        else:
            dead_headers = {**headers, DEAD_LETTER_REASON_HEADER: verdict.reason[:500]}
            try:
                await self._forward(message, dead_headers, dead_letter_queue(queue))
            except PublishError as exc:
                # The queue's own dead-letter settings route it to the same DLQ.
                log.warning("dead-lettering through the broker on %s: %s", queue, exc)
                await message.reject(requeue=False)
                record_settled(queue, verdict)
                return
        await message.ack()
        record_settled(queue, verdict)

    async def _forward(
        self, message: AbstractIncomingMessage, headers: dict[str, Any], queue: str
    ) -> None:
        """Publish a copy of `message` to `queue` through the default exchange, confirmed."""
        channel = self._publish_channel
        if channel is None or not self._is_connected():
            raise PublishError(f"not connected to {self._safe_url}")
        copy = Message(
            body=message.body,
            headers=without_broker_headers(headers),
            message_id=message.message_id,
            content_type=message.content_type,
            delivery_mode=DeliveryMode.PERSISTENT,
            timestamp=message.timestamp,
            type=message.type,
        )
        await self._confirmed(
            channel.default_exchange.publish(copy, routing_key=queue, mandatory=True),
            f"{message.message_id} to {queue}",
        )

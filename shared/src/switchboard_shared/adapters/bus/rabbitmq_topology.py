"""The RabbitMQ topology of one subscription: a durable quorum work queue bound to the
topic exchange, a TTL retry queue per retry delay that dead-letters back into it, and a
dead-letter queue (docs/events.md draws it). Declaring is idempotent."""

from __future__ import annotations

from aio_pika import ExchangeType
from aio_pika.abc import AbstractRobustChannel, AbstractRobustConnection, AbstractRobustQueue

from switchboard_shared.adapters.bus.common import dead_letter_queue
from switchboard_shared.ports import Subscription

# Quorum queues move dead letters with publisher confirms internally, retrying until the
# target queue takes them (RabbitMQ 3.10+); the strategy requires `reject-publish`.
_AT_LEAST_ONCE_DEAD_LETTERING = {
    "x-dead-letter-strategy": "at-least-once",
    "x-overflow": "reject-publish",
}


def retry_queue(queue: str, delay: float) -> str:
    """The TTL queue holding `queue`'s messages for `delay` seconds before they return."""
    return f"{queue}.retry.{_milliseconds(delay)}"


def _milliseconds(seconds: float) -> int:
    return max(round(seconds * 1000), 0)


async def declare_subscription(
    connection: AbstractRobustConnection,
    exchange_name: str,
    name: str,
    subscription: Subscription,
    delivery_limit: int,
) -> tuple[AbstractRobustChannel, AbstractRobustQueue]:
    """Declare the work queue `name`, its retry queues and dead-letter queue, bind it,
    and return it with a channel of its own set to the subscription's prefetch."""
    channel = await connection.channel(publisher_confirms=False)
    await channel.set_qos(prefetch_count=max(subscription.prefetch, 1))
    exchange = await channel.declare_exchange(exchange_name, ExchangeType.TOPIC, durable=True)
    await channel.declare_queue(
        dead_letter_queue(name), durable=True, arguments={"x-queue-type": "quorum"}
    )
    for delay in sorted(set(subscription.retry_delays)):
        await channel.declare_queue(
            retry_queue(name, delay),
            durable=True,
            arguments={
                # Quorum, and at-least-once dead-lettering: a classic queue's TTL
                # expiry moves a message at most once, so a retry whose time came
                # while the broker restarted (the work queue not yet back) was lost.
                "x-queue-type": "quorum",
                "x-message-ttl": _milliseconds(delay),
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": name,
                **_AT_LEAST_ONCE_DEAD_LETTERING,
            },
        )
    queue = await channel.declare_queue(
        name,
        durable=True,
        arguments={
            "x-queue-type": "quorum",
            # A message that crashes its consumer (no ack, ever) is dead-lettered by
            # the broker after this many deliveries instead of looping forever.
            "x-delivery-limit": delivery_limit,
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": dead_letter_queue(name),
            **_AT_LEAST_ONCE_DEAD_LETTERING,
        },
    )
    for routing_key in subscription.routing_keys:
        await queue.bind(exchange, routing_key)
    return channel, queue

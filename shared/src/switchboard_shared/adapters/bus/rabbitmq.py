"""The Bus on RabbitMQ (aio-pika): confirmed, persistent, mandatory publishes on a durable
topic exchange; one durable quorum queue per subscription with manual acks, delayed
retries through TTL queues and a dead-letter queue. docs/events.md draws the topology.

The broker may be down when the process starts or go away later: `start()` makes one
bounded connection attempt and otherwise keeps trying in the background; meanwhile
`publish` raises PublishError (the outbox relay republishes later) and subscriptions wait
to be declared. Once connected, aio-pika's robust connection reconnects and restores
channels, queues, bindings and consumers by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Mapping
from functools import partial
from typing import Any

import aio_pika
from aio_pika import DeliveryMode, ExchangeType, Message
from aio_pika import exceptions as amqp
from aio_pika.abc import (
    AbstractIncomingMessage,
    AbstractRobustChannel,
    AbstractRobustConnection,
    AbstractRobustExchange,
)
from opentelemetry.trace import TracerProvider
from yarl import URL

from switchboard_shared.adapters.bus.common import (
    get_tracer,
    publish_span,
)
from switchboard_shared.adapters.bus.rabbitmq_operations import RabbitOperations, probe_broker
from switchboard_shared.adapters.bus.rabbitmq_settling import Consumer, RabbitSettling
from switchboard_shared.adapters.bus.rabbitmq_topology import declare_subscription, retry_queue
from switchboard_shared.calls.events import Event
from switchboard_shared.ports import PublishError, Subscription

log = logging.getLogger(__name__)

__all__ = ["RabbitBus", "probe_broker", "retry_queue"]

_SYSTEM = "rabbitmq"


class RabbitBus(RabbitSettling, RabbitOperations):
    """A `Bus` on RabbitMQ. Queue names are `queue_prefix + subscription.queue`."""

    def __init__(
        self,
        url: str,
        *,
        exchange: str = "switchboard.events",
        queue_prefix: str = "",
        delivery_limit: int = 20,
        connect_timeout: float = 5.0,
        publish_timeout: float = 5.0,
        reconnect_interval: float = 1.0,
        close_timeout: float = 30.0,
        connection_name: str = "switchboard",
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        self._url = url
        self._exchange_name = exchange
        self._prefix = queue_prefix
        self._delivery_limit = delivery_limit
        self._connect_timeout = connect_timeout
        self._publish_timeout = publish_timeout
        self._reconnect_interval = reconnect_interval
        self._close_timeout = close_timeout
        self._connection_name = connection_name
        self._tracer = get_tracer(tracer_provider)

        self._connection: AbstractRobustConnection | None = None
        self._publish_channel: AbstractRobustChannel | None = None
        self._exchange: AbstractRobustExchange | None = None
        self._connecting: asyncio.Task[None] | None = None
        # Serializes declaring subscriptions: at connect time and from `subscribe`.
        self._declare_lock = asyncio.Lock()
        self._consumers: list[Consumer] = []
        self._in_flight: set[asyncio.Task[None]] = set()
        self._consuming = True

    @property
    def _safe_url(self) -> str:
        url = URL(self._url)
        return str(url.with_password("***")) if url.password else str(url)

    # --- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Connect and declare the exchange. When the broker does not answer within
        `connect_timeout`, returns anyway and keeps connecting in the background."""
        self._consuming = True
        try:
            connection = await self._connect_once()
        except PublishError as exc:
            log.warning("broker unreachable, will keep trying: %s", exc)
            self._connecting = asyncio.create_task(self._keep_connecting(), name="bus-connect")
            return
        await self._on_connected(connection)

    async def _connect_once(self) -> AbstractRobustConnection:
        attempt = asyncio.ensure_future(
            aio_pika.connect_robust(
                self._url,
                timeout=self._connect_timeout,
                reconnect_interval=self._reconnect_interval,
                client_properties={"connection_name": self._connection_name},
            )
        )
        try:
            # Shielded: a cancelled or timed-out wait must not leave a connection that
            # completes later and is never closed.
            return await asyncio.wait_for(asyncio.shield(attempt), self._connect_timeout + 1)
        except BaseException as exc:
            attempt.add_done_callback(_close_if_connected)
            if isinstance(exc, Exception):
                raise PublishError(f"cannot connect to {self._safe_url}: {exc!r}") from exc
            raise

    async def _keep_connecting(self) -> None:
        delay = self._reconnect_interval
        while True:
            await asyncio.sleep(delay)
            try:
                connection = await self._connect_once()
            except PublishError as exc:
                log.info("broker still unreachable: %s", exc)
                delay = min(delay * 2, 30.0)
                continue
            try:
                await self._on_connected(connection)
            except Exception:
                # The broker went away again mid-way, or the topology conflicts with
                # what exists: start over on a fresh connection; the log says which.
                log.exception("declaring the bus topology failed")
                self._connection = self._exchange = self._publish_channel = None
                for consumer in self._consumers:
                    consumer.channel = consumer.queue = consumer.consumer_tag = None
                with contextlib.suppress(Exception):
                    await connection.close()
                continue
            return

    async def _on_connected(self, connection: AbstractRobustConnection) -> None:
        self._connection = connection
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        self._exchange = await channel.declare_exchange(
            self._exchange_name, ExchangeType.TOPIC, durable=True
        )
        self._publish_channel = channel
        # Later reconnects restore what was declared; this declares what was not.
        connection.reconnect_callbacks.add(self._on_reconnected)
        log.info("connected to %s", self._safe_url)
        await self._declare_pending()

    async def _declare_pending(self) -> None:
        async with self._declare_lock:
            for consumer in self._consumers:
                if consumer.queue is None:
                    await self._declare(consumer)

    async def _on_reconnected(self, _connection: object) -> None:
        log.info("reconnected to %s", self._safe_url)
        # aio-pika restores channels and consumers itself, but a channel whose restore
        # failed (the broker went away again mid-way) stays closed and its queue silent:
        # such a consumer is declared afresh on a new channel.
        for consumer in self._consumers:
            if consumer.channel is not None and consumer.channel.is_closed:
                log.warning(
                    "consumer of %s lost its channel: declaring it again", consumer.queue_name
                )
                consumer.channel = consumer.queue = consumer.consumer_tag = None
        try:
            await self._declare_pending()
        except Exception:
            log.exception("declaring a subscription after reconnecting failed")

    def _is_connected(self) -> bool:
        connection = self._connection
        return bool(connection and connection.connected.is_set() and not connection.is_closed)

    async def ping(self) -> None:
        """Raises PublishError unless the broker answers (opens and closes a channel)."""
        if not self._is_connected() or self._connection is None:
            raise PublishError(f"not connected to {self._safe_url}")
        try:
            async with asyncio.timeout(self._publish_timeout):
                channel = await self._connection.channel(publisher_confirms=False)
                await channel.close()
        except Exception as exc:
            raise PublishError(f"broker did not answer: {exc!r}") from exc

    async def stop_consuming(self) -> None:
        """Cancel every consumer: no new deliveries; handlers running go on and settle."""
        self._consuming = False
        # While disconnected a cancel would wait for the broker; the robust queue forgets
        # the consumer before it waits, so no reconnect revives it: don't wait long.
        timeout = self._publish_timeout if self._is_connected() else 0.1
        for consumer in self._consumers:
            tag, consumer.consumer_tag = consumer.consumer_tag, None
            if tag and consumer.queue is not None:
                try:
                    await asyncio.wait_for(consumer.queue.cancel(tag), timeout)
                except Exception as exc:
                    log.warning("cancelling consumer on %s failed: %r", consumer.queue_name, exc)

    async def close(self) -> None:
        """Stop consuming, wait up to `close_timeout` for running handlers, then
        disconnect: messages not acked by then go back to their queue."""
        await self.stop_consuming()
        if self._in_flight:
            _, pending = await asyncio.wait(set(self._in_flight), timeout=self._close_timeout)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._connecting:
            self._connecting.cancel()
            await asyncio.gather(self._connecting, return_exceptions=True)
            self._connecting = None
        connection, self._connection = self._connection, None
        self._exchange = self._publish_channel = None
        for consumer in self._consumers:
            consumer.channel = consumer.queue = None
        if connection is not None:
            await connection.close()

    # --- publishing --------------------------------------------------------------------

    async def publish(self, event: Event, headers: Mapping[str, str] | None = None) -> None:
        """Publish persistent and mandatory with routing key `event.type`; returns once the
        broker confirmed. PublishError when not connected, unroutable, nacked or not
        confirmed within `publish_timeout`."""
        exchange = self._exchange
        if exchange is None or not self._is_connected():
            raise PublishError(f"not connected to {self._safe_url}")
        with publish_span(
            self._tracer, event, headers, system=_SYSTEM, destination=self._exchange_name
        ) as carrier:
            message = Message(
                body=event.to_bytes(),
                headers=carrier,
                message_id=event.id,
                content_type="application/json",
                delivery_mode=DeliveryMode.PERSISTENT,
                timestamp=event.occurred_at,
                type=str(event.type),
            )
            await self._confirmed(
                exchange.publish(message, routing_key=event.type, mandatory=True),
                f"{event.type} {event.id}",
            )

    async def _confirmed(self, publishing: Awaitable[Any], what: str) -> None:
        try:
            await asyncio.wait_for(publishing, self._publish_timeout)
        except amqp.PublishError as exc:
            raise PublishError(f"unroutable: no queue is bound for {what}") from exc
        except amqp.DeliveryError as exc:
            raise PublishError(f"broker nacked {what}") from exc
        except TimeoutError as exc:
            raise PublishError(f"no confirm within {self._publish_timeout}s for {what}") from exc
        except Exception as exc:
            raise PublishError(f"publishing {what} failed: {exc!r}") from exc

    # --- consuming ---------------------------------------------------------------------

    async def subscribe(self, subscription: Subscription) -> None:
        """Declare the topology and start consuming now, or as soon as the broker is
        reachable when it is not (then this returns at once)."""
        consumer = Consumer(subscription, self._prefix + subscription.queue)
        async with self._declare_lock:
            self._consumers.append(consumer)
            if self._publish_channel is not None and self._is_connected():
                await self._declare(consumer)

    async def _declare(self, consumer: Consumer) -> None:
        assert self._connection is not None
        consumer.channel, consumer.queue = await declare_subscription(
            self._connection,
            self._exchange_name,
            consumer.queue_name,
            consumer.subscription,
            self._delivery_limit,
        )
        if self._consuming:
            consumer.consumer_tag = await consumer.queue.consume(
                partial(self._on_message, consumer)
            )

    async def _on_message(self, consumer: Consumer, message: AbstractIncomingMessage) -> None:
        # The handler runs in a task of our own: aio-pika cancels its callback tasks when a
        # channel closes, and a handler cut off mid-way (say, after placing a call) is
        # worse than one that finishes and whose ack fails (the redelivery is deduped).
        task = asyncio.create_task(self._handle(consumer, message))
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)


def _close_if_connected(attempt: asyncio.Future[Any]) -> None:
    if attempt.cancelled() or attempt.exception() is not None:
        return
    with contextlib.suppress(RuntimeError):  # no running loop at interpreter exit
        asyncio.get_running_loop().create_task(attempt.result().close())

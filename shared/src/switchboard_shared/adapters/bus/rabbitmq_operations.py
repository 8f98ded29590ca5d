"""What operators ask of RabbitMQ beside the message flow: how deep a queue is, and the
dead letters of a queue (peek, replay). `RabbitBus` has these through `RabbitOperations`;
`probe_broker` is the doctor's connection check."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import aio_pika
from aio_pika import exceptions as amqp
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustChannel, AbstractRobustConnection

from switchboard_shared.adapters.bus.common import DeadLetter, dead_letter_queue, replay_headers
from switchboard_shared.ports import PublishError

log = logging.getLogger(__name__)


class RabbitOperations:
    """The operator side of `RabbitBus`, on channels of their own (no confirms)."""

    _prefix: str
    _publish_timeout: float
    _connection: AbstractRobustConnection | None

    def _is_connected(self) -> bool:
        raise NotImplementedError

    @property
    def _safe_url(self) -> str:
        raise NotImplementedError

    async def _forward(
        self, message: AbstractIncomingMessage, headers: dict[str, Any], queue: str
    ) -> None:
        raise NotImplementedError

    async def queue_depth(self, queue: str) -> int:
        channel = await self._operator_channel()
        try:
            async with asyncio.timeout(self._publish_timeout):
                declared = await channel.declare_queue(self._prefix + queue, passive=True)
            return declared.declaration_result.message_count or 0
        except amqp.ChannelNotFoundEntity:
            return 0  # not declared yet: nothing waits in it
        except Exception as exc:  # the connection went away mid-way, or it is too slow
            raise PublishError(f"queue depth of {queue} unknown: {exc!r}") from exc
        finally:
            with contextlib.suppress(Exception):
                await channel.close()

    async def peek_dead_letters(self, queue: str, limit: int = 100) -> list[DeadLetter]:
        """Up to `limit` messages of `<queue>.dlq` (`queue` as given to `subscribe`),
        oldest first; they stay in the queue."""
        channel = await self._operator_channel()
        try:
            dead = await channel.get_queue(dead_letter_queue(self._prefix + queue))
            peeked: list[DeadLetter] = []
            while len(peeked) < limit:
                message = await dead.get(no_ack=False, fail=False)
                if message is None:
                    break
                peeked.append(DeadLetter(message.body, dict(message.headers or {})))
        finally:
            with contextlib.suppress(Exception):
                await channel.close()  # unacked, so every peeked message goes back
        return peeked

    async def replay_dead_letters(self, queue: str, limit: int | None = None) -> int:
        """Send messages of `<queue>.dlq` back to `queue` as fresh first attempts, oldest
        first; returns how many. Only what was there when called is taken, so a message
        that fails again is not replayed twice."""
        name = self._prefix + queue
        channel = await self._operator_channel()
        replayed = 0
        try:
            dead = await channel.declare_queue(dead_letter_queue(name), passive=True)
            waiting = dead.declaration_result.message_count or 0
            budget = waiting if limit is None else min(limit, waiting)
            while replayed < budget:
                message = await dead.get(no_ack=False, fail=False)
                if message is None:
                    break
                await self._forward(message, replay_headers(dict(message.headers or {})), name)
                await message.ack()
                replayed += 1
        finally:
            with contextlib.suppress(Exception):
                await channel.close()
        log.info("replayed %d dead letters to %s", replayed, name)
        return replayed

    async def _operator_channel(self) -> AbstractRobustChannel:
        if self._connection is None or not self._is_connected():
            raise PublishError(f"not connected to {self._safe_url}")
        return await self._connection.channel(publisher_confirms=False)


async def probe_broker(url: str) -> None:
    """Connect, open a channel and close again, declaring nothing (`switchboard doctor`;
    the caller bounds it in time). Raises PublishError when the broker does not answer;
    its message holds no part of the URL, so no password."""
    try:
        connection = await aio_pika.connect(
            url, client_properties={"connection_name": "switchboard-doctor"}
        )
        try:
            channel = await connection.channel(publisher_confirms=False)
            await channel.close()
        finally:
            await connection.close()
    except Exception as exc:
        raise PublishError(f"cannot connect: {exc}") from exc

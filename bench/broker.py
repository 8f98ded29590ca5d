"""The run's own topology on RabbitMQ: a unique exchange and queue prefix (`bench.<run>.`),
so a run disturbs neither the test suite nor another run on the same broker; the depths of
its queues; and deleting all of it afterwards."""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass
from types import TracebackType

import aio_pika

from switchboard_dialer.dialing import QUEUE as DIALER_QUEUE
from switchboard_notifier.handler import HANDLER_RETRY_DELAYS
from switchboard_notifier.handler import QUEUE as NOTIFIER_QUEUE
from switchboard_shared.adapters.bus.common import dead_letter_queue
from switchboard_shared.adapters.bus.rabbitmq import retry_queue

# Retry schedules short enough that one retried message still lands within --timeout.
# Each delay is a retry queue of its own, so they shape the topology too.
DIAL_RETRY_DELAYS = [1.0, 5.0, 15.0]
WEBHOOK_RETRY_DELAYS = [1.0, 5.0, 15.0]


def queue_names(prefix: str) -> dict[str, str]:
    """Every queue the run's services declare on the broker, by a short label."""
    names: dict[str, str] = {}
    for short, queue, delays in (
        ("dialer", DIALER_QUEUE, DIAL_RETRY_DELAYS),
        # Webhook retries wait in the store; the notifier's bus retries use these delays.
        ("notifier", NOTIFIER_QUEUE, list(HANDLER_RETRY_DELAYS)),
    ):
        name = prefix + queue
        names[short] = name
        names[f"{short}.dlq"] = dead_letter_queue(name)
        for delay in delays:
            names[f"{short}.retry.{delay:g}s"] = retry_queue(name, delay)
    return names


@dataclass(frozen=True)
class Topology:
    url: str
    exchange: str
    prefix: str
    queues: dict[str, str]  # label → queue name

    @classmethod
    def for_run(cls, url: str, run: str) -> Topology:
        prefix = f"bench.{run}."
        return cls(url, f"bench.{run}.events", prefix, queue_names(prefix))

    def env(self) -> dict[str, str]:
        """The services' broker settings."""
        return {
            "SWITCHBOARD_BROKER_URL": self.url,
            "SWITCHBOARD_EXCHANGE": self.exchange,
            "SWITCHBOARD_QUEUE_PREFIX": self.prefix,
            "SWITCHBOARD_DIAL_RETRY_DELAYS": json.dumps(DIAL_RETRY_DELAYS),
            "SWITCHBOARD_WEBHOOK_RETRY_DELAYS": json.dumps(WEBHOOK_RETRY_DELAYS),
        }

    def dead_letter_queues(self) -> dict[str, str]:
        return {k: v for k, v in self.queues.items() if "dlq" in k}

    async def delete(self) -> list[str]:
        """Delete the run's queues and exchange; returns what could not be deleted."""
        problems: list[str] = []
        connection = await aio_pika.connect(self.url, timeout=10)
        try:
            for name in self.queues.values():
                channel = await connection.channel()
                try:
                    await channel.queue_delete(name)
                except aio_pika.exceptions.AMQPError as exc:
                    problems.append(f"queue {name}: {exc}")
                finally:
                    if not channel.is_closed:
                        await channel.close()
            channel = await connection.channel()
            try:
                await channel.exchange_delete(self.exchange)
            except aio_pika.exceptions.AMQPError as exc:
                problems.append(f"exchange {self.exchange}: {exc}")
        finally:
            await connection.close()
        return problems

    def remove(self) -> None:
        """Blocking `delete`, for the clean-up outside the event loop; reports problems."""
        try:
            problems = asyncio.run(self.delete())
        except Exception as exc:
            problems = [repr(exc)]
        if problems:
            print(f"broker cleanup incomplete: {problems}", file=sys.stderr)


class DepthProbe:
    """Ready messages in queues (passive declares, nothing consumed), over one connection
    kept open: `async with DepthProbe(url) as probe: await probe.depths(queues)`."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._connection: aio_pika.abc.AbstractConnection | None = None
        self._channel: aio_pika.abc.AbstractChannel | None = None

    async def __aenter__(self) -> DepthProbe:
        self._connection = await aio_pika.connect(self.url, timeout=10)
        self._channel = await self._connection.channel()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._connection is not None:
            await self._connection.close()

    async def depths(self, queues: dict[str, str]) -> dict[str, int]:
        """Depth by label; a queue that cannot be declared (not there yet) is left out."""
        assert self._connection is not None, "use it in `async with`"
        assert self._channel is not None
        found: dict[str, int] = {}
        for label, queue in queues.items():
            try:
                declared = await self._channel.declare_queue(queue, passive=True)
            except aio_pika.exceptions.AMQPError:
                self._channel = await self._connection.channel()  # the broker closed it
                continue
            found[label] = declared.declaration_result.message_count or 0
        return found


async def queue_depths(url: str, queues: dict[str, str]) -> dict[str, int]:
    """A one-off look: the queues that hold messages, by label."""
    async with DepthProbe(url) as probe:
        depths = await probe.depths(queues)
    return {k: v for k, v in depths.items() if v}

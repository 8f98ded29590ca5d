"""`switchboard dlq list|replay`: an operator sees why messages were dead-lettered and
sends them back to their consumer, on the real RabbitMQ."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator

import aio_pika
import pytest

from switchboard_shared.adapters.bus.rabbitmq import RabbitBus
from switchboard_shared.calls.events import Event, EventType
from switchboard_shared.ports import MessageContext, Reject, Subscription
from switchboard_testing.net import free_port
from tests.support.net import eventually

QUEUE = "notifier.events"


@pytest.fixture
async def bus(broker_url: str, unique_name: str) -> AsyncIterator[RabbitBus]:
    bus = RabbitBus(broker_url, exchange=f"{unique_name}.events", queue_prefix=f"{unique_name}.")
    await bus.start()
    try:
        yield bus
    finally:
        await bus.close()
        connection = await aio_pika.connect(broker_url)
        async with connection:
            channel = await connection.channel()
            prefix = f"{unique_name}.{QUEUE}"
            for name in (prefix, f"{prefix}.dlq", f"{prefix}.retry.100"):
                await channel.queue_delete(name)
            await channel.exchange_delete(f"{unique_name}.events")


def switchboard(broker_url: str, unique_name: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
    env |= {
        "SWITCHBOARD_BROKER_URL": broker_url,
        "SWITCHBOARD_EXCHANGE": f"{unique_name}.events",
        "SWITCHBOARD_QUEUE_PREFIX": f"{unique_name}.",
    }
    return subprocess.run(
        [sys.executable, "-m", "switchboard.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_dead_letters_are_listed_with_their_reason_and_replayed(
    bus: RabbitBus, broker_url: str, unique_name: str
) -> None:
    refusing = True
    handled: list[str] = []

    async def handler(event: Event, _: MessageContext) -> None:
        if refusing:
            raise Reject("receiver configuration is broken")
        handled.append(event.id)

    await bus.subscribe(Subscription(QUEUE, ("call.*",), handler, retry_delays=(0.1,), prefetch=5))
    event = Event(type=EventType.CALL_COMPLETED, tenant_id="t", call_id="c-1")
    await bus.publish(event)

    async def dead_lettered() -> bool:
        return len(await bus.peek_dead_letters(QUEUE)) == 1

    await eventually(dead_lettered, within=15)

    listed = await asyncio.to_thread(switchboard, broker_url, unique_name, "dlq", "list", QUEUE)
    assert listed.returncode == 0, listed.stderr
    assert event.id in listed.stdout
    assert "call.completed" in listed.stdout
    assert "receiver configuration is broken" in listed.stdout
    assert not handled  # listing leaves the message where it is

    refusing = False
    replayed = await asyncio.to_thread(switchboard, broker_url, unique_name, "dlq", "replay", QUEUE)
    assert replayed.returncode == 0, replayed.stderr
    assert "replayed 1 message" in replayed.stdout

    async def handled_once() -> bool:
        return handled == [event.id]

    await eventually(handled_once, within=15)
    assert await bus.peek_dead_letters(QUEUE) == []


def test_dead_letter_commands_need_the_broker_url() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
    result = subprocess.run(
        [sys.executable, "-m", "switchboard.cli", "dlq", "list", QUEUE],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "SWITCHBOARD_BROKER_URL" in result.stderr


def test_an_unreachable_broker_exits_1_with_one_line() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
    env["SWITCHBOARD_BROKER_URL"] = f"amqp://operator:hunter2secret@127.0.0.1:{free_port()}/"
    for command in ("list", "replay"):
        result = subprocess.run(
            [sys.executable, "-m", "switchboard.cli", "dlq", command, QUEUE],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 1, result.stderr
        (line,) = result.stderr.strip().splitlines()  # no traceback, no driver log
        assert line.startswith("Error: broker unavailable")
        assert "hunter2secret" not in line


async def test_a_queue_that_does_not_exist_exits_1(broker_url: str, unique_name: str) -> None:
    try:
        # Nothing declared this prefix's queues: a wrong SWITCHBOARD_QUEUE_PREFIX, say.
        result = await asyncio.to_thread(switchboard, broker_url, unique_name, "dlq", "list", QUEUE)
        assert result.returncode == 1, result.stderr
        (line,) = result.stderr.strip().splitlines()
        assert "SWITCHBOARD_QUEUE_PREFIX" in line
    finally:
        connection = await aio_pika.connect(broker_url)
        async with connection:
            channel = await connection.channel()
            await channel.exchange_delete(f"{unique_name}.events")  # the CLI declared it

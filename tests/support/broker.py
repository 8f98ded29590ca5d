"""This machine's RabbitMQ as a fault: stop and start the node's application with
`rabbitmqctl` (a real outage: connections drop, TTL queues stop ticking, queues recover
from disk), and read queue depths over AMQP without consuming anything."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from collections.abc import Iterable

import aio_pika
from aio_pika import exceptions as amqp


def can_stop_broker() -> bool:
    """True when this process may stop the local node: rabbitmqctl is here and we are root."""
    return (
        shutil.which("rabbitmqctl") is not None
        and shutil.which("rabbitmq-diagnostics") is not None
        and hasattr(os, "geteuid")
        and os.geteuid() == 0
    )


async def _run(*command: str, within: float = 60.0) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), within)
    except TimeoutError:
        process.kill()
        await process.wait()
        return -1, f"{' '.join(command)}: no answer within {within}s"
    return process.returncode or 0, output.decode(errors="replace")


async def stop_broker() -> None:
    """`rabbitmqctl stop_app`: the node stays up, RabbitMQ itself stops."""
    code, output = await _run("rabbitmqctl", "stop_app")
    if code != 0:
        raise RuntimeError(f"rabbitmqctl stop_app failed ({code}): {output}")


async def start_broker(within: float = 90.0) -> None:
    """`rabbitmqctl start_app`, then wait until the node reports it is running."""
    code, output = await _run("rabbitmqctl", "start_app", within=within)
    if code != 0:
        raise RuntimeError(f"rabbitmqctl start_app failed ({code}): {output}")
    await wait_broker_running(within)


async def wait_broker_running(within: float = 90.0) -> None:
    deadline = time.monotonic() + within
    output = ""
    while time.monotonic() < deadline:
        code, output = await _run("rabbitmq-diagnostics", "-q", "check_running", within=30)
        if code == 0:
            return
        await asyncio.sleep(0.5)
    raise TimeoutError(f"RabbitMQ not running after {within}s: {output}")


def ensure_broker_running() -> None:
    """Blocking; for teardown: start the app again if a test left it stopped."""
    if not can_stop_broker():
        return
    check = ["rabbitmq-diagnostics", "-q", "check_running"]
    if subprocess.run(check, capture_output=True, timeout=60, check=False).returncode == 0:
        return
    subprocess.run(["rabbitmqctl", "start_app"], capture_output=True, timeout=120, check=False)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if subprocess.run(check, capture_output=True, timeout=60, check=False).returncode == 0:
            return
        time.sleep(0.5)


async def queue_depths(url: str, names: Iterable[str]) -> dict[str, int | None]:
    """Ready messages in each queue (passive declare); None for a queue that does not
    exist. Raises when the broker cannot be reached."""
    depths: dict[str, int | None] = {}
    connection = await aio_pika.connect(url, timeout=5)
    try:
        for name in names:
            channel = await connection.channel()
            try:
                queue = await channel.declare_queue(name, passive=True)
                depths[name] = queue.declaration_result.message_count or 0
            except amqp.ChannelClosed:
                depths[name] = None  # the broker closes the channel: no such queue
            finally:
                if not channel.is_closed:
                    await channel.close()
    finally:
        await connection.close()
    return depths

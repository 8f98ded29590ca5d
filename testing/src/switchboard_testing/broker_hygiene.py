"""Test runs leave nothing on the shared RabbitMQ.

Every queue the services declare is a durable quorum queue: one a test run does not
delete stays, with its Raft processes and files, across broker restarts. Hundreds of them
(killed runs, e2e modules that never cleaned up) exhausted the broker's 1,024 file
descriptors here, and the broker then accepted TCP connections without ever answering
AMQP: every test waited out its timeout.

So test prefixes carry their creation time (`run_prefix`), each e2e system deletes its
queues when it stops (`delete_prefixed`), and a run's start deletes what older runs left
(`purge_stale`). `python -m switchboard_testing.broker_hygiene --all` (CI, before the
suite, when nothing else runs) also deletes test queues of any age and of the names used
before the timestamps.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Sequence

import aio_pika
from aio_pika import exceptions as amqp

MAX_AGE_SECONDS = 3 * 3600  # no test run lasts this long
# `<kind><epoch seconds>x<random>`: kind `t` (a test's unique name) or `e2e` (a system).
_STAMPED = re.compile(r"^(?:t|e2e\.)(\d{10})x[0-9a-f]+\.")
# Before the timestamps: `t<12 hex>.` and `e2e.<10 hex>.`.
_LEGACY = re.compile(r"^(?:t[0-9a-f]{12}|e2e\.[0-9a-f]{10})\.")


def run_prefix(kind: str = "t") -> str:
    """A name no other run uses, stamped with now: `t1764741234x3fa9c2`."""
    separator = "." if kind == "e2e" else ""
    return f"{kind}{separator}{int(time.time())}x{uuid.uuid4().hex[:6]}"


def stale(name: str, now: float, *, include_legacy: bool = False) -> bool:
    """Whether `name` is a test queue or exchange old enough to delete."""
    if (stamped := _STAMPED.match(name)) is not None:
        return now - int(stamped.group(1)) > MAX_AGE_SECONDS
    return include_legacy and _LEGACY.match(name) is not None


def listed(kind: str = "queues") -> list[str]:
    """Names of the local broker's queues (or exchanges), via rabbitmqctl; empty when
    rabbitmqctl is not here (a remote broker: its owner keeps it clean)."""
    if shutil.which("rabbitmqctl") is None:
        return []
    result = subprocess.run(
        ["rabbitmqctl", "-q", f"list_{kind}", "name"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        return []
    names = [line.strip() for line in result.stdout.splitlines()]
    return [name for name in names if name and name != "name"]  # the header, if printed


async def delete(url: str, queues: Sequence[str], exchanges: Sequence[str] = ()) -> int:
    """Delete these queues and exchanges over AMQP (fast, unlike rabbitmqctl per name)."""
    if not queues and not exchanges:
        return 0
    deleted = 0
    connection = await aio_pika.connect(url, timeout=10)
    async with connection:
        for name in queues:
            channel = await connection.channel()
            try:
                await channel.queue_delete(name)
                deleted += 1
            except amqp.ChannelClosed:
                pass  # gone meanwhile
            finally:
                if not channel.is_closed:
                    await channel.close()
        channel = await connection.channel()
        for name in exchanges:
            try:
                await channel.exchange_delete(name)
            except amqp.ChannelClosed:
                channel = await connection.channel()
    return deleted


async def delete_prefixed(url: str, prefix: str, exchange: str | None = None) -> int:
    """Delete every queue named `prefix…` (and `exchange`): an e2e system's teardown."""
    queues = [name for name in await asyncio.to_thread(listed) if name.startswith(prefix)]
    return await delete(url, queues, [exchange] if exchange else [])


async def purge_stale(url: str, *, include_legacy: bool = False) -> int:
    now = time.time()
    queues = [
        q for q in await asyncio.to_thread(listed) if stale(q, now, include_legacy=include_legacy)
    ]
    exchanges = [
        e
        for e in await asyncio.to_thread(listed, "exchanges")
        if stale(e, now, include_legacy=include_legacy)
    ]
    return await delete(url, queues, exchanges)


def main() -> None:
    parser = argparse.ArgumentParser(description="Delete test queues older runs left.")
    parser.add_argument("--url", default="amqp://guest:guest@127.0.0.1:5672/")
    parser.add_argument(
        "--all", action="store_true", help="also legacy names (run only when no test runs)"
    )
    args = parser.parse_args()
    if args.all:
        now = time.time() + MAX_AGE_SECONDS + 1  # every stamped name counts as old
        queues = [q for q in listed() if stale(q, now, include_legacy=True)]
        exchanges = [e for e in listed("exchanges") if stale(e, now, include_legacy=True)]
        count = asyncio.run(delete(args.url, queues, exchanges))
    else:
        count = asyncio.run(purge_stale(args.url))
    print(f"deleted {count} test queues left by earlier runs")


if __name__ == "__main__":
    main()

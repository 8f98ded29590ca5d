"""Fixtures every test layer shares: the real RabbitMQ and a MongoDB server."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import aio_pika
import pytest

from switchboard_testing.broker_hygiene import purge_stale, run_prefix
from switchboard_testing.mongo import mongodb_server
from tests.support.broker import ensure_broker_running

DEFAULT_BROKER_URL = "amqp://guest:guest@127.0.0.1:5672/"

# CI stops a run at 90 minutes without a report; a run that is this late is broken
# (normally ~10 minutes), so it stops itself and says so while there is time to print.
RUN_BUDGET_SECONDS = float(os.environ.get("SWITCHBOARD_TEST_BUDGET_SECONDS", 75 * 60))
_run_started = time.monotonic()


def pytest_runtest_setup(item: pytest.Item) -> None:
    elapsed = time.monotonic() - _run_started
    if elapsed > RUN_BUDGET_SECONDS:
        pytest.exit(
            f"test run over its budget ({elapsed:.0f}s > {RUN_BUDGET_SECONDS:.0f}s), "
            f"stopped before {item.nodeid}",
            returncode=3,
        )


@pytest.fixture(scope="session")
def broker_url() -> str:
    """The broker, checked once: a broker that cannot round-trip a message would make
    every test that uses it wait out its timeout, so the run stops at once instead."""
    url = os.environ.get("SWITCHBOARD_TEST_BROKER_URL", DEFAULT_BROKER_URL)
    ensure_broker_running()  # an earlier run killed during an outage test leaves it stopped
    try:
        # In a thread of its own: this thread's event loop belongs to pytest-asyncio.
        with ThreadPoolExecutor(1) as thread:
            thread.submit(asyncio.run, asyncio.wait_for(_round_trip(url), 30)).result()
            # What killed or older runs left would pile up until the broker chokes.
            thread.submit(asyncio.run, purge_stale(url)).result()
    except Exception as error:  # any failure means the same: no broker
        pytest.exit(f"RabbitMQ at {url} does not round-trip a message: {error!r}", returncode=3)
    return url


async def _round_trip(url: str) -> None:
    connection = await aio_pika.connect(url, timeout=10)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await channel.default_exchange.publish(aio_pika.Message(b"probe"), queue.name)
        for _ in range(100):
            if (message := await queue.get(no_ack=True, fail=False)) is not None:
                assert message.body == b"probe"
                return
            await asyncio.sleep(0.1)
        raise TimeoutError("published a probe message and never got it back")


@pytest.fixture(scope="session")
def mongodb_url() -> Iterator[str]:
    with mongodb_server() as url:
        yield url


@pytest.fixture
def unique_name() -> str:
    """A name no other test run uses, for queue prefixes and database names; stamped
    with its time, so a later run can delete its queues if this one does not."""
    return run_prefix("t")

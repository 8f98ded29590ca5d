"""Fixtures every test layer shares: the real RabbitMQ and a MongoDB server."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from tests.support.mongo import mongodb_server

DEFAULT_BROKER_URL = "amqp://guest:guest@127.0.0.1:5672/"


@pytest.fixture(scope="session")
def broker_url() -> str:
    return os.environ.get("SWITCHBOARD_TEST_BROKER_URL", DEFAULT_BROKER_URL)


@pytest.fixture(scope="session")
def mongodb_url() -> Iterator[str]:
    with mongodb_server() as url:
        yield url


@pytest.fixture
def unique_name() -> str:
    """A name no other test run uses: for queue prefixes and database names."""
    return f"t{uuid.uuid4().hex[:12]}"

"""ClientShards: requests spread over small clients, the least busy first."""

from __future__ import annotations

import asyncio
import sys
from contextlib import ExitStack

import httpx

from switchboard_shared.http.client_shards import ClientShards


def _answering() -> ClientShards:
    transport = httpx.MockTransport(lambda _: httpx.Response(204))
    return ClientShards(20, per_client=8, transport=transport)


async def test_enough_small_clients_are_made_that_never_queue_a_request() -> None:
    shards = ClientShards(20, per_client=8, keepalive_expiry=4.0)
    try:
        with ExitStack() as held:
            clients = [held.enter_context(shards.client()) for _ in range(4)]
        assert len({id(client) for client in clients}) == 3  # 20 connections, 8 a client
        assert clients[3] is clients[0]
        # httpx keeps the limits in its transport's pool (no public accessor).
        pools = [client._transport._pool for client in clients[:3]]  # type: ignore[attr-defined]
        assert {p._max_connections for p in pools} == {sys.maxsize}  # no cap
        assert {p._max_keepalive_connections for p in pools} == {8}
        assert {p._keepalive_expiry for p in pools} == {4.0}
        # One TLS context for all of them.
        assert len({id(p._ssl_context) for p in pools}) == 1
    finally:
        await shards.aclose()


async def test_each_request_takes_the_least_busy_client() -> None:
    shards = _answering()
    try:
        with ExitStack() as held:
            busy = [held.enter_context(shards.client()) for _ in range(6)]
        # Six at once over three clients: two each.
        assert [busy.count(client) for client in set(busy)] == [2, 2, 2]
        with shards.client() as first, shards.client() as second:
            assert first is not second
        # Nothing in flight: the first client again.
        with shards.client() as again:
            assert again is busy[0]
    finally:
        await shards.aclose()


async def test_requests_through_the_clients_are_answered_and_close_closes_them_all() -> None:
    shards = _answering()

    async def one() -> int:
        with shards.client() as client:
            await asyncio.sleep(0)  # others take their clients meanwhile
            return (await client.get("http://switchboard.test/")).status_code

    assert set(await asyncio.gather(*(one() for _ in range(30)))) == {204}
    await shards.aclose()
    with shards.client() as client:
        assert client.is_closed

"""ClientShards: requests spread over small clients, the least busy first."""

from __future__ import annotations

import asyncio
from contextlib import ExitStack

import httpx

from switchboard_shared.http.client_shards import ClientShards


def _made() -> tuple[list[httpx.Limits], ClientShards]:
    limits: list[httpx.Limits] = []

    def make(given: httpx.Limits) -> httpx.AsyncClient:
        limits.append(given)
        return httpx.AsyncClient(transport=httpx.MockTransport(lambda _: httpx.Response(204)))

    return limits, ClientShards(make, connections=20, per_client=8)


async def test_enough_small_clients_are_made_that_never_queue_a_request() -> None:
    limits, shards = _made()
    try:
        assert len(limits) == 3  # 20 connections, 8 a client
        assert {(lim.max_connections, lim.max_keepalive_connections) for lim in limits} == {
            (None, 8)
        }
    finally:
        await shards.aclose()


async def test_each_request_takes_the_least_busy_client() -> None:
    _, shards = _made()
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
    _, shards = _made()

    async def one() -> int:
        with shards.client() as client:
            await asyncio.sleep(0)  # others take their clients meanwhile
            return (await client.get("http://switchboard.test/")).status_code

    assert set(await asyncio.gather(*(one() for _ in range(30)))) == {204}
    await shards.aclose()
    with shards.client() as client:
        assert client.is_closed

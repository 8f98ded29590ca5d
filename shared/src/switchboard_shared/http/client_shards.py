"""Several small httpx clients in place of one with many connections.

httpcore's pool, whenever a request starts or ends, walks all its connections (for each
idle one, polls its socket and counts the others again) and, for each request waiting,
walks them twice more (encode/httpcore#1035): its cost per request grows with the
number of connections. Measured (`bench/http_pool.py`, bench/RESULTS.md): 48 requests
in flight on one client of 48 connections cost 2.4-2.9 ms of client CPU each; spread
over 6 clients of 8, 0.8-1.2 ms. Each request goes to the client with the fewest in
flight.
"""

from __future__ import annotations

import asyncio
import math
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

CONNECTIONS_PER_CLIENT = 8


class ClientShards:
    """`connections` connections' worth of httpx clients, `per_client` each, all made
    with `client_options` and one TLS context (`tls`, else the default trust store:
    each client would load the CA bundle again, about 20 ms and 0.8 MB). Requests never
    wait in a client's pool (no connection cap): the caller bounds how many are in
    flight."""

    def __init__(
        self,
        connections: int,
        *,
        per_client: int = CONNECTIONS_PER_CLIENT,
        keepalive_expiry: float = 5.0,
        tls: ssl.SSLContext | None = None,
        **client_options: Any,
    ) -> None:
        count = max(1, math.ceil(connections / per_client))
        limits = httpx.Limits(
            max_connections=None,
            max_keepalive_connections=per_client,
            keepalive_expiry=keepalive_expiry,
        )
        verify = tls or httpx.create_ssl_context()
        self._clients = [
            httpx.AsyncClient(limits=limits, verify=verify, **client_options) for _ in range(count)
        ]
        self._in_flight = [0] * count

    @property
    def any(self) -> httpx.AsyncClient:
        """A client for what sends nothing (building a request, reading the base URL)."""
        return self._clients[0]

    @contextmanager
    def client(self) -> Iterator[httpx.AsyncClient]:
        """The least busy client, counted busy until the block ends: send within it."""
        index = self._in_flight.index(min(self._in_flight))
        self._in_flight[index] += 1
        try:
            yield self._clients[index]
        finally:
            self._in_flight[index] -= 1

    async def aclose(self) -> None:
        await asyncio.gather(*(client.aclose() for client in self._clients))

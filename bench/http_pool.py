"""httpx's client CPU per request against how many connections its pool holds.

    .venv/bin/python -m bench.http_pool
    .venv/bin/python -m bench.http_pool --requests 5000

A local uvicorn server (its own process, uvloop and httptools, answering every POST
after 2 ms) takes POSTs from one httpx client in this process, `in flight` at a time
(a semaphore), with the client's pool sized in each of several ways: one client with
as many connections as requests in flight (what the services did), the same requests
spread over `ClientShards` of 8 connections (what they do now), and a burst queued in
one pool of 200 connections (the simulator before). It prints the client's CPU per
request (getrusage: this process only, the server apart) and the requests a second.
httpcore's pool walks its connections on every request that starts or ends, so the
cost grows with the connections it holds (encode/httpcore#1035).
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager

import httpx

from switchboard_shared.http.client_shards import ClientShards
from switchboard_testing.net import free_port

SERVER_LATENCY_SECONDS = 0.002


async def app(
    scope: dict[str, object],
    receive: Callable[[], Awaitable[dict[str, object]]],
    send: Callable[[dict[str, object]], Awaitable[None]],
) -> None:
    """The receiver: drains the body, waits 2 ms, answers 200 `ok`."""
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    await asyncio.sleep(SERVER_LATENCY_SECONDS)
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]}
    )
    await send({"type": "http.response.body", "body": b"ok"})


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def measure(
    url: str, in_flight: int, pick: Callable[[], ClientShards | OneClient], requests: int
) -> tuple[float, float]:
    """(client CPU ms per request, requests a second) of `requests` POSTs."""
    shards = pick()
    slots = asyncio.Semaphore(in_flight)

    async def one() -> None:
        async with slots:
            with shards.client() as client:
                (await client.post(url, content=b"{}")).raise_for_status()

    try:
        await asyncio.gather(*(one() for _ in range(200)))  # connections made, warm
        cpu, wall = cpu_seconds(), time.monotonic()
        await asyncio.gather(*(one() for _ in range(requests)))
        return (cpu_seconds() - cpu) * 1000 / requests, requests / (time.monotonic() - wall)
    finally:
        await shards.aclose()


class OneClient:
    """One httpx client capped at `connections`, used as `ClientShards` is (requests past
    the cap wait in its pool, as they did in the services)."""

    def __init__(self, connections: int) -> None:
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(10, pool=None),
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        )

    @contextmanager
    def client(self) -> Iterator[httpx.AsyncClient]:
        yield self._client

    async def aclose(self) -> None:
        await self._client.aclose()


def one_client(connections: int) -> Callable[[], OneClient]:
    return lambda: OneClient(connections)


def sharded(connections: int) -> Callable[[], ClientShards]:
    return lambda: ClientShards(connections, timeout=httpx.Timeout(10))


async def run(url: str, requests: int) -> None:
    async with httpx.AsyncClient() as probe:
        for _ in range(100):  # the server starting
            try:
                await probe.post(url)
                break
            except httpx.TransportError:
                await asyncio.sleep(0.1)
    cases = [
        ("one client, 48 connections", 48, one_client(48)),
        ("6 clients of 8 (ClientShards)", 48, sharded(48)),
        ("one client, 8 connections", 8, one_client(8)),
        ("burst of all, one client of 200", requests, one_client(200)),
    ]
    print(f"{'pool':<34} {'in flight':>9} {'client CPU ms/req':>18} {'req/s':>7}")
    for name, in_flight, pick in cases:
        ms, rate = await measure(url, in_flight, pick, requests)
        print(f"{name:<34} {in_flight:>9} {ms:>18.3f} {rate:>7.0f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000, help="POSTs per case (3000)")
    args = parser.parse_args()
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import uvicorn; from bench.http_pool import app; "
            f"uvicorn.run(app, host='127.0.0.1', port={port}, log_level='error', "
            "loop='uvloop', http='httptools')",
        ]
    )
    try:
        asyncio.run(run(f"http://127.0.0.1:{port}/", args.requests))
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()

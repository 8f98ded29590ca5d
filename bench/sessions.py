"""Browser voice sessions under load: `switchboard run all` (one process: API, media edge
and the provider simulator, SQLite) on this machine, driven by WebSocket clients that
stream 16 kHz PCM16 in real time (20 ms frames) as browsers do.

It measures sessions opened per second (POST /v1/sessions, join, `ready`), how many
sessions the process holds at once with audio flowing both ways, the relay's turn delay
(from the frame completing a second of user audio to the user-transcript frame coming
back: two relay hops plus the simulator's work), and resident memory per session.

    .venv/bin/python -m bench.sessions --sessions 200 --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO

import httpx
import psutil
from websockets.asyncio.client import ClientConnection, connect

from switchboard_shared.adapters.store.sqlite import SqliteStore
from switchboard_shared.domain.tenants import Tenant, new_api_key
from switchboard_testing.net import free_port

FRAME = b"\x10\x00" * 320  # 20 ms of 16 kHz PCM16
FRAMES_PER_TURN = 50  # the simulator answers each second of audio


async def seed_keys(db: Path, count: int) -> list[str]:
    """One tenant and `count` keys (one active session per key)."""
    store = SqliteStore(db)
    await store.start()
    try:
        tenant = await store.create_tenant(Tenant(name="bench"))
        keys = []
        for _ in range(count):
            raw, key = new_api_key(tenant.tenant_id)
            await store.add_api_key(key)
            keys.append(raw)
        return keys
    finally:
        await store.close()


async def open_session(base: str, key: str) -> tuple[ClientConnection, float]:
    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=base, timeout=30) as api:
        response = await api.post(
            "/v1/sessions", json={"max_duration": 600}, headers={"Authorization": f"Bearer {key}"}
        )
    response.raise_for_status()
    socket = await connect(response.json()["join_url"], max_queue=64)
    while True:
        frame = await socket.recv()
        if isinstance(frame, str) and json.loads(frame)["type"] == "ready":
            return socket, time.perf_counter() - started


async def stream(socket: ClientConnection, seconds: float, delays: list[float]) -> int:
    """Send real-time audio for `seconds`; record each turn's delay; returns bytes heard."""
    heard = 0
    turn_sent: list[float] = []

    async def read() -> None:
        nonlocal heard
        async for frame in socket:
            if isinstance(frame, bytes):
                heard += len(frame)
            elif json.loads(frame).get("role") == "user" and turn_sent:
                delays.append(time.perf_counter() - turn_sent.pop(0))

    reader = asyncio.create_task(read())
    next_at = time.perf_counter()
    for i in range(int(seconds * 50)):
        await socket.send(FRAME)
        if (i + 1) % FRAMES_PER_TURN == 0:
            turn_sent.append(time.perf_counter())
        next_at += 0.02
        await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
    await asyncio.sleep(1)
    await socket.send(json.dumps({"type": "end"}))
    await asyncio.sleep(0.5)
    reader.cancel()
    await socket.close()
    return heard


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 1 else float("nan")


def start(env: dict[str, str], log: IO[bytes], target: str = "all") -> subprocess.Popen[bytes]:
    """`switchboard run TARGET` with `env`, its output to `log`."""
    return subprocess.Popen(
        [sys.executable, "-m", "switchboard.cli", "run", target],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


async def wait_healthy(base: str) -> None:
    async with httpx.AsyncClient(timeout=1) as probe:
        for _ in range(300):
            try:
                await probe.get(f"{base}/healthz")
                return
            except httpx.HTTPError:
                await asyncio.sleep(0.1)
    raise RuntimeError(f"{base} did not start")


async def main(sessions: int, seconds: float, split: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        keys = await seed_keys(data / "switchboard.db", sessions)
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")} | {
            "SWITCHBOARD_PORT": str(port),
            "SWITCHBOARD_DATA_DIR": str(data),
            "SWITCHBOARD_LOG_LEVEL": "WARNING",
            "SWITCHBOARD_API_RATE_LIMIT_PER_SECOND": "0",
        }
        log = (data / "all.log").open("wb")
        base = f"http://127.0.0.1:{port}"
        others: list[subprocess.Popen[bytes]] = []
        if split:
            # The production shape: the media edge, the API and the simulator as processes.
            sim_port, edge_port = free_port(), free_port()
            env |= {
                "SWITCHBOARD_SQLITE_PATH": str(data / "switchboard.db"),
                "SWITCHBOARD_SIMULATOR__BASE_URL": f"http://127.0.0.1:{sim_port}",
                "SWITCHBOARD_MEDIA_EDGE_URL": f"ws://127.0.0.1:{edge_port}/media",
            }
            others.append(start(env | {"SWITCHBOARD_PORT": str(sim_port)}, log, "provider-sim"))
            others.append(start(env | {"SWITCHBOARD_PORT": str(edge_port)}, log, "media-edge"))
            process = start(env, log, "api")
            await wait_healthy(f"http://127.0.0.1:{sim_port}")
            await wait_healthy(f"http://127.0.0.1:{edge_port}")
            measured = others[1]
        else:
            process = start(env, log)
            measured = process
        try:
            await wait_healthy(base)
            proc = psutil.Process(measured.pid)
            rss_before = proc.memory_info().rss
            cpu_before = proc.cpu_times()
            opened_at = time.perf_counter()
            opened = await asyncio.gather(*(open_session(base, key) for key in keys))
            open_seconds = time.perf_counter() - opened_at
            rss_open = proc.memory_info().rss
            delays: list[float] = []
            stream_at = time.perf_counter()
            heard = await asyncio.gather(*(stream(s, seconds, delays) for s, _ in opened))
            stream_seconds = time.perf_counter() - stream_at
            cpu_after = proc.cpu_times()
            joins = [j for _, j in opened]
            cpu = (cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system)
            shape = "media edge process (api, simulator apart)" if split else "all-in-one"
            print(f"{shape}; sessions: {sessions}, {seconds:.0f} s of real-time audio each")
            print(
                f"opened: {sessions / open_seconds:.1f} sessions/s "
                f"(all {sessions} at once: {open_seconds:.2f} s; "
                f"join p50 {pct(joins, 50) * 1000:.0f} ms, p99 {pct(joins, 99) * 1000:.0f} ms)"
            )
            print(
                f"held: {sessions} concurrent, audio both ways; "
                f"heard {sum(heard) / sessions / 1024:.0f} KiB per session"
            )
            print(
                f"turn delay ({len(delays)} turns): p50 {pct(delays, 50) * 1000:.1f} ms, "
                f"p99 {pct(delays, 99) * 1000:.1f} ms, max {max(delays) * 1000:.1f} ms"
            )
            print(
                f"memory: {(rss_open - rss_before) / sessions / 1024:.0f} KiB per open session "
                f"(RSS {rss_before / 2**20:.0f} -> {rss_open / 2**20:.0f} MiB)"
            )
            print(
                f"CPU: {cpu:.1f} s over {open_seconds + stream_seconds:.1f} s "
                f"({cpu / (open_seconds + stream_seconds):.2f} cores)"
            )
        finally:
            for started in [process, *others]:
                started.send_signal(signal.SIGTERM)
            for started in [process, *others]:
                started.wait(timeout=60)
            log.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument(
        "--split", action="store_true", help="media edge, api and simulator as processes"
    )
    arguments = parser.parse_args()
    asyncio.run(main(arguments.sessions, arguments.seconds, arguments.split))

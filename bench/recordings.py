"""Recording streaming through Switchboard against the provider's own file, side by side.

    .venv/bin/python -m bench.recordings [--fetches 200] [--concurrency 8]

Starts `switchboard run all` (embedded defaults: SQLite, the in-process bus, the
simulator at /sim), places one call and waits until its recording is available, then
fetches it `--fetches` times with `--concurrency` in flight twice: through
`GET /v1/calls/{id}/recording` (auth, store read, the provider fetch with the provider's
key, relay), and straight from the simulator (the anchor). Prints fetches/s, MB/s and
p50/p99 of each, the ratio, and a ranged fetch's figures.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from switchboard_testing.net import free_port

REPO = Path(__file__).resolve().parents[1]
KEY = "sk_bench_recordings"


async def fetch_many(
    client: httpx.AsyncClient, url: str, count: int, concurrency: int, headers: dict[str, str]
) -> tuple[float, int, list[float]]:
    """(seconds, bytes, latencies in ms) of `count` GETs of `url`."""
    gate = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    received = 0

    async def one() -> None:
        nonlocal received
        async with gate:
            started = time.perf_counter()
            response = await client.get(url, headers=headers)
            response.raise_for_status()
            received += len(response.content)
            latencies.append((time.perf_counter() - started) * 1000)

    began = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(count)))
    return time.perf_counter() - began, received, sorted(latencies)


def line(name: str, seconds: float, size: int, latencies: list[float]) -> str:
    p99 = latencies[max(int(len(latencies) * 0.99) - 1, 0)]
    return (
        f"{name:<28} {len(latencies) / seconds:>9.0f} {size / seconds / 1e6:>8.1f} "
        f"{latencies[len(latencies) // 2]:>8.1f} {p99:>8.1f}"
    )


async def run(base: str, args: argparse.Namespace) -> None:
    auth = {"Authorization": f"Bearer {KEY}"}
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        created = await client.post(
            "/v1/calls", json={"phone": "+996700000001", "agent": "altynai"}, headers=auth
        )
        created.raise_for_status()
        call_id = created.json()["call_id"]
        for _ in range(300):
            call = (await client.get(f"/v1/calls/{call_id}", headers=auth)).json()
            if call.get("recording_available"):
                break
            await asyncio.sleep(0.1)
        else:
            raise RuntimeError(f"no recording: {call}")
        placed = (await client.get("/sim/_sim/calls")).json()["data"]
        provider_call = next(c for c in placed if c["to_number"] == "+996700000001")["id"]
        ours = f"/v1/calls/{call_id}/recording"
        direct = f"/sim/v1/calls/{provider_call}/recording"
        sim_auth = {"Authorization": "Bearer sim-api-key"}
        await fetch_many(client, ours, 10, 2, auth)  # warm-up
        through = await fetch_many(client, ours, args.fetches, args.concurrency, auth)
        anchor = await fetch_many(client, direct, args.fetches, args.concurrency, sim_auth)
        ranged = await fetch_many(
            client, ours, args.fetches, args.concurrency, {**auth, "Range": "bytes=0-1023"}
        )
    size = through[1] // args.fetches
    print(f"\nrecording of {size} bytes, {args.fetches} fetches, {args.concurrency} in flight")
    print(f"{'target':<28} {'fetch/s':>9} {'MB/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
    print(line("through Switchboard", *through))
    print(line("simulator directly (anchor)", *anchor))
    print(line("through Switchboard, 1 KiB", *ranged))
    print(f"ratio through/anchor (fetch/s): {anchor[0] / through[0]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fetches", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    port = free_port()
    with tempfile.TemporaryDirectory() as data:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
        env |= {
            "SWITCHBOARD_PORT": str(port),
            "SWITCHBOARD_DATA_DIR": data,
            "SWITCHBOARD_DEV_API_KEY": KEY,
            "SWITCHBOARD_LOG_LEVEL": "WARNING",
            "SWITCHBOARD_API_RATE_LIMIT_PER_SECOND": "0",
            "SWITCHBOARD_SIM_TALK_SECONDS": "0.5",
        }
        process = subprocess.Popen(
            [sys.executable, "-m", "switchboard.cli", "run", "all"],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            for _ in range(100):
                try:
                    if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.2)
            asyncio.run(run(base, args))
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)


if __name__ == "__main__":
    main()

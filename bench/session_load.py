"""One load-generating process of the sessions bench: its share of the browsers.

It opens a session per API key (POST /v1/sessions, join, `ready`), all at once, prints
one JSON line (`opened`), and waits for a line on stdin. Then each browser streams
real-time 16 kHz PCM16 in frames of `--frame-samples` samples, stamped with
`time.monotonic_ns()` in their first 8 bytes as they are sent, for `--seconds` (the
browsers' first frames are spread over one frame interval, as real ones are not in
step), and reads the agent's audio: the downstream relay delay of each frame is the
clock when it is read minus its stamp (the bench provider stamps it as it sends).
Last it prints a JSON line with its counts, delays and its own loop lag.

    python -m bench.session_load --base URL --keys FILE --frame-samples 4096 --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from pathlib import Path

import httpx
from websockets.asyncio.client import ClientConnection, connect

from bench.session_stats import LoopLag, stamp_of, stamped
from switchboard_shared.runtime.process import run_event_loop

SAMPLE_RATE = 16_000
# After the last frame, how long the answers still owed may take: one not back by then
# counts as lost.
DRAIN_SECONDS = 10.0


class Browser:
    def __init__(self) -> None:
        self.sent = 0
        self.received = 0
        self.delays_ns: list[int] = []
        self.sent_ns: list[int] = []


async def open_session(api: httpx.AsyncClient, key: str) -> tuple[ClientConnection, float]:
    started = time.perf_counter()
    response = await api.post(
        "/v1/sessions", json={"max_duration": 600}, headers={"Authorization": f"Bearer {key}"}
    )
    response.raise_for_status()
    socket = await connect(response.json()["join_url"], max_queue=64, compression=None)
    while True:
        frame = await socket.recv()
        if isinstance(frame, str) and json.loads(frame)["type"] == "ready":
            return socket, time.perf_counter() - started


async def stream(
    socket: ClientConnection, frame: bytes, seconds: float, offset: float, browser: Browser
) -> None:
    interval = len(frame) / 2 / SAMPLE_RATE

    done_sending = False
    all_back = asyncio.Event()

    async def read() -> None:
        async for message in socket:
            if isinstance(message, bytes):
                now = time.monotonic_ns()
                sent = stamp_of(message)
                browser.delays_ns.append(now - sent)
                browser.sent_ns.append(sent)
                browser.received += 1
                if done_sending and browser.received >= browser.sent:
                    all_back.set()

    reader = asyncio.create_task(read())
    await asyncio.sleep(offset)
    next_at = time.monotonic()
    for _ in range(int(seconds / interval)):
        await socket.send(stamped(frame))
        browser.sent += 1
        next_at += interval
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))
    done_sending = True
    if browser.received < browser.sent:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(all_back.wait(), DRAIN_SECONDS)
    await socket.send(json.dumps({"type": "end"}))
    reader.cancel()
    await socket.close()


async def main(base: str, keys: list[str], frame_samples: int, seconds: float) -> None:
    limits = httpx.Limits(max_connections=len(keys))
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as api:
        started = time.monotonic()
        opened = await asyncio.gather(*(open_session(api, key) for key in keys))
        ended = time.monotonic()
    joins = [join for _, join in opened]
    print(json.dumps({"opened": len(opened), "between": [started, ended], "joins": joins}))
    sys.stdout.flush()
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)

    frame = b"\x10\x00" * frame_samples
    interval = frame_samples / SAMPLE_RATE
    browsers = [Browser() for _ in opened]
    lag = LoopLag()
    lagging = asyncio.create_task(lag.run())
    await asyncio.gather(
        *(
            stream(socket, frame, seconds, interval * i / len(opened), browser)
            for i, ((socket, _), browser) in enumerate(zip(opened, browsers, strict=True))
        )
    )
    lagging.cancel()
    result = {
        "sent": sum(b.sent for b in browsers),
        "received": sum(b.received for b in browsers),
        "downstream_ns": [d for b in browsers for d in b.delays_ns],
        "downstream_sent_ns": [t for b in browsers for t in b.sent_ns],
        "loop_lag_ns": lag.samples_ns,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True)
    parser.add_argument("--keys", type=Path, required=True, help="one API key a line")
    parser.add_argument("--frame-samples", type=int, default=4096)
    parser.add_argument("--seconds", type=float, default=10.0)
    arguments = parser.parse_args()
    keys = arguments.keys.read_text().split()
    run_event_loop(main(arguments.base, keys, arguments.frame_samples, arguments.seconds))

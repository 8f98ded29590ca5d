"""What the sessions bench's processes share: the stamp a frame carries, and the
event-loop lag probe each of them runs so a reader can tell its own scheduling delay
from the relay's."""

from __future__ import annotations

import asyncio
import time

LAG_INTERVAL_SECONDS = 0.01


def stamped(frame: bytes) -> bytes:
    """`frame` with `time.monotonic_ns()` in its first 8 bytes (little-endian)."""
    return time.monotonic_ns().to_bytes(8, "little") + frame[8:]


def stamp_of(frame: bytes) -> int:
    return int.from_bytes(frame[:8], "little")


class LoopLag:
    """Samples how late a 10 ms sleep wakes up: the loop's scheduling delay, which every
    delay this process measures includes."""

    def __init__(self) -> None:
        self.samples_ns: list[int] = []

    async def run(self) -> None:
        interval_ns = int(LAG_INTERVAL_SECONDS * 1e9)
        while True:
            before = time.monotonic_ns()
            await asyncio.sleep(LAG_INTERVAL_SECONDS)
            self.samples_ns.append(time.monotonic_ns() - before - interval_ns)


def percentile(values: list[int], q: float) -> float:
    """Nearest-rank percentile; nan for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return float(ordered[int(min(rank, len(ordered))) - 1])

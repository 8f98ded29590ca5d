"""Once a second during the measured phase: CPU and resident memory of each process we
watch (psutil), and the ready-message backlog of the run's queues."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from dataclasses import dataclass, field

import psutil

from bench.broker import DepthProbe

RABBITMQ = "rabbitmq (shared)"  # not ours: other users' load is in its figure


def processes_to_watch(services: dict[str, int]) -> dict[str, int]:
    """The services' pids, plus our other child (the SecantusDB process, unless
    MONGODB_URL), this process, and the local RabbitMQ node (`beam.smp`) if there is one."""
    pids = dict(services)
    for child in psutil.Process().children():
        if child.pid not in pids.values():
            pids["mongodb"] = child.pid
    pids["bench (this)"] = os.getpid()
    for process in psutil.process_iter(["name"]):
        if process.info["name"] == "beam.smp":
            pids[RABBITMQ] = process.pid
            break
    return pids


def cpu_seconds(process: psutil.Process) -> float | None:
    """User + system CPU time of the process itself (not of its children)."""
    try:
        times = process.cpu_times()
    except psutil.Error:
        return None
    return times.user + times.system


def rss_mib(process: psutil.Process) -> float | None:
    try:
        return process.memory_info().rss / 2**20
    except psutil.Error:
        return None


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine, all CPUs together."""
    times = psutil.cpu_times()
    total = sum(times)
    return total - times.idle - getattr(times, "iowait", 0.0), total


@dataclass
class Sampler:
    """`run` samples until `stop` is set; the fields hold the figures afterwards."""

    pids: dict[str, int]
    queues: dict[str, str]
    broker_url: str
    cpu_start: dict[str, float] = field(default_factory=dict)
    cpu_end: dict[str, float] = field(default_factory=dict)
    peak_cpu: dict[str, float] = field(default_factory=dict)
    peak_rss: dict[str, float] = field(default_factory=dict)
    peak_depth: dict[str, int] = field(default_factory=dict)
    system: tuple[tuple[float, float], tuple[float, float]] | None = None
    started: float = 0.0
    stopped: float = 0.0

    async def run(self, stop: asyncio.Event) -> None:
        self.started = time.monotonic()
        system_start = machine_busy()
        processes: dict[str, psutil.Process] = {}
        for name, pid in self.pids.items():
            with contextlib.suppress(psutil.Error):
                processes[name] = psutil.Process(pid)
        last = {name: cpu_seconds(p) or 0.0 for name, p in processes.items()}
        self.cpu_start = dict(last)
        last_time = self.started
        try:
            async with DepthProbe(self.broker_url) as probe:
                while not stop.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), timeout=1.0)
                    now = time.monotonic()
                    for name, process in processes.items():
                        used = cpu_seconds(process)
                        if used is None:
                            continue
                        share = (used - last[name]) / max(now - last_time, 1e-3)
                        self.peak_cpu[name] = max(self.peak_cpu.get(name, 0.0), share)
                        rss = rss_mib(process) or 0.0
                        self.peak_rss[name] = max(self.peak_rss.get(name, 0.0), rss)
                        last[name] = used
                        self.cpu_end[name] = used
                    last_time = now
                    for label, depth in (await probe.depths(self.queues)).items():
                        self.peak_depth[label] = max(self.peak_depth.get(label, 0), depth)
        finally:
            self.stopped = time.monotonic()
            self.system = (system_start, machine_busy())

    @property
    def wall(self) -> float:
        return max(self.stopped - self.started, 1e-3)

    def used(self, name: str) -> float | None:
        """CPU seconds the process used over the sampled window; None if never sampled."""
        if name not in self.cpu_end:
            return None
        return self.cpu_end[name] - self.cpu_start[name]

    def machine_share(self) -> float | None:
        """How busy the whole machine was over the window, 0 to 1."""
        if not self.system:
            return None
        (busy0, all0), (busy1, all1) = self.system
        return (busy1 - busy0) / max(all1 - all0, 1e-9)

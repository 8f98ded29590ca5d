"""Pipeline benchmark: N calls through the five services as separate processes, on the real
RabbitMQ and MongoDB (SecantusDB unless MONGODB_URL is set), the simulator talking for
zero seconds.

For every call it measures the time from the API's 201 to the arrival of the signed
`call.completed` webhook at a receiver served in this script's event loop, so the figure
covers api → RabbitMQ → dialer → simulator → webhook-ingest → RabbitMQ → notifier →
customer URL, every store write on the way included.

    .venv/bin/python bench/pipeline.py --quick          # 200 calls, a smoke run
    .venv/bin/python bench/pipeline.py                  # 2000 calls, 50 POSTs in flight
    .venv/bin/python bench/pipeline.py --calls 5000 --concurrency 100 --timeout 180

Everything it starts (SecantusDB, the five services, the receiver) is stopped on the way
out — also on failure, Ctrl-C, SIGTERM or the hard time limit (`--hard-timeout`) — and its
exchange and queues (unique per run) are deleted from the broker.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import aio_pika  # noqa: E402
import httpx  # noqa: E402
from pymongo import MongoClient  # noqa: E402

from switchboard_dialer.dialing import QUEUE as DIALER_QUEUE  # noqa: E402
from switchboard_notifier.handler import QUEUE as NOTIFIER_QUEUE  # noqa: E402
from switchboard_shared.adapters.bus_common import dead_letter_queue  # noqa: E402
from switchboard_shared.adapters.bus_rabbitmq import retry_queue  # noqa: E402
from tests.support.mongo import mongodb_server  # noqa: E402
from tests.support.net import free_port  # noqa: E402
from tests.support.processes import ServiceProcess  # noqa: E402
from tests.support.servers import serving  # noqa: E402

SERVICES = ("provider-sim", "webhook-ingest", "api", "dialer", "notifier")
DEFAULT_BROKER = "amqp://guest:guest@127.0.0.1:5672/"
DEFAULT_AGENTS_FILE = REPO / "deploy" / "agents.example.yaml"
# Retry schedules short enough that one retried message still lands within --timeout.
DIAL_RETRY_DELAYS = [1.0, 5.0, 15.0]
WEBHOOK_RETRY_DELAYS = [1.0, 5.0, 15.0]
COUNTERS = (
    "switchboard_calls_created_total",
    "switchboard_calls_ended_total",
    "switchboard_provider_errors_total",
    "switchboard_publish_failures_total",
    "switchboard_messages_retried_total",
    "switchboard_messages_dead_lettered_total",
    "switchboard_outbox_republished_total",
    "switchboard_watchdog_calls_total",
    "switchboard_webhook_attempts_total",
    "switchboard_callbacks_received_total",
)
CLK_TCK = os.sysconf("SC_CLK_TCK")
STATUS_SAMPLE = 100  # late calls whose stored status is read for the report


# --- the customer's webhook receiver -----------------------------------------------------


@dataclass
class Receiver:
    """A bare ASGI app recording when each call's `call.completed` first arrived."""

    completed: dict[str, float] = field(default_factory=dict)
    end_status: dict[str, str] = field(default_factory=dict)
    types: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0
    deliveries: int = 0
    signed: int = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        self.record(body, dict(scope["headers"]), time.monotonic())
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    def record(self, body: bytes, headers: dict[bytes, bytes], now: float) -> None:
        self.deliveries += 1
        if b"webhook-signature" in headers and b"webhook-id" in headers:
            self.signed += 1
        try:
            event = json.loads(body)
            kind, data = str(event["type"]), event["data"]
        except (ValueError, KeyError, TypeError):
            self.types["<unparsable>"] += 1
            return
        self.types[kind] += 1
        if kind != "call.completed":
            return
        call_id = str(data.get("call_id"))
        if call_id in self.completed:
            self.duplicates += 1
            return
        self.completed[call_id] = now
        self.end_status[call_id] = str(data.get("status"))


# --- measurements of processes, the machine and the broker --------------------------------


def cpu_ticks(pid: int) -> int | None:
    """utime + stime of a process, in clock ticks."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[11]) + int(fields[12])


def rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def system_busy_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def children_of(parent: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == parent:
            pids.append(int(entry.name))
    return pids


def pids_named(command: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "comm").read_text().strip() == command:
                    pids.append(int(entry.name))
    return pids


def machine() -> str:
    memory = ""
    with contextlib.suppress(OSError, ValueError, IndexError):
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f", {kib / 1024 / 1024:.0f} GiB RAM"
    return f"{os.cpu_count()} CPUs{memory}, {platform.system()} {platform.release()}"


@dataclass
class Sampler:
    """Once a second: CPU of each tracked process and the broker's ready-message backlog."""

    pids: dict[str, int]
    queues: dict[str, str]
    broker_url: str
    cpu_start: dict[str, int] = field(default_factory=dict)
    cpu_end: dict[str, int] = field(default_factory=dict)
    peak_cpu: dict[str, float] = field(default_factory=dict)
    peak_rss: dict[str, float] = field(default_factory=dict)
    peak_depth: dict[str, int] = field(default_factory=dict)
    system: tuple[tuple[int, int], tuple[int, int]] | None = None
    started: float = 0.0
    stopped: float = 0.0

    async def run(self, stop: asyncio.Event) -> None:
        self.started = time.monotonic()
        system_start = system_busy_ticks()
        last = {name: cpu_ticks(pid) or 0 for name, pid in self.pids.items()}
        self.cpu_start = dict(last)
        last_time = self.started
        connection = await aio_pika.connect(self.broker_url, timeout=10)
        try:
            channel = await connection.channel()
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=1.0)
                now = time.monotonic()
                for name, pid in self.pids.items():
                    ticks = cpu_ticks(pid)
                    if ticks is None:
                        continue
                    share = (ticks - last[name]) / CLK_TCK / max(now - last_time, 1e-3)
                    self.peak_cpu[name] = max(self.peak_cpu.get(name, 0.0), share)
                    self.peak_rss[name] = max(self.peak_rss.get(name, 0.0), rss_mib(pid) or 0)
                    last[name] = ticks
                    self.cpu_end[name] = ticks
                last_time = now
                for label, queue in self.queues.items():
                    try:
                        declared = await channel.declare_queue(queue, passive=True)
                    except aio_pika.exceptions.AMQPError:
                        channel = await connection.channel()
                        continue
                    depth = declared.declaration_result.message_count or 0
                    self.peak_depth[label] = max(self.peak_depth.get(label, 0), depth)
        finally:
            self.stopped = time.monotonic()
            self.system = (system_start, system_busy_ticks())
            await connection.close()

    def report(self) -> list[str]:
        wall = max(self.stopped - self.started, 1e-3)
        lines = [f"CPU over the measured {wall:.1f} s (1.00 = one core):"]
        total = 0.0
        for name in self.pids:
            if name not in self.cpu_end:
                continue
            used = (self.cpu_end[name] - self.cpu_start[name]) / CLK_TCK
            if name != "rabbitmq (shared)":
                total += used
            lines.append(
                f"  {name:<18} {used:7.1f} s CPU  avg {used / wall:4.2f}  "
                f"peak 1 s {self.peak_cpu.get(name, 0):4.2f}  "
                f"max RSS {self.peak_rss.get(name, 0):6.0f} MiB"
            )
        lines.append(f"  {'ours, w/o broker':<18} {total:7.1f} s CPU  avg {total / wall:4.2f}")
        if self.system:
            (busy0, all0), (busy1, all1) = self.system
            share = (busy1 - busy0) / max(all1 - all0, 1)
            lines.append(
                f"  whole machine busy {share * 100:.0f} % of {os.cpu_count()} CPUs "
                "(other engineers' work included)"
            )
        if self.peak_depth:
            depths = ", ".join(f"{k} {v}" for k, v in self.peak_depth.items())
            lines.append(f"peak ready messages in queues: {depths}")
        return lines


# --- the pipeline --------------------------------------------------------------------------


def pipeline_env(
    broker_url: str, store_env: dict[str, str], run: str, ports: dict[str, int], level: str
) -> dict[str, str]:
    sim = f"http://127.0.0.1:{ports['provider-sim']}"
    ingest = f"http://127.0.0.1:{ports['webhook-ingest']}"
    env = {
        "SWITCHBOARD_BROKER_URL": broker_url,
        **store_env,
        "SWITCHBOARD_EXCHANGE": f"bench.{run}.events",
        "SWITCHBOARD_QUEUE_PREFIX": f"bench.{run}.",
        "SWITCHBOARD_CALLBACK_BASE_URL": ingest,
        "SWITCHBOARD_SIM_CALLBACK_URL": ingest,
        "SWITCHBOARD_LOG_LEVEL": level,
        "SWITCHBOARD_DIAL_RETRY_DELAYS": json.dumps(DIAL_RETRY_DELAYS),
        "SWITCHBOARD_WEBHOOK_RETRY_DELAYS": json.dumps(WEBHOOK_RETRY_DELAYS),
        "SWITCHBOARD_WEBHOOK_ALLOW_HTTP": "true",
        "SWITCHBOARD_WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true",
        "SWITCHBOARD_SIM_RING_DELAY_SECONDS": "0",
        "SWITCHBOARD_SIM_ANSWER_DELAY_SECONDS": "0",
        "SWITCHBOARD_SIM_TALK_SECONDS": "0",
        "SWITCHBOARD_SIMULATOR__BASE_URL": sim,
        "SWITCHBOARD_SIMULATOR__API_KEY": "bench-sim-key",
        "SWITCHBOARD_SIMULATOR__CALLBACK_SECRET": "bench-sim-callback-secret",
    }
    return env


def queue_names(prefix: str) -> dict[str, str]:
    """Every queue the run's services declare on the broker, by a short label."""
    names: dict[str, str] = {}
    for short, queue, delays in (
        ("dialer", DIALER_QUEUE, DIAL_RETRY_DELAYS),
        ("notifier", NOTIFIER_QUEUE, WEBHOOK_RETRY_DELAYS),
    ):
        name = prefix + queue
        names[short] = name
        names[f"{short}.dlq"] = dead_letter_queue(name)
        for delay in delays:
            names[f"{short}.retry.{delay:g}s"] = retry_queue(name, delay)
    return names


def cli(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "switchboard.cli", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"switchboard {' '.join(args)} failed: {result.stderr[-2000:]}")
    return result.stdout


def extract_key(output: str) -> str:
    for token in output.split():
        if token.startswith("sk_"):
            return token
    raise RuntimeError(f"no API key in: {output}")


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return float("nan")
    rank = max(1, -(-len(sorted_values) * q // 100))
    return sorted_values[int(min(rank, len(sorted_values))) - 1]


def distribution(values: list[float]) -> str:
    ordered = sorted(values)
    if not ordered:
        return "n/a"
    return (
        "  ".join(
            f"{label} {percentile(ordered, q) * 1000:7.0f}"
            for label, q in (("p50", 50), ("p95", 95), ("p99", 99), ("max", 100))
        )
        + "  ms"
    )


@dataclass
class Posted:
    phone: str
    sent: float
    accepted: float


@dataclass
class Phase:
    posted: dict[str, Posted] = field(default_factory=dict)
    refused: Counter[str] = field(default_factory=Counter)
    first_sent: float = 0.0
    last_accepted: float = 0.0


async def post_calls(
    client: httpx.AsyncClient, phones: list[str], agent: str, concurrency: int
) -> Phase:
    phase = Phase(first_sent=time.monotonic())
    numbers = iter(phones)

    async def worker() -> None:
        for phone in numbers:
            sent = time.monotonic()
            try:
                response = await client.post("/v1/calls", json={"phone": phone, "agent": agent})
            except httpx.HTTPError as exc:
                phase.refused[type(exc).__name__] += 1
                continue
            if response.status_code == 201:
                accepted = time.monotonic()
                phase.posted[response.json()["call_id"]] = Posted(phone, sent, accepted)
                phase.last_accepted = max(phase.last_accepted, accepted)
            else:
                phase.refused[f"HTTP {response.status_code}"] += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return phase


async def wait_for_webhooks(receiver: Receiver, call_ids: list[str], within: float) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if all(call_id in receiver.completed for call_id in call_ids):
            return
        await asyncio.sleep(0.1)


async def scrape_counters(processes: dict[str, ServiceProcess]) -> dict[str, float]:
    totals: dict[str, float] = {}
    pattern = re.compile(r"^(\w+)(\{[^}]*\})? ([0-9.eE+-]+)$")
    async with httpx.AsyncClient(timeout=5) as client:
        for process in processes.values():
            try:
                text = (await client.get(f"{process.url}/metrics")).text
            except httpx.HTTPError:
                continue
            for line in text.splitlines():
                match = pattern.match(line)
                if not match or match.group(1) not in COUNTERS:
                    continue
                key = match.group(1).removeprefix("switchboard_") + (match.group(2) or "")
                totals[key] = totals.get(key, 0.0) + float(match.group(3))
    return {k: v for k, v in sorted(totals.items()) if v}


async def handler_means(processes: dict[str, ServiceProcess]) -> dict[str, float]:
    """Mean consumer handler time per queue, from the services' histograms."""
    sums: dict[str, float] = {}
    counts: dict[str, float] = {}
    pattern = re.compile(r"^switchboard_handler_seconds_(sum|count)\{(.*)\} ([0-9.eE+-]+)$")
    async with httpx.AsyncClient(timeout=5) as client:
        for name in ("dialer", "notifier"):
            try:
                text = (await client.get(f"{processes[name].url}/metrics")).text
            except httpx.HTTPError:
                continue
            for line in text.splitlines():
                match = pattern.match(line)
                if not match:
                    continue
                labels = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2)))
                key = f"{labels.get('queue', '?')} ({labels.get('outcome', '?')})"
                target = sums if match.group(1) == "sum" else counts
                target[key] = target.get(key, 0.0) + float(match.group(3))
    return {k: sums[k] / counts[k] for k in sums if counts.get(k)}


async def run_benchmark(
    args: argparse.Namespace, processes: dict[str, ServiceProcess], api_key: str, queues: dict
) -> dict[str, Any]:
    _interrupt.attach(asyncio.get_running_loop(), asyncio.current_task())
    receiver = Receiver()
    async with (
        serving(receiver) as receiver_url,
        httpx.AsyncClient(
            base_url=processes["api"].url,
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=httpx.Timeout(30.0),
            limits=httpx.Limits(
                max_connections=args.concurrency + 5, max_keepalive_connections=None
            ),
        ) as client,
    ):
        response = await client.put("/v1/webhooks", json={"url": f"{receiver_url}/hook"})
        if response.status_code not in (200, 201):
            raise RuntimeError(f"PUT /v1/webhooks: {response.status_code} {response.text}")

        # Warm-up: imports, connection pools and indexes get going; not measured.
        if args.warmup:
            print(f"warm-up: {args.warmup} calls …", flush=True)
            warm = await post_calls(
                client, phones(args.warmup, offset=9_000_000), args.agent, args.concurrency
            )
            await wait_for_webhooks(receiver, list(warm.posted), within=60)
            missing = [c for c in warm.posted if c not in receiver.completed]
            if warm.refused or missing:
                raise RuntimeError(
                    f"warm-up failed: refused {dict(warm.refused)}, "
                    f"{len(missing)} of {len(warm.posted)} without call.completed webhook"
                )

        pids = {name: p.process.pid for name, p in processes.items() if p.process}
        for pid in children_of(os.getpid()):
            if pid not in pids.values():
                pids["mongodb"] = pid  # SecantusDB (unless MONGODB_URL): our only other child
        pids["bench (this)"] = os.getpid()
        for pid in pids_named("beam.smp")[:1]:
            pids["rabbitmq (shared)"] = pid
        sampler = Sampler(
            pids,
            {"dialer": queues["dialer"], "notifier": queues["notifier"]},
            args.broker_url,
        )
        stop_sampling = asyncio.Event()
        sampling = asyncio.create_task(sampler.run(stop_sampling))
        load_before = os.getloadavg()

        print(f"measuring: {args.calls} calls, {args.concurrency} POSTs in flight …", flush=True)
        measured = await post_calls(client, phones(args.calls), args.agent, args.concurrency)
        posting_done = time.monotonic()
        print(
            f"  {len(measured.posted)} accepted in {posting_done - measured.first_sent:.1f} s; "
            f"waiting up to {args.timeout:g} s for their webhooks …",
            flush=True,
        )
        call_ids = list(measured.posted)
        await wait_for_webhooks(receiver, call_ids, args.timeout)
        # What arrived by now is the result; later webhooks are not counted.
        arrived = dict(receiver.completed)
        delivered = (receiver.deliveries, receiver.signed, receiver.duplicates)
        stop_sampling.set()
        await sampling
        load_after = os.getloadavg()

        missing = [c for c in call_ids if c not in arrived]
        stuck = await statuses_of(client, missing[:STATUS_SAMPLE])
        usage = (await client.get("/v1/usage")).json()
        dials = await dial_counts(processes["provider-sim"].url)
        counters = await scrape_counters(processes)
        handlers = await handler_means(processes)
        # Give a last look for anything that went to dead letters.
        dead = await queue_depths(args.broker_url, {k: v for k, v in queues.items() if "dlq" in k})

    done = [c for c in call_ids if c in arrived]
    latency = [arrived[c] - measured.posted[c].accepted for c in done]
    end_to_end = [arrived[c] - measured.posted[c].sent for c in done]
    post_latency = [p.accepted - p.sent for p in measured.posted.values()]
    last_done = max((arrived[c] for c in done), default=measured.first_sent)
    wall = last_done - measured.first_sent
    return {
        "receiver": receiver,
        "measured": measured,
        "posting_seconds": posting_done - measured.first_sent,
        "done": done,
        "missing": missing,
        "stuck": stuck,
        "not_completed_status": Counter(
            receiver.end_status[c] for c in done if receiver.end_status[c] != "completed"
        ),
        "latency": latency,
        "end_to_end": end_to_end,
        "post_latency": post_latency,
        "wall": wall,
        "sampler": sampler,
        "usage": usage,
        "delivered": delivered,
        "dials": dials,
        "phones": [p.phone for p in measured.posted.values()],
        "counters": counters,
        "handlers": handlers,
        "dead": dead,
        "load": (load_before, load_after),
    }


async def dial_counts(simulator_url: str) -> Counter[str]:
    """How many times the simulator was asked to dial each number."""
    async with httpx.AsyncClient(base_url=simulator_url, timeout=30) as sim:
        calls = (await sim.get("/_sim/calls")).json()["data"]
    return Counter(call["to_number"] for call in calls)


async def statuses_of(client: httpx.AsyncClient, call_ids: list[str]) -> Counter[str]:
    """The stored status of each call, read through the API."""
    statuses: Counter[str] = Counter()
    limit = asyncio.Semaphore(10)

    async def one(call_id: str) -> None:
        async with limit:
            try:
                got = await client.get(f"/v1/calls/{call_id}")
                statuses[got.json().get("status", f"HTTP {got.status_code}")] += 1
            except (httpx.HTTPError, ValueError) as exc:
                statuses[type(exc).__name__] += 1

    await asyncio.gather(*(one(c) for c in call_ids))
    return statuses


def phones(count: int, offset: int = 0) -> list[str]:
    """Distinct valid Kyrgyz mobile numbers (none of them a simulator test number)."""
    return [f"+99670{offset + i:07d}" for i in range(count)]


async def queue_depths(broker_url: str, queues: dict[str, str]) -> dict[str, int]:
    depths: dict[str, int] = {}
    connection = await aio_pika.connect(broker_url, timeout=10)
    try:
        for label, queue in queues.items():
            channel = await connection.channel()
            try:
                declared = await channel.declare_queue(queue, passive=True)
                depths[label] = declared.declaration_result.message_count or 0
            except aio_pika.exceptions.AMQPError:
                continue
            finally:
                if not channel.is_closed:
                    await channel.close()
    finally:
        await connection.close()
    return {k: v for k, v in depths.items() if v}


async def delete_topology(broker_url: str, exchange: str, queues: list[str]) -> list[str]:
    """Delete the run's queues and exchange; returns what could not be deleted."""
    problems: list[str] = []
    connection = await aio_pika.connect(broker_url, timeout=10)
    try:
        for name in queues:
            channel = await connection.channel()
            try:
                await channel.queue_delete(name)
            except aio_pika.exceptions.AMQPError as exc:
                problems.append(f"queue {name}: {exc}")
            finally:
                if not channel.is_closed:
                    await channel.close()
        channel = await connection.channel()
        try:
            await channel.exchange_delete(exchange)
        except aio_pika.exceptions.AMQPError as exc:
            problems.append(f"exchange {exchange}: {exc}")
    finally:
        await connection.close()
    return problems


def report(args: argparse.Namespace, result: dict[str, Any], mongodb: str) -> list[str]:
    measured: Phase = result["measured"]
    done, missing = result["done"], result["missing"]
    completed = len(done) - sum(result["not_completed_status"].values())
    refused = sum(measured.refused.values())
    wall = result["wall"]
    lines = [
        f"date        {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"command     {' '.join([Path(sys.executable).name, *sys.argv])}",
        f"machine     {machine()}; load avg before/after "
        f"{result['load'][0][0]:.2f}/{result['load'][1][0]:.2f}",
        f"broker      RabbitMQ at {args.broker_url.split('@')[-1]}; store {mongodb}",
        f"calls       {args.calls} POSTed, {len(measured.posted)} accepted (201), "
        f"agent {args.agent}, {args.concurrency} POSTs in flight",
        f"wall time   {wall:.1f} s (first POST → last call.completed webhook); "
        f"POSTing took {result['posting_seconds']:.1f} s",
        f"throughput  {len(done) / max(wall, 1e-3):.1f} calls/s completed end to end; "
        f"{len(measured.posted) / max(result['posting_seconds'], 1e-3):.1f} calls/s accepted",
        f"201 → call.completed webhook   {distribution(result['latency'])}",
        f"POST sent → webhook            {distribution(result['end_to_end'])}",
        f"POST → 201 (API)               {distribution(result['post_latency'])}",
        f"failures    {refused} POSTs not 201 {dict(measured.refused) or ''}; "
        f"{len(missing)} accepted calls without call.completed within {args.timeout:g} s"
        + (
            f" (stored status of {min(len(missing), STATUS_SAMPLE)} of them, read right "
            f"after: {dict(result['stuck'])})"
            if missing
            else ""
        )
        + (
            f"; {sum(result['not_completed_status'].values())} ended otherwise: "
            f"{dict(result['not_completed_status'])}"
            if result["not_completed_status"]
            else ""
        ),
        "webhooks    {} received by then, warm-up included ({} signed), {} duplicate "
        "call.completed; measured calls ended `completed`: {}".format(
            *result["delivered"], completed
        ),
        "dialed      {} accepted calls dialed more than once, {} never (simulator's log)".format(
            sum(1 for n in result["phones"] if result["dials"][n] > 1),
            sum(1 for n in result["phones"] if result["dials"][n] == 0),
        ),
        "stored      by status a moment later (GET /v1/usage, warm-up included): "
        f"{result['usage'].get('by_status')}",
    ]
    lines += result["sampler"].report()
    if result["handlers"]:
        lines.append(
            "mean handler time: "
            + ", ".join(f"{k} {v * 1000:.1f} ms" for k, v in result["handlers"].items())
        )
    if result["counters"]:
        lines.append("service counters (warm-up included):")
        lines += [f"  {k} {v:g}" for k, v in result["counters"].items()]
    if result["dead"]:
        lines.append(f"DEAD LETTERS: {result['dead']}")
    return lines


# --- process lifecycle ----------------------------------------------------------------------


class Cleanup:
    """Stops what was started, once, whichever way the script ends."""

    def __init__(self) -> None:
        self.processes: dict[str, ServiceProcess] = {}
        self.broker: tuple[str, str, list[str]] | None = None
        self.database: tuple[str, str] | None = None
        self._lock = threading.Lock()
        self._done = False

    def stop_services(self) -> None:
        for process in reversed(list(self.processes.values())):
            try:
                process.stop()
            except Exception as exc:
                print(f"stopping {process.name}: {exc}", file=sys.stderr)
                with contextlib.suppress(Exception):
                    process.kill()

    def kill_everything(self) -> None:
        """Last resort of the hard-timeout watchdog thread: SIGKILL our own children."""
        for process in self.processes.values():
            with contextlib.suppress(Exception):
                process.kill()
        for pid in children_of(os.getpid()):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)

    def run(self) -> None:
        # Neither the hard timeout nor a SIGTERM may cut cleanup short (the watchdog thread
        # still ends a cleanup that hangs).
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        with self._lock:
            if self._done:
                return
            self._done = True
        self.stop_services()
        if self.broker:
            url, exchange, queues = self.broker
            try:
                problems = asyncio.run(delete_topology(url, exchange, queues))
            except Exception as exc:
                problems = [repr(exc)]
            if problems:
                print(f"broker cleanup incomplete: {problems}", file=sys.stderr)
        if self.database:
            url, name = self.database
            with (
                contextlib.suppress(Exception),
                MongoClient(url, serverSelectionTimeoutMS=3000) as c,
            ):
                c.drop_database(name)


def start_services(
    env: dict[str, str], ports: dict[str, int], logs: Path, cleanup: Cleanup
) -> dict[str, ServiceProcess]:
    processes = {
        name: ServiceProcess(name, ports[name], env, logs / f"{name}.log") for name in SERVICES
    }
    for name, process in processes.items():
        cleanup.processes[name] = process
        process.start(wait_ready=False)
    for process in processes.values():
        process.wait_ready(timeout=120)
    return processes


def log_problems(logs: Path) -> list[str]:
    lines = []
    for path in sorted(logs.glob("*.log")):
        text = path.read_text(errors="replace")
        errors = sum(
            1 for line in text.splitlines() if '"level": "ERROR"' in line or "ERROR" in line
        )
        tracebacks = text.count("Traceback")
        if errors or tracebacks:
            lines.append(f"  {path.stem}: {errors} ERROR lines, {tracebacks} tracebacks")
    return lines


@dataclass
class Interrupt:
    """How SIGTERM and the hard timeout stop the run. Outside the event loop they raise in
    the main thread; inside it they cancel the main task, so every `async with` unwinds
    (SIGINT gets the same from asyncio.run itself)."""

    loop: asyncio.AbstractEventLoop | None = None
    task: asyncio.Task[Any] | None = None
    reason: str | None = None

    def attach(self, loop: asyncio.AbstractEventLoop, task: asyncio.Task[Any] | None) -> None:
        self.loop, self.task = loop, task
        loop.add_signal_handler(signal.SIGTERM, self.stop, "SIGTERM")

    def detach(self) -> None:
        self.loop = self.task = None
        signal.signal(signal.SIGTERM, self.on_signal)  # closing the loop reset it

    def stop(self, reason: str) -> None:
        self.reason = self.reason or reason
        if self.loop is not None and self.task is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.task.cancel)
        elif reason == "SIGTERM":
            raise KeyboardInterrupt
        else:
            raise TimeoutError(reason)

    def on_signal(self, signum: int, frame: object) -> None:
        self.stop("SIGTERM" if signum == signal.SIGTERM else "hard timeout")


_interrupt = Interrupt()


def arm_hard_timeout(seconds: float, cleanup: Cleanup) -> threading.Timer:
    """SIGALRM stops the run after `seconds`: an ordinary failure, cleaned up on the way
    out. If even that hangs, a watchdog thread kills our children 60 s later and exits."""

    def last_resort() -> None:
        print("hard timeout: cleanup hung, killing what we started", file=sys.stderr, flush=True)
        cleanup.kill_everything()
        os._exit(124)

    signal.signal(signal.SIGALRM, _interrupt.on_signal)
    signal.signal(signal.SIGTERM, _interrupt.on_signal)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    watchdog = threading.Timer(seconds + 60, last_resort)
    watchdog.daemon = True
    watchdog.start()
    return watchdog


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000, help="calls to measure (2000)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 200 calls")
    parser.add_argument("--concurrency", type=int, default=50, help="POSTs in flight (50)")
    parser.add_argument(
        "--timeout",
        type=float,
        default=120.0,
        help="seconds to wait, after the last 201, for every call.completed webhook (120)",
    )
    parser.add_argument(
        "--hard-timeout",
        type=float,
        default=None,
        help="the whole run stops, cleaned up, after this many seconds "
        "(default: 300 + calls / 5 + --timeout)",
    )
    parser.add_argument("--warmup", type=int, default=20, help="unmeasured calls first (20)")
    parser.add_argument("--agent", default="altynai", help="agent key of every call")
    parser.add_argument(
        "--store",
        choices=("mongodb", "sqlite"),
        default="mongodb",
        help="MongoDB (SecantusDB unless MONGODB_URL is set), or one SQLite file shared "
        "by the processes (mongodb)",
    )
    parser.add_argument("--agents-file", type=Path, default=DEFAULT_AGENTS_FILE)
    parser.add_argument(
        "--broker-url",
        default=os.environ.get("BENCH_BROKER_URL", DEFAULT_BROKER),
        help=f"RabbitMQ (default {DEFAULT_BROKER}, or BENCH_BROKER_URL)",
    )
    parser.add_argument("--log-level", default="INFO", help="services' SWITCHBOARD_LOG_LEVEL")
    parser.add_argument("--keep-logs", action="store_true", help="keep the services' logs")
    parser.add_argument("--json", type=Path, help="also write the summary lines here as JSON")
    args = parser.parse_args(argv)
    if args.quick:
        args.calls = 200
    if args.calls < 1 or args.concurrency < 1:
        parser.error("--calls and --concurrency must be at least 1")
    if args.hard_timeout is None:
        args.hard_timeout = 300 + args.calls / 5 + args.timeout
    host = (httpx.URL(args.broker_url.replace("amqp://", "http://", 1)).host or "").lower()
    if host not in ("127.0.0.1", "localhost", "::1"):
        parser.error("the benchmark only talks to a loopback broker")
    return args


@contextlib.contextmanager
def state_store(
    kind: str, run: str, logs: Path, cleanup: Cleanup
) -> Iterator[tuple[dict[str, str], str]]:
    """The store the services share: its settings, and how the report names it."""
    if kind == "sqlite":
        path = logs / "bench.db"
        yield (
            {"SWITCHBOARD_SQLITE_PATH": str(path)},
            f"SQLite file shared by the processes ({path})",
        )
        return
    with mongodb_server() as mongodb_url:
        database = f"bench_{run}"
        cleanup.database = (mongodb_url, database)
        name = (
            "MongoDB at MONGODB_URL"
            if os.environ.get("MONGODB_URL")
            else "SecantusDB (secantusd-py, :memory:)"
        )
        yield (
            {"SWITCHBOARD_MONGODB_URL": mongodb_url, "SWITCHBOARD_MONGODB_DATABASE": database},
            name,
        )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cleanup = Cleanup()
    logs = Path(tempfile.mkdtemp(prefix="switchboard-bench-"))
    run = uuid.uuid4().hex[:10]
    ok = False
    watchdog = arm_hard_timeout(args.hard_timeout, cleanup)
    try:
        with state_store(args.store, run, logs, cleanup) as (store_env, store):
            try:
                ports = {name: free_port() for name in SERVICES}
                env = pipeline_env(args.broker_url, store_env, run, ports, args.log_level)
                queues = queue_names(env["SWITCHBOARD_QUEUE_PREFIX"])
                cleanup.broker = (args.broker_url, env["SWITCHBOARD_EXCHANGE"], [*queues.values()])
                print(f"run {run}: seeding with the CLI, logs in {logs}", flush=True)
                cli(env, "agents", "load", str(args.agents_file))
                cli(env, "tenants", "create", "bench")
                api_key = extract_key(cli(env, "keys", "create", "--tenant", "bench"))
                print("starting " + ", ".join(SERVICES) + " …", flush=True)
                started = time.monotonic()
                processes = start_services(env, ports, logs, cleanup)
                print(f"  ready in {time.monotonic() - started:.1f} s", flush=True)
                try:
                    result = asyncio.run(run_benchmark(args, processes, api_key, queues))
                finally:
                    _interrupt.detach()
                lines = report(args, result, store)
                problems = log_problems(logs)
                if problems:
                    lines += ["service logs:", *problems]
                print("\n".join(["", *lines]), flush=True)
                if args.json:
                    args.json.write_text(json.dumps(lines, indent=1))
                ok = not result["missing"] and not result["measured"].refused
            finally:
                cleanup.run()
    except (KeyboardInterrupt, asyncio.CancelledError):
        reason = _interrupt.reason or "interrupted"
        print(f"{reason}: stopped; everything started was stopped", file=sys.stderr)
        return 124 if reason == "hard timeout" else 130
    except Exception as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        for line in log_problems(logs):
            print(line, file=sys.stderr)
        args.keep_logs = True
        return 1
    finally:
        cleanup.run()
        watchdog.cancel()
        if args.keep_logs or not ok:
            print(f"service logs kept in {logs}", file=sys.stderr)
        else:
            shutil.rmtree(logs, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

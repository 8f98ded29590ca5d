"""Dispatch under concurrency limits, and fairness between two tenants (issue 13), on the
five services as processes, the real RabbitMQ and SQLite or SecantusDB (bench.pipeline's
set-up), the simulator talking `--talk-seconds` per call (no ring or answer delay).

1. Dispatch rate: tenant A, `max_concurrent_calls` `--limit-a`, posts one batch of
   `--calls` calls. `GET /v1/usage` is sampled a few times a second until every call is
   terminal: the most calls live (dialing, ringing, in progress) and holding a slot, which
   must never pass the limit. The anchor is the ideal rate of perfect slot reuse,
   limit / talk time.
2. Fairness: tenant B (its own key, `--limit-b`) places single calls one at a time, first
   with the system idle (the anchor), then while A's lane is full and calls wait behind it;
   each is timed from its 201 to the first read of it past `queued`.

    .venv/bin/python -m bench.dispatch                  # SQLite, 2000 calls, limit 20, 1 s
    .venv/bin/python -m bench.dispatch --store mongo --calls 500 --out dispatch.json

Everything it starts is stopped on the way out, whichever way the run ends; the whole run
is bounded by `--timeout`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from bench.broker import Topology
from bench.load import phones
from bench.pipeline import service_env, state_store
from bench.processes import (
    SERVICES,
    Cleanup,
    arm_hard_timeout,
    cli,
    extract_key,
    interrupt,
    log_problems,
    start_services,
)
from bench.receiver import Receiver
from bench.report import command, machine, percentile
from switchboard_shared.domain.calls import LIVE_STATUSES, TERMINAL_STATUSES, CallStatus
from switchboard_testing.net import free_port
from switchboard_testing.servers import serving

DEFAULT_BROKER = "amqp://guest:guest@127.0.0.1:5672/"
POLL_SECONDS = 0.05  # GET /v1/calls/{id} of a call of tenant B
WAITING = frozenset({CallStatus.SCHEDULED.value, CallStatus.QUEUED.value})
FULL_WAIT = 60.0  # seconds B waits for A's lane to be full before its loaded calls
REPORT_MARGIN = 60.0  # seconds of --timeout kept for the final reads, report and clean-up


@dataclass
class Lane:
    """What the samples of tenant A's `GET /v1/usage` saw."""

    samples: int = 0
    max_live: int = 0  # calls dialing, ringing or in progress (by_status)
    max_active: int = 0  # slots held in the tenant's lane (concurrency.active)
    max_queued: int = 0
    terminal: int = 0
    queued: int = 0  # at the last sample
    active: int = 0
    over_limit: int = 0  # samples with more calls live or holding slots than the limit
    series: list[tuple[float, int, int, int]] = field(default_factory=list)  # t, live, …

    def add(self, usage: dict[str, Any], limit: int, started: float) -> None:
        by_status, concurrency = usage["by_status"], usage["concurrency"]
        self.samples += 1
        self.active, self.queued = concurrency["active"], concurrency["queued"]
        live = sum(by_status[s.value] for s in LIVE_STATUSES)
        self.series.append((round(time.monotonic() - started, 2), live, self.active, self.queued))
        self.over_limit += max(live, self.active) > limit
        self.max_live = max(self.max_live, live)
        self.max_active = max(self.max_active, self.active)
        self.max_queued = max(self.max_queued, self.queued)
        self.terminal = sum(by_status[s.value] for s in TERMINAL_STATUSES)


@dataclass
class Single:
    """One call of tenant B: 201 → first read past `queued`, and what A's lane held then."""

    latency: float | None  # None: not dialed within the wait
    first_status: str
    a_queued: int


@dataclass
class Outcome:
    accepted: float = 0.0  # time.monotonic() of the batch's 201
    accept_seconds: float = 0.0  # POST /v1/batches → 201
    first_dial: float | None = None  # batch accept → started_at (the first call dialed)
    last_completed: float | None = None  # monotonic arrival of the last call.completed
    lane: Lane = field(default_factory=Lane)
    idle: list[Single] = field(default_factory=list)
    loaded: list[Single] = field(default_factory=list)
    loaded_while_waiting: bool = False  # A had calls waiting at each of B's loaded calls
    batch: dict[str, Any] = field(default_factory=dict)  # GET /v1/batches/{id} at the end
    webhooks: int = 0  # call.completed webhooks of A's calls received
    duplicates: int = 0


def client_for(base_url: str, api_key: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=base_url, headers={"Authorization": f"Bearer {api_key}"}, timeout=30.0
    )


async def sample_lane(
    client: httpx.AsyncClient, lane: Lane, limit: int, every: float, stop: asyncio.Event
) -> None:
    """Reads A's usage every `every` seconds until `stop` is set."""
    started = time.monotonic()
    while not stop.is_set():
        try:
            response = await client.get("/v1/usage")
        except httpx.HTTPError as exc:
            print(f"  GET /v1/usage: {exc!r}", flush=True)
        else:
            if response.status_code == 200:
                lane.add(response.json(), limit, started)
        await asyncio.sleep(every)


async def place_one(client: httpx.AsyncClient, phone: str, agent: str, lane: Lane) -> Single:
    """POST one call, then read it every POLL_SECONDS until it is past `queued` (the
    simulator rings at once, so the first status seen may be `ringing` or later)."""
    a_queued = lane.queued
    response = await client.post("/v1/calls", json={"phone": phone, "agent": agent})
    if response.status_code != 201:
        raise RuntimeError(f"POST /v1/calls (tenant B): {response.status_code} {response.text}")
    accepted = time.monotonic()
    call_id = response.json()["call_id"]
    while time.monotonic() - accepted < 60:
        status = (await client.get(f"/v1/calls/{call_id}")).json()["status"]
        if status not in WAITING:
            return Single(time.monotonic() - accepted, status, a_queued)
        await asyncio.sleep(POLL_SECONDS)
    return Single(None, "queued", a_queued)


async def place_singles(
    client: httpx.AsyncClient, numbers: list[str], args: argparse.Namespace, lane: Lane
) -> list[Single]:
    singles = []
    for phone in numbers:
        singles.append(await place_one(client, phone, args.agent, lane))
        await asyncio.sleep(args.b_spacing)
    return singles


async def until(condition: Any, deadline: float, step: float = 0.1) -> bool:
    """Waits for `condition()` to hold; False if the deadline came first."""
    while time.monotonic() < deadline:
        if condition():
            return True
        await asyncio.sleep(step)
    return condition()


async def run_benchmark(
    args: argparse.Namespace, api_url: str, keys: dict[str, str], deadline: float
) -> Outcome:
    """B's idle anchor, then A's batch with B's calls in the middle of it."""
    interrupt.attach(asyncio.get_running_loop(), asyncio.current_task())
    outcome, receiver = Outcome(), Receiver()
    async with (
        serving(receiver) as receiver_url,
        client_for(api_url, keys["A"]) as a,
        client_for(api_url, keys["B"]) as b,
    ):
        hook = {"url": f"{receiver_url}/hook", "events": ["call.completed"]}
        (await a.put("/v1/webhooks", json=hook)).raise_for_status()
        print(f"tenant B idle: {args.b_calls} single calls …", flush=True)
        outcome.idle = await place_singles(
            b, phones(args.b_calls, offset=8_000_000), args, outcome.lane
        )

        stop = asyncio.Event()
        sampling = asyncio.create_task(
            sample_lane(a, outcome.lane, args.limit_a, args.sample_seconds, stop)
        )
        body = {"agent": args.agent, "calls": [{"phone": p} for p in phones(args.calls)]}
        print(f"tenant A: batch of {args.calls} calls, limit {args.limit_a} …", flush=True)
        sent, sent_at = time.monotonic(), datetime.now().astimezone()
        response = await a.post("/v1/batches", json=body, timeout=300)
        response.raise_for_status()
        outcome.accepted = time.monotonic()
        outcome.accept_seconds = outcome.accepted - sent
        batch_id = response.json()["batch_id"]

        lane = outcome.lane
        # B's loaded calls go on without a full lane after FULL_WAIT (reported as such).
        full = await until(
            lambda: lane.active >= args.limit_a and lane.queued > 0,
            min(deadline, time.monotonic() + FULL_WAIT),
        )
        print(f"  A's lane full with calls waiting: {full}; tenant B under load …", flush=True)
        outcome.loaded = await place_singles(b, phones(args.b_calls, offset=8_100_000), args, lane)
        outcome.loaded_while_waiting = full and all(s.a_queued > 0 for s in outcome.loaded)
        await until(lambda: lane.terminal >= args.calls, deadline - REPORT_MARGIN)
        # The last webhooks follow the last terminal status by the notifier's delivery.
        await until(lambda: len(receiver.completed) >= args.calls, deadline - REPORT_MARGIN)
        stop.set()
        await sampling

        outcome.batch = (await a.get(f"/v1/batches/{batch_id}")).json()
        started = outcome.batch.get("started_at")
        if started:
            # started_at is the server's clock: compared with the wall clock at the POST.
            dialed = datetime.fromisoformat(started) - sent_at
            outcome.first_dial = dialed.total_seconds() - outcome.accept_seconds
        outcome.webhooks, outcome.duplicates = len(receiver.completed), receiver.duplicates
        outcome.last_completed = max(receiver.completed.values(), default=None)
    return outcome


def latencies(singles: list[Single]) -> str:
    values = sorted(s.latency for s in singles if s.latency is not None)
    late = len(singles) - len(values)
    text = (
        f"p50 {percentile(values, 50) * 1000:6.0f}  p99 {percentile(values, 99) * 1000:6.0f}  "
        f"max {percentile(values, 100) * 1000:6.0f} ms"
    )
    return text + (f"  ({late} NOT DIALED within 60 s)" if late else "")


def figures(args: argparse.Namespace, outcome: Outcome) -> dict[str, Any]:
    """The run's numbers, as written to --out."""
    lane, counts = outcome.lane, outcome.batch.get("counts", {})
    ended = sum(counts.get(s.value, 0) for s in TERMINAL_STATUSES)
    wall = (outcome.last_completed or time.monotonic()) - outcome.accepted
    rate = outcome.webhooks / max(wall, 1e-3)
    ideal = args.limit_a / args.talk_seconds

    def p(singles: list[Single], q: float) -> float:
        return percentile(sorted(s.latency for s in singles if s.latency is not None), q)

    return {
        "calls": args.calls,
        "limit_a": args.limit_a,
        "talk_seconds": args.talk_seconds,
        "batch_accept_seconds": outcome.accept_seconds,
        "first_dial_seconds": outcome.first_dial,
        "wall_seconds": wall,
        "completed_per_second": rate,
        "ideal_per_second": ideal,
        "ratio": rate / ideal,
        "max_live": lane.max_live,
        "max_slots_held": lane.max_active,
        "max_waiting": lane.max_queued,
        "usage_samples": lane.samples,
        "samples_over_limit": lane.over_limit,
        "limit_breached": max(lane.max_live, lane.max_active) > args.limit_a,
        "batch_counts": counts,
        "ended": ended,
        "webhooks_completed": outcome.webhooks,
        "duplicate_webhooks": outcome.duplicates,
        "lost": args.calls - ended,
        "b_idle_p50": p(outcome.idle, 50),
        "b_idle_p99": p(outcome.idle, 99),
        "b_loaded_p50": p(outcome.loaded, 50),
        "b_loaded_p99": p(outcome.loaded, 99),
        "b_p50_ratio": p(outcome.loaded, 50) / max(p(outcome.idle, 50), 1e-6),
        "b_p99_ratio": p(outcome.loaded, 99) / max(p(outcome.idle, 99), 1e-6),
        "b_loaded_while_a_waiting": outcome.loaded_while_waiting,
        "b_idle": [asdict(s) for s in outcome.idle],
        "b_loaded": [asdict(s) for s in outcome.loaded],
        "usage_series": ["t live slots waiting", *lane.series],
    }


def report(args: argparse.Namespace, outcome: Outcome, store: str) -> list[str]:
    """The summary's lines; a limit passed or a call lost is said in capitals."""
    f = figures(args, outcome)
    load = os.getloadavg()
    first_dial = "n/a" if f["first_dial_seconds"] is None else f"{f['first_dial_seconds']:.2f} s"
    lines = [
        f"command     {command('bench.dispatch')}",
        f"machine     {machine()}; load avg now {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}",
        f"store       {store}",
        f"batch       {args.calls} calls, tenant A limit {args.limit_a}, talk "
        f"{args.talk_seconds:g} s; accepted in {f['batch_accept_seconds']:.2f} s; "
        f"accept → first dial {first_dial}",
        f"rate        {f['completed_per_second']:.2f} calls/s completed (batch 201 → last "
        f"call.completed, {f['wall_seconds']:.1f} s); ideal limit/talk "
        f"{f['ideal_per_second']:.2f}/s; ratio {f['ratio']:.2f}",
        f"live        max {f['max_live']} live, max {f['max_slots_held']} slots held "
        f"(limit {args.limit_a}; {f['usage_samples']} samples); max {f['max_waiting']} waiting",
        f"ended       {f['ended']} of {args.calls} terminal {f['batch_counts']}; "
        f"{f['webhooks_completed']} call.completed webhooks, {f['duplicate_webhooks']} duplicates",
        f"B idle      {latencies(outcome.idle)}  (201 → past queued, {len(outcome.idle)} calls)",
        f"B loaded    {latencies(outcome.loaded)}  (A had calls waiting at each: "
        f"{f['b_loaded_while_a_waiting']})",
        f"B ratio     loaded/idle p50 {f['b_p50_ratio']:.2f}, p99 {f['b_p99_ratio']:.2f}",
    ]
    if f["limit_breached"]:
        lines.append(
            f"!!! LIMIT BREACHED: more than {args.limit_a} live or holding slots in "
            f"{f['samples_over_limit']} of {f['usage_samples']} samples !!!"
        )
    if f["lost"] or f["webhooks_completed"] < args.calls:
        lines.append(
            f"!!! CALLS NOT ENDED: {f['lost']} not terminal, "
            f"{args.calls - f['webhooks_completed']} without call.completed !!!"
        )
    return lines


def seed(env: dict[str, str], args: argparse.Namespace) -> dict[str, str]:
    """Agents, and tenants A and B with their limits and keys, through the operator CLI."""
    cli(env, "agents", "load", str(args.agents_file))
    keys = {}
    for name, limit in (("A", args.limit_a), ("B", args.limit_b)):
        tenant = f"tenant-{name.lower()}"
        cli(env, "tenants", "create", tenant)
        cli(env, "tenants", "set-limit", tenant, "--max-concurrent-calls", str(limit))
        keys[name] = extract_key(cli(env, "keys", "create", "--tenant", tenant))
    return keys


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.dispatch", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("--store", choices=("sqlite", "mongo"), default="sqlite")
    parser.add_argument("--calls", type=int, default=2000, help="tenant A's batch (2000)")
    parser.add_argument("--limit-a", type=int, default=20, help="A's max_concurrent_calls")
    parser.add_argument("--limit-b", type=int, default=10, help="B's max_concurrent_calls")
    parser.add_argument("--talk-seconds", type=float, default=1.0, help="simulator talk time")
    parser.add_argument("--b-calls", type=int, default=20, help="B's calls, idle and loaded")
    parser.add_argument("--b-spacing", type=float, default=0.5, help="seconds between B's")
    parser.add_argument(
        "--sample-seconds", type=float, default=0.2, help="A's GET /v1/usage interval (0.2)"
    )
    parser.add_argument("--agent", default="altynai")
    parser.add_argument("--agents-file", type=Path, default=Path("deploy/agents.example.yaml"))
    parser.add_argument("--timeout", type=float, default=900.0, help="whole run, seconds")
    parser.add_argument("--out", type=Path, help="write the figures here as JSON")
    parser.add_argument("--broker-url", default=os.environ.get("BENCH_BROKER_URL", DEFAULT_BROKER))
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--keep-logs", action="store_true")
    args = parser.parse_args(argv)
    if min(args.calls, args.limit_a, args.limit_b, args.b_calls) < 1 or args.talk_seconds <= 0:
        parser.error("counts and limits must be at least 1, --talk-seconds above 0")
    return args


def measure(
    args: argparse.Namespace,
    run: str,
    store_env: dict[str, str],
    store: str,
    logs: Path,
    cleanup: Cleanup,
    deadline: float,
) -> bool:
    """Seed, start the services, run, print and write the figures; False on a `!!!`."""
    ports = {name: free_port() for name in SERVICES}
    topology = Topology.for_run(args.broker_url, run)
    cleanup.add(topology.remove)
    env = service_env(topology, store_env, ports, args.log_level)
    env["SWITCHBOARD_SIM_TALK_SECONDS"] = str(args.talk_seconds)
    print(f"run {run}: seeding, logs in {logs}", flush=True)
    keys = seed(env, args)
    processes = start_services(env, ports, logs, cleanup)
    try:
        outcome = asyncio.run(run_benchmark(args, processes["api"].url, keys, deadline))
    finally:
        interrupt.detach()
    lines = report(args, outcome, store) + log_problems(logs)
    print("\n".join(["", *lines]), flush=True)
    if args.out:
        args.out.write_text(json.dumps(figures(args, outcome) | {"lines": lines}))
    return not any(line.startswith("!!!") for line in lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    deadline = time.monotonic() + args.timeout
    cleanup, run = Cleanup(), uuid.uuid4().hex[:10]
    logs = Path(tempfile.mkdtemp(prefix="switchboard-dispatch-"))
    watchdog = arm_hard_timeout(args.timeout, cleanup)
    ok = False
    try:
        kind = "sqlite" if args.store == "sqlite" else "mongodb"
        with state_store(kind, run, logs, cleanup) as (store_env, store):
            try:
                ok = measure(args, run, store_env, store, logs, cleanup, deadline)
            finally:
                cleanup.run()  # the services stop before their store does
    except (KeyboardInterrupt, asyncio.CancelledError):
        print(f"{interrupt.reason or 'interrupted'}: stopping what was started", file=sys.stderr)
        return 124 if interrupt.reason == "hard timeout" else 130
    except Exception as exc:
        print(f"benchmark failed: {exc!r}", file=sys.stderr)
        print("\n".join(log_problems(logs)), file=sys.stderr)
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

"""Pipeline benchmark: N calls through the five services as separate processes, on the real
RabbitMQ and MongoDB (SecantusDB unless MONGODB_URL is set), the simulator talking for
zero seconds.

For every call it measures the time from the API's 201 to the arrival of the signed
`call.completed` webhook at a receiver served in this script's event loop, so the figure
covers api → RabbitMQ → dialer → simulator → webhook-ingest → RabbitMQ → notifier →
customer URL, every store write on the way included.

    .venv/bin/python -m bench.pipeline --quick        # 200 calls, a smoke run
    .venv/bin/python -m bench.pipeline                # 2000 calls, 50 POSTs in flight
    .venv/bin/python -m bench.pipeline --calls 5000 --concurrency 100 --timeout 180

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
import shutil
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
from pymongo import MongoClient

from bench.broker import Topology, queue_depths
from bench.load import phones, post_calls, wait_for_webhooks
from bench.probes import dial_counts, handler_means, scrape_counters, statuses_of
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
from bench.report import STATUS_SAMPLE, Result, report
from bench.sampler import Sampler, processes_to_watch
from switchboard_testing.mongo import mongodb_server
from switchboard_testing.net import free_port
from switchboard_testing.processes import ServiceProcess
from switchboard_testing.servers import serving

DEFAULT_BROKER = "amqp://guest:guest@127.0.0.1:5672/"
DEFAULT_AGENTS_FILE = Path(__file__).resolve().parent.parent / "deploy" / "agents.example.yaml"


def service_env(
    topology: Topology, store_env: dict[str, str], ports: dict[str, int], level: str
) -> dict[str, str]:
    """The services' settings: production defaults, but no simulator delays, plain HTTP
    to a loopback receiver, and short retry schedules (`bench.broker`)."""
    sim = f"http://127.0.0.1:{ports['provider-sim']}"
    ingest = f"http://127.0.0.1:{ports['webhook-ingest']}"
    return {
        **topology.env(),
        **store_env,
        "SWITCHBOARD_CALLBACK_BASE_URL": ingest,
        "SWITCHBOARD_SIM_CALLBACK_URL": ingest,
        "SWITCHBOARD_LOG_LEVEL": level,
        "SWITCHBOARD_WEBHOOK_ALLOW_HTTP": "true",
        "SWITCHBOARD_WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true",
        "SWITCHBOARD_SIM_RING_DELAY_SECONDS": "0",
        "SWITCHBOARD_SIM_ANSWER_DELAY_SECONDS": "0",
        "SWITCHBOARD_SIM_TALK_SECONDS": "0",
        "SWITCHBOARD_SIMULATOR__BASE_URL": sim,
        "SWITCHBOARD_SIMULATOR__API_KEY": "bench-sim-key",
        "SWITCHBOARD_SIMULATOR__CALLBACK_SECRET": "bench-sim-callback-secret",
    }


FAILOVER_AGENTS = """\
agents:
  - key: failover
    name: Failover
    routes:
      - {provider: vocode, provider_agent_id: bench-vocode-agent, from_number: "+15005550001"}
      - {provider: simulator, provider_agent_id: bench-sim-agent, from_number: "+15005550001"}
"""


def first_route_down(logs: Path, args: argparse.Namespace) -> dict[str, str]:
    """Settings and agents for --first-route-down: Vocode on a port nobody listens on,
    and every call through the `failover` agent (Vocode first, then the simulator)."""
    agents = logs / "failover-agents.yaml"
    agents.write_text(FAILOVER_AGENTS)
    args.agents_file, args.agent = agents, "failover"
    return {
        "SWITCHBOARD_VOCODE__BASE_URL": f"http://127.0.0.1:{free_port()}",
        "SWITCHBOARD_VOCODE__API_KEY": "bench-vocode-key",
        "SWITCHBOARD_VOCODE__CALLBACK_SECRET": "bench-vocode-callback-secret",
    }


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

        def drop_database() -> None:
            with (
                contextlib.suppress(Exception),
                MongoClient(mongodb_url, serverSelectionTimeoutMS=3000) as client,
            ):
                client.drop_database(database)

        cleanup.add(drop_database)
        name = (
            "MongoDB at MONGODB_URL"
            if os.environ.get("MONGODB_URL")
            else "SecantusDB (secantusd-py, :memory:)"
        )
        yield (
            {"SWITCHBOARD_MONGODB_URL": mongodb_url, "SWITCHBOARD_MONGODB_DATABASE": database},
            name,
        )


async def warm_up(client: httpx.AsyncClient, receiver: Receiver, args: argparse.Namespace) -> None:
    """Imports, connection pools and indexes get going; not measured."""
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


async def run_benchmark(
    args: argparse.Namespace,
    processes: dict[str, ServiceProcess],
    api_key: str,
    topology: Topology,
) -> Result:
    """Register the receiver, warm up, then measure `args.calls` calls."""
    interrupt.attach(asyncio.get_running_loop(), asyncio.current_task())
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
        if args.warmup:
            await warm_up(client, receiver, args)

        services = {name: p.process.pid for name, p in processes.items() if p.process}
        queues = {"dialer": topology.queues["dialer"], "notifier": topology.queues["notifier"]}
        sampler = Sampler(processes_to_watch(services), queues, args.broker_url)
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
        dead = await queue_depths(args.broker_url, topology.dead_letter_queues())

    done = [c for c in call_ids if c in arrived]
    last_done = max((arrived[c] for c in done), default=measured.first_sent)
    return Result(
        measured=measured,
        posting_seconds=posting_done - measured.first_sent,
        done=done,
        missing=missing,
        stuck=stuck,
        not_completed_status=Counter(
            receiver.end_status[c] for c in done if receiver.end_status[c] != "completed"
        ),
        latency=[arrived[c] - measured.posted[c].accepted for c in done],
        end_to_end=[arrived[c] - measured.posted[c].sent for c in done],
        post_latency=[p.accepted - p.sent for p in measured.posted.values()],
        wall=last_done - measured.first_sent,
        sampler=sampler,
        usage=usage,
        delivered=delivered,
        dials=dials,
        phones=[p.phone for p in measured.posted.values()],
        counters=counters,
        handlers=handlers,
        dead=dead,
        load=(load_before, load_after),
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.pipeline", description=(__doc__ or "").split("\n\n")[0]
    )
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
        "--first-route-down",
        action="store_true",
        help="every call through an agent whose first route's provider refuses connections "
        "(failover to the simulator, the circuit breaker opening): compare with a run "
        "without it",
    )
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
                topology = Topology.for_run(args.broker_url, run)
                env = service_env(topology, store_env, ports, args.log_level)
                if args.first_route_down:
                    env |= first_route_down(logs, args)
                cleanup.add(topology.remove)
                print(f"run {run}: seeding with the CLI, logs in {logs}", flush=True)
                cli(env, "agents", "load", str(args.agents_file))
                cli(env, "tenants", "create", "bench")
                # Throughput, not the tenant's concurrency limit (10 by default), is measured.
                cli(env, "tenants", "set-limit", "bench", "--max-concurrent-calls", "10000")
                api_key = extract_key(cli(env, "keys", "create", "--tenant", "bench"))
                print("starting " + ", ".join(SERVICES) + " …", flush=True)
                started = time.monotonic()
                processes = start_services(env, ports, logs, cleanup)
                print(f"  ready in {time.monotonic() - started:.1f} s", flush=True)
                try:
                    result = asyncio.run(run_benchmark(args, processes, api_key, topology))
                finally:
                    interrupt.detach()
                lines = report(args, result, store)
                problems = log_problems(logs)
                if problems:
                    lines += ["service logs:", *problems]
                print("\n".join(["", *lines]), flush=True)
                if args.json:
                    args.json.write_text(json.dumps(lines, indent=1))
                ok = not result.missing and not result.measured.refused
            finally:
                cleanup.run()
    except (KeyboardInterrupt, asyncio.CancelledError):
        reason = interrupt.reason or "interrupted"
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

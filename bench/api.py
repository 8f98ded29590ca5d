"""The API alone against a bare endpoint of the same shape, side by side in one run.

    .venv/bin/python -m bench.api [--store sqlite|mongo] [--seconds 10] [--connections 32]

Starts the api process (real RabbitMQ, SQLite or MongoDB/SecantusDB, seeded with the
operator CLI) and `bench/anchor.py` (a bare FastAPI app on the same uvicorn settings),
drives both with `wrk` (installed with apt when missing), and prints requests/s and
latency percentiles for `POST /v1/calls` and `GET /v1/calls/{id}`, the ratios to the
anchor (issue goals: POST >= 0.5, GET >= 0.7), and p99 at a steady 200 POST/s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import aio_pika
import httpx

from bench.processes import cli, extract_key
from switchboard_testing.mongo import mongodb_server
from switchboard_testing.net import free_port
from switchboard_testing.processes import ServiceProcess

REPO = Path(__file__).resolve().parents[1]
BODY = {"phone": "+996700000000", "agent": "altynai"}


@dataclass
class Figures:
    name: str
    rate: float  # requests per second
    p50_ms: float
    p99_ms: float
    errors: int  # non-2xx answers and socket errors
    requests: int = 0  # answered in the run (wrk's count)
    cpu_ms_per_request: float | None = None  # the served process's CPU, when known


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=True, capture_output=True)
    return shutil.which("wrk") or "wrk"


def wrk(
    url: str,
    *,
    method: str,
    headers: dict[str, str],
    body: str | None,
    seconds: int,
    connections: int,
    name: str,
    scripts: Path,
) -> Figures:
    script = scripts / f"{name}.lua"
    lines = [f'wrk.method = "{method}"']
    lines += [f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items()]
    if body is not None:
        lines.append(f"wrk.body = {json.dumps(body)}")
    script.write_text("\n".join(lines) + "\n")
    out = subprocess.run(
        [
            ensure_wrk(),
            "-t2",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 60,
    ).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = int(non_2xx.group(1)) if non_2xx else 0
    errors += sum(int(g) for g in socket.groups()) if socket else 0
    total = re.search(r"(\d+) requests in", out)
    return Figures(
        name,
        rate,
        _percentile(out, "50%"),
        _percentile(out, "99%"),
        errors,
        requests=int(total.group(1)) if total else 0,
    )


def _percentile(out: str, which: str) -> float:
    found = re.search(rf"^\s+{re.escape(which)}\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    if not found:
        return float("nan")
    value, unit = float(found.group(1)), found.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


async def steady(url: str, headers: dict[str, str], rate: float, seconds: float) -> Figures:
    """POSTs at a fixed rate (open loop: a slow answer does not slow the sender)."""
    latencies: list[float] = []
    errors = 0
    async with httpx.AsyncClient(
        headers=headers, timeout=10, limits=httpx.Limits(max_connections=64)
    ) as client:

        async def one() -> None:
            nonlocal errors
            started = time.perf_counter()
            try:
                response = await client.post(url, json=BODY)
                if response.status_code != 201:
                    errors += 1
            except httpx.HTTPError:
                errors += 1
            latencies.append((time.perf_counter() - started) * 1000)

        tasks = []
        begin = time.perf_counter()
        for i in range(int(rate * seconds)):
            await asyncio.sleep(max(0.0, begin + i / rate - time.perf_counter()))
            tasks.append(asyncio.create_task(one()))
        await asyncio.gather(*tasks)
    latencies.sort()
    return Figures(
        f"POST at {rate:.0f}/s",
        len(latencies) / (time.perf_counter() - begin),
        latencies[len(latencies) // 2],
        latencies[int(len(latencies) * 0.99) - 1],
        errors,
    )


@contextlib.contextmanager
def mongo_or_none(store: str) -> Iterator[str | None]:
    if store != "mongo":
        yield None
        return
    with mongodb_server() as url:
        yield url


@contextlib.asynccontextmanager
async def dialer_queue(exchange: str, queue: str) -> AsyncIterator[None]:
    """The dialer's queue, bound but not consumed: publishes are mandatory, and with no
    queue bound each would come back unroutable (and be logged) instead of being queued
    as in production."""
    connection = await aio_pika.connect("amqp://guest:guest@127.0.0.1:5672/", timeout=10)
    async with connection:
        channel = await connection.channel()
        events = await channel.declare_exchange(exchange, aio_pika.ExchangeType.TOPIC, durable=True)
        declared = await channel.declare_queue(queue, auto_delete=False)
        await declared.bind(events, routing_key="call.*")
        try:
            yield
        finally:
            await declared.delete(if_unused=False, if_empty=False)
            await events.delete()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", choices=("sqlite", "mongo"), default="sqlite")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--steady-rate", type=float, default=200)
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the figures here")
    parser.add_argument(
        "--stored",
        type=int,
        default=0,
        metavar="N",
        help="first store N calls for the tenant (POST /v1/batches, 100,000 a request), "
        "so the figures show what the store's size costs (issue goal: flat from 10,000 "
        "to 1,000,000)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="record the api under POST and GET load with py-spy (collapsed stacks in DIR)",
    )
    args = parser.parse_args()

    run = uuid.uuid4().hex[:8]
    with tempfile.TemporaryDirectory() as tmp, mongo_or_none(args.store) as mongo_url:
        work = Path(tmp)
        env = {
            "SWITCHBOARD_BROKER_URL": "amqp://guest:guest@127.0.0.1:5672/",
            "SWITCHBOARD_EXCHANGE": f"bench.{run}.events",
            "SWITCHBOARD_QUEUE_PREFIX": f"bench.{run}.",
            "SWITCHBOARD_LOG_LEVEL": "WARNING",
            "SWITCHBOARD_HTTP_MAX_IN_FLIGHT": "4096",
            "SWITCHBOARD_API_RATE_LIMIT_PER_SECOND": "0",  # measure the API, not the limiter
        }
        if mongo_url:
            env |= {"SWITCHBOARD_MONGODB_URL": mongo_url, "SWITCHBOARD_MONGODB_DATABASE": run}
        else:
            env["SWITCHBOARD_SQLITE_PATH"] = str(work / "bench.db")
        cli(env, "agents", "load", str(REPO / "deploy" / "agents.example.yaml"))
        cli(env, "tenants", "create", "bench")
        key = extract_key(cli(env, "keys", "create", "--tenant", "bench"))
        api = ServiceProcess("api", free_port(), env, work / "api.log")
        anchor_port = free_port()
        anchor = subprocess.Popen(
            [sys.executable, "-m", "bench.anchor", str(anchor_port)],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        binding = dialer_queue(env["SWITCHBOARD_EXCHANGE"], f"bench.{run}.dialer.call-requested")
        loop = asyncio.new_event_loop()
        loop.run_until_complete(binding.__aenter__())
        try:
            api.start()
            anchor_url = f"http://127.0.0.1:{anchor_port}"
            for _ in range(100):
                with contextlib.suppress(httpx.HTTPError):
                    httpx.get(f"{anchor_url}/docs", timeout=1)
                    break
                time.sleep(0.1)
            auth = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
            if args.stored:
                seed_calls(api.url, key, args.stored)
            created = httpx.post(f"{api.url}/v1/calls", json=BODY, headers=auth, timeout=10)
            created.raise_for_status()
            call_id = created.json()["call_id"]
            common = {"seconds": args.seconds, "connections": args.connections, "scripts": work}
            body = json.dumps(BODY)
            results = [
                wrk(
                    f"{anchor_url}/v1/calls",
                    method="POST",
                    headers=auth,
                    body=body,
                    name="anchor POST",
                    **common,
                ),
                measured(
                    api,
                    args.profile,
                    lambda: wrk(
                        f"{api.url}/v1/calls",
                        method="POST",
                        headers=auth,
                        body=body,
                        name="api POST",
                        **common,
                    ),
                ),
                wrk(
                    f"{anchor_url}/v1/calls/{call_id}",
                    method="GET",
                    headers=auth,
                    body=None,
                    name="anchor GET",
                    **common,
                ),
                measured(
                    api,
                    args.profile,
                    lambda: wrk(
                        f"{api.url}/v1/calls/{call_id}",
                        method="GET",
                        headers=auth,
                        body=None,
                        name="api GET",
                        **common,
                    ),
                ),
            ]
            results.append(
                asyncio.run(steady(f"{api.url}/v1/calls", auth, args.steady_rate, args.seconds))
            )
            report(results, args)
            if args.json:
                figures = {"args": {k: str(v) for k, v in vars(args).items()}}
                figures["results"] = [dataclasses.asdict(r) for r in results]
                args.json.write_text(json.dumps(figures, indent=2))
        finally:
            api.stop()
            anchor.terminate()
            anchor.wait(timeout=10)
            loop.run_until_complete(binding.__aexit__(None, None, None))
            loop.close()


def seed_calls(api_url: str, key: str, count: int) -> None:
    """Store `count` calls for the tenant as a client would: CSV batches of up to
    100,000 distinct numbers (the batch calls stay `scheduled`: no dialer runs)."""
    started = time.perf_counter()
    per_batch = 100_000
    with httpx.Client(
        base_url=api_url, headers={"Authorization": f"Bearer {key}"}, timeout=600
    ) as client:
        for offset in range(0, count, per_batch):
            rows = min(per_batch, count - offset)
            body = "phone\n" + "".join(f"+99670{offset + i:07d}\n" for i in range(rows))
            response = client.post(
                "/v1/batches",
                params={"agent": "altynai"},
                content=body.encode(),
                headers={"Content-Type": "text/csv"},
            )
            response.raise_for_status()
    print(f"stored {count} calls in {time.perf_counter() - started:.1f} s")


def process_cpu_seconds(pid: int) -> float:
    """User plus system CPU of process `pid` (its threads included) from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measured(api: ServiceProcess, profile: Path | None, load: Callable[[], Figures]) -> Figures:
    """Run `load` against `api`, adding the api's CPU per request; with `profile`, under
    py-spy (collapsed stacks, `<name>.txt`, for flamegraph.pl or speedscope)."""
    assert api.process is not None
    pid = api.process.pid
    spy = None
    if profile is not None:
        profile.mkdir(parents=True, exist_ok=True)
        spy = subprocess.Popen(
            [
                *py_spy(),
                "record",
                "--pid",
                str(pid),
                "--format",
                "raw",
                "--rate",
                "200",
                "--threads",
                "--output",
                str(profile / "api.pending.txt"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(1)  # py-spy attaches
    before = process_cpu_seconds(pid)
    figures = load()
    cpu = process_cpu_seconds(pid) - before
    if spy is not None and profile is not None:
        spy.send_signal(signal.SIGINT)
        spy.wait(timeout=30)
        (profile / "api.pending.txt").rename(profile / f"{figures.name.replace(' ', '-')}.txt")
    if figures.requests:
        figures.cpu_ms_per_request = cpu * 1000 / figures.requests
    return figures


def py_spy() -> list[str]:
    """py-spy, installed into a throwaway virtualenv on first use (a profiler, not a
    dependency of the project)."""
    found = shutil.which("py-spy")
    if found:
        return [found]
    venv = Path(tempfile.gettempdir()) / "switchboard-py-spy"
    binary = venv / "bin" / "py-spy"
    if not binary.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "py-spy"], check=True)
    return [str(binary)]


def report(results: list[Figures], args: argparse.Namespace) -> None:
    by_name = {r.name: r for r in results}
    print(
        f"\nAPI alone, store {args.store}, RabbitMQ; wrk -t2 -c{args.connections}, "
        f"{args.seconds} s each; {args.stored} calls stored before"
    )
    print(
        f"{'target':<16} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'CPU ms/req':>10}"
    )
    for r in results:
        cpu = "" if r.cpu_ms_per_request is None else f"{r.cpu_ms_per_request:.2f}"
        print(
            f"{r.name:<16} {r.rate:>9.0f} {r.p50_ms:>8.2f} {r.p99_ms:>8.2f} {r.errors:>7} {cpu:>10}"
        )
    post = by_name["api POST"].rate / by_name["anchor POST"].rate
    get = by_name["api GET"].rate / by_name["anchor GET"].rate
    print(f"ratio POST api/anchor: {post:.2f} (goal >= 0.5)")
    print(f"ratio GET  api/anchor: {get:.2f} (goal >= 0.7)")


if __name__ == "__main__":
    main()

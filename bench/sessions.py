"""Browser voice sessions under load: the media edge's relay delay, each direction.

The edge runs as its own process (`switchboard run media-edge`, the API apart, SQLite)
or, with `--all-in-one`, inside `switchboard run all`. Its sessions are served by
`bench/session_provider.py` (the ElevenLabs dialect, doing next to nothing), and the
browsers are `--generators` processes of `bench/session_load.py`, the sessions split
among them. Every frame carries `time.monotonic_ns()` in its first 8 bytes, one clock
for all processes on the machine: **upstream** is browser send → provider read,
**downstream** provider send → browser read; each is one crossing of the edge (both
sockets' loopback, the edge's reads, base64 and JSON, and its sends) plus the reading
process's own scheduling delay, which is reported as its loop lag.

It prints sessions opened per second (all at once), sessions held, the relay delays
(p50/p99/max), frames lost, the edge's CPU (cores) and RSS per open session, and the
load average.

    .venv/bin/python -m bench.sessions --sessions 200 --frame-samples 4096 --seconds 20
    .venv/bin/python -m bench.sessions --sessions 200 --frame-samples 320 --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx
import psutil

from bench.session_stats import percentile
from switchboard_shared.adapters.store.sqlite import SqliteStore
from switchboard_shared.domain.tenants import Tenant, new_api_key
from switchboard_testing.net import free_port


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


def start(
    args: list[str], env: dict[str, str], log: IO[bytes], nice: int = 0
) -> subprocess.Popen[bytes]:
    """`python -m ARGS`; `nice` other than 0 runs it under nice(1) (same pid: nice execs)."""
    command = [sys.executable, "-m", *args]
    if nice:
        command = ["nice", "-n", str(nice), *command]
    return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)


async def wait_up(url: str) -> None:
    async with httpx.AsyncClient(timeout=1) as probe:
        for _ in range(300):
            try:
                await probe.get(url)
                return
            except httpx.HTTPError:
                await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")


@dataclass
class Generator:
    process: subprocess.Popen[str]

    @classmethod
    def spawn(cls, arguments: list[str], env: dict[str, str]) -> Generator:
        """`python -m bench.session_load ARGUMENTS`, talking JSON lines on its stdio."""
        command = [sys.executable, "-m", "bench.session_load", *arguments]
        return cls(
            subprocess.Popen(
                command, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
            )
        )

    async def line(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        text = await asyncio.to_thread(self.process.stdout.readline)
        if not text:
            raise RuntimeError(f"load generator {self.process.pid} exited")
        result: dict[str, Any] = json.loads(text)
        return result

    def go(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write("go\n")
        self.process.stdin.flush()


def ms(values: list[int], q: float) -> str:
    return f"{percentile(values, q) / 1e6:.1f}"


def delay_line(name: str, values: list[int]) -> str:
    return (
        f"{name:<22} p50 {ms(values, 50):>6}  p99 {ms(values, 99):>6}  "
        f"max {ms(values, 100):>6} ms  ({len(values)} frames)"
    )


def spy(pid: int, seconds: float, out: Path, log: IO[bytes]) -> subprocess.Popen[bytes]:
    """py-spy (not a dependency: installed for a measurement) sampling the edge's stacks
    while the audio flows, written as collapsed stacks, one a line."""
    command = [str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(pid)]
    command += ["--duration", str(int(seconds)), "--format", "raw", "--output", str(out)]
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)


def by_second(delays: list[int], sent: list[int], since_ns: int) -> str:
    """p99 of the delays of the frames sent in each second of the window."""
    seconds: dict[int, list[int]] = {}
    for delay, at in zip(delays, sent, strict=True):
        seconds.setdefault((at - since_ns) // 1_000_000_000, []).append(delay)
    return " ".join(f"{ms(seconds[s], 99)}" for s in sorted(seconds))


def cpu_pressure_us() -> int | None:
    """Microseconds in which some runnable task on the machine waited for a CPU (Linux
    PSI, /proc/pressure/cpu); None where the kernel does not say."""
    try:
        some = Path("/proc/pressure/cpu").read_text().splitlines()[0]
    except OSError:
        return None
    return int(some.rpartition("total=")[2])


def cpu_of(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


async def main(
    sessions: int,
    frame_samples: int,
    seconds: float,
    generators: int,
    all_in_one: bool,
    profile: Path | None,
    edge_nice: int,
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        keys = await seed_keys(data / "switchboard.db", sessions)
        port, provider_port = free_port(), free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")} | {
            "SWITCHBOARD_PORT": str(port),
            "SWITCHBOARD_DATA_DIR": str(data),
            "SWITCHBOARD_SQLITE_PATH": str(data / "switchboard.db"),
            "SWITCHBOARD_LOG_LEVEL": "WARNING",
            "SWITCHBOARD_API_RATE_LIMIT_PER_SECOND": "0",
            # Every session to the bench's provider, through the ElevenLabs adapter.
            "SWITCHBOARD_ELEVENLABS__BASE_URL": f"http://127.0.0.1:{provider_port}",
            "SWITCHBOARD_ELEVENLABS__API_KEY": "bench",
            "SWITCHBOARD_SESSION_TIER_PROVIDERS": json.dumps(
                {"basic": ["elevenlabs"], "advanced": ["elevenlabs"]}
            ),
        }
        log = (data / "services.log").open("wb")
        base = f"http://127.0.0.1:{port}"
        started: list[subprocess.Popen[bytes]] = [
            start(["bench.session_provider", "--port", str(provider_port)], env, log)
        ]
        if all_in_one:
            started.append(start(["switchboard.cli", "run", "all"], env, log, edge_nice))
            edge = started[-1]
        else:
            edge_port = free_port()
            env["SWITCHBOARD_MEDIA_EDGE_URL"] = f"ws://127.0.0.1:{edge_port}/media"
            edge_env = env | {"SWITCHBOARD_PORT": str(edge_port)}
            started.append(
                start(["switchboard.cli", "run", "media-edge"], edge_env, log, edge_nice)
            )
            edge = started[-1]
            started.append(start(["switchboard.cli", "run", "api"], env, log))
            await wait_up(f"http://127.0.0.1:{edge_port}/healthz")
        loads = [os.getloadavg()]
        spawned: list[Generator] = []
        try:
            await wait_up(f"{base}/healthz")
            await wait_up(f"http://127.0.0.1:{provider_port}/stats")
            watched = {"edge": psutil.Process(edge.pid), "provider": psutil.Process(started[0].pid)}
            rss_before = watched["edge"].memory_info().rss
            for share in range(generators):
                mine = data / f"keys-{share}"
                mine.write_text("\n".join(keys[share::generators]))
                arguments = ["--base", base, "--keys", str(mine)]
                arguments += ["--frame-samples", str(frame_samples), "--seconds", str(seconds)]
                spawned.append(Generator.spawn(arguments, env))
            opened = await asyncio.gather(*(g.line() for g in spawned))
            # From the first generator's first POST to the last one's last `ready`.
            open_seconds = max(o["between"][1] for o in opened) - min(
                o["between"][0] for o in opened
            )
            held = sum(o["opened"] for o in opened)
            joins = sorted(int(j * 1e9) for o in opened for j in o["joins"])
            rss_open = watched["edge"].memory_info().rss
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{provider_port}") as stats:
                await stats.get("/stats", params={"reset": "1"})
                for g in spawned:
                    watched[f"generator {g.process.pid}"] = psutil.Process(g.process.pid)
                cpu_before = {name: cpu_of(p) for name, p in watched.items()}
                pressure_before = cpu_pressure_us()
                preempted_before = watched["edge"].num_ctx_switches().involuntary
                stream_at = time.perf_counter()
                stream_ns = time.monotonic_ns()
                for g in spawned:
                    g.go()
                if profile is not None:
                    started.append(spy(edge.pid, seconds, profile, log))
                results = await asyncio.gather(*(g.line() for g in spawned))
                stream_seconds = time.perf_counter() - stream_at
                cpu_after = {name: cpu_of(p) for name, p in watched.items()}
                pressure_after = cpu_pressure_us()
                preempted = watched["edge"].num_ctx_switches().involuntary - preempted_before
                provider = (await stats.get("/stats")).json()
            loads.append(os.getloadavg())
            shape = "all-in-one" if all_in_one else "media edge process (api apart)"
            if edge_nice:
                shape += f", edge at nice {edge_nice}"
            interval_ms = frame_samples / 16
            print(
                f"{shape}; {sessions} sessions, {frame_samples}-sample frames "
                f"({interval_ms:.0f} ms, {frame_samples * 2} bytes) for {seconds:.0f} s; "
                f"{generators} load generators"
            )
            print(
                f"load average before {' '.join(f'{x:.2f}' for x in loads[0])}, "
                f"after {' '.join(f'{x:.2f}' for x in loads[1])}"
            )
            print(
                f"opened: {held} in {open_seconds:.2f} s = {held / open_seconds:.1f} sessions/s "
                f"(join p50 {ms(joins, 50)} ms, p99 {ms(joins, 99)} ms); held {held} "
                f"({provider['peak_sockets']} provider sockets open at once)"
            )
            sent = sum(r["sent"] for r in results)
            received = sum(r["received"] for r in results)
            print(
                f"frames: up {sent} sent, {provider['frames_in']} reached the provider "
                f"(lost {sent - provider['frames_in']}); down {provider['frames_out']} sent, "
                f"{received} reached the browsers (lost {provider['frames_out'] - received})"
            )
            print(delay_line("upstream relay delay", provider["upstream_ns"]))
            downstream = [d for r in results for d in r["downstream_ns"]]
            print(delay_line("downstream relay delay", downstream))
            print(
                "p99 by second of streaming (ms): up "
                + by_second(provider["upstream_ns"], provider["upstream_sent_ns"], stream_ns)
            )
            down_sent = [t for r in results for t in r["downstream_sent_ns"]]
            print(
                "                                down "
                + by_second(downstream, down_sent, stream_ns)
            )
            print(
                delay_line("provider loop lag", provider["loop_lag_ns"]).replace(
                    "frames", "samples"
                )
            )
            generator_lag = [d for r in results for d in r["loop_lag_ns"]]
            print(delay_line("generators' loop lag", generator_lag).replace("frames", "samples"))
            print(
                f"edge memory: {(rss_open - rss_before) / held / 1024:.0f} KiB per open session "
                f"(RSS {rss_before / 2**20:.0f} -> {rss_open / 2**20:.0f} MiB)"
            )
            print(f"CPU while streaming ({stream_seconds:.1f} s, 1.00 = one core):")
            for name in watched:
                used = cpu_after[name] - cpu_before[name]
                print(f"  {name:<20} {used / stream_seconds:.2f}")
            if pressure_before is not None and pressure_after is not None:
                waited = (pressure_after - pressure_before) / 1e6 / stream_seconds
                print(
                    f"CPU pressure: some task waited for a CPU {waited * 100:.0f} % of the time; "
                    f"the edge was preempted {preempted / stream_seconds:.0f} times/s"
                )
        finally:
            for g in spawned:
                g.process.kill()
                g.process.wait()
            for process in started:
                process.send_signal(signal.SIGTERM)
            for process in started:
                process.wait(timeout=60)
            log.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument(
        "--frame-samples",
        type=int,
        default=4096,
        help="samples a frame (4096: the seed's ScriptProcessor; 320: 20 ms)",
    )
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--generators", type=int, default=3)
    parser.add_argument(
        "--all-in-one", action="store_true", help="the edge inside `switchboard run all`"
    )
    parser.add_argument(
        "--profile", type=Path, help="py-spy the edge while streaming, to this file"
    )
    parser.add_argument(
        "--edge-nice",
        type=int,
        default=0,
        help="run the edge under `nice -n N` (negative, as root: ahead of the machine's "
        "other work, the bench's own processes included)",
    )
    arguments = parser.parse_args()
    asyncio.run(
        main(
            arguments.sessions,
            arguments.frame_samples,
            arguments.seconds,
            arguments.generators,
            arguments.all_in_one,
            arguments.profile,
            arguments.edge_nice,
        )
    )

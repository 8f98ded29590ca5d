"""The run's processes: seeding with the operator CLI, starting the five services, reading
their logs, and stopping everything that was started, whichever way the run ends (success,
failure, Ctrl-C, SIGTERM or the hard time limit)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from switchboard_testing.processes import ServiceProcess

SERVICES = ("provider-sim", "webhook-ingest", "api", "dialer", "notifier")


def cli(env: dict[str, str], *args: str) -> str:
    """`python -m switchboard.cli ARGS` with the services' settings; returns its stdout."""
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


class Cleanup:
    """Stops what was started, once, whichever way the script ends: the services first,
    then each registered step in reverse order of registration (like an ExitStack)."""

    def __init__(self) -> None:
        self.processes: dict[str, ServiceProcess] = {}
        self._steps: list[Callable[[], None]] = []
        self._lock = threading.Lock()
        self._done = False

    def add(self, step: Callable[[], None]) -> None:
        self._steps.append(step)

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
        for child in psutil.Process().children():
            with contextlib.suppress(psutil.Error):
                child.kill()

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
        for step in reversed(self._steps):
            try:
                step()
            except Exception as exc:
                print(f"cleanup step failed: {exc!r}", file=sys.stderr)


def start_services(
    env: dict[str, str], ports: dict[str, int], logs: Path, cleanup: Cleanup
) -> dict[str, ServiceProcess]:
    """All of SERVICES as OS processes, started together, returned once each is ready."""
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
    """A line for each service log with ERROR lines or tracebacks."""
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


interrupt = Interrupt()


def arm_hard_timeout(seconds: float, cleanup: Cleanup) -> threading.Timer:
    """SIGALRM stops the run after `seconds`: an ordinary failure, cleaned up on the way
    out. If even that hangs, a watchdog thread kills our children 60 s later and exits."""

    def last_resort() -> None:
        print("hard timeout: cleanup hung, killing what we started", file=sys.stderr, flush=True)
        cleanup.kill_everything()
        os._exit(124)

    signal.signal(signal.SIGALRM, interrupt.on_signal)
    signal.signal(signal.SIGTERM, interrupt.on_signal)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    watchdog = threading.Timer(seconds + 60, last_resort)
    watchdog.daemon = True
    watchdog.start()
    return watchdog

"""`switchboard run all` (what `make run` starts) as a real process on a free port, with
embedded defaults and a known demo key, for tests that need the whole system."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from switchboard_testing.net import free_port
from tests.support.net import wait_for_port

REPO = Path(__file__).parents[2]
DEMO_KEY = "sk_demo_quickstart"


@dataclass(frozen=True)
class AllInOne:
    url: str
    api_key: str
    env: dict[str, str]
    log_path: Path

    def logs(self) -> str:
        return self.log_path.read_text()


def all_in_one_env(tmp_path: Path, port: int) -> dict[str, str]:
    """The process's environment: ours without any SWITCHBOARD_* the caller had set."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("SWITCHBOARD_")}
    return env | {
        "SWITCHBOARD_PORT": str(port),
        "SWITCHBOARD_DATA_DIR": str(tmp_path / "data"),
        "SWITCHBOARD_DEV_API_KEY": DEMO_KEY,
    }


@contextlib.contextmanager
def running_all_in_one(
    tmp_path: Path, extra_env: Mapping[str, str] | None = None
) -> Iterator[AllInOne]:
    """Start the all-in-one, wait for its port, and on exit SIGTERM it and assert it
    drained and exited 0 (its log is in the assertion message otherwise)."""
    port = free_port()
    env = all_in_one_env(tmp_path, port) | dict(extra_env or {})
    log_path = tmp_path / "all.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "switchboard.cli", "run", "all"],
            cwd=REPO,  # like `make run`: deploy/agents.example.yaml is found from here
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for_port(port, timeout=30)
            yield AllInOne(f"http://127.0.0.1:{port}", DEMO_KEY, env, log_path)
        finally:
            process.send_signal(signal.SIGTERM)
            exit_code = process.wait(timeout=30)
    assert exit_code == 0, log_path.read_text()

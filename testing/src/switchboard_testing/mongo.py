"""A MongoDB for tests: the real one at MONGODB_URL, else a SecantusDB process."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pymongo import MongoClient

from switchboard_testing.net import free_port


def _secantusd_command() -> str:
    beside_python = Path(sys.executable).parent / "secantusd-py"
    return str(beside_python) if beside_python.exists() else (shutil.which("secantusd-py") or "")


@contextmanager
def mongodb_server() -> Iterator[str]:
    """Yields a MongoDB URL that answers `ping`, and stops what it started."""
    if url := os.environ.get("MONGODB_URL"):
        yield url
        return
    command = _secantusd_command()
    if not command:
        raise RuntimeError("neither MONGODB_URL nor secantusd-py: run `make test`")
    port = free_port()
    process = subprocess.Popen(
        [
            command,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--storage-path",
            ":memory:",
            "--log-level",
            "WARNING",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"mongodb://127.0.0.1:{port}/?directConnection=true"
    try:
        _wait_until_answers(url, process)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_until_answers(url: str, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            err = process.stderr.read().decode() if process.stderr else ""
            raise RuntimeError(f"secantusd-py exited with {process.returncode}: {err}")
        try:
            client: MongoClient[dict[str, Any]]
            with MongoClient(url, serverSelectionTimeoutMS=500) as client:
                client.admin.command("ping")
                return
        except Exception:
            time.sleep(0.1)
    raise TimeoutError(f"MongoDB at {url} did not answer within {timeout}s")

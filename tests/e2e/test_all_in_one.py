"""`switchboard run all` (what `make run` starts): one process, embedded defaults, and the
README quickstart reaches `completed` with a transcript within seconds."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.net import eventually, free_port, wait_for_port

pytestmark = pytest.mark.e2e

REPO = Path(__file__).parents[2]
DEMO_KEY = "sk_demo_quickstart"


@pytest.fixture
def all_in_one(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("SWITCHBOARD_")}
    env |= {
        "SWITCHBOARD_PORT": str(port),
        "SWITCHBOARD_DATA_DIR": str(tmp_path / "data"),
        "SWITCHBOARD_DEV_API_KEY": DEMO_KEY,
    }
    log = (tmp_path / "all.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "switchboard.cli", "run", "all"],
        cwd=REPO,  # like `make run`: deploy/agents.example.yaml is found from here
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port, timeout=30)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.send_signal(signal.SIGTERM)
        exit_code = process.wait(timeout=30)
        log.close()
        output = (tmp_path / "all.log").read_text()
        assert exit_code == 0, output
        assert DEMO_KEY in output  # the banner tells the user their key
        assert (tmp_path / "data" / "switchboard.db").exists()


async def test_the_readme_quickstart_completes_a_call(all_in_one: str) -> None:
    headers = {"Authorization": f"Bearer {DEMO_KEY}"}
    async with httpx.AsyncClient(base_url=all_in_one, headers=headers, timeout=10) as client:
        agents = (await client.get("/v1/agents")).json()["data"]
        assert {a["key"] for a in agents} == {"altynai", "akylai", "altai"}

        created = await client.post(
            "/v1/calls",
            json={"phone": "+996700000000", "agent": "altynai"},
            headers={"Content-Type": "application/json"},
        )
        assert created.status_code == 201, created.text
        call_id = created.json()["call_id"]

        async def completed() -> dict[str, object] | None:
            call = (await client.get(f"/v1/calls/{call_id}")).json()
            return call if call["status"] == "completed" else None

        call = await eventually(completed, within=20, interval=0.2)
        assert call["transcript"]
        assert isinstance(call["duration"], int)
        ready = await client.get("/readyz")
        assert ready.status_code == 200

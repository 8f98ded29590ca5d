"""The production shape: every service a separate OS process, on the real RabbitMQ (behind
a proxy the tests can cut) and MongoDB (SecantusDB here), seeded with the operator CLI."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest
import pytest_asyncio

from switchboard_testing.broker_hygiene import delete_prefixed, run_prefix
from switchboard_testing.net import free_port
from switchboard_testing.processes import ServiceProcess
from tests.support.tcp_proxy import CuttableProxy

AGENTS_FILE = Path(__file__).parent / "agents.yaml"
# The e2e tenant's max_concurrent_calls (`tenants set-limit`).
E2E_TENANT_LIMIT = "1000"
SERVICES = ("provider-sim", "webhook-ingest", "api", "dialer", "notifier")


@dataclass
class Pipeline:
    env: dict[str, str]
    processes: dict[str, ServiceProcess]
    broker: CuttableProxy
    api_key: str
    mongodb_url: str
    database: str

    @property
    def api(self) -> str:
        return self.processes["api"].url

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.api, headers={"Authorization": f"Bearer {self.api_key}"}, timeout=10
        )

    def cli(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "switchboard.cli", *args],
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, f"switchboard {' '.join(args)}: {result.stderr}"
        return result.stdout


def pipeline_env(
    broker_port: int, mongodb_url: str, database: str, ports: dict[str, int]
) -> dict[str, str]:
    run = run_prefix("e2e")
    sim = f"http://127.0.0.1:{ports['provider-sim']}"
    ingest = f"http://127.0.0.1:{ports['webhook-ingest']}"
    env = {
        "SWITCHBOARD_BROKER_URL": f"amqp://guest:guest@127.0.0.1:{broker_port}/",
        "SWITCHBOARD_MONGODB_URL": mongodb_url,
        "SWITCHBOARD_MONGODB_DATABASE": database,
        "SWITCHBOARD_EXCHANGE": f"{run}.events",
        "SWITCHBOARD_QUEUE_PREFIX": f"{run}.",
        "SWITCHBOARD_CALLBACK_BASE_URL": ingest,
        "SWITCHBOARD_SIM_CALLBACK_URL": ingest,
        "SWITCHBOARD_LOG_LEVEL": "INFO",
        "SWITCHBOARD_DIAL_RETRY_DELAYS": "[0.3, 0.5, 1]",
        "SWITCHBOARD_WATCHDOG_INTERVAL_SECONDS": "1",
        "SWITCHBOARD_WATCHDOG_GRACE_SECONDS": "1",
        "SWITCHBOARD_OUTBOX_INTERVAL_SECONDS": "0.5",
        "SWITCHBOARD_OUTBOX_MIN_AGE_SECONDS": "1",
        "SWITCHBOARD_WEBHOOK_RETRY_DELAYS": "[0.3, 0.5, 1]",
        "SWITCHBOARD_WEBHOOK_ALLOW_HTTP": "true",
        "SWITCHBOARD_WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true",
        "SWITCHBOARD_SIM_RING_DELAY_SECONDS": "0.2",
        "SWITCHBOARD_SIM_ANSWER_DELAY_SECONDS": "0.2",
        "SWITCHBOARD_SIM_TALK_SECONDS": "0.3",
        "SWITCHBOARD_SIM_SLOW_ANSWER_SECONDS": "2",
    }
    for provider in ("SIMULATOR", "VOCODE", "VOXPRIA", "VAPI", "RETELL"):
        env[f"SWITCHBOARD_{provider}__BASE_URL"] = sim
        env[f"SWITCHBOARD_{provider}__API_KEY"] = f"{provider.lower()}-key"
        env[f"SWITCHBOARD_{provider}__CALLBACK_SECRET"] = f"{provider.lower()}-callback-secret"
        env[f"SWITCHBOARD_{provider}__TIMEOUT_SECONDS"] = "5"
    env["SWITCHBOARD_SIMULATOR__FROM_NUMBER"] = "+15005550000"
    env["SWITCHBOARD_VAPI__FROM_NUMBER"] = "vapi-phone-number-1"  # Vapi's phoneNumberId
    return env


@pytest.fixture(scope="session")
def rabbitmq_port(broker_url: str) -> int:
    return urlparse(broker_url).port or 5672


@pytest_asyncio.fixture(scope="module")
async def pipeline(
    request: pytest.FixtureRequest,
    mongodb_url: str,
    broker_url: str,
    rabbitmq_port: int,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Pipeline]:
    """One system per test module; a module may set `PIPELINE_ENV` to override settings."""
    logs = tmp_path_factory.mktemp("e2e-logs")
    broker = CuttableProxy(free_port(), "127.0.0.1", rabbitmq_port)
    await broker.start()
    ports = {name: free_port() for name in SERVICES}
    database = f"e2e_{uuid.uuid4().hex[:8]}"
    env = pipeline_env(broker.port, mongodb_url, database, ports)
    if getattr(request.module, "PIPELINE_STORE", "mongo") == "sqlite":
        # One SQLite file shared by the processes, instead of MongoDB.
        del env["SWITCHBOARD_MONGODB_URL"], env["SWITCHBOARD_MONGODB_DATABASE"]
        env["SWITCHBOARD_SQLITE_PATH"] = str(logs / "switchboard.db")
    env.update(getattr(request.module, "PIPELINE_ENV", {}))
    processes = {
        name: ServiceProcess(name, ports[name], env, logs / f"{name}.log") for name in SERVICES
    }
    pipeline = Pipeline(env, processes, broker, "", mongodb_url, database)
    pipeline.cli("agents", "load", str(AGENTS_FILE))
    pipeline.cli("tenants", "create", "e2e")
    # These tests push calls for throughput and faults, not the default limit of 10
    # (test_batch_concurrency.py sets its own).
    pipeline.cli("tenants", "set-limit", "e2e", "--max-concurrent-calls", E2E_TENANT_LIMIT)
    pipeline.api_key = extract_key(pipeline.cli("keys", "create", "--tenant", "e2e"))
    try:
        # In a thread: the broker proxy lives on this event loop and must keep serving.
        for process in processes.values():
            await asyncio.to_thread(process.start)
        yield pipeline
    finally:
        for process in reversed(processes.values()):
            await asyncio.to_thread(process.stop)
        await broker.close()
        # Quorum queues outlive the run: left behind they pile up until the broker chokes
        # (a later run's start deletes them if this cannot).
        with contextlib.suppress(Exception):
            await delete_prefixed(
                broker_url, env["SWITCHBOARD_QUEUE_PREFIX"], exchange=env["SWITCHBOARD_EXCHANGE"]
            )
        for process in processes.values():
            if "Traceback" in process.logs():
                print(f"--- {process.name} log tail ---\n{process.logs()}")


def extract_key(cli_output: str) -> str:
    for token in cli_output.split():
        if token.startswith("sk_"):
            return token
    raise AssertionError(f"no API key in: {cli_output}")


def dump(value: object) -> str:
    return json.dumps(value, indent=1, default=str)

"""The public docs' quickstart commands work verbatim (only base URL and key replaced)."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from switchboard_shared.domain.calls import CallStatus
from tests.support.api_client import ApiHarness, create_tenant_with_key, running_api

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")

# Copied from the docs; BASE and KEY stand for the base URL and YOUR_SERVICE_API_KEY.
CREATE_CALL = """curl -X POST BASE/v1/calls \\
  -H "Authorization: Bearer KEY" \\
  -H "Content-Type: application/json" \\
  -d '{
    "phone": "+996700000000",
    "agent": "AGENT"
  }'"""
GET_CALL = """curl BASE/v1/calls/YOUR_CALL_ID \\
  -H "Authorization: Bearer KEY\""""
LIST_AGENTS = """curl BASE/v1/agents \\
  -H "Authorization: Bearer KEY\""""


@pytest.fixture(scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ApiHarness]:
    async with running_api(Path(tmp_path_factory.mktemp("api-quickstart"))) as harness:
        yield harness


async def run_curl(command: str) -> tuple[int, Any]:
    """Run the documented command in a shell; returns (HTTP status, JSON body)."""
    process = await asyncio.create_subprocess_shell(
        command + " -sS -w '\\n%{http_code}'", stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode == 0, stderr
    body, status = stdout.decode().rsplit("\n", 1)
    return int(status), json.loads(body)


@pytest.mark.parametrize("agent", ["altynai", "akylai", "altai"])
async def test_the_quickstart_creates_reads_and_lists(api: ApiHarness, agent: str) -> None:
    tenant, key = await create_tenant_with_key(api.store)

    def fill(template: str, **extra: str) -> str:
        command = template.replace("BASE", api.base_url).replace("KEY", key)
        for placeholder, value in extra.items():
            command = command.replace(placeholder, value)
        return command

    status, created = await run_curl(fill(CREATE_CALL, AGENT=agent))
    assert status == 201
    assert set(created) == {"call_id", "status"}
    assert created["status"] == "queued"

    status, call = await run_curl(fill(GET_CALL, YOUR_CALL_ID=created["call_id"]))
    assert status == 200
    assert (call["call_id"], call["agent"], call["phone"]) == (
        created["call_id"],
        agent,
        "+996700000000",
    )
    assert call["status"] in {s.value for s in CallStatus}
    assert "transcript" in call
    assert "duration" in call

    status, agents = await run_curl(fill(LIST_AGENTS))
    assert status == 200
    assert {"altynai", "akylai", "altai"} <= {a["key"] for a in agents["data"]}
    stored = await api.store.get_call(created["call_id"], tenant.tenant_id)
    assert stored is not None

"""`switchboard run all` (what `make run` starts): one process, embedded defaults, and the
README quickstart reaches `completed` with a transcript within seconds."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.all_in_one import DEMO_KEY, AllInOne, running_all_in_one
from tests.support.net import eventually

pytestmark = pytest.mark.e2e


@pytest.fixture
def all_in_one(tmp_path: Path) -> Iterator[str]:
    with running_all_in_one(tmp_path) as running:
        yield running.url
        check_banner_and_data(running, tmp_path)


def check_banner_and_data(running: AllInOne, tmp_path: Path) -> None:
    assert DEMO_KEY in running.logs()  # the banner tells the user their key
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


async def test_a_scheduled_call_waits_and_then_completes(all_in_one: str) -> None:
    headers = {"Authorization": f"Bearer {DEMO_KEY}"}
    async with httpx.AsyncClient(base_url=all_in_one, headers=headers, timeout=10) as client:
        when = datetime.now(UTC) + timedelta(seconds=4)
        created = await client.post(
            "/v1/calls",
            json={"phone": "+996700000000", "agent": "altynai", "scheduled_at": when.isoformat()},
        )
        assert created.status_code == 201, created.text
        assert created.json()["status"] == "scheduled"
        call_id = created.json()["call_id"]
        assert (await client.get(f"/v1/calls/{call_id}")).json()["status"] == "scheduled"

        async def completed() -> dict[str, object] | None:
            call = (await client.get(f"/v1/calls/{call_id}")).json()
            return call if call["status"] == "completed" else None

        call = await eventually(completed, within=30, interval=0.2)
        assert isinstance(call["started_at"], str)
        assert datetime.fromisoformat(call["started_at"]) >= when  # not dialed before its time
        assert [a["status"] for a in call["attempts"]] == ["completed"]  # type: ignore[union-attr]


@pytest.mark.timeout(180)
async def test_a_no_answer_is_redialed_after_its_delay_until_max_attempts(
    all_in_one: str,
) -> None:
    headers = {"Authorization": f"Bearer {DEMO_KEY}"}
    retry = {"on": ["no_answer"], "max_attempts": 2, "delay_seconds": 60}
    async with httpx.AsyncClient(base_url=all_in_one, headers=headers, timeout=10) as client:
        created = await client.post(
            "/v1/calls",
            json={"phone": "+15005550002", "agent": "altynai", "retry": retry},
        )
        assert created.status_code == 201, created.text
        call_id = created.json()["call_id"]

        async def redial_scheduled() -> dict[str, Any] | None:
            call: dict[str, Any] = (await client.get(f"/v1/calls/{call_id}")).json()
            return call if call["attempts"] and call["status"] == "scheduled" else None

        waiting = await eventually(redial_scheduled, within=30, interval=0.2)
        [first] = waiting["attempts"]
        assert (first["attempt"], first["status"]) == (1, "no_answer")
        due = datetime.fromisoformat(waiting["next_attempt_at"])
        assert due >= datetime.fromisoformat(first["ended_at"]) + timedelta(seconds=60)

        async def ended() -> dict[str, Any] | None:
            call: dict[str, Any] = (await client.get(f"/v1/calls/{call_id}")).json()
            return call if call["status"] == "no_answer" else None

        final = await eventually(ended, within=120, interval=0.5)
        assert [(a["attempt"], a["status"]) for a in final["attempts"]] == [
            (1, "no_answer"),
            (2, "no_answer"),
        ]
        second_started = final["attempts"][1]["ended_at"]
        assert datetime.fromisoformat(second_started) >= due  # the redial waited its delay
        assert final["next_attempt_at"] is None

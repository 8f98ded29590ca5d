"""POST /v1/calls with `scheduled_at`, `calling_window` and `retry`: a call not due is
`scheduled` (listed by status, canceled without a dial, no event until it is due); its
attempts and next attempt are read back; invalid options are refused at create."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from switchboard_shared.domain.calls import CallStatus, utcnow
from tests.support.api_client import ApiHarness, running_api

CALL = {"phone": "+996700000000", "agent": "altynai"}
WEEKDAYS = ["mon", "tue", "wed", "thu", "fri"]


@pytest.fixture(scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ApiHarness]:
    async with running_api(Path(tmp_path_factory.mktemp("api-scheduled"))) as harness:
        yield harness


@pytest.fixture
async def client(api: ApiHarness) -> httpx.AsyncClient:
    _, client = await api.tenant()
    return client


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def error_code(response: httpx.Response) -> str:
    code: str = response.json()["error"]["code"]
    return code


async def create(client: httpx.AsyncClient, **options: Any) -> dict[str, Any]:
    response = await client.post("/v1/calls", json={**CALL, **options})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_a_call_scheduled_for_later_waits_scheduled_and_publishes_nothing(
    api: ApiHarness, client: httpx.AsyncClient
) -> None:
    when = utcnow().replace(microsecond=0) + timedelta(hours=2)
    created = await create(client, scheduled_at=iso(when))
    assert created["status"] == "scheduled"

    read = (await client.get(f"/v1/calls/{created['call_id']}")).json()
    assert read["status"] == "scheduled"
    assert read["scheduled_at"] == read["next_attempt_at"]
    assert datetime.fromisoformat(read["next_attempt_at"]) == when
    assert read["attempts"] == []
    stored = await api.store.get_call(created["call_id"])
    assert stored is not None
    # Nothing announced yet: the dispatcher queues it (and publishes) when it is due.
    assert (stored.sequence, stored.publish_pending) == (1, False)

    listed = (await client.get("/v1/calls", params={"status": "scheduled"})).json()["data"]
    assert [c["call_id"] for c in listed] == [created["call_id"]]
    usage = (await client.get("/v1/usage")).json()
    assert usage["by_status"]["scheduled"] == 1
    assert usage["active_calls"] == 0


async def test_a_past_or_absent_time_is_now(client: httpx.AsyncClient) -> None:
    past = await create(client, scheduled_at=iso(utcnow() - timedelta(days=1)))
    assert past["status"] == "queued"
    read = (await client.get(f"/v1/calls/{past['call_id']}")).json()
    assert (read["scheduled_at"], read["next_attempt_at"]) == (None, None)


async def test_a_closed_window_schedules_the_call_for_its_next_opening(
    client: httpx.AsyncClient,
) -> None:
    now = utcnow()
    # A one-hour window that opened an hour ago in UTC: closed now, opens tomorrow.
    start = (now - timedelta(hours=2)).replace(minute=0, second=0, microsecond=0)
    if start.date() != now.date() or start.hour >= 22:
        pytest.skip("too close to midnight UTC for a same-day window")
    window = {
        "start": start.strftime("%H:%M"),
        "end": (start + timedelta(hours=1)).strftime("%H:%M"),
        "timezone": "UTC",
    }
    created = await create(client, calling_window=window)
    assert created["status"] == "scheduled"
    read = (await client.get(f"/v1/calls/{created['call_id']}")).json()
    assert datetime.fromisoformat(read["next_attempt_at"]) == start + timedelta(days=1)


async def test_an_open_window_dials_at_once(client: httpx.AsyncClient) -> None:
    if datetime.now(UTC).strftime("%H:%M") >= "23:58":
        pytest.skip("the last minutes of the day in UTC")
    window = {"start": "00:00", "end": "23:59", "timezone": "UTC"}
    created = await create(client, calling_window=window, retry={"on": ["no_answer"]})
    assert created["status"] == "queued"


async def test_canceling_a_scheduled_call_ends_it_without_a_dial(
    client: httpx.AsyncClient,
) -> None:
    created = await create(client, scheduled_at=iso(utcnow() + timedelta(hours=1)))
    response = await client.post(f"/v1/calls/{created['call_id']}/cancel")
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["status"], body["ended_reason"], body["attempts"]) == (
        "canceled",
        "canceled_by_customer",
        [],
    )
    assert body["next_attempt_at"] is None


@pytest.mark.parametrize(
    "options",
    [
        {"calling_window": {"start": "20:00", "end": "09:00"}},
        {"calling_window": {"start": "09:00", "end": "20:00", "timezone": "Nowhere/City"}},
        {"calling_window": {"start": "09:00", "end": "20:00", "days": ["funday"]}},
        {"retry": {"max_attempts": 11}},
        {"retry": {"delay_seconds": 30}},
        {"retry": {"on": ["completed"]}},
        {"scheduled_at": "tomorrow"},
    ],
)
async def test_invalid_options_are_422_validation_error(
    client: httpx.AsyncClient, options: dict[str, Any]
) -> None:
    response = await client.post("/v1/calls", json={**CALL, **options})
    assert response.status_code == 422, response.text
    assert error_code(response) == "validation_error"


async def test_a_window_the_numbers_zones_never_share_is_refused(
    client: httpx.AsyncClient,
) -> None:
    # A US toll-free number spans Guam to Hawaii: no hour is 09:00-10:00 in all of them.
    response = await client.post(
        "/v1/calls",
        json={
            **CALL,
            "phone": "+18005550100",
            "calling_window": {"start": "09:00", "end": "10:00", "days": WEEKDAYS},
        },
    )
    assert response.status_code == 422, response.text
    assert error_code(response) == "calling_window_never_opens"


async def test_the_options_count_in_the_idempotency_fingerprint(
    client: httpx.AsyncClient,
) -> None:
    headers = {"Idempotency-Key": "sched-1"}
    later = iso(utcnow() + timedelta(hours=3))
    first = await client.post("/v1/calls", json={**CALL, "scheduled_at": later}, headers=headers)
    assert first.status_code == 201
    again = await client.post("/v1/calls", json={**CALL, "scheduled_at": later}, headers=headers)
    assert again.status_code == 201
    assert (
        again.json() == first.json() == {"call_id": first.json()["call_id"], "status": "scheduled"}
    )
    other = await client.post(
        "/v1/calls",
        json={**CALL, "scheduled_at": later, "retry": {"on": ["busy"]}},
        headers=headers,
    )
    assert other.status_code == 422
    assert error_code(other) == "idempotency_key_reused"


async def test_a_scheduled_call_is_stored_with_its_options(
    api: ApiHarness, client: httpx.AsyncClient
) -> None:
    window = {"start": "09:00", "end": "20:00", "days": WEEKDAYS, "timezone": "Asia/Bishkek"}
    created = await create(
        client,
        scheduled_at=iso(utcnow() + timedelta(days=3)),
        calling_window=window,
        retry={"on": ["no_answer", "busy"], "max_attempts": 4, "delay_seconds": 900},
    )
    stored = await api.store.get_call(created["call_id"])
    assert stored is not None
    assert stored.status is CallStatus.SCHEDULED
    assert stored.calling_window == {
        "start": "09:00:00",
        "end": "20:00:00",
        "days": WEEKDAYS,
        "timezone": "Asia/Bishkek",
    }
    assert stored.retry == {"on": ["no_answer", "busy"], "max_attempts": 4, "delay_seconds": 900}
    assert stored.next_attempt_at is not None
    local = stored.next_attempt_at.astimezone(ZoneInfo("Asia/Bishkek"))
    assert local.strftime("%a") in ("Mon", "Tue", "Wed", "Thu", "Fri")
    assert "09:00" <= local.strftime("%H:%M") < "20:00"

"""A redial in the production shape (every service its own process, RabbitMQ, MongoDB): a
call with a `retry` policy to the simulator's no-answer number is dialed again after its
delay, stops at `max_attempts`, and the customer's endpoint gets one `call.attempt_ended`
per attempt and one `call.completed`."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from switchboard_testing.servers import serving
from tests.e2e.conftest import Pipeline, dump
from tests.e2e.test_pipeline import sim_dials
from tests.support.net import eventually
from tests.support.receiver import WebhookReceiver

# The contract's shortest delay is 60 s: two attempts take a little over a minute.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

PIPELINE_ENV = {"SWITCHBOARD_DISPATCH_INTERVAL_SECONDS": "0.3"}
NO_ANSWER = "+15005550002"  # the simulator's scenario number: rings, nobody answers
RETRY = {"on": ["no_answer"], "max_attempts": 2, "delay_seconds": 60}


async def test_a_no_answer_is_redialed_after_its_delay_and_stops_at_max_attempts(
    pipeline: Pipeline,
) -> None:
    receiver = WebhookReceiver()
    async with serving(receiver.app()) as receiver_url, pipeline.client() as client:
        events = ["call.attempt_ended", "call.completed"]
        registered = await client.put(
            "/v1/webhooks", json={"url": f"{receiver_url}/hook", "events": events}
        )
        assert registered.status_code == 201, registered.text
        created = await client.post(
            "/v1/calls", json={"phone": NO_ANSWER, "agent": "altynai", "retry": RETRY}
        )
        assert created.status_code == 201, created.text
        call_id = created.json()["call_id"]

        async def redial_scheduled() -> dict[str, Any] | None:
            call: dict[str, Any] = (await client.get(f"/v1/calls/{call_id}")).json()
            return call if call["attempts"] and call["status"] == "scheduled" else None

        waiting = await eventually(redial_scheduled, within=60, interval=0.2)
        [first] = waiting["attempts"]
        assert (first["attempt"], first["status"]) == (1, "no_answer")
        due = datetime.fromisoformat(waiting["next_attempt_at"])
        assert due >= datetime.fromisoformat(first["ended_at"]) + timedelta(seconds=60)
        assert (await sim_dials(pipeline))[NO_ANSWER] == 1  # nothing before its delay

        async def ended() -> dict[str, Any] | None:
            call: dict[str, Any] = (await client.get(f"/v1/calls/{call_id}")).json()
            return call if call["status"] == "no_answer" else None

        final = await eventually(ended, within=150, interval=0.5)

        def of_call() -> list[dict[str, Any]]:
            return [r.payload for r in receiver.received if r.payload["data"]["call_id"] == call_id]

        async def delivered() -> bool:
            return len(of_call()) >= 3

        await eventually(delivered, within=30, interval=0.2)

    assert [(a["attempt"], a["status"]) for a in final["attempts"]] == [
        (1, "no_answer"),
        (2, "no_answer"),
    ], dump(final)
    assert final["next_attempt_at"] is None
    assert datetime.fromisoformat(final["attempts"][1]["ended_at"]) >= due
    # Stopped at max_attempts: dialed twice, no third attempt.
    assert (await sim_dials(pipeline))[NO_ANSWER] == 2
    payloads = of_call()
    assert all(len(items) == 1 for items in receiver.by_webhook_id().values())
    completed = [p for p in payloads if p["type"] == "call.completed"]
    attempts_ended = sorted(
        (p for p in payloads if p["type"] == "call.attempt_ended"),
        key=lambda p: len(p["data"]["attempts"]),
    )
    assert len(completed) == 1, dump(payloads)
    assert completed[0]["data"]["status"] == "no_answer"
    assert [(len(p["data"]["attempts"]), p["data"]["status"]) for p in attempts_ended] == [
        (1, "scheduled"),
        (2, "no_answer"),
    ], dump(payloads)
    assert len(payloads) == 3, dump(payloads)

"""Calls created through the API reach the customer's URL as exactly one signed
`call.completed` each, carrying transcript and duration and nothing provider-related."""

from __future__ import annotations

from typing import Any

import pytest
import standardwebhooks

from switchboard_testing.servers import serving
from tests.e2e.conftest import Pipeline, dump
from tests.e2e.test_pipeline import PROVIDER_WORDS, create_call, unique_numbers, wait_terminal
from tests.support.net import eventually
from tests.support.receiver import WebhookReceiver

pytestmark = pytest.mark.e2e


async def test_each_call_is_delivered_once_signed_and_provider_free(pipeline: Pipeline) -> None:
    receiver = WebhookReceiver()
    async with serving(receiver.app()) as receiver_url, pipeline.client() as client:
        registered = await client.put("/v1/webhooks", json={"url": f"{receiver_url}/hook"})
        assert registered.status_code == 201, registered.text
        secret = registered.json()["secret"]
        assert secret.startswith("whsec_")

        phones = unique_numbers(10, 4)
        agent_of = {
            await create_call(client, phone, agent): agent
            for phone, agent in zip(phones, ["altynai", "akylai", "altai"] * 4, strict=False)
        }
        call_ids = set(agent_of)
        await wait_terminal(client, list(call_ids), within=60)

        async def all_delivered() -> bool:
            return receiver.completed_call_ids() >= call_ids

        await eventually(all_delivered, within=30)
        deliveries = await client.get("/v1/webhook-deliveries", params={"limit": 100})
        assert deliveries.status_code == 200
        # The timeline of a call tells its whole story, webhook included: one call of
        # the simulator's agent, and one of Vocode's, which reports no ringing.
        timelines: dict[str, list[dict[str, Any]]] = {}
        for agent in ("altynai", "akylai"):
            call_id = min(c for c, a in agent_of.items() if a == agent)
            events = await client.get(f"/v1/calls/{call_id}/events")
            assert events.status_code == 200, events.text
            timelines[agent] = events.json()["data"]

    completed = [r for r in receiver.received if r.payload["type"] == "call.completed"]
    per_id = receiver.by_webhook_id()
    assert all(len(items) == 1 for items in per_id.values()), "a webhook-id arrived twice"
    assert {r.payload["data"]["call_id"] for r in completed} == call_ids
    verifier = standardwebhooks.Webhook(secret)
    for item in completed:
        verifier.verify(item.body, item.headers)  # raises on a bad signature
        data = item.payload["data"]
        assert data["status"] == "completed"
        assert data["transcript"]
        assert isinstance(data["duration"], int)
        text = (item.body.decode() + dump(item.headers)).lower()
        assert not any(word in text for word in PROVIDER_WORDS), text
    logged = [d for d in deliveries.json()["data"] if d["call_id"] in call_ids]
    assert len(logged) == len(call_ids)
    assert {d["status"] for d in logged} == {"delivered"}

    expected_statuses = {
        "altynai": ["queued", "dialing", "ringing", "in_progress", "completed"],
        "akylai": ["queued", "dialing", "in_progress", "completed"],
    }
    for agent, timeline in timelines.items():
        statuses = [e["status"] for e in timeline if e["type"] == "status"]
        assert statuses == expected_statuses[agent], timeline
        assert [e["outcome"] for e in timeline if e["type"] == "dial_attempt"] == ["accepted"]
        [attempt] = [e for e in timeline if e["type"] == "webhook_attempt"]
        assert attempt["event_type"] == "call.completed"
        assert attempt["status_code"] == 200
        assert attempt["latency_ms"] >= 0
        moments = [e["at"] for e in timeline]
        assert moments == sorted(moments)
        assert timeline[-1]["type"] == "webhook_attempt"  # delivered after the end
        assert not any(word in dump(timeline).lower() for word in PROVIDER_WORDS)

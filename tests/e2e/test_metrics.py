"""What an SRE reads on `/metrics` after real traffic through `make run`'s stack: per-route
HTTP rate, errors and latency (route templates, never ids), provider latency by outcome,
queue depth and consumer lag per worker queue, 201 → call.completed latency, and webhook
latency by result; and the dashboard and alert rules in deploy/ read only what is there."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
import pytest_asyncio
from prometheus_client.samples import Sample

from switchboard_testing.servers import serving
from tests.support.all_in_one import AllInOne, running_all_in_one
from tests.support.metrics import exported_sample_names, scrape, value
from tests.support.monitoring import used_metric_names
from tests.support.net import eventually
from tests.support.receiver import WebhookReceiver

pytestmark = pytest.mark.e2e

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@dataclass
class Traffic:
    system: AllInOne
    call_ids: list[str]
    samples: dict[str, list[Sample]]


@pytest_asyncio.fixture(scope="module")
async def traffic(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Traffic]:
    """Two calls that complete, with a webhook endpoint, a 404 and a 401 on the way."""
    receiver = WebhookReceiver()
    async with serving(receiver.app()) as receiver_url:
        with running_all_in_one(tmp_path_factory.mktemp("metrics")) as system:
            headers = {"Authorization": f"Bearer {system.api_key}"}
            async with httpx.AsyncClient(
                base_url=system.url, headers=headers, timeout=10
            ) as client:
                hook = await client.put("/v1/webhooks", json={"url": f"{receiver_url}/hook"})
                assert hook.status_code == 201, hook.text
                call_ids = []
                for _ in range(2):
                    created = await client.post(
                        "/v1/calls", json={"phone": "+996700000000", "agent": "altynai"}
                    )
                    assert created.status_code == 201, created.text
                    call_ids.append(created.json()["call_id"])
                await client.get(f"/v1/calls/{call_ids[0]}")
                await client.get("/v1/no-such-route")
                await client.get("/v1/calls", headers={"Authorization": "Bearer sk_wrong_key"})

                async def delivered() -> bool:
                    return len(receiver.completed_call_ids()) == len(call_ids)

                await eventually(delivered, within=30, interval=0.2)
            yield Traffic(system, call_ids, scrape(system.url))


def test_requests_are_counted_per_route_template_and_status(traffic: Traffic) -> None:
    samples = traffic.samples
    requests = "switchboard_http_requests_total"
    assert value(samples, requests, route="/v1/calls", method="POST", status="201") == 2
    assert value(samples, requests, route="/v1/calls/{call_id}", method="GET", status="200") >= 1
    assert value(samples, requests, route="/v1/calls", method="GET", status="401") == 1
    assert value(samples, requests, route="none", status="404") == 1
    # The simulator's callbacks reached webhook-ingest's routes.
    ingest = {s.labels["route"] for s in samples[requests] if "/webhooks/" in s.labels["route"]}
    assert any(route.startswith("/v1/webhooks/providers/") for route in ingest), ingest
    latency = "switchboard_http_request_seconds_count"
    assert value(samples, latency, route="/v1/calls", method="POST") == 2
    assert value(samples, "switchboard_http_request_seconds_bucket", route="/v1/calls", le="+Inf")


def test_no_label_carries_an_id_and_probes_are_not_counted(traffic: Traffic) -> None:
    routes = {s.labels["route"] for s in traffic.samples["switchboard_http_requests_total"]}
    assert not {"/healthz", "/readyz", "/metrics"} & routes
    for samples in traffic.samples.values():
        for sample in samples:
            for label in sample.labels.values():
                assert not UUID.search(label), sample


def test_provider_latency_is_recorded_by_provider_and_outcome(traffic: Traffic) -> None:
    count = "switchboard_provider_request_seconds_count"
    assert value(traffic.samples, count, provider="simulator", outcome="ok") >= 2


def test_each_worker_reports_its_queue_depth_and_lag(traffic: Traffic) -> None:
    for queue in ("dialer.call-requested", "notifier.events"):
        assert traffic.samples["switchboard_queue_depth"], "no depth sampled"
        assert any(s.labels["queue"] == queue for s in traffic.samples["switchboard_queue_depth"])
        lag = value(traffic.samples, "switchboard_consumer_lag_seconds_count", queue=queue)
        assert lag >= 2, queue


def test_end_to_end_and_webhook_latency_are_recorded(traffic: Traffic) -> None:
    samples = traffic.samples
    assert value(samples, "switchboard_call_end_to_end_seconds_count", status="completed") == 2
    assert value(samples, "switchboard_webhook_request_seconds_count", result="delivered") >= 2


def test_the_dashboard_and_alerts_read_only_metrics_the_services_export(
    traffic: Traffic,
) -> None:
    exported = exported_sample_names(traffic.system.url)
    used = used_metric_names()
    assert len(used) >= 15
    assert used - exported == set(), "deploy/grafana or deploy/prometheus use unknown metrics"

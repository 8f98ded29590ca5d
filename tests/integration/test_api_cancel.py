"""POST /v1/calls/{id}/cancel: queued calls end at once, live calls get a hang-up request."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from switchboard_shared.adapters.bus.inprocess import InProcessBus
from switchboard_shared.calls.events import Event, EventType
from switchboard_shared.domain.call_changes import CallChanges
from switchboard_shared.domain.calls import CallStatus, CallView
from switchboard_shared.ports import MessageContext, Subscription
from tests.support.api_client import ApiHarness, running_api
from tests.support.net import eventually

CALL = {"phone": "+996700000000", "agent": "akylai"}
LIVE = [CallStatus.DIALING, CallStatus.RINGING, CallStatus.IN_PROGRESS]
TERMINAL = [s for s in CallStatus if s.is_terminal]


@pytest.fixture(scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ApiHarness]:
    async with running_api(Path(tmp_path_factory.mktemp("api-cancel"))) as harness:
        yield harness


@pytest.fixture(scope="module")
async def events(api: ApiHarness) -> list[Event]:
    """Every call.completed and call.cancel_requested the API publishes."""
    received: list[Event] = []

    async def handle(event: Event, _: MessageContext) -> None:
        received.append(event)

    await api.bus.subscribe(
        Subscription(
            queue=f"test.cancel-{uuid.uuid4().hex[:8]}",
            routing_keys=(EventType.CALL_COMPLETED.value, EventType.CALL_CANCEL_REQUESTED.value),
            handler=handle,
        )
    )
    return received


async def new_call(client: httpx.AsyncClient) -> str:
    response = await client.post("/v1/calls", json=CALL)
    assert response.status_code == 201, response.text
    return str(response.json()["call_id"])


def event_of(
    events: list[Event], call_id: str, kind: EventType
) -> Callable[[], Awaitable[Event | None]]:
    async def probe() -> Event | None:
        return next((e for e in events if e.call_id == call_id and e.type is kind), None)

    return probe


async def test_a_queued_call_is_canceled_at_once(api: ApiHarness, events: list[Event]) -> None:
    _, client = await api.tenant()
    call_id = await new_call(client)
    response = await client.post(f"/v1/calls/{call_id}/cancel")
    assert response.status_code == 200, response.text
    view = response.json()
    assert set(view) == set(CallView.model_fields) | set(CallView.model_computed_fields)
    assert view["status"] == "canceled"
    assert view["ended_reason"] == "canceled_by_customer"
    assert view["ended_at"]
    assert (await client.get(f"/v1/calls/{call_id}")).json()["status"] == "canceled"
    # The terminal event goes out like any other ending, for webhooks.
    event = await eventually(event_of(events, call_id, EventType.CALL_COMPLETED), within=10)
    assert event.data["status"] == "canceled"
    assert event.sequence == 2


@pytest.mark.parametrize("status", LIVE)
async def test_a_live_call_gets_a_hang_up_request(
    api: ApiHarness, events: list[Event], status: CallStatus
) -> None:
    tenant, client = await api.tenant()
    call_id = await new_call(client)
    await api.store.update_call(call_id, CallChanges(status=status))
    response = await client.post(f"/v1/calls/{call_id}/cancel")
    assert response.status_code == 202, response.text
    assert response.json()["status"] == status.value  # it ends when the provider hangs up
    stored = await api.store.get_call(call_id)
    assert stored is not None
    assert stored.cancel_requested is True
    event = await eventually(event_of(events, call_id, EventType.CALL_CANCEL_REQUESTED), within=10)
    assert event.tenant_id == tenant.tenant_id


@pytest.mark.parametrize("status", TERMINAL)
async def test_an_ended_call_is_409(api: ApiHarness, status: CallStatus) -> None:
    _, client = await api.tenant()
    call_id = await new_call(client)
    await api.store.update_call(call_id, CallChanges(status=status))
    response = await client.post(f"/v1/calls/{call_id}/cancel")
    assert response.status_code == 409, response.text
    assert response.json()["error"]["code"] == "call_not_cancelable"
    assert status.value in response.json()["error"]["message"]
    stored = await api.store.get_call(call_id)
    assert stored is not None
    assert stored.status is status


async def test_canceling_twice_is_409_the_second_time(api: ApiHarness) -> None:
    _, client = await api.tenant()
    call_id = await new_call(client)
    assert (await client.post(f"/v1/calls/{call_id}/cancel")).status_code == 200
    assert (await client.post(f"/v1/calls/{call_id}/cancel")).status_code == 409


async def test_unknown_calls_are_404(api: ApiHarness) -> None:
    _, client = await api.tenant()
    for call_id in ("nope", str(uuid.uuid4())):
        response = await client.post(f"/v1/calls/{call_id}/cancel")
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "call_not_found"


async def test_with_the_broker_down_hang_ups_are_503_and_queued_cancels_still_work(
    api: ApiHarness, tmp_path: Path
) -> None:
    down = InProcessBus()
    await down.close()  # raises PublishError like an unreachable broker
    async with running_api(tmp_path, store=api.store, bus=down) as degraded:
        _, client = await degraded.tenant()
        live = await new_call(client)
        await api.store.update_call(live, CallChanges(status=CallStatus.RINGING))
        response = await client.post(f"/v1/calls/{live}/cancel")
        assert response.status_code == 503, response.text
        assert response.json() == {
            "error": {"code": "broker_unavailable", "message": response.json()["error"]["message"]}
        }

        queued = await new_call(client)
        response = await client.post(f"/v1/calls/{queued}/cancel")
        assert response.status_code == 200
        assert response.json()["status"] == "canceled"
    stored = await api.store.get_call(queued)
    assert stored is not None
    assert stored.publish_pending is True  # the relay publishes the ending later

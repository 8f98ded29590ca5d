"""Provider callbacks over real HTTP into the webhook-ingest routes: signatures, the state
machine, dedupe, the error shape, and the events each applied callback publishes."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from switchboard_dialer.dialing import CallDialer
from switchboard_shared.calls import callback_signing
from switchboard_shared.calls.callback_signing import (
    SWITCHBOARD,
    VOCODE,
    VOXPRIA,
    CallbackSigner,
    SignatureScheme,
)
from switchboard_shared.calls.events import EventType
from switchboard_shared.calls.outbox import event_for, transition
from switchboard_shared.calls.provider_signatures import VAPI
from switchboard_shared.domain.call_changes import CallChanges
from switchboard_shared.domain.calls import Call, CallStatus
from tests.support.net import eventually
from tests.support.pipeline_parts import (
    CALLBACK_SECRETS,
    Pipeline,
    queued_call,
    running_pipeline,
)

pytestmark = pytest.mark.timeout(60)

SEED_TRANSCRIPT = "agent: Hello\nuser: Hi"


def seed_payload(provider_call_id: str, **changes: Any) -> dict[str, Any]:
    """The generic callback of the design (docs/providers.md)."""
    return {
        "event_type": "call.completed",
        "provider_call_id": provider_call_id,
        "status": "completed",
        "transcript": SEED_TRANSCRIPT,
        "duration": 120,
        **changes,
    }


@pytest.fixture(scope="module")
async def pipeline(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Pipeline]:
    """One pipeline for the module: every test works on calls of its own."""
    async with running_pipeline(tmp_path_factory.mktemp("ingest"), with_ingest=True) as p:
        yield p


@pytest.fixture
async def ingest(pipeline: Pipeline) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=pipeline.callback_url, timeout=10) as client:
        yield client


async def dialing_call(p: Pipeline, provider: str = "simulator") -> tuple[Call, str]:
    """A call the dialer placed with `provider`; returns it and its provider call id."""
    call = await queued_call(p.store, agent=f"{provider}-agent".replace("simulator", "sim"))
    provider_call_id = f"{provider}-{uuid.uuid4().hex[:10]}"
    dialed = await transition(
        p.store,
        p.bus,
        call.call_id,
        CallStatus.DIALING,
        CallChanges(provider=provider, provider_call_id=provider_call_id),
    )
    assert dialed is not None
    return dialed, provider_call_id


async def post_signed(
    client: httpx.AsyncClient,
    path: str,
    payload: Any,
    *,
    secret: str = CALLBACK_SECRETS["simulator"],
    scheme: CallbackSigner = SWITCHBOARD,
    timestamp: int | None = None,
) -> httpx.Response:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers = {"Content-Type": "application/json", **scheme.sign(secret, body, timestamp)}
    return await client.post(path, content=body, headers=headers)


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["message"]


async def stored(p: Pipeline, call_id: str) -> Call:
    call = await p.store.get_call(call_id)
    assert call is not None
    return call


GENERIC = "/v1/webhooks/call-completed"


# --- the generic callback -----------------------------------------------------------------


async def test_a_completed_callback_completes_the_call_once(
    pipeline: Pipeline, ingest: httpx.AsyncClient
) -> None:
    call, provider_call_id = await dialing_call(pipeline)

    response = await post_signed(ingest, GENERIC, seed_payload(provider_call_id))

    assert response.status_code == 200
    assert response.json() == {"status": "applied"}
    completed = await stored(pipeline, call.call_id)
    assert completed.status is CallStatus.COMPLETED
    assert completed.transcript == SEED_TRANSCRIPT
    assert completed.duration == 120
    assert completed.ended_reason == "completed"  # what a completed status implies
    assert completed.ended_at is not None
    assert completed.started_at is not None
    assert (completed.ended_at - completed.started_at).total_seconds() == pytest.approx(120, abs=1)
    [event] = await pipeline.events.wait_for(call.call_id, EventType.CALL_COMPLETED)
    assert event.sequence == completed.sequence
    assert event.data["status"] == "completed"
    assert event.data["transcript"] == SEED_TRANSCRIPT
    assert event.data["duration"] == 120
    assert "provider_call_id" not in event.data

    # The same callback again (a provider retry), and a late ringing: acknowledged, no-ops.
    again = await post_signed(ingest, GENERIC, seed_payload(provider_call_id))
    late = await post_signed(
        ingest,
        GENERIC,
        {"event_type": "call.ringing", "provider_call_id": provider_call_id, "status": "ringing"},
    )
    failed_late = await post_signed(
        ingest, GENERIC, seed_payload(provider_call_id, status="failed", transcript=None)
    )

    for duplicate in (again, late, failed_late):
        assert duplicate.status_code == 200
        assert duplicate.json() == {"status": "duplicate"}
    unchanged = await stored(pipeline, call.call_id)
    assert unchanged.status is CallStatus.COMPLETED
    assert unchanged.transcript == SEED_TRANSCRIPT
    assert unchanged.sequence == completed.sequence
    assert len(pipeline.events.of(call.call_id, EventType.CALL_COMPLETED)) == 1


async def test_status_callbacks_publish_events_in_sequence(
    pipeline: Pipeline, ingest: httpx.AsyncClient
) -> None:
    call, provider_call_id = await dialing_call(pipeline)

    for status, event_type in (
        ("ringing", "call.ringing"),
        ("in_progress", "call.in_progress"),
        ("completed", "call.completed"),
    ):
        payload = seed_payload(provider_call_id, status=status, event_type=event_type)
        response = await post_signed(ingest, GENERIC, payload)
        assert response.json() == {"status": "applied"}

    await pipeline.events.wait_for(call.call_id, EventType.CALL_COMPLETED)
    events = pipeline.events.of(call.call_id)
    # The one attempt's `call.attempt_ended` comes with the completion, same sequence.
    assert [e.type for e in events] == [
        EventType.CALL_DIALING,
        EventType.CALL_RINGING,
        EventType.CALL_IN_PROGRESS,
        EventType.CALL_ATTEMPT_ENDED,
        EventType.CALL_COMPLETED,
    ]
    assert [e.sequence for e in events] == [2, 3, 4, 5, 5]
    assert len({e.id for e in events}) == 5
    in_progress = events[2]
    assert in_progress.data["started_at"] is not None


async def test_a_generic_callback_is_scoped_to_the_provider_whose_secret_signed_it(
    pipeline: Pipeline, ingest: httpx.AsyncClient
) -> None:
    call, provider_call_id = await dialing_call(pipeline, "vocode")

    # The simulator's secret: the simulator has no call with that id.
    as_simulator = await post_signed(ingest, GENERIC, seed_payload(provider_call_id))
    assert_error(as_simulator, 404, "unknown_call")

    as_vocode = await post_signed(
        ingest, GENERIC, seed_payload(provider_call_id), secret=CALLBACK_SECRETS["vocode"]
    )
    assert as_vocode.json() == {"status": "applied"}
    assert (await stored(pipeline, call.call_id)).status is CallStatus.COMPLETED


async def test_the_providers_cancel_of_a_call_the_customer_canceled_keeps_the_reason(
    pipeline: Pipeline, ingest: httpx.AsyncClient
) -> None:
    """The customer asked for the hang-up (the API flags the call, the dialer tells the
    provider); the provider's `canceled` callback may land before the dialer records the
    cancel, and the call must end the same way whichever comes first."""
    call, provider_call_id = await dialing_call(pipeline)
    await pipeline.store.update_call(call.call_id, CallChanges(cancel_requested=True))

    response = await post_signed(
        ingest,
        GENERIC,
        seed_payload(provider_call_id, status="canceled", ended_reason="canceled", duration=0),
    )

    assert response.json() == {"status": "applied"}
    canceled = await stored(pipeline, call.call_id)
    assert canceled.status is CallStatus.CANCELED
    assert canceled.ended_reason == "canceled_by_customer"
    [event] = await pipeline.events.wait_for(call.call_id, EventType.CALL_COMPLETED)
    assert event.data["ended_reason"] == "canceled_by_customer"


@pytest.mark.parametrize(
    "forge",
    ["wrong_secret", "no_headers", "no_signature", "stale", "future", "tampered", "not_unix"],
)
async def test_an_unauthentic_callback_is_refused(
    pipeline: Pipeline, ingest: httpx.AsyncClient, forge: str
) -> None:
    call, provider_call_id = await dialing_call(pipeline)
    body = json.dumps(seed_payload(provider_call_id)).encode()
    secret = CALLBACK_SECRETS["simulator"]
    headers = callback_signing.sign(secret, body)
    if forge == "wrong_secret":
        headers = callback_signing.sign("not-the-secret", body)
    elif forge == "no_headers":
        headers = {}
    elif forge == "no_signature":
        del headers["X-Switchboard-Signature"]
    elif forge == "stale":
        headers = callback_signing.sign(secret, body, timestamp=int(time.time()) - 3600)
    elif forge == "future":
        headers = callback_signing.sign(secret, body, timestamp=int(time.time()) + 3600)
    elif forge == "tampered":
        body = body.replace(b"120", b"999")
    elif forge == "not_unix":
        headers["X-Switchboard-Timestamp"] = "yesterday"

    response = await ingest.post(
        GENERIC, content=body, headers={"Content-Type": "application/json", **headers}
    )

    assert_error(response, 401, "invalid_signature")
    untouched = await stored(pipeline, call.call_id)
    assert untouched.status is CallStatus.DIALING
    assert untouched.sequence == call.sequence


async def test_a_callback_that_overtakes_the_dialers_write_is_applied(
    pipeline: Pipeline, ingest: httpx.AsyncClient
) -> None:
    """A fast provider calls back before the dialer stored the provider call id."""
    call = await queued_call(pipeline.store, agent="sim-agent")
    provider_call_id = f"simulator-{uuid.uuid4().hex[:10]}"

    async def dialer_records_it_late() -> None:
        await asyncio.sleep(0.3)
        await transition(
            pipeline.store,
            pipeline.bus,
            call.call_id,
            CallStatus.DIALING,
            CallChanges(provider="simulator", provider_call_id=provider_call_id),
        )

    recording = asyncio.create_task(dialer_records_it_late())
    response = await post_signed(ingest, GENERIC, seed_payload(provider_call_id))
    await recording

    assert response.status_code == 200, response.text
    assert response.json() == {"status": "applied"}
    assert (await stored(pipeline, call.call_id)).status is CallStatus.COMPLETED


async def test_a_callback_for_an_unknown_call_is_404(ingest: httpx.AsyncClient) -> None:
    response = await post_signed(ingest, GENERIC, seed_payload("sim_never_placed"))

    assert_error(response, 404, "unknown_call")


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"[1, 2, 3]",
        json.dumps(seed_payload("PLACEHOLDER", status="exploded")).encode(),
        json.dumps({"event_type": "call.unheard_of", "provider_call_id": "PLACEHOLDER"}).encode(),
        json.dumps({"status": "completed"}).encode(),
        json.dumps(seed_payload("PLACEHOLDER", duration="long")).encode(),
    ],
    ids=["not_json", "not_object", "unknown_status", "unknown_event", "no_id", "bad_duration"],
)
async def test_a_malformed_callback_is_400(
    pipeline: Pipeline, ingest: httpx.AsyncClient, body: bytes
) -> None:
    call, provider_call_id = await dialing_call(pipeline)

    response = await post_signed(
        ingest, GENERIC, body.replace(b"PLACEHOLDER", provider_call_id.encode())
    )

    assert_error(response, 400, "malformed_callback")
    assert (await stored(pipeline, call.call_id)).sequence == call.sequence


# --- native callbacks ---------------------------------------------------------------------


def native_completed(
    provider: str, provider_call_id: str
) -> tuple[dict[str, Any], SignatureScheme]:
    """A completed call in `provider`'s own callback format (docs/providers.md)."""
    if provider == "vocode":
        body = {
            "type": "event_phone_call_ended",
            "event_id": uuid.uuid4().hex,
            "call": {
                "id": provider_call_id,
                "status": "ended",
                "telephony_status": "completed",
                "transcript": SEED_TRANSCRIPT,
                "started_at": "2025-02-09T12:00:00Z",
                "ended_at": "2025-02-09T12:02:00Z",
            },
        }
        return body, VOCODE
    if provider == "voxpria":
        body = {
            "event": "call.ended",
            "timestamp": "2025-02-09T12:02:07Z",
            "data": {
                "callId": provider_call_id,
                "status": "completed",
                "duration": 120,
                "transcript": SEED_TRANSCRIPT,
                "outcome": "successful",
                "startedAt": "2025-02-09T12:00:00Z",
                "completedAt": "2025-02-09T12:02:00Z",
            },
        }
        return body, VOXPRIA
    return seed_payload(provider_call_id, ended_reason="hangup"), SWITCHBOARD


@pytest.mark.parametrize("provider", ["simulator", "vocode", "voxpria"])
async def test_a_native_callback_is_verified_and_applied(
    pipeline: Pipeline, ingest: httpx.AsyncClient, provider: str
) -> None:
    call, provider_call_id = await dialing_call(pipeline, provider)
    payload, scheme = native_completed(provider, provider_call_id)
    path = f"/v1/webhooks/providers/{provider}"

    # Signed in another sender's headers, or with another provider's secret: refused.
    other_scheme = VOCODE if scheme is not VOCODE else VOXPRIA
    wrong_headers = await post_signed(
        ingest, path, payload, secret=CALLBACK_SECRETS[provider], scheme=other_scheme
    )
    assert_error(wrong_headers, 401, "invalid_signature")
    other = "vocode" if provider != "vocode" else "voxpria"
    wrong_secret = await post_signed(
        ingest, path, payload, secret=CALLBACK_SECRETS[other], scheme=scheme
    )
    assert_error(wrong_secret, 401, "invalid_signature")

    response = await post_signed(
        ingest, path, payload, secret=CALLBACK_SECRETS[provider], scheme=scheme
    )
    assert response.status_code == 200
    assert response.json() == {"status": "applied"}
    completed = await stored(pipeline, call.call_id)
    assert completed.status is CallStatus.COMPLETED
    assert completed.transcript == SEED_TRANSCRIPT
    assert completed.duration == 120
    [event] = await pipeline.events.wait_for(call.call_id, EventType.CALL_COMPLETED)
    assert event.data["status"] == "completed"

    again = await post_signed(
        ingest, path, payload, secret=CALLBACK_SECRETS[provider], scheme=scheme
    )
    assert again.json() == {"status": "duplicate"}


@pytest.mark.parametrize("provider", ["vocode", "voxpria"])
async def test_a_native_callback_without_its_envelope_is_400(
    pipeline: Pipeline, ingest: httpx.AsyncClient, provider: str
) -> None:
    _, provider_call_id = await dialing_call(pipeline, provider)
    payload, scheme = native_completed(provider, provider_call_id)
    # The call object alone, without the provider's wrapper.
    inner = payload["call"] if provider == "vocode" else payload["data"]

    response = await post_signed(
        ingest,
        f"/v1/webhooks/providers/{provider}",
        inner,
        secret=CALLBACK_SECRETS[provider],
        scheme=scheme,
    )

    assert_error(response, 400, "malformed_callback")


async def test_a_callback_for_an_unknown_provider_is_404(ingest: httpx.AsyncClient) -> None:
    response = await post_signed(ingest, "/v1/webhooks/providers/acme", seed_payload("x"))

    assert_error(response, 404, "unknown_provider")


# --- the simulator calling back for real ---------------------------------------------------


@pytest.mark.parametrize(
    ("agent", "statuses"),
    [
        ("sim-agent", ["dialing", "ringing", "in_progress", "completed"]),
        ("vocode-agent", ["dialing", "in_progress", "completed"]),  # Vocode: no ringing event
        ("voxpria-agent", ["dialing", "ringing", "in_progress", "completed"]),
        ("vapi-agent", ["dialing", "ringing", "in_progress", "completed"]),
        ("retell-agent", ["dialing", "in_progress", "completed"]),  # Retell: no ringing
    ],
)
async def test_simulator_callbacks_carry_a_dialed_call_to_completed(
    tmp_path: Path, agent: str, statuses: list[str]
) -> None:
    async with running_pipeline(tmp_path, with_ingest=True) as pipeline:
        await _dial_and_follow(pipeline, agent, statuses)


async def _dial_and_follow(pipeline: Pipeline, agent: str, statuses: list[str]) -> None:
    dialer = CallDialer(pipeline.store, pipeline.bus, pipeline.providers, pipeline.settings)
    await pipeline.bus.subscribe(dialer.subscription())
    call = await queued_call(pipeline.store, agent=agent)

    await pipeline.bus.publish(event_for(call))

    [ended] = await pipeline.events.wait_for(call.call_id, EventType.CALL_COMPLETED)
    # Ordered by sequence, as a receiver would: two services publish these concurrently.
    events = sorted(pipeline.events.of(call.call_id), key=lambda e: e.sequence)
    [attempt_ended] = [e for e in events if e.type is EventType.CALL_ATTEMPT_ENDED]
    assert attempt_ended.sequence == ended.sequence
    events = [e for e in events if e.type is not EventType.CALL_ATTEMPT_ENDED]
    assert [e.data["status"] for e in events] == ["queued", *statuses]
    assert [e.sequence for e in events] == list(range(1, 2 + len(statuses)))
    assert ended.data["transcript"].startswith("agent: Hello")

    async def completed() -> Call | None:
        current = await pipeline.store.get_call(call.call_id)
        return current if current and current.status is CallStatus.COMPLETED else None

    final = await eventually(completed)
    assert final.transcript == ended.data["transcript"]
    assert final.duration is not None
    assert not final.publish_pending


@pytest.mark.parametrize(
    ("agent", "reason", "analyzed"),
    [
        ("sim-agent", "customer_hangup", True),
        ("vocode-agent", "completed", False),
        ("voxpria-agent", "completed", False),
        ("vapi-agent", "customer_hangup", True),  # in the end-of-call-report
        ("retell-agent", "customer_hangup", True),  # in call_analyzed, after call_ended
    ],
)
async def test_results_reach_the_call_even_when_they_follow_its_end(
    tmp_path: Path, agent: str, reason: str, analyzed: bool
) -> None:
    async with running_pipeline(tmp_path, with_ingest=True) as pipeline:
        dialer = CallDialer(pipeline.store, pipeline.bus, pipeline.providers, pipeline.settings)
        await pipeline.bus.subscribe(dialer.subscription())
        call = await queued_call(pipeline.store, agent=agent)
        await pipeline.bus.publish(event_for(call))

        async def with_results() -> Call | None:
            current = await pipeline.store.get_call(call.call_id)
            done = current is not None and current.recording_available
            if analyzed:
                done = done and current is not None and current.analysis is not None
            return current if done else None

        final = await eventually(with_results, within=15)
        assert final.status is CallStatus.COMPLETED
        assert final.ended_reason == reason
        assert final.ended_reason_raw
        view = final.public_view().model_dump()
        assert view["recording_available"] is True
        assert (view["analysis"] is not None) is analyzed
        if analyzed:
            assert view["analysis"]["successful"] is True
        # One completion for the customer, however many end messages the provider sent.
        await asyncio.sleep(0.5)
        assert len(pipeline.events.of(call.call_id, EventType.CALL_COMPLETED)) == 1


async def test_results_only_add_up_whatever_order_the_end_messages_come_in(
    pipeline: Pipeline, ingest: httpx.AsyncClient
) -> None:
    # Vapi's report (results) overtaken by... its own status-update `ended`, arriving
    # late and without the recording: the first message ends the call, the second one
    # may add results but never takes the recording back.
    call, provider_call_id = await dialing_call(pipeline, "vapi")
    vapi_call = {"id": provider_call_id, "status": "ended"}
    report = {
        "message": {
            "type": "end-of-call-report",
            "endedReason": "customer-ended-call",
            "call": vapi_call,
            "recordingUrl": "https://storage.example/rec.wav",
            "analysis": {"summary": "Done.", "successEvaluation": "true"},
        }
    }
    late_update = {
        "message": {
            "type": "status-update",
            "status": "ended",
            "endedReason": "customer-ended-call",
            "call": vapi_call,
        }
    }
    secret = CALLBACK_SECRETS["vapi"]
    path = "/v1/webhooks/providers/vapi"

    first = await post_signed(ingest, path, report, secret=secret, scheme=VAPI)
    second = await post_signed(ingest, path, late_update, secret=secret, scheme=VAPI)

    assert (first.json(), second.json()) == ({"status": "applied"}, {"status": "duplicate"})
    ended = await stored(pipeline, call.call_id)
    assert (ended.status, ended.ended_reason) == (CallStatus.COMPLETED, "customer_hangup")
    assert ended.ended_reason_raw == "customer-ended-call"
    assert ended.recording_available is True
    assert ended.analysis == {"summary": "Done.", "successful": True, "fields": {}}
    assert len(pipeline.events.of(call.call_id, EventType.CALL_COMPLETED)) == 1

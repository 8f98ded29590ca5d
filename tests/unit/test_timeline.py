"""A call's timeline: statuses in order whatever the clocks say, dial attempts in our
words, webhook attempts, nothing about the provider."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from switchboard_shared.calls.timeline import timeline
from switchboard_shared.domain.calls import Call, CallStatus, RouteAttempt, RouteOutcome
from switchboard_shared.domain.ended_reasons import EndedReason
from switchboard_shared.domain.webhooks import Delivery, DeliveryAttempt

T0 = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def ended_call() -> Call:
    return Call(
        tenant_id="t",
        agent="a",
        phone="+15005550004",
        status=CallStatus.COMPLETED,
        created_at=at(0),
        provider="vocode",
        provider_call_id="vc-123",
        route_attempts=[
            RouteAttempt(route=0, provider="vocode", outcome=RouteOutcome.UNREACHABLE, at=at(1)),
            RouteAttempt(route=1, provider="simulator", outcome=RouteOutcome.ACCEPTED, at=at(2)),
        ],
        dialed_at=at(2.1),
        ringing_at=at(5),  # our clock: the ringing callback came late
        started_at=at(4),  # the provider's clock: answered
        ended_at=at(30),
        ended_reason=EndedReason.CUSTOMER_HANGUP,
    )


def test_statuses_come_in_state_machine_order_with_the_reason_at_the_end() -> None:
    entries = timeline(ended_call(), []).data
    statuses = [(e.status, e.at) for e in entries if e.type == "status"]
    assert [s for s, _ in statuses] == [
        CallStatus.QUEUED,
        CallStatus.DIALING,
        CallStatus.RINGING,
        CallStatus.IN_PROGRESS,
        CallStatus.COMPLETED,
    ]
    # Answered "before" it rang by the provider's clock: kept after the ringing instead.
    assert dict(statuses)[CallStatus.IN_PROGRESS] == at(5)
    assert entries[-1].reason is EndedReason.CUSTOMER_HANGUP
    assert [e.at for e in entries] == sorted(e.at for e in entries)


def test_dial_attempts_and_webhook_attempts_without_a_provider_word() -> None:
    delivery = Delivery(
        tenant_id="t",
        event_id="evt_1",
        event_type="call.completed",
        url="https://example.com/hook",
        call_id="c",
        payload="{}",
        attempts=[
            DeliveryAttempt(at=at(31), status_code=500, latency_ms=40, error="HTTP 500"),
            DeliveryAttempt(at=at(36), status_code=200, latency_ms=12),
        ],
    )
    result = timeline(ended_call(), [delivery])
    dials = [e.outcome for e in result.data if e.type == "dial_attempt"]
    assert dials == ["provider_unavailable", "accepted"]
    hooks = [
        (e.status_code, e.latency_ms, e.error) for e in result.data if e.type == "webhook_attempt"
    ]
    assert hooks == [(500, 40, "HTTP 500"), (200, 12, None)]
    text = result.model_dump_json().lower()
    for word in ("vocode", "simulator", "vc-123", "route"):
        assert word not in text


def test_a_live_call_has_no_end_yet() -> None:
    call = Call(tenant_id="t", agent="a", phone="+15005550004", created_at=at(0))
    [queued] = timeline(call, []).data
    assert (queued.type, queued.status, queued.at) == ("status", CallStatus.QUEUED, at(0))

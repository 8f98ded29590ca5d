"""Each adapter's table from provider statuses to ours, and reading provider call objects."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import SecretStr

from switchboard_provider_sim.calls import SimCall, SimStatus
from switchboard_provider_sim.dialects import native as sim_native
from switchboard_provider_sim.dialects import retell as sim_retell
from switchboard_provider_sim.dialects import vapi as sim_vapi
from switchboard_provider_sim.dialects import vocode as sim_vocode
from switchboard_provider_sim.dialects import voxpria as sim_voxpria
from switchboard_provider_sim.lifecycle import ENDED_BY
from switchboard_provider_sim.scenarios import Scenario
from switchboard_shared.adapters.providers import (
    SimulatorProvider,
    VocodeProvider,
    VoxpriaProvider,
    build_providers,
    retell,
    simulator,
    vapi,
    vocode,
    voxpria,
)
from switchboard_shared.calls.callback_signing import SWITCHBOARD, VOCODE, VOXPRIA, SignatureScheme
from switchboard_shared.domain.calls import CallStatus
from switchboard_shared.ports import MalformedCallback
from switchboard_shared.runtime.settings import ProviderSettings, Settings

S = CallStatus


@pytest.mark.parametrize(
    ("native", "ours"),
    [
        ("queued", S.DIALING),
        ("dialing", S.DIALING),
        ("ringing", S.RINGING),
        ("in_progress", S.IN_PROGRESS),
        ("completed", S.COMPLETED),
        ("failed", S.FAILED),
        ("no_answer", S.NO_ANSWER),
        ("busy", S.BUSY),
        ("canceled", S.CANCELED),
    ],
)
def test_simulator_statuses(native: str, ours: CallStatus) -> None:
    assert simulator.map_status(native) is ours


@pytest.mark.parametrize(
    ("status", "telephony_status", "ours"),
    [
        ("not_started", None, S.DIALING),
        ("not_started", "queued", S.DIALING),
        ("not_started", "ringing", S.RINGING),
        ("in_progress", None, S.IN_PROGRESS),
        ("in_progress", "in-progress", S.IN_PROGRESS),
        ("ended", None, S.COMPLETED),
        ("ended", "completed", S.COMPLETED),
        ("ended", "canceled", S.CANCELED),
        ("error", None, S.FAILED),
        ("error", "failed", S.FAILED),
        ("error", "busy", S.BUSY),
        ("error", "no-answer", S.NO_ANSWER),
        # A telephony status that contradicts the status does not override it.
        ("in_progress", "busy", S.IN_PROGRESS),
        ("ended", "something-new", S.COMPLETED),
    ],
)
def test_vocode_statuses(status: str, telephony_status: str | None, ours: CallStatus) -> None:
    assert vocode.map_status(status, telephony_status) is ours


@pytest.mark.parametrize(
    ("native", "ours"),
    [
        ("queued", S.DIALING),
        ("ringing", S.RINGING),
        ("in_progress", S.IN_PROGRESS),
        ("completed", S.COMPLETED),
        ("failed", S.FAILED),
        ("no_answer", S.NO_ANSWER),
        ("busy", S.BUSY),
        ("canceled", S.CANCELED),
    ],
)
def test_voxpria_statuses(native: str, ours: CallStatus) -> None:
    assert voxpria.map_status(native) is ours


@pytest.mark.parametrize(
    "mapper",
    [simulator.map_status, vocode.map_status, voxpria.map_status],
    ids=["simulator", "vocode", "voxpria"],
)
@pytest.mark.parametrize("unknown", ["Completed", "done", "", None, 3])
def test_unknown_statuses_are_malformed(mapper: Any, unknown: Any) -> None:
    with pytest.raises(MalformedCallback):
        mapper(unknown)


def test_every_adapter_can_report_every_status_a_provider_can_cause() -> None:
    # `scheduled` and `queued` are ours alone: a provider that has the call is at least dialing.
    reachable = set(CallStatus) - {S.SCHEDULED, S.QUEUED}
    assert set(simulator.STATUS_MAP.values()) == reachable
    assert set(voxpria.STATUS_MAP.values()) == reachable
    assert set(vocode.STATUS_MAP.values()) | set(vocode.REFINED_STATUS.values()) == reachable


def _sim_call(status: SimStatus, *, answered: bool = True) -> SimCall:
    answered_at = datetime(2025, 2, 9, 12, 0, 0, tzinfo=UTC) if answered else None
    call = SimCall(
        id="c1",
        dialect="simulator",
        to_number="+14155551234",
        from_number="+15005550000",
        agent_id="agent-1",
        variables={},
        callback_url=None,
        scenario=Scenario.NORMAL,
        status=status,
        answered_at=answered_at,
    )
    if status.is_final:
        call.ended_at = datetime(2025, 2, 9, 12, 2, 7, tzinfo=UTC)
        call.duration = 127 if answered else 0
        call.transcript = "agent: Hello\nuser: Hi" if answered else None
        call.ended_by = ENDED_BY[status]
    return call


EXPECTED: dict[SimStatus, CallStatus] = {
    SimStatus.QUEUED: S.DIALING,
    SimStatus.RINGING: S.RINGING,
    SimStatus.IN_PROGRESS: S.IN_PROGRESS,
    SimStatus.COMPLETED: S.COMPLETED,
    SimStatus.FAILED: S.FAILED,
    SimStatus.NO_ANSWER: S.NO_ANSWER,
    SimStatus.BUSY: S.BUSY,
    SimStatus.CANCELED: S.CANCELED,
}


@pytest.mark.parametrize("status", list(SimStatus))
def test_each_adapter_reads_what_the_simulator_renders_in_its_dialect(status: SimStatus) -> None:
    call = _sim_call(status)

    states = [
        simulator.parse_call(sim_native.render(call), "id"),
        vocode.parse_call(sim_vocode.render(call)),
        voxpria.parse_call(sim_voxpria.render(call)),
        vapi.parse_call(sim_vapi.render(call)),
        retell.parse_call(sim_retell.render(call)),
    ]

    for state in states:
        assert state.provider_call_id == "c1"
        if state is states[-1] and status in (SimStatus.RINGING, SimStatus.CANCELED):
            # Retell's `registered` covers ringing, and it has no canceled call: one
            # ended by the agent is simply `ended`.
            assert state.status is (S.DIALING if status is SimStatus.RINGING else S.COMPLETED)
            continue
        assert state.status is EXPECTED[status]
        if status.is_final:
            assert state.duration == 127
            assert state.transcript == "agent: Hello\nuser: Hi"
            assert state.ended_at == datetime(2025, 2, 9, 12, 2, 7, tzinfo=UTC)
        else:
            assert state.duration is None


def test_vocode_duration_is_answer_to_hang_up_and_zero_when_never_answered() -> None:
    answered = vocode.parse_call(sim_vocode.render(_sim_call(SimStatus.COMPLETED)))
    unanswered = vocode.parse_call(sim_vocode.render(_sim_call(SimStatus.BUSY, answered=False)))

    assert answered.duration == 127
    assert answered.started_at == datetime(2025, 2, 9, 12, 0, 0, tzinfo=UTC)
    assert unanswered.duration == 0
    assert unanswered.ended_reason == "dial_busy"


def test_voxpria_reads_the_documented_example() -> None:
    # The "Get Call Details" answer of Voxpria's documentation.
    state = voxpria.parse_call(
        {
            "callId": "call_xyz789",
            "status": "completed",
            "duration": 127,
            "recording": "https://...",
            "transcript": "...",
            "outcome": "successful",
            "startedAt": "2025-02-09T12:00:00Z",
            "completedAt": "2025-02-09T12:02:07Z",
        }
    )
    assert state.status is S.COMPLETED
    assert state.duration == 127
    assert state.ended_reason == "completed"  # Voxpria does not say who hung up
    assert (state.outcome, state.recording_available) == ("successful", True)
    assert state.started_at == datetime(2025, 2, 9, 12, 0, 0, tzinfo=UTC)


def test_simulator_callback_without_status_takes_it_from_the_event_type() -> None:
    state = simulator.parse_call(
        {"event_type": "call.completed", "provider_call_id": "p1", "duration": 120.0},
        "provider_call_id",
    )
    assert state.status is S.COMPLETED
    assert state.duration == 120


@pytest.mark.parametrize(
    "data",
    [
        {"status": "completed"},  # no id
        {"provider_call_id": "p1"},  # no status, no event type
        {"provider_call_id": "p1", "status": "completed", "duration": "long"},
        {"provider_call_id": "p1", "status": "completed", "duration": -1},
        {"provider_call_id": "p1", "status": "completed", "transcript": ["a"]},
        {"provider_call_id": "p1", "status": "completed", "ended_at": "yesterday"},
    ],
)
def test_unreadable_simulator_fields_are_malformed(data: dict[str, Any]) -> None:
    with pytest.raises(MalformedCallback):
        simulator.parse_call(data, "provider_call_id")


# --- parse_callback without the network: signature first, then the body -------------------

PS = ProviderSettings(base_url="http://127.0.0.1:9", callback_secret=SecretStr("s3cret"))


@pytest.mark.parametrize(
    ("adapter_type", "scheme", "body"),
    [
        (SimulatorProvider, SWITCHBOARD, b"not json"),
        (SimulatorProvider, SWITCHBOARD, b"[1, 2]"),
        (VocodeProvider, VOCODE, b'{"type": "event_phone_call_ended"}'),
        (VocodeProvider, VOCODE, b'{"type": "x", "call": {"id": "c", "status": "odd"}}'),
        (VoxpriaProvider, VOXPRIA, b'{"event": "call.ended", "data": "completed"}'),
        (VoxpriaProvider, VOXPRIA, b"\xff\xfe"),
    ],
)
async def test_authentic_but_unreadable_callbacks_are_malformed(
    adapter_type: type[SimulatorProvider] | type[VocodeProvider] | type[VoxpriaProvider],
    scheme: SignatureScheme,
    body: bytes,
) -> None:
    adapter = adapter_type(PS)
    try:
        with pytest.raises(MalformedCallback):
            adapter.parse_callback(scheme.sign("s3cret", body), body)
    finally:
        await adapter.close()


def test_build_providers_makes_one_adapter_per_enabled_provider() -> None:
    settings = Settings(
        vocode=ProviderSettings(base_url="https://api.vocode.dev"),
        voxpria=ProviderSettings(),  # no base_url: disabled
    )
    providers = build_providers(settings)

    assert {name: type(p) for name, p in providers.items()} == {
        "simulator": SimulatorProvider,
        "vocode": VocodeProvider,
    }
    assert all(p.name == name for name, p in providers.items())


def test_generic_callback_example_of_the_design_parses() -> None:
    body = json.dumps(
        {
            "event_type": "call.completed",
            "provider_call_id": "p-42",
            "status": "completed",
            "transcript": "agent: Hello\nuser: Hi",
            "duration": 120,
        }
    ).encode()
    adapter = SimulatorProvider(PS)
    state = adapter.parse_callback(SWITCHBOARD.sign("s3cret", body), body)

    assert (state.provider_call_id, state.status, state.duration) == ("p-42", S.COMPLETED, 120)

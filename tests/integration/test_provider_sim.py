"""The provider simulator over real HTTP: its dialects, test numbers and callbacks."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request, Response
from pydantic import SecretStr

from switchboard_provider_sim import create_app
from switchboard_provider_sim.callbacks import MAX_IN_FLIGHT
from switchboard_shared.calls.callback_signing import SWITCHBOARD, VOCODE, VOXPRIA
from switchboard_shared.runtime.settings import ProviderSettings, Settings
from switchboard_testing.net import free_port
from switchboard_testing.processes import ServiceProcess
from switchboard_testing.servers import serving
from tests.support.net import eventually

SIM_KEY, VOCODE_KEY, VOXPRIA_KEY = "sim-key", "vocode-key", "voxpria-key"
VAPI_KEY, RETELL_KEY = "vapi-key", "retell-key"
SECRETS = {
    "simulator": "sim-secret",
    "vocode": "vocode-secret",
    "voxpria": "voxpria-secret",
    "vapi": "vapi-server-secret",
    "retell": "retell-callback-secret",  # signs only our callback URLs' `ref`
}
# What each provider's callbacks are signed with: Retell signs with its API key.
SIGNING_KEYS = {**SECRETS, "retell": RETELL_KEY}
NORMAL = "+14155551234"


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    query: str = ""  # the raw query string, as the sender sent it

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class CallbackReceiver:
    """A real HTTP endpoint on loopback that records every POST it gets."""

    received: list[Received] = field(default_factory=list)
    # Answer 503 to this many requests first (the receiver is "starting").
    fail_first: int = 0
    url: str = ""

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/{path:path}")
        async def receive(path: str, request: Request) -> Response:
            if self.fail_first > 0:
                self.fail_first -= 1
                return Response(status_code=503)
            body = await request.body()
            self.received.append(
                Received(
                    "/" + path,
                    dict(request.headers),
                    body,
                    time.monotonic(),
                    request.scope["query_string"].decode("latin-1"),
                )
            )
            return Response(status_code=204)

        return app

    def for_call(self, provider_call_id: str) -> list[Received]:
        return [r for r in self.received if provider_call_id in r.body.decode()]


def sim_settings(
    receiver_url: str, sim_url: str = "http://127.0.0.1:9", **overrides: Any
) -> Settings:
    """Settings where every provider points at `sim_url`, and the callbacks of all but
    the native dialect go to `receiver_url`."""

    def provider(key: str, name: str) -> ProviderSettings:
        return ProviderSettings(
            base_url=sim_url,
            api_key=SecretStr(key),
            callback_secret=SecretStr(SECRETS[name]),
            from_number="+15005550000",
            timeout_seconds=5,
        )

    values: dict[str, Any] = {
        "simulator": provider(SIM_KEY, "simulator"),
        "vocode": provider(VOCODE_KEY, "vocode"),
        "voxpria": provider(VOXPRIA_KEY, "voxpria"),
        "vapi": provider(VAPI_KEY, "vapi"),
        "retell": provider(RETELL_KEY, "retell"),
        "sim_callback_url": receiver_url,
        "sim_ring_delay_seconds": 0.05,
        "sim_answer_delay_seconds": 0.05,
        "sim_talk_seconds": 0.2,
        "sim_slow_answer_seconds": 0.6,
        **overrides,
    }
    return Settings(**values)


@pytest.fixture(scope="module")
async def receiver() -> AsyncIterator[CallbackReceiver]:
    receiver = CallbackReceiver()
    async with serving(receiver.app()) as url:
        receiver.url = url
        yield receiver


@pytest.fixture(scope="module")
async def sim(receiver: CallbackReceiver) -> AsyncIterator[httpx.AsyncClient]:
    """A client of one running simulator, authenticated with the simulator's key."""
    async with (
        serving(create_app(sim_settings(receiver.url))) as url,
        httpx.AsyncClient(
            base_url=url, headers={"Authorization": f"Bearer {SIM_KEY}"}, timeout=10
        ) as client,
    ):
        yield client


def native_create(to_number: str = NORMAL, **extra: Any) -> dict[str, Any]:
    return {"to_number": to_number, "agent_id": "agent-1", "variables": {"name": "Ann"}, **extra}


async def callbacks_for(
    receiver: CallbackReceiver, call_id: str, count: int, within: float = 10
) -> list[Received]:
    async def arrived() -> list[Received]:
        got = receiver.for_call(call_id)
        return got if len(got) >= count else []

    return await eventually(arrived, within=within)


# --- authentication --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "error"),
    [
        ("POST", "/v1/calls", {"error": {"code": "unauthorized", "message": "invalid API key"}}),
        ("POST", "/v1/calls/create", {"detail": "invalid API key", "code": "unauthorized"}),
        (
            "POST",
            "/api/v1/calls",
            {"success": False, "error": {"code": "unauthorized", "message": "invalid API key"}},
        ),
    ],
    ids=["simulator", "vocode", "voxpria"],
)
async def test_a_wrong_key_is_refused_in_the_dialect_error_format(
    sim: httpx.AsyncClient, method: str, path: str, error: dict[str, Any]
) -> None:
    response = await sim.request(method, path, json={}, headers={"Authorization": "Bearer nope"})
    assert response.status_code == 401
    assert response.json() == error


async def test_a_missing_key_is_refused(sim: httpx.AsyncClient) -> None:
    response = await sim.get("/v1/calls/anything", headers={"Authorization": ""})
    assert response.status_code == 401


async def test_any_configured_provider_key_is_accepted(sim: httpx.AsyncClient) -> None:
    for key in (SIM_KEY, VOCODE_KEY, VOXPRIA_KEY, VAPI_KEY, RETELL_KEY):
        response = await sim.get("/v1/calls/unknown", headers={"Authorization": f"Bearer {key}"})
        assert response.status_code == 404


# --- native dialect --------------------------------------------------------------------------


async def test_native_call_rings_answers_and_completes_with_signed_callbacks(
    sim: httpx.AsyncClient, receiver: CallbackReceiver
) -> None:
    response = await sim.post(
        "/v1/calls", json=native_create(callback_url=f"{receiver.url}/generic")
    )
    assert response.status_code == 201
    created = response.json()
    assert created["status"] == "queued"
    call_id = created["id"]

    callbacks = await callbacks_for(receiver, call_id, 3)

    bodies = [c.json() for c in callbacks]
    assert [(b["event_type"], b["status"]) for b in bodies] == [
        ("call.ringing", "ringing"),
        ("call.in_progress", "in_progress"),
        ("call.completed", "completed"),
    ]
    for callback in callbacks:
        assert callback.path == "/generic"
        SWITCHBOARD.verify(SECRETS["simulator"], callback.headers, callback.body, 60)
    final = bodies[-1]
    assert final["provider_call_id"] == call_id
    assert final["transcript"].startswith("agent: Hello Ann")
    assert "\nuser: " in final["transcript"]
    assert isinstance(final["duration"], int)
    assert final["ended_reason"] == "customer_hangup"
    assert final["recording_available"] is True
    assert final["outcome"] == "successful"
    assert final["analysis"]["successful"] is True

    fetched = (await sim.get(f"/v1/calls/{call_id}")).json()
    assert fetched["status"] == "completed"
    assert fetched["transcript"] == final["transcript"]


async def test_native_callbacks_default_to_the_generic_ingest_endpoint(
    sim: httpx.AsyncClient, receiver: CallbackReceiver
) -> None:
    call_id = (await sim.post("/v1/calls", json=native_create())).json()["id"]

    callbacks = await callbacks_for(receiver, call_id, 3)

    assert {c.path for c in callbacks} == {"/v1/webhooks/call-completed"}


async def test_native_callbacks_go_to_the_callback_url_exactly_as_given(
    sim: httpx.AsyncClient, receiver: CallbackReceiver
) -> None:
    # A signed reference in the query string, as Switchboard puts on its callback URLs.
    query = "ref=6f1c2d3e-4b5a.v1_Zm9v-YmFy~&sig=ab%2Bcd%3D%3D"
    response = await sim.post(
        "/v1/calls", json=native_create(callback_url=f"{receiver.url}/v1/webhooks/cb?{query}")
    )
    call_id = response.json()["id"]

    callbacks = await callbacks_for(receiver, call_id, 3)

    assert {(c.path, c.query) for c in callbacks} == {("/v1/webhooks/cb", query)}


async def test_a_repeated_reference_returns_the_same_call(sim: httpx.AsyncClient) -> None:
    first = await sim.post("/v1/calls", json=native_create(reference="our-call-1"))
    again = await sim.post("/v1/calls", json=native_create(reference="our-call-1"))
    keyed = await sim.post(
        "/v1/calls", json=native_create(), headers={"Idempotency-Key": "our-call-1"}
    )

    assert (first.status_code, again.status_code, keyed.status_code) == (201, 200, 200)
    assert first.json()["id"] == again.json()["id"] == keyed.json()["id"]


async def test_calls_are_found_by_reference_or_idempotency_key(sim: httpx.AsyncClient) -> None:
    by_body = (await sim.post("/v1/calls", json=native_create(reference="find-1"))).json()
    by_header = (
        await sim.post("/v1/calls", json=native_create(), headers={"Idempotency-Key": "find-2"})
    ).json()

    found_1 = await sim.get("/v1/calls/search", params={"reference": "find-1"})
    found_2 = await sim.get("/v1/calls/search", params={"reference": "find-2"})

    assert found_1.status_code == found_2.status_code == 200
    [call_1] = found_1.json()["data"]
    [call_2] = found_2.json()["data"]
    assert (call_1["id"], call_1["reference"], call_1["to_number"]) == (
        by_body["id"],
        "find-1",
        NORMAL,
    )
    assert call_1["status"] in {"queued", "ringing", "in_progress", "completed"}
    assert (call_2["id"], call_2["reference"]) == (by_header["id"], None)


async def test_a_found_call_shows_its_current_state(
    sim: httpx.AsyncClient, receiver: CallbackReceiver
) -> None:
    call_id = (await sim.post("/v1/calls", json=native_create(reference="find-3"))).json()["id"]
    await callbacks_for(receiver, call_id, 3)

    [found] = (await sim.get("/v1/calls/search", params={"reference": "find-3"})).json()["data"]

    assert found == (await sim.get(f"/v1/calls/{call_id}")).json()
    assert found["status"] == "completed"


async def test_an_unknown_reference_finds_nothing(sim: httpx.AsyncClient) -> None:
    # A create refused before dialing leaves nothing to find either.
    refused = await sim.post("/v1/calls", json=native_create("+15005550005", reference="find-4"))
    assert refused.status_code == 500

    for reference in ("never-used", "find-4"):
        response = await sim.get("/v1/calls/search", params={"reference": reference})
        assert response.status_code == 200
        assert response.json() == {"data": []}


async def test_a_reference_used_by_another_dialect_is_not_found(sim: httpx.AsyncClient) -> None:
    vocode = await sim.post(
        "/v1/calls/create",
        json={"from_number": "+15005550000", "to_number": NORMAL, "agent": "a"},
        headers={"Authorization": f"Bearer {VOCODE_KEY}", "Idempotency-Key": "find-5"},
    )
    assert vocode.status_code == 200

    response = await sim.get("/v1/calls/search", params={"reference": "find-5"})

    assert response.json() == {"data": []}


async def test_search_needs_a_reference_and_a_key(sim: httpx.AsyncClient) -> None:
    missing = await sim.get("/v1/calls/search")
    empty = await sim.get("/v1/calls/search", params={"reference": ""})
    unauthorized = await sim.get(
        "/v1/calls/search", params={"reference": "x"}, headers={"Authorization": "Bearer nope"}
    )

    assert (missing.status_code, empty.status_code) == (422, 422)
    assert missing.json()["error"]["code"] == "invalid_request"
    assert unauthorized.status_code == 401


async def test_the_ops_log_lists_one_entry_per_dial_with_its_reference(
    sim: httpx.AsyncClient,
) -> None:
    number = "+996700000123"  # used by no other test
    body = native_create(number, reference="dial-1")
    first = await sim.post("/v1/calls", json=body)
    replay = await sim.post("/v1/calls", json=body, headers={"Idempotency-Key": "dial-1"})
    second = await sim.post("/v1/calls", json=native_create(number, reference="dial-2"))
    assert (first.status_code, replay.status_code, second.status_code) == (201, 200, 201)

    log = (await sim.get("/_sim/calls", headers={"Authorization": ""})).json()["data"]

    dials = [entry for entry in log if entry["to_number"] == number]
    assert [(d["id"], d["reference"], d["dialect"]) for d in dials] == [
        (first.json()["id"], "dial-1", "simulator"),
        (second.json()["id"], "dial-2", "simulator"),
    ]
    assert all(d["created_at"].endswith("Z") for d in dials)


async def test_unknown_call_is_404(sim: httpx.AsyncClient) -> None:
    response = await sim.get("/v1/calls/sim_nope")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


async def test_invalid_request_is_422_in_the_dialect_format(sim: httpx.AsyncClient) -> None:
    response = await sim.post("/v1/calls", json={"agent_id": "a"})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_request"
    assert "to_number" in response.json()["error"]["message"]


# --- test numbers ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "events"),
    [
        ("+15005550001", [("call.completed", "busy")]),
        ("+15005550002", [("call.ringing", "ringing"), ("call.completed", "no_answer")]),
        (
            "+15005550003",
            [
                ("call.ringing", "ringing"),
                ("call.in_progress", "in_progress"),
                ("call.completed", "failed"),
            ],
        ),
        (
            "+15005550004",
            [
                ("call.ringing", "ringing"),
                ("call.in_progress", "in_progress"),
                ("call.completed", "completed"),
            ],
        ),
    ],
    ids=["busy", "no_answer", "failed", "slow_answer"],
)
async def test_test_numbers_play_their_outcome(
    sim: httpx.AsyncClient,
    receiver: CallbackReceiver,
    number: str,
    events: list[tuple[str, str]],
) -> None:
    call_id = (await sim.post("/v1/calls", json=native_create(number))).json()["id"]

    callbacks = await callbacks_for(receiver, call_id, len(events))
    # Wait for the final status, then make sure nothing else came.
    await eventually(lambda: _status_is(sim, call_id, events[-1][1]))

    bodies = [c.json() for c in receiver.for_call(call_id)]
    assert [(b["event_type"], b["status"]) for b in bodies] == events
    final = bodies[-1]
    assert isinstance(final["duration"], int)
    if number == "+15005550001":
        assert final["duration"] == 0
        assert final["transcript"] is None
    if number == "+15005550003":
        assert final["ended_reason"] == "provider_error"
    if number == "+15005550004":
        rang, answered = callbacks[0].at, callbacks[1].at
        assert answered - rang >= 0.5  # sim_slow_answer_seconds is 0.6


async def _status_is(sim: httpx.AsyncClient, call_id: str, status: str) -> bool:
    return (await sim.get(f"/v1/calls/{call_id}")).json()["status"] == status


async def test_500_number_always_fails(sim: httpx.AsyncClient) -> None:
    for _ in range(3):
        response = await sim.post("/v1/calls", json=native_create("+15005550005"))
        assert response.status_code == 500
        assert response.json()["error"]["code"] == "internal_error"


async def test_silent_number_stays_in_progress_without_callbacks(
    sim: httpx.AsyncClient, receiver: CallbackReceiver
) -> None:
    silent = (await sim.post("/v1/calls", json=native_create("+15005550006"))).json()["id"]
    await eventually(lambda: _status_is(sim, silent, "in_progress"))
    # A normal call placed after it completes well past the silent call's timeline.
    normal = (await sim.post("/v1/calls", json=native_create())).json()["id"]
    await callbacks_for(receiver, normal, 3)

    assert receiver.for_call(silent) == []
    assert (await sim.get(f"/v1/calls/{silent}")).json()["status"] == "in_progress"


async def test_flaky_number_fails_twice_per_call_then_succeeds(sim: httpx.AsyncClient) -> None:
    body = native_create("+15005550007", reference="flaky-1")

    codes = [(await sim.post("/v1/calls", json=body)).status_code for _ in range(4)]
    other = await sim.post("/v1/calls", json={**body, "reference": "flaky-2"})

    assert codes == [500, 500, 201, 200]  # the last one is an idempotent replay
    assert other.status_code == 500  # another call starts its own count


@pytest.mark.parametrize("number", ["+15005550008", "+1234", "4155551234", "+1415555123x"])
async def test_invalid_numbers_are_refused_with_400(sim: httpx.AsyncClient, number: str) -> None:
    response = await sim.post("/v1/calls", json=native_create(number))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_number"


# --- vocode and voxpria dialects ---------------------------------------------------------


async def test_vocode_dialect(sim: httpx.AsyncClient, receiver: CallbackReceiver) -> None:
    response = await sim.post(
        "/v1/calls/create",
        json={"from_number": "+15005550000", "to_number": NORMAL, "agent": "agent-uuid"},
        headers={"Authorization": f"Bearer {VOCODE_KEY}"},
    )
    assert response.status_code == 200
    call = response.json()
    assert call["status"] == "not_started"
    assert {"id", "user_id", "to_number", "from_number", "agent", "transcript"} <= set(call)
    assert call["agent"]["id"] == "agent-uuid"

    callbacks = await callbacks_for(receiver, call["id"], 2)

    assert [c.json()["type"] for c in callbacks] == [
        "event_phone_call_connected",
        "event_phone_call_ended",
    ]
    for callback in callbacks:
        assert callback.path == "/v1/webhooks/providers/vocode"
        VOCODE.verify(SECRETS["vocode"], callback.headers, callback.body, 60)
    ended = callbacks[-1].json()["call"]
    assert (ended["status"], ended["telephony_status"]) == ("ended", "completed")
    fetched = (await sim.get("/v1/calls", params={"id": call["id"]})).json()
    assert fetched["status"] == "ended"
    assert fetched["transcript"] == ended["transcript"]


async def test_vocode_busy_is_a_call_that_did_not_connect(
    sim: httpx.AsyncClient, receiver: CallbackReceiver
) -> None:
    call = (
        await sim.post(
            "/v1/calls/create",
            json={"from_number": "+15005550000", "to_number": "+15005550001", "agent": "a"},
        )
    ).json()

    [callback] = await callbacks_for(receiver, call["id"], 1)

    assert callback.json()["type"] == "event_phone_call_did_not_connect"
    assert callback.json()["call"]["status"] == "error"
    assert callback.json()["call"]["telephony_status"] == "busy"


async def test_vocode_errors_use_its_format(sim: httpx.AsyncClient) -> None:
    missing = await sim.get("/v1/calls", params={"id": "nope"})
    refused = await sim.post(
        "/v1/calls/create",
        json={"from_number": "+15005550000", "to_number": "+15005550008", "agent": "a"},
    )
    assert missing.status_code == 404
    assert missing.json()["detail"] == "no such call"
    assert refused.status_code == 400
    assert refused.json()["code"] == "invalid_number"


async def test_voxpria_dialect(sim: httpx.AsyncClient, receiver: CallbackReceiver) -> None:
    response = await sim.post(
        "/api/v1/calls",
        json={"agentId": "agent_abc123", "toNumber": NORMAL, "variables": {"name": "Bo"}},
        headers={"Authorization": f"Bearer {VOXPRIA_KEY}"},
    )
    assert response.status_code == 201
    envelope = response.json()
    assert envelope["success"] is True
    call_id = envelope["data"]["callId"]
    assert envelope["data"]["status"] == "queued"
    assert envelope["data"]["toNumber"] == NORMAL

    callbacks = await callbacks_for(receiver, call_id, 3)

    assert [c.json()["event"] for c in callbacks] == [
        "call.ringing",
        "call.answered",
        "call.ended",
    ]
    for callback in callbacks:
        assert callback.path == "/v1/webhooks/providers/voxpria"
        VOXPRIA.verify(SECRETS["voxpria"], callback.headers, callback.body, 60)
    data = (await sim.get(f"/api/v1/calls/{call_id}")).json()["data"]
    assert data["status"] == "completed"
    assert data["outcome"] == "successful"
    assert data["transcript"].startswith("agent: Hello Bo")
    assert isinstance(data["duration"], int)
    assert data["startedAt"].endswith("Z")
    assert data["completedAt"].endswith("Z")


async def test_voxpria_errors_use_its_format(sim: httpx.AsyncClient) -> None:
    response = await sim.post("/api/v1/calls", json={"agentId": "a", "toNumber": "+15005550005"})
    assert response.status_code == 500
    assert response.json() == {
        "success": False,
        "error": {"code": "internal_error", "message": "simulated provider failure"},
    }


# --- cancel ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def long_sim(receiver: CallbackReceiver) -> AsyncIterator[httpx.AsyncClient]:
    """A simulator whose calls talk for a minute: long enough to hang them up."""
    settings = sim_settings(receiver.url, sim_talk_seconds=60)
    async with (
        serving(create_app(settings)) as url,
        httpx.AsyncClient(
            base_url=url, headers={"Authorization": f"Bearer {SIM_KEY}"}, timeout=10
        ) as client,
    ):
        yield client


@pytest.mark.parametrize(
    ("create_path", "body", "cancel", "id_of", "final_status"),
    [
        (
            "/v1/calls",
            native_create(),
            lambda cid: ("/v1/calls/" + cid + "/cancel", None),
            lambda r: r["id"],
            lambda r: r["status"],
        ),
        (
            "/v1/calls/create",
            {"from_number": "+15005550000", "to_number": NORMAL, "agent": "a"},
            lambda cid: ("/v1/calls/end", {"id": cid}),
            lambda r: r["id"],
            lambda r: r["telephony_status"],
        ),
        (
            "/api/v1/calls",
            {"agentId": "a", "toNumber": NORMAL},
            lambda cid: ("/api/v1/calls/" + cid + "/cancel", None),
            lambda r: r["data"]["callId"],
            lambda r: r["data"]["status"],
        ),
    ],
    ids=["simulator", "vocode", "voxpria"],
)
async def test_cancel_hangs_up_a_live_call_and_calls_back(
    long_sim: httpx.AsyncClient,
    receiver: CallbackReceiver,
    create_path: str,
    body: dict[str, Any],
    cancel: Any,
    id_of: Any,
    final_status: Any,
) -> None:
    call_id = id_of((await long_sim.post(create_path, json=body)).json())
    # Wait until the call is answered (vocode: connected), then hang up.
    await eventually(lambda: _answered(receiver, call_id))

    path, cancel_body = cancel(call_id)
    response = await long_sim.post(path, json=cancel_body)
    again = await long_sim.post(path, json=cancel_body)

    assert response.status_code == 200
    assert final_status(response.json()) == "canceled"
    assert again.status_code == 200  # cancelling twice changes nothing
    last = await eventually(lambda: _last_callback_canceled(receiver, call_id, final_status))
    assert last


async def _answered(receiver: CallbackReceiver, call_id: str) -> bool:
    return any("in_progress" in c.body.decode() for c in receiver.for_call(call_id))


async def _last_callback_canceled(
    receiver: CallbackReceiver, call_id: str, final_status: Any
) -> bool:
    callbacks = receiver.for_call(call_id)
    if not callbacks:
        return False
    payload = callbacks[-1].json()
    inner = payload.get("call") or payload
    return final_status(inner) == "canceled"


# --- delivery, mounting, scale, serving ------------------------------------------------------


async def test_callbacks_are_retried_until_the_receiver_answers() -> None:
    receiver = CallbackReceiver(fail_first=2)
    async with serving(receiver.app()) as receiver_url:
        receiver.url = receiver_url
        settings = sim_settings(receiver_url)
        async with serving(create_app(settings)) as url, httpx.AsyncClient(base_url=url) as client:
            response = await client.post(
                "/v1/calls",
                json=native_create(callback_url=f"{receiver_url}/cb"),
                headers={"Authorization": f"Bearer {SIM_KEY}"},
            )
            call_id = response.json()["id"]

            callbacks = await callbacks_for(receiver, call_id, 3)

    assert receiver.fail_first == 0
    assert [c.json()["status"] for c in callbacks] == ["ringing", "in_progress", "completed"]


async def test_works_mounted_under_a_prefix(receiver: CallbackReceiver) -> None:
    host = FastAPI()
    simulator_app = create_app(sim_settings(receiver.url))
    host.mount("/sim", simulator_app)
    try:
        async with serving(host) as url, httpx.AsyncClient(base_url=f"{url}/sim/") as client:
            auth = {"Authorization": f"Bearer {SIM_KEY}"}
            created = await client.post("v1/calls", json=native_create(), headers=auth)
            assert created.status_code == 201
            call_id = created.json()["id"]
            await callbacks_for(receiver, call_id, 3)
            fetched = await client.get(f"v1/calls/{call_id}", headers=auth)
            assert fetched.json()["status"] == "completed"
    finally:
        # A mounted app's lifespan does not run: the host closes the simulator.
        await simulator_app.state.simulator.close()


async def test_hundreds_of_simultaneous_calls_all_complete(
    sim: httpx.AsyncClient, receiver: CallbackReceiver
) -> None:
    count = 200
    responses = await asyncio.gather(
        *(sim.post("/v1/calls", json=native_create()) for _ in range(count))
    )
    assert {r.status_code for r in responses} == {201}
    ids = {r.json()["id"] for r in responses}

    async def all_completed() -> bool:
        done = {
            body["provider_call_id"]
            for r in receiver.received
            if (body := r.json()).get("status") == "completed"
        }
        return ids <= done

    await eventually(all_completed, within=60, interval=0.2)


async def test_callbacks_in_flight_are_bounded_and_each_calls_arrive_in_order() -> None:
    in_flight = 0
    most_in_flight = 0
    statuses: dict[str, list[str]] = {}
    slow = FastAPI()

    @slow.post("/{path:path}")
    async def receive(request: Request) -> Response:
        nonlocal in_flight, most_in_flight
        in_flight += 1
        most_in_flight = max(most_in_flight, in_flight)
        body = json.loads(await request.body())
        await asyncio.sleep(0.05)  # a receiver slower than the callbacks come
        statuses.setdefault(body["provider_call_id"], []).append(body["status"])
        in_flight -= 1
        return Response(status_code=204)

    count = 100
    async with serving(slow) as receiver_url:
        settings = sim_settings(receiver_url, sim_ring_delay_seconds=0, sim_talk_seconds=0)
        async with (
            serving(create_app(settings)) as url,
            httpx.AsyncClient(
                base_url=url, headers={"Authorization": f"Bearer {SIM_KEY}"}, timeout=10
            ) as client,
        ):
            responses = await asyncio.gather(
                *(client.post("/v1/calls", json=native_create()) for _ in range(count))
            )
            ids = {r.json()["id"] for r in responses}

            async def all_arrived() -> bool:
                return all(len(statuses.get(call_id, [])) == 3 for call_id in ids)

            await eventually(all_arrived, within=60, interval=0.2)

    assert 1 < most_in_flight <= MAX_IN_FLIGHT
    assert {tuple(statuses[call_id]) for call_id in ids} == {
        ("ringing", "in_progress", "completed")
    }


async def test_the_simulator_process_serves_calls_and_stops_on_sigterm(
    receiver: CallbackReceiver, tmp_path: Path
) -> None:
    """`python -m switchboard_provider_sim`, as compose and Kubernetes run it."""
    process = ServiceProcess(
        "provider-sim",
        free_port(),
        {
            "SWITCHBOARD_SIMULATOR__API_KEY": SIM_KEY,
            "SWITCHBOARD_SIMULATOR__CALLBACK_SECRET": SECRETS["simulator"],
            "SWITCHBOARD_SIM_RING_DELAY_SECONDS": "0.05",
            "SWITCHBOARD_SIM_ANSWER_DELAY_SECONDS": "0.05",
            "SWITCHBOARD_SIM_TALK_SECONDS": "0.05",
        },
        tmp_path / "sim.log",
    )
    await asyncio.to_thread(process.start)
    try:
        headers = {"Authorization": f"Bearer {SIM_KEY}"}
        async with httpx.AsyncClient(base_url=process.url, headers=headers) as client:
            assert (await client.get("/healthz")).status_code == 200
            assert "# TYPE" in (await client.get("/metrics")).text
            created = await client.post(
                "/v1/calls",
                json={
                    "to_number": "+996700000000",
                    "agent_id": "sim-agent",
                    "callback_url": receiver.url,
                },
            )
            assert created.status_code == 201, created.text
            call_id = created.json()["id"]

            async def completed() -> bool:
                return (await client.get(f"/v1/calls/{call_id}")).json()["status"] == "completed"

            await eventually(completed, within=10)
    finally:
        exit_code = await asyncio.to_thread(process.terminate, 20)
    assert exit_code == 0, process.logs()


# --- recordings and the failure test numbers -------------------------------------------------


async def _completed_native_call(
    sim: httpx.AsyncClient, receiver: CallbackReceiver, number: str = NORMAL
) -> dict[str, Any]:
    call_id = (await sim.post("/v1/calls", json=native_create(number))).json()["id"]
    await callbacks_for(receiver, call_id, 3)
    await eventually(lambda: _status_is(sim, call_id, "completed"))
    fetched: dict[str, Any] = (await sim.get(f"/v1/calls/{call_id}")).json()
    return fetched


async def test_a_completed_call_has_a_wav_recording_with_byte_ranges(
    sim: httpx.AsyncClient, receiver: CallbackReceiver
) -> None:
    call = await _completed_native_call(sim, receiver)
    assert call["recording_available"] is True

    whole = await sim.get(call["recording_url"])
    assert whole.status_code == 200
    assert whole.headers["content-type"] == "audio/wav"
    assert whole.content[:4] == b"RIFF"
    assert whole.content[8:12] == b"WAVE"
    assert int(whole.headers["content-length"]) == len(whole.content) > 20_000
    size = len(whole.content)

    part = await sim.get(call["recording_url"], headers={"Range": "bytes=10-19"})
    assert part.status_code == 206
    assert part.headers["content-range"] == f"bytes 10-19/{size}"
    assert part.content == whole.content[10:20]
    tail = await sim.get(call["recording_url"], headers={"Range": "bytes=-5"})
    assert (tail.status_code, tail.content) == (206, whole.content[-5:])
    beyond = await sim.get(call["recording_url"], headers={"Range": f"bytes={size}-"})
    assert beyond.status_code == 416

    anonymous = await sim.get(call["recording_url"], headers={"Authorization": ""})
    assert anonymous.status_code == 401


async def test_the_no_recording_number_completes_without_one(
    sim: httpx.AsyncClient, receiver: CallbackReceiver
) -> None:
    call = await _completed_native_call(sim, receiver, "+15005550012")

    assert (call["recording_available"], call["recording_url"]) == (False, None)
    assert (await sim.get(f"/v1/calls/{call['id']}/recording")).status_code == 404


async def test_the_voicemail_number_ends_at_the_voicemail(
    sim: httpx.AsyncClient, receiver: CallbackReceiver
) -> None:
    call = await _completed_native_call(sim, receiver, "+15005550011")

    assert call["ended_reason"] == "voicemail_reached"
    assert call["analysis"] is None
    assert call["outcome"] is None
    assert call["recording_available"] is True


async def test_the_outage_number_answers_503_for_a_while_then_accepts(
    receiver: CallbackReceiver,
) -> None:
    settings = sim_settings(receiver.url, sim_outage_seconds=0.6)
    async with (
        serving(create_app(settings)) as url,
        httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {SIM_KEY}"}) as c,
    ):
        key = {"Idempotency-Key": f"outage-{time.monotonic()}"}
        started = time.monotonic()
        first = await c.post("/v1/calls", json=native_create("+15005550009"), headers=key)
        assert first.status_code == 503

        async def accepted() -> httpx.Response | None:
            answer = await c.post("/v1/calls", json=native_create("+15005550009"), headers=key)
            return answer if answer.status_code == 201 else None

        await eventually(accepted, within=5, interval=0.1)
        assert time.monotonic() - started >= 0.6


async def test_the_accepted_then_timeout_number_places_the_call_before_answering(
    receiver: CallbackReceiver,
) -> None:
    settings = sim_settings(receiver.url, sim_accept_timeout_seconds=3)
    async with serving(create_app(settings)) as url:
        headers = {"Authorization": f"Bearer {SIM_KEY}", "Idempotency-Key": "att-1"}
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=0.5) as client:
            with pytest.raises(httpx.ReadTimeout):
                await client.post("/v1/calls", json=native_create("+15005550010"))
            log = (await client.get("/_sim/calls")).json()["data"]
            assert [c["reference"] for c in log] == ["att-1"]  # placed, though unanswered

            replay = await client.post("/v1/calls", json=native_create("+15005550010"))
            assert replay.status_code == 200  # the idempotent replay answers at once
            assert replay.json()["id"] == log[0]["id"]


async def test_recording_urls_keep_the_mount_prefix(receiver: CallbackReceiver) -> None:
    # The all-in-one mounts the simulator at /sim: its links must point there too.
    host = FastAPI()
    host.mount("/sim", create_app(sim_settings(receiver.url)))
    async with (
        serving(host) as url,
        httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {SIM_KEY}"}) as c,
    ):
        call_id = (await c.post("/sim/v1/calls", json=native_create())).json()["id"]

        async def recorded() -> str | None:
            link = (await c.get(f"/sim/v1/calls/{call_id}")).json()["recording_url"]
            return link if isinstance(link, str) else None

        link = await eventually(recorded, within=10)
        assert link == f"{url}/sim/recordings/{call_id}.wav"
        assert (await c.get(link)).status_code == 200

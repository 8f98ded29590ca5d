"""The adapter contract suite: every provider adapter (simulator, Vocode, Voxpria, Vapi,
Retell) against the running simulator, which speaks each dialect, through the same
cases: calls and status mapping (voicemail too), ended reasons, outcome and analysis,
recordings, cancel, error classification, and real callbacks parsed back."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from prometheus_client import REGISTRY
from pydantic import SecretStr

from switchboard_provider_sim import create_app
from switchboard_shared.adapters.providers import build_provider, build_providers
from switchboard_shared.calls.callback_signing import (
    SWITCHBOARD,
    VOCODE,
    VOXPRIA,
    CallbackSigner,
)
from switchboard_shared.calls.provider_signatures import RETELL, VAPI
from switchboard_shared.domain.agents import Agent, agent_spec
from switchboard_shared.domain.calls import CallStatus
from switchboard_shared.domain.ended_reasons import EndedReason as R
from switchboard_shared.domain.tenant_config import TenantConfig
from switchboard_shared.ports import (
    InvalidCallback,
    LookupUnsupported,
    MalformedCallback,
    Provider,
    ProviderAmbiguousError,
    ProviderCallRequest,
    ProviderCallState,
    ProviderPermanentError,
    ProviderTransientError,
    RangeNotSatisfiable,
    RecordingNotFound,
)
from switchboard_shared.runtime.settings import ProviderSettings
from switchboard_testing.net import free_port
from switchboard_testing.servers import serving
from tests.integration.test_provider_sim import (
    NORMAL,
    SIGNING_KEYS,
    VOCODE_KEY,
    CallbackReceiver,
    Received,
    sim_settings,
)
from tests.support.net import eventually

S = CallStatus
NAMES = ["simulator", "vocode", "voxpria", "vapi", "retell"]
SCHEMES: dict[str, CallbackSigner] = {
    "simulator": SWITCHBOARD,
    "vocode": VOCODE,
    "voxpria": VOXPRIA,
    "vapi": VAPI,
    "retell": RETELL,
}
# Providers with no ringing event, and those whose create takes no idempotency key.
NO_RINGING = {"vocode", "retell"}
NOT_IDEMPOTENT = {"vapi", "retell"}
# Vapi's x-vapi-secret is a shared secret: it signs no body and carries no time.
SIGNS_THE_BODY = [n for n in NAMES if n != "vapi"]
VOICEMAIL = "+15005550011"
NO_RECORDING = "+15005550012"


@pytest.fixture(scope="module")
async def receiver() -> AsyncIterator[CallbackReceiver]:
    receiver = CallbackReceiver()
    async with serving(receiver.app()) as url:
        receiver.url = url
        yield receiver


@contextlib.asynccontextmanager
async def simulator_with_adapters(
    receiver: CallbackReceiver, port: int, **overrides: float
) -> AsyncIterator[dict[str, Provider]]:
    """A simulator running on `port` and one adapter per provider, all pointed at it."""
    settings = sim_settings(receiver.url, f"http://127.0.0.1:{port}", **overrides)
    async with serving(create_app(settings), port):
        providers = build_providers(settings)
        try:
            yield providers
        finally:
            for provider in providers.values():
                await provider.close()


@pytest.fixture(scope="module")
def sim_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
async def adapters(receiver: CallbackReceiver, sim_port: int) -> AsyncIterator[dict[str, Provider]]:
    async with simulator_with_adapters(receiver, sim_port) as providers:
        yield providers


@pytest.fixture(scope="module")
async def long_call_adapters(receiver: CallbackReceiver) -> AsyncIterator[dict[str, Provider]]:
    """Adapters on a simulator whose calls talk for a minute, to hang them up."""
    async with simulator_with_adapters(receiver, free_port(), sim_talk_seconds=60) as providers:
        yield providers


def call_request(receiver: CallbackReceiver, number: str = NORMAL) -> ProviderCallRequest:
    return ProviderCallRequest(
        call_id=str(uuid.uuid4()),
        to_number=number,
        from_number=None,
        provider_agent_id="agent-1",
        variables={"name": "Ann"},
        callback_url=f"{receiver.url}/v1/webhooks/call-completed",
    )


def callbacks_of(receiver: CallbackReceiver, provider_call_id: str) -> list[Received]:
    return receiver.for_call(provider_call_id)


async def wait_for_callbacks(
    receiver: CallbackReceiver, provider: Provider, provider_call_id: str, count: int = 1
) -> list[ProviderCallState]:
    """Every callback of the call parsed by `provider`, once `count` terminal ones
    arrived (Vapi and Retell send the end, then the call's results)."""

    async def ended() -> list[ProviderCallState]:
        states = [
            provider.parse_callback(c.headers, c.body)
            for c in callbacks_of(receiver, provider_call_id)
        ]
        return states if sum(s.status.is_terminal for s in states) >= count else []

    return await eventually(ended, within=15)


def final_messages(name: str, answered: bool = True) -> int:
    """How many terminal callbacks a call's end brings in `name`'s dialect."""
    if name == "vapi":
        return 2  # status-update `ended`, then the end-of-call-report
    if name == "retell" and answered:
        return 2  # call_ended, then call_analyzed
    return 1


def distinct(statuses: list[CallStatus]) -> list[CallStatus]:
    """The statuses without repeats in a row (several messages may report one status)."""
    return [s for i, s in enumerate(statuses) if i == 0 or statuses[i - 1] is not s]


# --- calls and status mapping ----------------------------------------------------------------

OUTCOMES: dict[str, list[CallStatus]] = {
    NORMAL: [S.RINGING, S.IN_PROGRESS, S.COMPLETED],
    "+15005550001": [S.BUSY],
    "+15005550002": [S.RINGING, S.NO_ANSWER],
    "+15005550003": [S.RINGING, S.IN_PROGRESS, S.FAILED],
    "+15005550004": [S.RINGING, S.IN_PROGRESS, S.COMPLETED],
    VOICEMAIL: [S.RINGING, S.IN_PROGRESS, S.COMPLETED],
    NO_RECORDING: [S.RINGING, S.IN_PROGRESS, S.COMPLETED],
}
# number -> the reason each provider's raw code maps to.
REASONS: dict[str, R] = {
    NORMAL: R.CUSTOMER_HANGUP,
    "+15005550001": R.DIAL_BUSY,
    "+15005550002": R.DIAL_NO_ANSWER,
    "+15005550003": R.PROVIDER_ERROR,
    "+15005550004": R.CUSTOMER_HANGUP,
    VOICEMAIL: R.VOICEMAIL_REACHED,
    NO_RECORDING: R.CUSTOMER_HANGUP,
}
# Vocode tells neither who hung up nor of a voicemail: its calls just end. Voxpria's
# `outcome` tells of a voicemail, not of who hung up.
VAGUER: dict[str, dict[R, R]] = {
    "vocode": {R.CUSTOMER_HANGUP: R.COMPLETED, R.VOICEMAIL_REACHED: R.COMPLETED},
    "voxpria": {R.CUSTOMER_HANGUP: R.COMPLETED},
}


def expected_reason(name: str, number: str) -> R:
    reason = REASONS[number]
    return VAGUER.get(name, {}).get(reason, reason)


@pytest.mark.parametrize("number", list(OUTCOMES), ids=lambda n: n[-4:])
@pytest.mark.parametrize("name", NAMES)
async def test_callbacks_and_get_call_map_each_test_number(
    adapters: dict[str, Provider], receiver: CallbackReceiver, name: str, number: str
) -> None:
    provider = adapters[name]

    created = await provider.create_call(call_request(receiver, number))
    assert created.status is S.DIALING
    assert created.provider_call_id

    answered = S.IN_PROGRESS in OUTCOMES[number]
    count = final_messages(name, answered)
    states = await wait_for_callbacks(receiver, provider, created.provider_call_id, count)

    expected = OUTCOMES[number]
    if name in NO_RINGING:
        expected = [s for s in expected if s is not S.RINGING]
    assert distinct([s.status for s in states]) == expected
    assert {s.provider_call_id for s in states} == {created.provider_call_id}
    final = states[-1]
    assert isinstance(final.duration, int)
    assert final.ended_at is not None
    assert final.ended_reason is expected_reason(name, number)
    assert final.ended_reason_raw  # the provider's own code, kept for operators
    if final.status is S.COMPLETED:
        assert (final.transcript or "").startswith("agent: ")
        assert final.started_at is not None
    if final.status is S.BUSY:
        assert (final.transcript, final.duration) == (None, 0)
    for live in states[:-count]:
        assert live.ended_reason is None

    fetched = await provider.get_call(created.provider_call_id)
    assert fetched.status is final.status
    assert fetched.ended_reason is final.ended_reason
    assert fetched.transcript == final.transcript
    assert fetched.duration == final.duration


# --- outcome, analysis and recordings ---------------------------------------------------------

SIM_ANALYSIS = {
    "summary": "The assistant reached Ann, who had no further questions.",
    "successful": True,
    "fields": {"callback_requested": False, "customer_name": "Ann"},
}
# What each provider reports of a completed conversation: (outcome, analysis).
RESULTS: dict[str, tuple[str | None, dict[str, object] | None]] = {
    "simulator": ("successful", SIM_ANALYSIS),
    "vocode": (None, None),  # Vocode's call object has neither
    "voxpria": ("successful", None),  # Voxpria's `outcome`, no analysis
    "vapi": (None, SIM_ANALYSIS),  # analysis.summary / successEvaluation / structuredData
    "retell": (None, SIM_ANALYSIS),  # call_analysis, in call_analyzed
}


@pytest.mark.parametrize("name", NAMES)
async def test_outcome_and_analysis_are_normalized(
    adapters: dict[str, Provider], receiver: CallbackReceiver, name: str
) -> None:
    provider = adapters[name]
    created = await provider.create_call(call_request(receiver))

    states = await wait_for_callbacks(
        receiver, provider, created.provider_call_id, final_messages(name)
    )

    outcome, analysis = RESULTS[name]
    final = states[-1]
    assert final.outcome == outcome
    assert (final.analysis.model_dump() if final.analysis else None) == analysis
    assert final.recording_available is True
    for live in (s for s in states if not s.status.is_terminal):
        assert (live.outcome, live.analysis, live.recording_available) == (None, None, None)


@pytest.mark.parametrize("name", NAMES)
async def test_a_voicemail_has_no_analysis(
    adapters: dict[str, Provider], receiver: CallbackReceiver, name: str
) -> None:
    provider = adapters[name]
    created = await provider.create_call(call_request(receiver, VOICEMAIL))

    states = await wait_for_callbacks(
        receiver, provider, created.provider_call_id, final_messages(name)
    )

    final = states[-1]
    expected_outcome = "voicemail" if name == "voxpria" else None
    assert final.analysis is None or final.analysis.successful is False
    assert final.outcome == expected_outcome


@pytest.mark.parametrize("name", NAMES)
async def test_recording_is_fetched_whole_and_by_range(
    adapters: dict[str, Provider], receiver: CallbackReceiver, name: str
) -> None:
    provider = adapters[name]
    created = await provider.create_call(call_request(receiver))
    await wait_for_callbacks(receiver, provider, created.provider_call_id)

    whole = await provider.fetch_recording(created.provider_call_id)
    try:
        audio = b"".join([chunk async for chunk in whole.chunks])
    finally:
        await whole.aclose()
    assert (whole.status_code, whole.content_type, whole.content_range) == (200, "audio/wav", None)
    assert audio[:4] == b"RIFF"
    assert whole.content_length == len(audio)

    part = await provider.fetch_recording(created.provider_call_id, "bytes=100-199")
    try:
        piece = b"".join([chunk async for chunk in part.chunks])
    finally:
        await part.aclose()
    assert (part.status_code, part.content_range) == (206, f"bytes 100-199/{len(audio)}")
    assert piece == audio[100:200]
    assert part.content_length == 100

    with pytest.raises(RangeNotSatisfiable):
        await provider.fetch_recording(created.provider_call_id, f"bytes={len(audio)}-")


@pytest.mark.parametrize("number", [NO_RECORDING, "+15005550001"], ids=["no-recording", "busy"])
@pytest.mark.parametrize("name", NAMES)
async def test_a_call_without_a_recording_has_none_to_fetch(
    adapters: dict[str, Provider], receiver: CallbackReceiver, name: str, number: str
) -> None:
    provider = adapters[name]
    created = await provider.create_call(call_request(receiver, number))
    states = await wait_for_callbacks(receiver, provider, created.provider_call_id)
    assert states[-1].recording_available is False

    with pytest.raises(RecordingNotFound):
        await provider.fetch_recording(created.provider_call_id)


@pytest.mark.parametrize("name", NAMES)
async def test_silent_number_stays_in_progress(
    adapters: dict[str, Provider], receiver: CallbackReceiver, name: str
) -> None:
    provider = adapters[name]
    created = await provider.create_call(call_request(receiver, "+15005550006"))

    async def in_progress() -> bool:
        return (await provider.get_call(created.provider_call_id)).status is S.IN_PROGRESS

    await eventually(in_progress)
    assert callbacks_of(receiver, created.provider_call_id) == []


@pytest.mark.parametrize("name", [n for n in NAMES if n != "retell"])
async def test_cancel_call_hangs_up(
    long_call_adapters: dict[str, Provider], receiver: CallbackReceiver, name: str
) -> None:
    provider = long_call_adapters[name]
    created = await provider.create_call(call_request(receiver))

    async def in_progress() -> bool:
        return (await provider.get_call(created.provider_call_id)).status is S.IN_PROGRESS

    await eventually(in_progress)
    await provider.cancel_call(created.provider_call_id)
    await provider.cancel_call(created.provider_call_id)  # idempotent

    fetched = await provider.get_call(created.provider_call_id)
    assert fetched.status is S.CANCELED
    assert fetched.ended_reason is R.CANCELED
    states = await wait_for_callbacks(receiver, provider, created.provider_call_id)
    assert states[-1].status is S.CANCELED


async def test_retell_cannot_hang_up_and_says_so_without_a_request() -> None:
    # Retell's API documents no way to end a live phone call; a closed port proves
    # that no request is tried.
    settings = ProviderSettings(base_url=f"http://127.0.0.1:{free_port()}")
    provider = build_provider("retell", settings, 300)
    try:
        with pytest.raises(ProviderPermanentError, match="no API to end"):
            await provider.cancel_call("call-1")
    finally:
        await provider.close()


# --- finding a call by our reference (reconciliation) ----------------------------------------


async def test_simulator_finds_a_created_call_by_our_call_id(
    adapters: dict[str, Provider], receiver: CallbackReceiver
) -> None:
    provider = adapters["simulator"]
    request = call_request(receiver)
    created = await provider.create_call(request)

    found = await provider.find_call(request.call_id)

    assert found is not None
    assert found.provider_call_id == created.provider_call_id
    assert found.status in {S.DIALING, S.RINGING, S.IN_PROGRESS, S.COMPLETED}

    states = await wait_for_callbacks(receiver, provider, created.provider_call_id)
    ended = await provider.find_call(request.call_id)
    assert ended == states[-1]  # the call's current state, as get_call would say


async def test_simulator_finds_nothing_for_an_unknown_call_id(
    adapters: dict[str, Provider],
) -> None:
    assert await adapters["simulator"].find_call(str(uuid.uuid4())) is None


async def test_simulator_finds_a_flaky_call_only_once_a_create_got_through(
    adapters: dict[str, Provider], receiver: CallbackReceiver
) -> None:
    # The reconciler's question after a create of unknown outcome: was it placed?
    provider = adapters["simulator"]
    request = call_request(receiver, "+15005550007")
    for _ in range(2):
        with pytest.raises(ProviderTransientError):
            await provider.create_call(request)
        assert await provider.find_call(request.call_id) is None

    created = await provider.create_call(request)

    found = await provider.find_call(request.call_id)
    assert found is not None
    assert found.provider_call_id == created.provider_call_id


async def test_simulator_lookup_is_transient_when_the_simulator_is_down() -> None:
    provider = build_provider(
        "simulator", ProviderSettings(base_url=f"http://127.0.0.1:{free_port()}"), 300
    )
    try:
        with pytest.raises(ProviderTransientError, match="find_call unreachable"):
            await provider.find_call(str(uuid.uuid4()))
    finally:
        await provider.close()


async def test_simulator_lookup_timeout_is_transient() -> None:
    async with server_that_never_answers() as url:
        settings = ProviderSettings(base_url=url, timeout_seconds=0.3)
        provider = build_provider("simulator", settings, 300)
        try:
            with pytest.raises(ProviderTransientError, match="no answer"):
                await provider.find_call(str(uuid.uuid4()))
        finally:
            await provider.close()


@pytest.mark.parametrize("name", ["vocode", "voxpria", "vapi", "retell"])
async def test_providers_without_a_lookup_by_reference_say_so(
    adapters: dict[str, Provider], receiver: CallbackReceiver, name: str
) -> None:
    request = call_request(receiver)
    await adapters[name].create_call(request)

    with pytest.raises(LookupUnsupported):
        await adapters[name].find_call(request.call_id)


@pytest.mark.parametrize("name", ["vocode", "voxpria", "vapi", "retell"])
async def test_an_unsupported_lookup_sends_no_request(name: str) -> None:
    # Pointed at a closed port: a request would be a transient error, not this one.
    settings = ProviderSettings(base_url=f"http://127.0.0.1:{free_port()}", from_number="+1")
    provider = build_provider(name, settings, 300)
    try:
        with pytest.raises(LookupUnsupported):
            await provider.find_call(str(uuid.uuid4()))
    finally:
        await provider.close()


# --- error classification --------------------------------------------------------------------


def _errors(name: str, kind: str) -> float:
    value = REGISTRY.get_sample_value(
        "switchboard_provider_errors_total",
        {"provider": name, "operation": "create_call", "kind": kind},
    )
    return value or 0.0


def _timed(name: str, outcome: str) -> float:
    value = REGISTRY.get_sample_value(
        "switchboard_provider_request_seconds_count",
        {"provider": name, "operation": "create_call", "outcome": outcome},
    )
    return value or 0.0


@pytest.mark.parametrize("name", NAMES)
async def test_provider_500_is_transient(
    adapters: dict[str, Provider], receiver: CallbackReceiver, name: str
) -> None:
    before = _errors(name, "transient")
    timed_before = _timed(name, "transient")

    with pytest.raises(ProviderTransientError, match="500"):
        await adapters[name].create_call(call_request(receiver, "+15005550005"))

    assert _errors(name, "transient") == before + 1
    # Its latency is recorded under its outcome.
    assert _timed(name, "transient") == timed_before + 1


@pytest.mark.parametrize("name", NAMES)
async def test_rejected_number_is_permanent(
    adapters: dict[str, Provider], receiver: CallbackReceiver, name: str
) -> None:
    before = _errors(name, "permanent")
    timed_before = _timed(name, "permanent")

    with pytest.raises(ProviderPermanentError, match="400"):
        await adapters[name].create_call(call_request(receiver, "+15005550008"))

    assert _errors(name, "permanent") == before + 1
    assert _timed(name, "permanent") == timed_before + 1


@pytest.mark.parametrize("name", NAMES)
async def test_flaky_create_succeeds_on_the_third_attempt_of_the_same_call(
    adapters: dict[str, Provider], receiver: CallbackReceiver, name: str
) -> None:
    request = call_request(receiver, "+15005550007")

    for _ in range(2):
        with pytest.raises(ProviderTransientError):
            await adapters[name].create_call(request)
    created = await adapters[name].create_call(request)
    again = await adapters[name].create_call(request)  # a retry after a lost answer

    assert created.status is S.DIALING
    if name in NOT_IDEMPOTENT:
        # No idempotency key in their APIs: a retried create is a second call (why
        # the dialer must never retry an ambiguous create to them blindly).
        assert again.provider_call_id != created.provider_call_id
    else:
        assert again.provider_call_id == created.provider_call_id


@pytest.mark.parametrize("name", NAMES)
async def test_unknown_call_is_permanent(adapters: dict[str, Provider], name: str) -> None:
    with pytest.raises(ProviderPermanentError, match="404"):
        await adapters[name].get_call("no-such-call")


@pytest.mark.parametrize("name", NAMES)
async def test_wrong_api_key_is_permanent(
    adapters: dict[str, Provider], receiver: CallbackReceiver, sim_port: int, name: str
) -> None:
    settings = ProviderSettings(
        base_url=f"http://127.0.0.1:{sim_port}", api_key=SecretStr("wrong"), from_number="+1"
    )
    provider = build_provider(name, settings, 300)
    try:
        with pytest.raises(ProviderPermanentError, match="401"):
            await provider.create_call(call_request(receiver))
    finally:
        await provider.close()


@pytest.mark.parametrize("name", NAMES)
async def test_connection_refused_is_transient(receiver: CallbackReceiver, name: str) -> None:
    provider = build_provider(
        name, ProviderSettings(base_url=f"http://127.0.0.1:{free_port()}", from_number="+1"), 300
    )
    try:
        with pytest.raises(ProviderTransientError, match="unreachable") as raised:
            await provider.create_call(call_request(receiver))
        # Never sent: the dialer may try the agent's next route at once.
        assert not isinstance(raised.value, ProviderAmbiguousError)
    finally:
        await provider.close()


@contextlib.asynccontextmanager
async def server_that_never_answers() -> AsyncIterator[str]:
    """A loopback TCP server that accepts requests and never responds."""
    writers: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        await reader.read()  # until the client gives up and closes

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        for writer in writers:
            writer.close()
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("name", NAMES)
async def test_an_unanswered_request_is_ambiguous(receiver: CallbackReceiver, name: str) -> None:
    """Sent whole and never answered: the provider may have placed the call, so the
    dialer asks it before dialing anywhere else."""
    async with server_that_never_answers() as url:
        settings = ProviderSettings(base_url=url, from_number="+1", timeout_seconds=0.3)
        provider = build_provider(name, settings, 300)
        started = time.monotonic()
        try:
            with pytest.raises(ProviderAmbiguousError, match="no answer"):
                await provider.create_call(call_request(receiver))
        finally:
            await provider.close()
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("name", ["vocode", "vapi", "retell"])
async def test_a_provider_without_a_from_number_is_permanent(
    receiver: CallbackReceiver, name: str
) -> None:
    provider = build_provider(name, ProviderSettings(base_url="http://127.0.0.1:9"), 300)
    request = call_request(receiver)
    if name == "vapi":  # an agent's E.164 caller id is no Vapi phoneNumberId
        request = dataclasses.replace(request, from_number="+15005550000")
    try:
        with pytest.raises(ProviderPermanentError, match="from_number"):
            await provider.create_call(request)
    finally:
        await provider.close()


# --- callback authenticity -------------------------------------------------------------------


@pytest.fixture(scope="module")
async def real_callbacks(
    adapters: dict[str, Provider], receiver: CallbackReceiver
) -> dict[str, Received]:
    """One genuine final callback per provider, as the receiver got it."""
    created = {name: await adapters[name].create_call(call_request(receiver)) for name in NAMES}
    for name, state in created.items():
        await wait_for_callbacks(
            receiver, adapters[name], state.provider_call_id, final_messages(name)
        )
    return {
        name: callbacks_of(receiver, state.provider_call_id)[-1] for name, state in created.items()
    }


@pytest.mark.parametrize("name", NAMES)
async def test_genuine_callback_verifies(
    adapters: dict[str, Provider], real_callbacks: dict[str, Received], name: str
) -> None:
    callback = real_callbacks[name]
    assert adapters[name].parse_callback(callback.headers, callback.body).status is S.COMPLETED


@pytest.mark.parametrize("name", SIGNS_THE_BODY)
async def test_tampered_body_is_invalid(
    adapters: dict[str, Provider], real_callbacks: dict[str, Received], name: str
) -> None:
    callback = real_callbacks[name]
    tampered = callback.body + b" "  # still the same JSON, no longer the signed bytes

    with pytest.raises(InvalidCallback):
        adapters[name].parse_callback(callback.headers, tampered)


@pytest.mark.parametrize("headers", [{}, {"x-vapi-secret": "guess"}], ids=["none", "wrong"])
async def test_vapi_needs_its_server_secret(
    adapters: dict[str, Provider], real_callbacks: dict[str, Received], headers: dict[str, str]
) -> None:
    with pytest.raises(InvalidCallback, match="x-vapi-secret"):
        adapters["vapi"].parse_callback(headers, real_callbacks["vapi"].body)


@pytest.mark.parametrize("name", NAMES)
async def test_wrong_secret_is_invalid(real_callbacks: dict[str, Received], name: str) -> None:
    # Retell verifies with its API key, the others with their callback secret.
    settings = ProviderSettings(
        base_url="http://127.0.0.1:9", api_key=SecretStr("x"), callback_secret=SecretStr("x")
    )
    provider = build_provider(name, settings, 300)
    callback = real_callbacks[name]
    try:
        with pytest.raises(InvalidCallback, match="does not match"):
            provider.parse_callback(callback.headers, callback.body)
    finally:
        await provider.close()


@pytest.mark.parametrize("name", SIGNS_THE_BODY)
async def test_stale_timestamp_is_invalid(
    adapters: dict[str, Provider], real_callbacks: dict[str, Received], name: str
) -> None:
    body = real_callbacks[name].body
    # Correctly signed, but 10 minutes ago: a replay beyond the 300 s tolerance.
    headers = SCHEMES[name].sign(SIGNING_KEYS[name], body, timestamp=int(time.time()) - 600)

    with pytest.raises(InvalidCallback, match="tolerance"):
        adapters[name].parse_callback(headers, body)


@pytest.mark.parametrize("name", NAMES)
async def test_another_providers_signature_is_invalid(
    adapters: dict[str, Provider], real_callbacks: dict[str, Received], name: str
) -> None:
    other = NAMES[(NAMES.index(name) + 1) % len(NAMES)]
    callback = real_callbacks[other]

    with pytest.raises(InvalidCallback):
        adapters[name].parse_callback(callback.headers, callback.body)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("garbage", [b"{not json", b"", b'"completed"', b'{"status": 1}'])
async def test_signed_garbage_is_malformed(
    adapters: dict[str, Provider], name: str, garbage: bytes
) -> None:
    headers = SCHEMES[name].sign(SIGNING_KEYS[name], garbage)

    with pytest.raises(MalformedCallback):
        adapters[name].parse_callback(headers, garbage)


# --- access checks (switchboard doctor) --------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
async def test_check_access_accepts_our_key_and_places_nothing(
    adapters: dict[str, Provider], sim_port: int, name: str
) -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{sim_port}") as sim:
        before = (await sim.get("/_sim/calls")).json()
        await adapters[name].check_access()
        assert (await sim.get("/_sim/calls")).json() == before


@pytest.mark.parametrize("name", NAMES)
async def test_check_access_reports_a_refused_key(sim_port: int, name: str) -> None:
    settings = ProviderSettings(
        base_url=f"http://127.0.0.1:{sim_port}", api_key=SecretStr("wrong-key")
    )
    provider = build_provider(name, settings, 300)
    try:
        with pytest.raises(ProviderPermanentError, match="refused our credentials"):
            await provider.check_access()
    finally:
        await provider.close()


async def test_check_access_reports_an_unreachable_provider() -> None:
    settings = ProviderSettings(base_url=f"http://127.0.0.1:{free_port()}", api_key=SecretStr("k"))
    provider = build_provider("vocode", settings, 300)
    try:
        with pytest.raises(ProviderTransientError, match="unreachable"):
            await provider.check_access()
    finally:
        await provider.close()


async def test_vocode_takes_the_agent_inline_when_the_route_names_none(
    receiver: CallbackReceiver, adapters: dict[str, Provider], sim_port: int
) -> None:
    """A Vocode route without provider_agent_id sends our agent (prompt and greeting,
    the call's variables filled in) in the create, as Vocode's agent object."""
    agent = Agent.model_validate(
        {
            "key": "inline",
            "name": "Inline",
            "prompt": "Confirm the visit of {{name}}.",
            "initial_message": "Hello {{name}}!",
            "voice": "female-warm",
            "routes": [{"provider": "vocode"}],
        }
    )
    request = dataclasses.replace(
        call_request(receiver),
        provider_agent_id=None,
        agent=agent_spec(agent, {"name": "Ann"}, TenantConfig.defaults_for("t")),
    )
    state = await adapters["vocode"].create_call(request)
    async with httpx.AsyncClient(timeout=5) as client:
        seen = await client.get(
            f"http://127.0.0.1:{sim_port}/v1/calls",
            params={"id": state.provider_call_id},
            headers={"Authorization": f"Bearer {VOCODE_KEY}"},
        )
    assert seen.status_code == 200, seen.text
    sent = seen.json()["agent"]
    assert (sent["id"], sent["prompt"], sent["initial_message"]) == (
        "inline",
        "Confirm the visit of Ann.",
        "Hello Ann!",
    )

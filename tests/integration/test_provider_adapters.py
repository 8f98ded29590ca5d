"""Each provider adapter against the running simulator, which speaks all three dialects:
calls, status mapping, cancel, error classification, and real callbacks parsed back."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from prometheus_client import REGISTRY
from pydantic import SecretStr

from switchboard_provider_sim import create_app
from switchboard_shared.adapters.providers import build_provider, build_providers
from switchboard_shared.callback_signing import SWITCHBOARD, VOCODE, VOXPRIA, SignatureScheme
from switchboard_shared.domain.calls import CallStatus
from switchboard_shared.ports import (
    InvalidCallback,
    LookupUnsupported,
    MalformedCallback,
    Provider,
    ProviderCallRequest,
    ProviderCallState,
    ProviderPermanentError,
    ProviderTransientError,
)
from switchboard_shared.settings import ProviderSettings
from tests.integration.test_provider_sim import (
    NORMAL,
    SECRETS,
    CallbackReceiver,
    Received,
    sim_settings,
)
from tests.support.net import eventually, free_port
from tests.support.servers import serving

S = CallStatus
NAMES = ["simulator", "vocode", "voxpria"]
SCHEMES: dict[str, SignatureScheme] = {
    "simulator": SWITCHBOARD,
    "vocode": VOCODE,
    "voxpria": VOXPRIA,
}


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
    receiver: CallbackReceiver, provider: Provider, provider_call_id: str
) -> list[ProviderCallState]:
    """Every callback of the call parsed by `provider`, once a terminal one arrived."""

    async def ended() -> list[ProviderCallState]:
        states = [
            provider.parse_callback(c.headers, c.body)
            for c in callbacks_of(receiver, provider_call_id)
        ]
        return states if states and states[-1].status.is_terminal else []

    return await eventually(ended, within=15)


# --- calls and status mapping ----------------------------------------------------------------

OUTCOMES: dict[str, list[CallStatus]] = {
    NORMAL: [S.RINGING, S.IN_PROGRESS, S.COMPLETED],
    "+15005550001": [S.BUSY],
    "+15005550002": [S.RINGING, S.NO_ANSWER],
    "+15005550003": [S.RINGING, S.IN_PROGRESS, S.FAILED],
    "+15005550004": [S.RINGING, S.IN_PROGRESS, S.COMPLETED],
}


@pytest.mark.parametrize("number", list(OUTCOMES), ids=lambda n: n[-4:])
@pytest.mark.parametrize("name", NAMES)
async def test_callbacks_and_get_call_map_each_test_number(
    adapters: dict[str, Provider], receiver: CallbackReceiver, name: str, number: str
) -> None:
    provider = adapters[name]

    created = await provider.create_call(call_request(receiver, number))
    assert created.status is S.DIALING
    assert created.provider_call_id

    states = await wait_for_callbacks(receiver, provider, created.provider_call_id)

    expected = OUTCOMES[number]
    if name == "vocode":  # Vocode has no ringing event
        expected = [s for s in expected if s is not S.RINGING]
    assert [s.status for s in states] == expected
    assert {s.provider_call_id for s in states} == {created.provider_call_id}
    final = states[-1]
    assert isinstance(final.duration, int)
    assert final.ended_at is not None
    if final.status is S.COMPLETED:
        assert (final.transcript or "").startswith("agent: ")
        assert final.ended_reason == "hangup"
        assert final.started_at is not None
    if final.status is S.BUSY:
        assert (final.transcript, final.duration, final.ended_reason) == (None, 0, "busy")
    if final.status is S.FAILED:
        assert final.ended_reason == "provider_error"

    fetched = await provider.get_call(created.provider_call_id)
    assert fetched.status is final.status
    assert fetched.transcript == final.transcript
    assert fetched.duration == final.duration


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


@pytest.mark.parametrize("name", NAMES)
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
    assert fetched.ended_reason == "canceled"
    states = await wait_for_callbacks(receiver, provider, created.provider_call_id)
    assert states[-1].status is S.CANCELED


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
            with pytest.raises(ProviderTransientError, match="timed out"):
                await provider.find_call(str(uuid.uuid4()))
        finally:
            await provider.close()


@pytest.mark.parametrize("name", ["vocode", "voxpria"])
async def test_vocode_and_voxpria_cannot_look_a_call_up(
    adapters: dict[str, Provider], receiver: CallbackReceiver, name: str
) -> None:
    request = call_request(receiver)
    await adapters[name].create_call(request)

    with pytest.raises(LookupUnsupported):
        await adapters[name].find_call(request.call_id)


@pytest.mark.parametrize("name", ["vocode", "voxpria"])
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


@pytest.mark.parametrize("name", NAMES)
async def test_provider_500_is_transient(
    adapters: dict[str, Provider], receiver: CallbackReceiver, name: str
) -> None:
    before = _errors(name, "transient")

    with pytest.raises(ProviderTransientError, match="500"):
        await adapters[name].create_call(call_request(receiver, "+15005550005"))

    assert _errors(name, "transient") == before + 1


@pytest.mark.parametrize("name", NAMES)
async def test_rejected_number_is_permanent(
    adapters: dict[str, Provider], receiver: CallbackReceiver, name: str
) -> None:
    before = _errors(name, "permanent")

    with pytest.raises(ProviderPermanentError, match="400"):
        await adapters[name].create_call(call_request(receiver, "+15005550008"))

    assert _errors(name, "permanent") == before + 1


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
        with pytest.raises(ProviderTransientError, match="unreachable"):
            await provider.create_call(call_request(receiver))
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
async def test_timeout_is_transient(receiver: CallbackReceiver, name: str) -> None:
    async with server_that_never_answers() as url:
        settings = ProviderSettings(base_url=url, from_number="+1", timeout_seconds=0.3)
        provider = build_provider(name, settings, 300)
        started = time.monotonic()
        try:
            with pytest.raises(ProviderTransientError, match="timed out"):
                await provider.create_call(call_request(receiver))
        finally:
            await provider.close()
    assert time.monotonic() - started < 5


async def test_vocode_without_a_from_number_is_permanent(receiver: CallbackReceiver) -> None:
    provider = build_provider("vocode", ProviderSettings(base_url="http://127.0.0.1:9"), 300)
    try:
        with pytest.raises(ProviderPermanentError, match="from_number"):
            await provider.create_call(call_request(receiver))
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
        await wait_for_callbacks(receiver, adapters[name], state.provider_call_id)
    return {
        name: callbacks_of(receiver, state.provider_call_id)[-1] for name, state in created.items()
    }


@pytest.mark.parametrize("name", NAMES)
async def test_genuine_callback_verifies(
    adapters: dict[str, Provider], real_callbacks: dict[str, Received], name: str
) -> None:
    callback = real_callbacks[name]
    assert adapters[name].parse_callback(callback.headers, callback.body).status is S.COMPLETED


@pytest.mark.parametrize("name", NAMES)
async def test_tampered_body_is_invalid(
    adapters: dict[str, Provider], real_callbacks: dict[str, Received], name: str
) -> None:
    callback = real_callbacks[name]
    tampered = callback.body.replace(b"completed", b"failed")
    assert tampered != callback.body

    with pytest.raises(InvalidCallback):
        adapters[name].parse_callback(callback.headers, tampered)


@pytest.mark.parametrize("name", NAMES)
async def test_wrong_secret_is_invalid(real_callbacks: dict[str, Received], name: str) -> None:
    settings = ProviderSettings(base_url="http://127.0.0.1:9", callback_secret=SecretStr("x"))
    provider = build_provider(name, settings, 300)
    callback = real_callbacks[name]
    try:
        with pytest.raises(InvalidCallback, match="does not match"):
            provider.parse_callback(callback.headers, callback.body)
    finally:
        await provider.close()


@pytest.mark.parametrize("name", NAMES)
async def test_stale_timestamp_is_invalid(
    adapters: dict[str, Provider], real_callbacks: dict[str, Received], name: str
) -> None:
    body = real_callbacks[name].body
    # Correctly signed, but 10 minutes ago: a replay beyond the 300 s tolerance.
    headers = SCHEMES[name].sign(SECRETS[name], body, timestamp=int(time.time()) - 600)

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
    headers = SCHEMES[name].sign(SECRETS[name], garbage)

    with pytest.raises(MalformedCallback):
        adapters[name].parse_callback(headers, garbage)

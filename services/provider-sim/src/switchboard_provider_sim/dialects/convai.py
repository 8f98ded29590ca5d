"""The simulator's browser-voice dialect: ElevenLabs' Conversational AI WebSocket API
(docs/providers.md cites it), so the same adapter serves both.

`GET /v1/convai/conversation/get_signed_url?agent_id=…` (header `xi-api-key`) answers a
signed `wss://…/v1/convai/conversation?agent_id=…&token=…`. On that
socket the client sends `conversation_initiation_client_data` (the prompt override),
then `{"user_audio_chunk": base64 PCM16}` frames; the server sends
`conversation_initiation_metadata` (audio formats), `agent_response`, `audio` (base64
PCM16 at 16 kHz: a greeting tone, then a reply tone per user turn), `user_transcript`
per turn, and `ping` (answered with `pong`).

Once a conversation's socket closes, its `post_call_transcription` webhook (the whole
transcript, signed `ElevenLabs-Signature` with the callback secret of the provider whose
API key asked for the socket) goes to
`{sim_callback_url or callback_base_url}/v1/webhooks/providers/{provider}/sessions`,
retried like the call callbacks.

Test prompts: one containing `[sim:refuse]` is refused (the socket closes 1008 right
after the override); `[sim:drop]` drops the session after the greeting (closes 1011);
`[sim:think]` waits `THINK_SECONDS` between a user turn and its reply.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import math
import struct
import time
import uuid
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Request, WebSocket, WebSocketDisconnect

from switchboard_provider_sim.errors import SimError
from switchboard_provider_sim.lifecycle import Simulator
from switchboard_shared.calls.provider_signatures import ELEVENLABS
from switchboard_shared.runtime.settings import Settings

NAME = "convai"
SAMPLE_RATE = 16_000
# A user turn: this much audio received since the last reply (one second of PCM16).
TURN_BYTES = SAMPLE_RATE * 2
CHUNK_SECONDS = 0.1
GREETING = "Hello! How can I help you today?"
REPLY = "I heard you. Tell me more."
# A `[sim:think]` conversation's pause before each reply.
THINK_SECONDS = 1.0


def tone(frequency: float, seconds: float) -> bytes:
    """Audible PCM16 mono at 16 kHz: a sine at `frequency`, faded in and out."""
    count = int(SAMPLE_RATE * seconds)
    fade = max(1, SAMPLE_RATE // 50)
    samples = []
    for i in range(count):
        envelope = min(1.0, i / fade, (count - 1 - i) / fade)
        samples.append(int(9000 * envelope * math.sin(2 * math.pi * frequency * i / SAMPLE_RATE)))
    return struct.pack(f"<{count}h", *samples)


GREETING_AUDIO = tone(440.0, 0.6)
REPLY_AUDIO = tone(660.0, 0.4)


def _signature(secret: str, agent_id: str, provider: str) -> str:
    message = f"{agent_id}.{provider}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


@dataclass
class Conversation:
    """What the simulator records of one conversation, for its post-call webhook."""

    provider: str  # whose API key asked for it: the webhook goes to that provider's route
    agent_id: str
    conversation_id: str = field(default_factory=lambda: f"conv_{uuid.uuid4().hex[:20]}")
    started: float = field(default_factory=time.time)
    transcript: list[dict[str, Any]] = field(default_factory=list)

    def said(self, role: Literal["agent", "user"], text: str) -> None:
        offset = round(time.time() - self.started, 3)
        self.transcript.append({"role": role, "message": text, "time_in_call_secs": offset})

    def webhook(self) -> dict[str, Any]:
        """`post_call_transcription`, in the fields ElevenLabs documents."""
        ended = time.time()
        return {
            "type": "post_call_transcription",
            "event_timestamp": int(ended),
            "data": {
                "agent_id": self.agent_id,
                "conversation_id": self.conversation_id,
                "status": "done",
                "transcript": self.transcript,
                "metadata": {
                    "start_time_unix_secs": int(self.started),
                    "call_duration_secs": int(ended - self.started),
                },
            },
        }


def router(settings: Settings, simulator: Simulator, callback_base: str) -> APIRouter:
    routes = APIRouter()
    providers = {"simulator": settings.simulator, "elevenlabs": settings.elevenlabs}
    keys = {name: key for name, p in providers.items() if (key := p.api_key.get_secret_value())}
    secret = settings.simulator.callback_secret.get_secret_value() or "sim"

    def post_call(conversation: Conversation) -> None:
        name = conversation.provider
        url = f"{callback_base}/v1/webhooks/providers/{name}/sessions"
        body = json.dumps(conversation.webhook()).encode()
        webhook_secret = providers[name].callback_secret.get_secret_value()
        simulator.send_callback(url, body, ELEVENLABS, webhook_secret)

    @routes.get("/v1/convai/conversation/get_signed_url")
    async def signed_url(
        request: Request,
        agent_id: Annotated[str, Query(min_length=1, max_length=200)],
        xi_api_key: Annotated[str | None, Header()] = None,
    ) -> dict[str, str]:
        matches = [n for n, k in keys.items() if hmac.compare_digest(xi_api_key or "", k)]
        if not xi_api_key or not matches:
            raise SimError(401, "invalid_api_key", "missing or invalid xi-api-key")
        scheme = "wss" if request.url.scheme == "https" else "ws"
        base = f"{scheme}://{request.url.netloc}{request.scope.get('root_path', '')}"
        token = _signature(secret, agent_id, matches[0])
        query = f"agent_id={agent_id}&as={matches[0]}&token={token}"
        return {"signed_url": f"{base}/v1/convai/conversation?{query}"}

    @routes.websocket("/v1/convai/conversation")
    async def conversation(
        socket: WebSocket,
        agent_id: str = "",
        token: str = "",
        provider: Annotated[str, Query(alias="as")] = "",
    ) -> None:
        await socket.accept()
        if provider not in providers or not hmac.compare_digest(
            token, _signature(secret, agent_id, provider)
        ):
            await socket.close(code=1008, reason="invalid conversation signature")
            return
        record = Conversation(provider=provider, agent_id=agent_id)
        try:
            with contextlib.suppress(WebSocketDisconnect):
                await _converse(socket, record)
        finally:
            if record.transcript:  # a refused conversation never started
                post_call(record)

    return routes


async def _send(socket: WebSocket, message: dict[str, Any]) -> None:
    await socket.send_text(json.dumps(message))


async def _speak(
    socket: WebSocket, record: Conversation, text: str, audio: bytes, event_id: int
) -> None:
    record.said("agent", text)
    await _send(
        socket, {"type": "agent_response", "agent_response_event": {"agent_response": text}}
    )
    step = int(SAMPLE_RATE * 2 * CHUNK_SECONDS)
    for offset in range(0, len(audio), step):
        chunk = base64.b64encode(audio[offset : offset + step]).decode()
        await _send(
            socket, {"type": "audio", "audio_event": {"audio_base_64": chunk, "event_id": event_id}}
        )


async def _converse(socket: WebSocket, record: Conversation) -> None:
    prompt = ""
    with contextlib.suppress(TimeoutError):
        first = json.loads(await asyncio.wait_for(socket.receive_text(), timeout=2))
        if first.get("type") == "conversation_initiation_client_data":
            override = first.get("conversation_config_override") or {}
            prompt = str(((override.get("agent") or {}).get("prompt") or {}).get("prompt", ""))
    if "[sim:refuse]" in prompt:
        await socket.close(code=1008, reason="conversation refused")
        return
    await _send(
        socket,
        {
            "type": "conversation_initiation_metadata",
            "conversation_initiation_metadata_event": {
                "conversation_id": record.conversation_id,
                "agent_output_audio_format": f"pcm_{SAMPLE_RATE}",
                "user_input_audio_format": f"pcm_{SAMPLE_RATE}",
            },
        },
    )
    await _speak(socket, record, GREETING, GREETING_AUDIO, 1)
    if "[sim:drop]" in prompt:
        await socket.close(code=1011, reason="simulated provider failure")
        return
    heard, turns = 0, 0
    await _send(socket, {"type": "ping", "ping_event": {"event_id": 1, "ping_ms": 20}})
    while True:
        message = json.loads(await socket.receive_text())
        chunk = message.get("user_audio_chunk")
        if not isinstance(chunk, str):
            continue  # pong, contextual updates: nothing to answer
        heard += len(base64.b64decode(chunk))
        if heard >= TURN_BYTES:
            heard, turns = 0, turns + 1
            said = f"(spoke for {TURN_BYTES / 2 / SAMPLE_RATE:.1f} s, turn {turns})"
            record.said("user", said)
            await _send(
                socket,
                {"type": "user_transcript", "user_transcription_event": {"user_transcript": said}},
            )
            if "[sim:think]" in prompt:
                await asyncio.sleep(THINK_SECONDS)
            await _speak(socket, record, REPLY, REPLY_AUDIO, turns + 1)

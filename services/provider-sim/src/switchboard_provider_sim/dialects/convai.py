"""The simulator's browser-voice dialect: ElevenLabs' Conversational AI WebSocket API
(docs/providers.md cites it), so the same adapter serves both.

`GET /v1/convai/conversation/get_signed_url?agent_id=…` (header `xi-api-key`) answers a
signed `wss://…/v1/convai/conversation?agent_id=…&token=…`. On that
socket the client sends `conversation_initiation_client_data` (the prompt override),
then `{"user_audio_chunk": base64 PCM16}` frames; the server sends
`conversation_initiation_metadata` (audio formats), `agent_response`, `audio` (base64
PCM16 at 16 kHz: a greeting tone, then a reply tone per user turn), `user_transcript`
per turn, and `ping` (answered with `pong`).

Test prompts: one containing `[sim:refuse]` is refused (the socket closes 1008 right
after the override); `[sim:drop]` drops the session after the greeting (closes 1011).
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
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, WebSocket, WebSocketDisconnect

from switchboard_provider_sim.errors import SimError
from switchboard_shared.runtime.settings import Settings

NAME = "convai"
SAMPLE_RATE = 16_000
# A user turn: this much audio received since the last reply (one second of PCM16).
TURN_BYTES = SAMPLE_RATE * 2
CHUNK_SECONDS = 0.1
GREETING = "Hello! How can I help you today?"
REPLY = "I heard you. Tell me more."


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


def _signature(secret: str, agent_id: str) -> str:
    return hmac.new(secret.encode(), agent_id.encode(), hashlib.sha256).hexdigest()


def router(settings: Settings) -> APIRouter:
    routes = APIRouter()
    keys = [
        key
        for p in (settings.simulator, settings.elevenlabs)
        if (key := p.api_key.get_secret_value())
    ]
    secret = settings.simulator.callback_secret.get_secret_value() or "sim"

    @routes.get("/v1/convai/conversation/get_signed_url")
    async def signed_url(
        request: Request,
        agent_id: Annotated[str, Query(min_length=1, max_length=200)],
        xi_api_key: Annotated[str | None, Header()] = None,
    ) -> dict[str, str]:
        if not xi_api_key or not any(hmac.compare_digest(xi_api_key, k) for k in keys):
            raise SimError(401, "invalid_api_key", "missing or invalid xi-api-key")
        scheme = "wss" if request.url.scheme == "https" else "ws"
        base = f"{scheme}://{request.url.netloc}{request.scope.get('root_path', '')}"
        query = f"agent_id={agent_id}&token={_signature(secret, agent_id)}"
        return {"signed_url": f"{base}/v1/convai/conversation?{query}"}

    @routes.websocket("/v1/convai/conversation")
    async def conversation(socket: WebSocket, agent_id: str = "", token: str = "") -> None:
        await socket.accept()
        if not hmac.compare_digest(token, _signature(secret, agent_id)):
            await socket.close(code=1008, reason="invalid conversation signature")
            return
        with contextlib.suppress(WebSocketDisconnect):
            await _converse(socket)

    return routes


async def _send(socket: WebSocket, message: dict[str, Any]) -> None:
    await socket.send_text(json.dumps(message))


async def _speak(socket: WebSocket, text: str, audio: bytes, event_id: int) -> None:
    await _send(
        socket, {"type": "agent_response", "agent_response_event": {"agent_response": text}}
    )
    step = int(SAMPLE_RATE * 2 * CHUNK_SECONDS)
    for offset in range(0, len(audio), step):
        chunk = base64.b64encode(audio[offset : offset + step]).decode()
        await _send(
            socket, {"type": "audio", "audio_event": {"audio_base_64": chunk, "event_id": event_id}}
        )


async def _converse(socket: WebSocket) -> None:
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
                "conversation_id": f"conv_{uuid.uuid4().hex[:20]}",
                "agent_output_audio_format": f"pcm_{SAMPLE_RATE}",
                "user_input_audio_format": f"pcm_{SAMPLE_RATE}",
            },
        },
    )
    await _speak(socket, GREETING, GREETING_AUDIO, 1)
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
            await _send(
                socket,
                {"type": "user_transcript", "user_transcription_event": {"user_transcript": said}},
            )
            await _speak(socket, REPLY, REPLY_AUDIO, turns + 1)

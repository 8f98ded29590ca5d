"""The media edge's one route: a browser's session socket, `join_url` of POST /v1/sessions."""

from __future__ import annotations

from typing import cast

from fastapi import APIRouter, WebSocket

from switchboard_shared.sessions.relay import SessionRelay

router = APIRouter(prefix="/media")


@router.websocket("/sessions/{session_id}")
async def session_socket(socket: WebSocket, session_id: str, token: str = "") -> None:
    """Binary frames: 16 kHz mono PCM16 up, the provider's audio down (format in the first
    text frame, `{"type": "ready", ...}`); text frames: transcript turns and the end."""
    relay = cast(SessionRelay, socket.app.state.session_relay)
    await relay.serve(socket, session_id, token)

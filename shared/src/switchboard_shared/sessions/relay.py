"""The media edge's relay: one browser socket joined to one provider socket.

A join is checked before anything flows: the token's signature, expiry and session, its
single use (recorded in the store, so no replica takes it twice), and an active session;
otherwise the socket closes with 1008 (policy violation). Then the provider session is
created and its socket opened, its opening frames sent, and the browser told the audio
format (`{"type": "ready", ...}`). Both directions are relayed one frame at a time: each
read waits for the previous frame's send, and the provider socket buffers a bounded
number of frames, so a slow side slows the other instead of growing memory. The session
ends at `expires_at`, when the browser says `{"type": "end"}`, when the provider drops
it, or when it was ended elsewhere (DELETE, the sweep): whichever comes first, through
`lifecycle.end_session`, so it is announced once. A browser that leaves stops the relay
but not the session: unless it rejoins within `session_disconnect_grace_seconds`, the
sweep ends it `client_disconnected`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException

from switchboard_shared.domain.calls import utcnow
from switchboard_shared.domain.sessions import Session, SessionEndReason, TranscriptTurn
from switchboard_shared.ports import (
    AgentStore,
    Bus,
    MalformedCallback,
    ProviderError,
    ProviderPermanentError,
    SessionStore,
)
from switchboard_shared.ports.session_provider import (
    ProviderSessionRequest,
    SessionProvider,
    SessionSignal,
)
from switchboard_shared.runtime.settings import Settings
from switchboard_shared.sessions import lifecycle
from switchboard_shared.sessions.join_tokens import InvalidJoinToken, read_join_token

log = logging.getLogger(__name__)

POLICY_VIOLATION = 1008
MESSAGE_TOO_BIG = 1009
INTERNAL_ERROR = 1011
# 64 KiB is two seconds of 16 kHz PCM16: far more than any sane chunk.
MAX_BROWSER_FRAME_BYTES = 64 * 1024
# Frames the provider socket buffers before its reader waits (backpressure).
PROVIDER_QUEUE_FRAMES = 16
READY_TIMEOUT_SECONDS = 10.0
# How often a live relay checks the store that its session was not ended elsewhere.
WATCH_INTERVAL_SECONDS = 1.0


class _Refused(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason


@dataclass
class _Outcome:
    reason: SessionEndReason | None  # None: ended elsewhere already
    close_code: int = 1000


# The browser went away: the session is left to its `alive_until`, so a browser that
# rejoins within the grace (with a new join_url) goes on; otherwise the sweep ends it
# `client_disconnected`.
_LEFT = _Outcome(None)


@dataclass(frozen=True)
class _SessionRoute:
    provider: SessionProvider
    request: ProviderSessionRequest


class RelayStore(SessionStore, AgentStore, Protocol):
    """What the relay reads and writes: sessions, and the agents they name."""


class SessionRelay:
    def __init__(
        self,
        store: RelayStore,
        bus: Bus,
        providers: Mapping[str, SessionProvider],
        settings: Settings,
    ) -> None:
        self._store = store
        self._bus = bus
        self._providers = providers
        self._settings = settings

    async def serve(self, browser: WebSocket, session_id: str, token: str) -> None:
        """Run one browser's session to its end; returns once both sockets are closed."""
        await browser.accept()
        try:
            session = await self._admit(session_id, token)
        except _Refused as refused:
            log.info("join refused: %s", refused.reason, extra={"session_id": session_id})
            await browser.close(code=refused.code, reason=refused.reason)
            return
        opened = await self._open_first(await self._routes_for(session), session)
        if opened is None:
            await self._finish(
                browser, session, _Outcome(SessionEndReason.PROVIDER_ERROR, INTERNAL_ERROR)
            )
            return
        provider, socket, ready = opened
        outcome = await self._run(browser, socket, provider, session, ready)
        await self._finish(browser, session, outcome)
        await self._end_upstream(provider, ready, session)

    async def _run(
        self,
        browser: WebSocket,
        socket: ClientConnection,
        provider: SessionProvider,
        session: Session,
        ready: SessionSignal,
    ) -> _Outcome:
        async with socket:
            await browser.send_text(
                json.dumps(
                    {
                        "type": "ready",
                        "session_id": session.session_id,
                        "sample_rate": ready.sample_rate,
                        "encoding": ready.encoding,
                        "input_sample_rate": 16_000,
                        "input_encoding": "pcm_s16le",
                        "expires_at": session.expires_at.isoformat(),
                    }
                )
            )
            return await self._relay(browser, socket, provider, session)

    async def _admit(self, session_id: str, token: str) -> Session:
        secret = self._settings.session_token_secret.get_secret_value()
        try:
            claims = read_join_token(secret, token)
        except InvalidJoinToken as exc:
            raise _Refused(POLICY_VIOLATION, f"invalid join token: {exc}") from None
        if claims.session_id != session_id:
            raise _Refused(POLICY_VIOLATION, "the join token is for another session")
        if not await self._store.use_join_token(claims.token_id, claims.expires_at):
            raise _Refused(POLICY_VIOLATION, "the join token was used already")
        session = await self._store.get_session(session_id)
        if session is None or not session.is_active or not await self._touch(session):
            raise _Refused(POLICY_VIOLATION, "the session is not active")
        return session

    async def _routes_for(self, session: Session) -> list[_SessionRoute]:
        """Where the session may be served, in the order tried: its agent's routes for
        its tier that a session adapter serves, then the operators' providers for the
        tier (`session_tier_providers`)."""
        default_agent_id = self._settings.session_provider_agent_id
        chosen: list[tuple[str, str]] = []
        if session.agent is not None and (agent := await self._store.get_agent(session.agent)):
            chosen += [
                (route.provider, route.provider_agent_id or default_agent_id)
                for _, route in agent.routes_for(session.tier)
                if route.provider in self._providers
            ]
        for name in self._settings.session_tier_providers.get(session.tier.value, []):
            if name in self._providers:
                chosen.append((name, default_agent_id))
        routes: list[_SessionRoute] = []
        for name, provider_agent_id in dict.fromkeys(chosen):
            request = ProviderSessionRequest(
                session_id=session.session_id,
                provider_agent_id=provider_agent_id,
                prompt=session.prompt,
                language=session.language,
                variables=dict(session.variables),
            )
            routes.append(_SessionRoute(self._providers[name], request))
        return routes

    async def _open_first(
        self, routes: list[_SessionRoute], session: Session
    ) -> tuple[SessionProvider, ClientConnection, SessionSignal] | None:
        """The first route whose provider session opens, as for calls: one that could
        not be reached moves on to the next; one that refused ends the trying."""
        for route in routes:
            try:
                socket, ready = await self._open(route.provider, route.request, session)
            except ProviderPermanentError as exc:
                log.warning(
                    "provider %s refused the session: %s",
                    route.provider.name,
                    exc,
                    extra={"session_id": session.session_id},
                )
                return None
            except (ProviderError, WebSocketException, OSError, TimeoutError) as exc:
                log.warning(
                    "provider %s session failed: %s",
                    route.provider.name,
                    exc,
                    extra={"session_id": session.session_id},
                )
                continue
            return route.provider, socket, ready
        if not routes:
            log.warning(
                "no provider serves this session's tier", extra={"session_id": session.session_id}
            )
        return None

    async def _end_upstream(
        self, provider: SessionProvider, ready: SessionSignal, session: Session
    ) -> None:
        """Tell the provider the session is over (its socket is closed already): best
        effort, the session is ended with us whatever it answers."""
        if not ready.provider_session_id:
            return
        try:
            await provider.end_session(ready.provider_session_id)
        except ProviderError as exc:
            log.info(
                "provider did not end the session: %s",
                exc,
                extra={"session_id": session.session_id},
            )

    async def _open(
        self, provider: SessionProvider, request: ProviderSessionRequest, session: Session
    ) -> tuple[ClientConnection, SessionSignal]:
        """The provider's socket, up and ready; raises on any failure."""
        created = await provider.create_session(request)
        socket = await connect(
            created.socket_url,
            additional_headers=created.headers,
            max_queue=PROVIDER_QUEUE_FRAMES,
            open_timeout=READY_TIMEOUT_SECONDS,
            compression=None,
        )
        try:
            for frame in provider.opening_frames(request):
                await socket.send(frame)
            async with asyncio.timeout(READY_TIMEOUT_SECONDS):
                while True:
                    signals = provider.parse_session_message(await socket.recv())
                    ready = next((s for s in signals if s.kind == "ready"), None)
                    if ready is not None:
                        break
        except BaseException:
            await socket.close()
            raise
        await self._store.set_session_provider(
            session.session_id, provider.name, ready.provider_session_id
        )
        return socket, ready

    async def _relay(
        self,
        browser: WebSocket,
        socket: ClientConnection,
        provider: SessionProvider,
        session: Session,
    ) -> _Outcome:
        tasks = {
            asyncio.create_task(self._uplink(browser, socket, provider)),
            asyncio.create_task(self._downlink(browser, socket, provider, session)),
            asyncio.create_task(self._deadline(session)),
            asyncio.create_task(self._watch(session)),
        }
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            return next(iter(done)).result()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _uplink(
        self, browser: WebSocket, socket: ClientConnection, provider: SessionProvider
    ) -> _Outcome:
        """Browser audio to the provider; ends when the browser leaves or says end."""
        try:
            while True:
                message = await browser.receive()
                if message["type"] == "websocket.disconnect":
                    return _LEFT
                if (audio := message.get("bytes")) is not None:
                    if len(audio) > MAX_BROWSER_FRAME_BYTES:
                        return _Outcome(SessionEndReason.CLIENT_DISCONNECTED, MESSAGE_TOO_BIG)
                    await socket.send(provider.audio_frame(audio))
                elif (text := message.get("text")) is not None and _asks_to_end(text):
                    return _Outcome(SessionEndReason.MANUAL)
        except ConnectionClosed:
            return _Outcome(SessionEndReason.PROVIDER_ERROR, INTERNAL_ERROR)
        except WebSocketDisconnect:
            return _LEFT

    async def _downlink(
        self,
        browser: WebSocket,
        socket: ClientConnection,
        provider: SessionProvider,
        session: Session,
    ) -> _Outcome:
        """Provider audio and transcript to the browser; ends when the provider does."""
        try:
            async for message in socket:
                for signal in provider.parse_session_message(message):
                    if signal.kind == "audio":
                        await browser.send_bytes(signal.audio)
                    elif signal.kind == "turn":
                        turn = TranscriptTurn(role=signal.role, text=signal.text)
                        await self._store.add_transcript_turns(session.session_id, [turn])
                        await browser.send_text(
                            json.dumps({"type": "transcript", "role": turn.role, "text": turn.text})
                        )
                    elif signal.kind == "reply":
                        await socket.send(signal.reply)
        except (ConnectionClosed, MalformedCallback) as exc:
            log.warning("provider socket failed: %s", exc, extra={"session_id": session.session_id})
        except WebSocketDisconnect:
            return _LEFT
        return _Outcome(SessionEndReason.PROVIDER_ERROR, INTERNAL_ERROR)

    async def _deadline(self, session: Session) -> _Outcome:
        await asyncio.sleep(max(0.0, (session.expires_at - utcnow()).total_seconds()))
        return _Outcome(SessionEndReason.TIMEOUT)

    async def _watch(self, session: Session) -> _Outcome:
        """Keeps the session's `alive_until` ahead (if this process dies, the sweep ends
        the session once it passes); returns once the session was ended elsewhere
        (DELETE, the timeout sweep)."""
        while True:
            await asyncio.sleep(WATCH_INTERVAL_SECONDS)
            if not await self._touch(session):
                return _Outcome(None)

    async def _touch(self, session: Session) -> bool:
        grace = timedelta(seconds=self._settings.session_disconnect_grace_seconds)
        return await self._store.touch_session(session.session_id, utcnow() + grace) is not None

    async def _finish(self, browser: WebSocket, session: Session, outcome: _Outcome) -> None:
        ended = None
        if outcome.reason is not None:
            ended = await lifecycle.end_session(
                self._store, self._bus, session.session_id, outcome.reason
            )
        ended = ended or await self._store.get_session(session.session_id)
        reason = ended.reason.value if ended and ended.reason else None
        if browser.client_state is WebSocketState.CONNECTED:
            with contextlib.suppress(WebSocketDisconnect, RuntimeError):
                await browser.send_text(json.dumps({"type": "ended", "reason": reason}))
                await browser.close(code=outcome.close_code, reason=reason or "")


def _asks_to_end(text: str) -> bool:
    with contextlib.suppress(ValueError):
        message = json.loads(text)
        return isinstance(message, dict) and message.get("type") == "end"
    return False

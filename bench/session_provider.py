"""The sessions bench's provider: a lightweight process speaking the ElevenLabs dialect the
media edge relays to (`GET /v1/convai/conversation/get_signed_url`, then a socket of
`user_audio_chunk` in, `audio` events out), doing as little as it can so that what the
bench measures is the edge, not a provider's work.

Each browser frame carries `time.monotonic_ns()` in its first 8 bytes (CLOCK_MONOTONIC is
one clock for every process on the machine). On each `user_audio_chunk` this process
reads the clock first, then the stamp (only the first 12 base64 characters are decoded):
that difference is the upstream relay delay. It answers every chunk with an `audio`
event of the same size whose stamp is taken right before the send (the rest of the
payload is encoded once per frame size), so the downstream delay the clients see is
the edge's, both ways at the rate the browsers send.

`GET /stats` returns the frames and delays seen since the last `GET /stats?reset=1`, and
this process's own event-loop lag.

    python -m bench.session_provider --port 8765
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import time
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Request, Response, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from bench.session_stats import LoopLag
from switchboard_shared.runtime.process import run_event_loop

STAMP_BYTES = 9  # the 8-byte stamp and one byte more: 12 base64 characters, no padding
STAMP_CHARS = 12
CHUNK_PREFIX = '{"user_audio_chunk": "'  # how the edge's adapter writes a chunk (json.dumps)
METADATA = json.dumps(
    {
        "type": "conversation_initiation_metadata",
        "conversation_initiation_metadata_event": {
            "conversation_id": "bench",
            "agent_output_audio_format": "pcm_16000",
        },
    }
)


class Provider:
    def __init__(self, port: int) -> None:
        self.port = port
        self.delays_ns: list[int] = []
        self.sent_ns: list[int] = []  # each frame's stamp, to place its delay in time
        self.frames_in = 0
        self.frames_out = 0
        self.bad_frames = 0
        self.sockets = 0
        self.peak_sockets = 0
        self.lag = LoopLag()
        # The base64 of each frame size's payload after the stamp, encoded once.
        self._tails: dict[int, str] = {}

    def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        url = urlsplit(request.path)
        if url.path == "/v1/convai/conversation/get_signed_url":
            body = json.dumps({"signed_url": f"ws://127.0.0.1:{self.port}/socket"})
            return connection.respond(HTTPStatus.OK, body)
        if url.path == "/stats":
            body = json.dumps(self.stats())
            if "reset" in parse_qs(url.query):
                self.reset()
            return connection.respond(HTTPStatus.OK, body)
        return None

    def stats(self) -> dict[str, object]:
        return {
            "frames_in": self.frames_in,
            "frames_out": self.frames_out,
            "bad_frames": self.bad_frames,
            "peak_sockets": self.peak_sockets,
            "upstream_ns": self.delays_ns,
            "upstream_sent_ns": self.sent_ns,
            "loop_lag_ns": self.lag.samples_ns,
        }

    def reset(self) -> None:
        self.delays_ns, self.sent_ns = [], []
        self.frames_in, self.frames_out, self.bad_frames = 0, 0, 0
        self.lag.samples_ns = []

    async def handle(self, socket: ServerConnection) -> None:
        self.sockets += 1
        self.peak_sockets = max(self.peak_sockets, self.sockets)
        try:
            await socket.recv()  # conversation_initiation_client_data
            await socket.send(METADATA)
            async for message in socket:
                now = time.monotonic_ns()
                if not isinstance(message, str) or not message.startswith(CHUNK_PREFIX):
                    continue
                start = len(CHUNK_PREFIX)
                stamp = base64.b64decode(message[start : start + STAMP_CHARS])
                sent = int.from_bytes(stamp[:8], "little")
                self.delays_ns.append(now - sent)
                self.sent_ns.append(sent)
                self.frames_in += 1
                # The chunk's size, from its base64 (everything between the quotes).
                encoded = message[start:-2]
                size = len(encoded) * 3 // 4 - (len(encoded) - len(encoded.rstrip("=")))
                stamp = time.monotonic_ns().to_bytes(8, "little") + b"\x00"
                audio = base64.b64encode(stamp).decode() + self._tail(size)
                await socket.send(
                    '{"type": "audio", "audio_event": {"audio_base_64": "' + audio + '"}}'
                )
                self.frames_out += 1
        except ConnectionClosed:
            pass
        finally:
            self.sockets -= 1

    def _tail(self, size: int) -> str:
        """The base64 of a `size`-byte frame's payload after the stamp."""
        tail = self._tails.get(size)
        if tail is None:
            tail = self._tails[size] = base64.b64encode(b"\x10" * (size - STAMP_BYTES)).decode()
        return tail


async def main(port: int) -> None:
    provider = Provider(port)
    lag = asyncio.create_task(provider.lag.run())
    async with serve(
        provider.handle,
        "127.0.0.1",
        port,
        process_request=provider.process_request,
        compression=None,
        max_size=2**20,
    ) as server:
        print("ready", flush=True)
        try:
            await server.serve_forever()
        finally:
            lag.cancel()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    run_event_loop(main(parser.parse_args().port))

"""The recording of a simulated call: a short generated tone as WAV, served whole or as
one byte range (`Range: bytes=a-b`, `a-`, `-n`), as a storage server would."""

from __future__ import annotations

import functools
import io
import math
import re
import struct
import wave

from fastapi import Request, Response

from switchboard_provider_sim.calls import SimCall
from switchboard_provider_sim.errors import SimError

SAMPLE_RATE = 8000  # telephone quality
SECONDS = 1.5
TONE_HZ = 440.0
CONTENT_TYPE = "audio/wav"

_SINGLE_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


@functools.cache
def tone_wav() -> bytes:
    """1.5 s of a 440 Hz tone, 16-bit mono PCM, generated once (about 24 KB)."""
    frames = b"".join(
        struct.pack("<h", round(8000 * math.sin(2 * math.pi * TONE_HZ * n / SAMPLE_RATE)))
        for n in range(int(SAMPLE_RATE * SECONDS))
    )
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(frames)
    return buffer.getvalue()


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The inclusive (first, last) bytes a `Range` header asks for; None for the whole
    file (no header, or one this server ignores: several ranges, another unit).
    Raises SimError 416 when the range lies outside the file."""
    match = _SINGLE_RANGE.match((header or "").strip())
    if match is None:
        return None
    first_text, last_text = match.groups()
    if not first_text and not last_text:
        return None
    if not first_text:  # the last n bytes
        suffix = int(last_text)
        if suffix == 0:
            raise SimError(416, "range_not_satisfiable", "empty suffix range")
        return max(0, size - suffix), size - 1
    first = int(first_text)
    last = min(int(last_text), size - 1) if last_text else size - 1
    if first >= size or first > last:
        raise SimError(416, "range_not_satisfiable", f"the recording has {size} bytes")
    return first, last


def recording_response(call: SimCall, range_header: str | None) -> Response:
    """The call's recording (or the asked range); 404 while it has none."""
    if not call.recording:
        raise SimError(404, "not_found", "this call has no recording")
    audio = tone_wav()
    wanted = byte_range(range_header, len(audio))
    # As a storage server answers: these must never reach a Switchboard customer.
    headers = {
        "Accept-Ranges": "bytes",
        "ETag": f'"sim-{call.id}"',
        "X-Storage-Request-Id": f"sim-storage-{call.id}",
    }
    if wanted is None:
        return Response(audio, media_type=CONTENT_TYPE, headers=headers)
    first, last = wanted
    headers["Content-Range"] = f"bytes {first}-{last}/{len(audio)}"
    return Response(
        audio[first : last + 1], status_code=206, media_type=CONTENT_TYPE, headers=headers
    )


def public_base(request: Request) -> str:
    """Where the caller reached this app, mount prefix included (Starlette's `base_url`
    leaves out the prefix of a mounted app, as in the all-in-one's `/sim`)."""
    return f"{request.url.scheme}://{request.url.netloc}{request.scope.get('root_path', '')}"


def recording_url(call: SimCall) -> str | None:
    """The address the API dialects give for the recording (this server, key required)."""
    if not call.recording:
        return None
    return f"{call.base_url.rstrip('/')}/recordings/{call.id}.wav"

"""`GET /v1/calls/{call_id}/recording`: the call's audio, streamed through Switchboard.

The provider's copy is fetched with the provider's credentials and relayed; the
customer sees our URL and our headers only (the provider's address, host and headers
never reach them).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header
from fastapi.responses import StreamingResponse

from switchboard_api.deps import ProvidersDep, StoreDep, TenantDep
from switchboard_api.error_codes import (
    CALL_NOT_FOUND,
    RANGE_NOT_SATISFIABLE,
    RECORDING_NOT_AVAILABLE,
    RECORDING_TEMPORARILY_UNAVAILABLE,
    RECORDING_UNAVAILABLE,
    TENANT_ROUTE,
)
from switchboard_api.routes.calls import tenant_call
from switchboard_shared.http.errors import ApiError, error_responses_doc
from switchboard_shared.ports import (
    ProviderPermanentError,
    ProviderTransientError,
    RangeNotSatisfiable,
    RecordingNotFound,
    RecordingStream,
)

router = APIRouter(prefix="/v1/calls", tags=["calls"])

AUDIO_TYPES = ("audio/", "application/ogg")


def _not_available() -> ApiError:
    return ApiError(404, RECORDING_NOT_AVAILABLE.code, RECORDING_NOT_AVAILABLE.example)


@router.get(
    "/{call_id}/recording",
    summary="Get a call's recording",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"audio/wav": {}}, "description": "The whole recording"},
        206: {"content": {"audio/wav": {}}, "description": "The requested byte range"},
        **error_responses_doc(
            *TENANT_ROUTE,
            CALL_NOT_FOUND,
            RECORDING_NOT_AVAILABLE,
            RANGE_NOT_SATISFIABLE,
            RECORDING_UNAVAILABLE,
            RECORDING_TEMPORARILY_UNAVAILABLE,
        ),
    },
)
async def get_recording(
    call_id: str,
    tenant: TenantDep,
    store: StoreDep,
    providers: ProvidersDep,
    range: Annotated[
        str | None, Header(description="One byte range, e.g. `bytes=0-1023`: answered 206.")
    ] = None,
) -> StreamingResponse:
    """The audio of the call once `recording_available` is true; 404
    `recording_not_available` before. Supports one `Range` (206 with `Content-Range`)."""
    call = await tenant_call(store, tenant, call_id)
    if not call.recording_available or not call.provider or not call.provider_call_id:
        raise _not_available()
    provider = providers.get(call.provider)
    if provider is None:
        raise ApiError(
            503, "recording_temporarily_unavailable", "the recording cannot be fetched now"
        )
    try:
        recording = await provider.fetch_recording(call.provider_call_id, range)
    except RecordingNotFound as exc:
        raise _not_available() from exc
    except RangeNotSatisfiable as exc:
        raise ApiError(
            416, "range_not_satisfiable", "the requested range lies outside the recording"
        ) from exc
    except ProviderTransientError as exc:
        raise ApiError(
            503,
            "recording_temporarily_unavailable",
            "the recording cannot be fetched now; retry shortly",
            headers={"Retry-After": "5"},
        ) from exc
    except ProviderPermanentError as exc:
        raise ApiError(502, "recording_unavailable", "the recording could not be fetched") from exc
    return StreamingResponse(
        _relay(recording),
        status_code=recording.status_code,
        media_type=_content_type(recording.content_type),
        headers=_headers(recording),
    )


async def _relay(recording: RecordingStream) -> AsyncIterator[bytes]:
    # Closed however the response ends, a client hanging up mid-stream included.
    try:
        async for chunk in recording.chunks:
            yield chunk
    finally:
        await recording.aclose()


def _content_type(provider_type: str) -> str:
    media = provider_type.split(";")[0].strip().lower()
    return media if media.startswith(AUDIO_TYPES) else "application/octet-stream"


def _headers(recording: RecordingStream) -> dict[str, str]:
    """Built from what we read of the provider's answer, nothing copied as it came."""
    headers = {"Accept-Ranges": "bytes", "Cache-Control": "private, no-store"}
    if recording.content_length is not None:
        headers["Content-Length"] = str(recording.content_length)
    if recording.content_range is not None:
        headers["Content-Range"] = recording.content_range
    return headers

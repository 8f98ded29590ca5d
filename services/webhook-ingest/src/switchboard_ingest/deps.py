"""Request dependencies of the callback routes, as `Annotated` aliases (the api's style)."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Request

from switchboard_ingest.callbacks import CallbackIngest
from switchboard_ingest.session_callbacks import SessionCallbackIngest


# `async def` though they never await: FastAPI runs a plain `def` dependency in its
# thread pool, a thread hop per callback.
# app.state is untyped: the service's parts put the ingest there, so the cast holds.
async def get_ingest(request: Request) -> CallbackIngest:
    return cast(CallbackIngest, request.app.state.ingest)


IngestDep = Annotated[CallbackIngest, Depends(get_ingest)]


async def get_session_ingest(request: Request) -> SessionCallbackIngest:
    return cast(SessionCallbackIngest, request.app.state.session_ingest)


SessionIngestDep = Annotated[SessionCallbackIngest, Depends(get_session_ingest)]

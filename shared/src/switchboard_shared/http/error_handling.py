"""The error shape wired into a FastAPI app (`install_error_handlers`): the exception
handlers of errors.py, and two ASGI middlewares: request bodies over the limit become 413
`payload_too_large` before anything parses them, and any exception no handler took a
logged 500 `internal_error`."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from switchboard_shared.domain.errors import DomainError
from switchboard_shared.http.errors import (
    ApiError,
    api_error_handler,
    domain_error_handler,
    error_response,
    http_exception_handler,
    validation_error_handler,
)

log = logging.getLogger(__name__)


class BodySizeLimitMiddleware:
    """Reject request bodies over `max_body_bytes` with 413 before anything parses them.

    Checks the declared Content-Length first, then counts the bytes actually received
    (chunked bodies, lying clients). The body is buffered (it is at most the limit) and
    replayed to the app.
    """

    def __init__(
        self,
        app: ASGIApp,
        max_body_bytes: int,
        larger_limits: Mapping[str, int] | None = None,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        # Exact paths allowed more (a batch of many calls), by path.
        self.larger_limits = dict(larger_limits or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.larger_limits.get(scope.get("path", ""), self.max_body_bytes)
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await self._reject(scope, receive, send, limit)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client left; nobody to answer
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await self._reject(scope, receive, send, limit)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        await self.app(scope, replay, send)

    async def _reject(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        response = error_response(
            413,
            "payload_too_large",
            f"the request body is larger than {limit} bytes",
            # The unread rest of the body makes the connection unusable.
            headers={"Connection": "close"},
        )
        await response(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class UnhandledErrorMiddleware:
    """Turn any exception no handler took into a logged 500 with the error shape."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        response_started = False

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            log.exception(
                "unhandled error in %s %s",
                scope.get("method"),
                scope.get("path"),
            )
            if response_started:
                raise  # too late for a clean answer; the server closes the connection
            response = error_response(500, "internal_error", "an internal error occurred")
            await response(scope, receive, send)


def install_error_handlers(
    app: FastAPI,
    *,
    max_body_bytes: int | None = None,
    larger_body_limits: Mapping[str, int] | None = None,
) -> None:
    """Make every error `app` can produce use the error shape; with `max_body_bytes`,
    also reject larger request bodies with 413 `payload_too_large` (`larger_body_limits`:
    exact paths allowed more)."""
    app.add_exception_handler(ApiError, api_error_handler)
    app.add_exception_handler(DomainError, domain_error_handler)
    app.add_exception_handler(StarletteHTTPException, http_exception_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    if max_body_bytes is not None:
        app.add_middleware(
            BodySizeLimitMiddleware,
            max_body_bytes=max_body_bytes,
            larger_limits=larger_body_limits,
        )
    # Added last, so it is the outermost of these and also sees errors of the limiter.
    app.add_middleware(UnhandledErrorMiddleware)

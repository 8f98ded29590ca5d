"""One JSON error shape for every error path of a Switchboard HTTP app.

Every error response is `{"error": {"code": "<machine_code>", "message": "<text>"}}`:
errors raised as `ApiError`, FastAPI's validation errors, Starlette's 404/405, bodies
over the size limit and unhandled exceptions (500, logged, no stack trace in the body).
`install_error_handlers(app, max_body_bytes=...)` wires all of it into a FastAPI app.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

# The code an HTTP status gets when nothing more specific was raised.
DEFAULT_CODES: dict[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    500: "internal_error",
    503: "service_unavailable",
}
# Validation messages list at most this many problems; the first ones are enough to fix.
_MAX_LISTED_PROBLEMS = 5


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    """The body of every error response (declared in OpenAPI)."""

    error: ErrorDetail


class ApiError(Exception):
    """Raise anywhere in a request to answer with `status` and the error shape."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


def default_code(status: int) -> str:
    """The machine code of a bare HTTP status: `404` -> `not_found`."""
    if status in DEFAULT_CODES:
        return DEFAULT_CODES[status]
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        return "error"


def error_response(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """A JSONResponse carrying the error shape."""
    body = ErrorResponse(error=ErrorDetail(code=code, message=message))
    return JSONResponse(body.model_dump(), status_code=status, headers=dict(headers or {}))


def error_responses_doc(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries declaring the error shape for `statuses`, plus a
    catch-all `4XX` (which also keeps FastAPI from documenting its `{"detail": ...}`)."""
    documented: dict[int | str, dict[str, Any]] = {
        status: {"model": ErrorResponse, "description": HTTPStatus(status).phrase}
        for status in statuses
    }
    documented["4XX"] = {"model": ErrorResponse, "description": "Any other client error"}
    return documented


# --- exception handlers ---------------------------------------------------------------


async def _api_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.code, exc.message, exc.headers)


async def _http_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    if status == 404 and exc.detail == HTTPStatus.NOT_FOUND.phrase:
        message = f"no route matches {request.method} {request.url.path}"
    elif status == 405:
        message = f"method {request.method} is not allowed on {request.url.path}"
    elif isinstance(exc.detail, str) and exc.detail:
        message = exc.detail
    else:
        message = HTTPStatus(status).phrase
    return error_response(status, default_code(status), message, exc.headers)


def describe_validation_errors(errors: Sequence[Any]) -> str:
    """Readable text naming each offending field: `limit (query): Input should be ...`."""
    problems = [_describe(error) for error in errors[:_MAX_LISTED_PROBLEMS]]
    if len(errors) > _MAX_LISTED_PROBLEMS:
        problems.append(f"and {len(errors) - _MAX_LISTED_PROBLEMS} more")
    return "; ".join(problems) or "the request is invalid"


def _describe(error: Mapping[str, Any]) -> str:
    loc = [str(part) for part in error.get("loc", ())]
    source = loc[0] if loc else ""
    field = ".".join(loc[1:])
    kind = error.get("type", "")
    if kind == "json_invalid":
        return "the request body is not valid JSON"
    if not field:
        where = "the request body" if source == "body" else source or "the request"
        return f"{where}: {error.get('msg', 'invalid')}"
    if source == "query":
        field = f"{field} (query parameter)"
    elif source == "header":
        field = f"{field} (header)"
    elif source == "path":
        field = f"{field} (path parameter)"
    if kind == "extra_forbidden":
        return f"{field}: unknown field"
    if kind == "missing":
        return f"{field}: field required"
    return f"{field}: {error.get('msg', 'invalid value')}"


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return error_response(422, "validation_error", describe_validation_errors(exc.errors()))


# --- middleware -----------------------------------------------------------------------


class BodySizeLimitMiddleware:
    """Reject request bodies over `max_body_bytes` with 413 before anything parses them.

    Checks the declared Content-Length first, then counts the bytes actually received
    (chunked bodies, lying clients). The body is buffered (it is at most the limit) and
    replayed to the app.
    """

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            await self._reject(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client left; nobody to answer
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                await self._reject(scope, receive, send)
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

    async def _reject(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(
            413,
            "payload_too_large",
            f"the request body is larger than {self.max_body_bytes} bytes",
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


def install_error_handlers(app: FastAPI, *, max_body_bytes: int | None = None) -> None:
    """Make every error `app` can produce use the error shape; with `max_body_bytes`,
    also reject larger request bodies with 413 `payload_too_large`."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_exception)
    app.add_exception_handler(RequestValidationError, _validation_error)
    if max_body_bytes is not None:
        app.add_middleware(BodySizeLimitMiddleware, max_body_bytes=max_body_bytes)
    # Added last, so it is the outermost of these and also sees errors of the limiter.
    app.add_middleware(UnhandledErrorMiddleware)

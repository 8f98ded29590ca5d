"""One JSON error shape for every error path of a Switchboard HTTP app.

Every error response is `{"error": {"code": "<machine_code>", "message": "<text>"}}`:
errors raised as `ApiError`, FastAPI's validation errors, Starlette's 404/405, bodies
over the size limit and unhandled exceptions (500, logged, no stack trace in the body).
Messages quote at most `MAX_ECHOED_CHARS` of any input (`clip`) and are cut to
`MAX_MESSAGE_CHARS`; a 405's `Allow` lists every method of the path.
`install_error_handlers` (http/error_handling.py) wires all of it into a FastAPI app.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match
from starlette.types import Scope

from switchboard_shared.domain.errors import (
    Conflict,
    DomainError,
    InvalidBatch,
    InvalidRequest,
    MalformedInput,
    NotAuthenticated,
    NotFound,
)

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
# A value from the request quoted in a message (an agent key, a path, a field name) is
# cut to this many characters, and a whole message to MAX_MESSAGE_CHARS: an error never
# echoes a large input back.
MAX_ECHOED_CHARS = 200
MAX_MESSAGE_CHARS = 1000
# The methods a 405's `Allow` header may list.
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def clip(value: object, limit: int = MAX_ECHOED_CHARS) -> str:
    """`value` as text of at most about `limit` characters, for quoting input in errors."""
    text = str(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text)} characters)"


class RowError(BaseModel):
    """One bad row of a refused batch (`invalid_batch`)."""

    row: int
    code: str
    message: str


class ErrorDetail(BaseModel):
    # A few codes add fields of their own (`session_active` names the active session).
    model_config = ConfigDict(extra="allow")

    code: str
    message: str
    # Only on `invalid_batch`: the first bad rows (left out of every other error).
    rows: list[RowError] | None = None


class ErrorResponse(BaseModel):
    """The body of every error response (declared in OpenAPI)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"error": {"code": "not_found", "message": "no route matches GET /v1/x"}}]
        }
    )

    error: ErrorDetail


class ApiError(Exception):
    """Raise anywhere in a request to answer with `status` and the error shape."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        headers: Mapping[str, str] | None = None,
        details: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})
        # Extra fields of the error object, beside `code` and `message`.
        self.details = dict(details or {})


def default_code(status: int) -> str:
    """The machine code of a bare HTTP status: `404` -> `not_found`."""
    if status in DEFAULT_CODES:
        return DEFAULT_CODES[status]
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        return "error"


def error_response(
    status: int,
    code: str,
    message: str,
    headers: Mapping[str, str] | None = None,
    details: Mapping[str, str] | None = None,
    rows: list[RowError] | None = None,
) -> JSONResponse:
    """A JSONResponse carrying the error shape (with `details` as extra fields)."""
    # Bounded, and valid UTF-8 whatever was quoted into it (a lone surrogate is replaced).
    text = clip(message, MAX_MESSAGE_CHARS).encode("utf-8", "replace").decode("utf-8")
    body = ErrorResponse(
        error=ErrorDetail(code=code, message=text, rows=rows, **dict(details or {}))
    )
    return JSONResponse(
        body.model_dump(exclude_none=True), status_code=status, headers=dict(headers or {})
    )


@dataclass(frozen=True)
class ErrorCode:
    """One documented error: its status, its machine code and a message it may carry."""

    status: int
    code: str
    example: str


def error_responses_doc(*errors: int | ErrorCode) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries declaring the error shape for each status of
    `errors`, naming the codes it may carry, with an example body per code (a bare
    status documents its default code), plus a catch-all `4XX` (which also keeps
    FastAPI from documenting its `{"detail": ...}`)."""
    by_status: dict[int, list[ErrorCode]] = {}
    for error in errors:
        if isinstance(error, int):
            phrase = HTTPStatus(error).phrase
            error = ErrorCode(error, default_code(error), phrase)
        by_status.setdefault(error.status, []).append(error)
    documented: dict[int | str, dict[str, Any]] = {}
    for status, codes in sorted(by_status.items()):
        names = ", ".join(f"`{c.code}`" for c in codes)
        documented[status] = {
            "model": ErrorResponse,
            "description": f"{HTTPStatus(status).phrase}: {names}",
            "content": {
                "application/json": {
                    "examples": {
                        c.code: {
                            "summary": c.code,
                            "value": {"error": {"code": c.code, "message": c.example}},
                        }
                        for c in codes
                    }
                }
            },
        }
    documented["4XX"] = {"model": ErrorResponse, "description": "Any other client error"}
    return documented


# --- exception handlers ---------------------------------------------------------------


# The one place a kind of domain error becomes an HTTP status.
DOMAIN_ERROR_STATUS: dict[type[DomainError], int] = {
    MalformedInput: 400,
    NotAuthenticated: 401,
    NotFound: 404,
    Conflict: 409,
    InvalidRequest: 422,
    InvalidBatch: 422,  # with the bad rows (`rows`)
}


def status_of(error: DomainError) -> int:
    """The status of `error`'s kind (its nearest mapped base class); 400 for a kind the
    table does not know, since a domain error is always about the request."""
    for kind in type(error).__mro__:
        if kind in DOMAIN_ERROR_STATUS:
            return DOMAIN_ERROR_STATUS[kind]
    return 400


async def domain_error_handler(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    rows = None
    if isinstance(exc, InvalidBatch):
        rows = [RowError(row=row, code=code, message=text) for row, code, text in exc.rows]
    return error_response(status_of(exc), exc.code, exc.message, rows=rows)


async def api_error_handler(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.code, exc.message, exc.headers, exc.details)


async def http_exception_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    headers = dict(exc.headers or {})
    method, path = clip(request.method, 20), clip(request.url.path)
    if status == 404 and exc.detail == HTTPStatus.NOT_FOUND.phrase:
        message = f"no route matches {method} {path}"
    elif status == 405:
        message = f"method {method} is not allowed on {path}"
        # Starlette names the methods of the first route matching the path only, while
        # FastAPI makes one route per method: list every route's.
        allowed = _allowed_methods(request.app.router.routes, request.scope)
        if allowed:
            headers["Allow"] = ", ".join(m for m in _METHODS if m in allowed)
    elif isinstance(exc.detail, str) and exc.detail:
        message = exc.detail
    else:
        message = HTTPStatus(status).phrase
    return error_response(status, default_code(status), message, headers)


def _allowed_methods(routes: Sequence[BaseRoute], scope: Scope) -> set[str]:
    """The methods some route in `routes` fully matches for `scope`'s path: asking the
    routes themselves covers included routers and mounts alike."""
    return {
        method
        for method in _METHODS
        if any(route.matches({**scope, "method": method})[0] is Match.FULL for route in routes)
    }


def describe_validation_errors(errors: Sequence[Any]) -> str:
    """Readable text naming each offending field: `limit (query): Input should be ...`."""
    problems = [_describe(error) for error in errors[:_MAX_LISTED_PROBLEMS]]
    if len(errors) > _MAX_LISTED_PROBLEMS:
        problems.append(f"and {len(errors) - _MAX_LISTED_PROBLEMS} more")
    return "; ".join(problems) or "the request is invalid"


def _describe(error: Mapping[str, Any]) -> str:
    loc = [clip(part, 50) if part != "" else '""' for part in error.get("loc", ())]
    source = loc[0] if loc else ""
    field = clip(".".join(loc[1:]))
    kind = error.get("type", "")
    detail = clip(error.get("msg", "invalid value"), 300)
    if kind == "json_invalid":
        reason = (error.get("ctx") or {}).get("error")
        return "the request body is not valid JSON" + (f": {clip(reason, 300)}" if reason else "")
    if not field:
        where = "the request body" if source == "body" else source or "the request"
        return f"{where}: {detail}"
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
    return f"{field}: {detail}"


async def validation_error_handler(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return error_response(422, "validation_error", describe_validation_errors(exc.errors()))

"""Logs: one JSON object a line with `service`, `call_id` and `trace_id`, with secrets
and personal data masked before any handler writes them.

`call_id` comes from the record's `extra`, else from the call being handled: bus
consumers run each handler inside `call_scope(event.call_id)` (see `with_call_scope`).
`trace_id` and `span_id` are the current span's, when there is one.

Masking (`redact`) applies to messages, `extra` fields and tracebacks: a phone number
keeps its last 4 digits (`+996700001234` → `+********1234`); `Bearer`/`Basic`
credentials, `sk_…` API keys, `whsec_…` signing secrets, `password=`/`token=`/… values
and the password of a URL (`amqp://user:***@host`) become `***`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import sys
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from opentelemetry import trace

from switchboard_shared.calls.events import Event
from switchboard_shared.ports import Handler, MessageContext
from switchboard_shared.runtime.settings import Settings

MASK = "***"

# --- the call being handled ----------------------------------------------------------

_call_id: ContextVar[str | None] = ContextVar("switchboard_call_id", default=None)


@contextlib.contextmanager
def call_scope(call_id: str | None) -> Iterator[None]:
    """Log lines written inside carry `call_id` (unless they pass their own)."""
    token = _call_id.set(call_id)
    try:
        yield
    finally:
        _call_id.reset(token)


def current_call_id() -> str | None:
    return _call_id.get()


def with_call_scope(handler: Handler) -> Handler:
    """`handler` running inside `call_scope(event.call_id)`: for bus consumers."""

    async def handle(event: Event, context: MessageContext) -> None:
        with call_scope(event.call_id):
            await handler(event, context)

    return handle


# --- masking -------------------------------------------------------------------------

# E.164 with optional single separators: '+', a non-zero digit, 7 to 15 digits in all.
_PHONE = re.compile(r"(?<![\w+])\+[1-9](?:[ .\-]?\d){6,14}(?!\d)")
# HTTP credentials. "Basic" only as in a header, before base64 with a capital, a digit or
# a symbol past its first character, so that prose ("Basic settings") is left alone.
_AUTH_SCHEME = re.compile(
    r"\b(?:(?i:bearer)\s+[A-Za-z0-9\-._~+/]{6,}"
    r"|Basic\s+(?=[A-Za-z0-9+/]+[A-Z0-9+/=])[A-Za-z0-9+/]{6,})=*"
)
_API_KEY = re.compile(r"\bsk_[A-Za-z0-9_\-]{8,}")
_WEBHOOK_SECRET = re.compile(r"\bwhsec_[A-Za-z0-9+/=_\-]{8,}")
# scheme://user:password@ (the user may be empty: redis://:password@host).
_URL_PASSWORD = re.compile(r"\b([a-zA-Z][a-zA-Z0-9+.\-]*://[^\s:/@]*):[^\s@/]+@")
_SECRET_NAME = r"[\w\-]*(?:password|passwd|secret|token|api[_\-]?key)"  # noqa: S105
# name=value, name: value, "name": "value" (JSON and query strings).
_SECRET_VALUE = re.compile(
    rf"""\b({_SECRET_NAME})(["']?\s*[:=]\s*["']?)(?!\*\*\*)[^\s"'&,;}}]+""", re.IGNORECASE
)
_PHONE_NAME = r"(?:phone|phone_number|to_number|from_number|caller|callee)"
# A phone number without its '+', where a key names it.
_NAMED_PHONE = re.compile(rf"""\b({_PHONE_NAME})(["']?\s*[:=]\s*["']?)(\d{{7,15}})\b""")
_SECRET_KEY = re.compile(_SECRET_NAME + r"$|^authorization$", re.IGNORECASE)
_PHONE_KEY = re.compile(rf"(?:[\w\-]*_)?{_PHONE_NAME}$", re.IGNORECASE)
_PHONE_SHAPE = re.compile(r"\+?[\d ().\-]{7,24}")  # digits and separators only


def mask_phone(number: str) -> str:
    """Every digit but the last 4 replaced by `*`; '+' and separators stay."""
    digits = sum(c.isdigit() for c in number)
    seen = 0
    out = []
    for char in number:
        if char.isdigit():
            seen += 1
            out.append(char if seen > digits - 4 else "*")
        else:
            out.append(char)
    return "".join(out)


def redact(text: str) -> str:
    """`text` with secrets and phone numbers masked. Idempotent."""
    text = _URL_PASSWORD.sub(rf"\1:{MASK}@", text)
    text = _AUTH_SCHEME.sub(lambda m: m[0].split(None, 1)[0] + " " + MASK, text)
    text = _API_KEY.sub(f"sk_{MASK}", text)
    text = _WEBHOOK_SECRET.sub(f"whsec_{MASK}", text)
    text = _SECRET_VALUE.sub(rf"\1\2{MASK}", text)
    text = _NAMED_PHONE.sub(lambda m: m[1] + m[2] + mask_phone(m[3]), text)
    return _PHONE.sub(lambda m: mask_phone(m[0]), text)


def redact_field(name: str, value: Any) -> Any:
    """A structured value named `name` (an `extra` field, a dict item) masked: all of it
    when the name says secret, the digits when it says phone, else like text."""
    if isinstance(value, dict):
        return {k: redact_field(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_field(name, v) for v in value]
    if not isinstance(value, str) or not value:
        return value
    if _SECRET_KEY.match(name):
        return MASK
    if _PHONE_KEY.match(name) and _PHONE_SHAPE.fullmatch(value):
        return mask_phone(value)
    return redact(value)


# Attributes every LogRecord has; anything else came from `extra`.
_RECORD_ATTRIBUTES = frozenset(logging.makeLogRecord({}).__dict__) | {
    "message",
    "asctime",
    "taskName",
    "color_message",  # uvicorn's duplicate of the message, with ANSI colours
}


def _extra(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _RECORD_ATTRIBUTES}


class RedactingFilter(logging.Filter):
    """Masks the message, the `extra` fields and the traceback of every record, in place,
    so every handler and formatter sees the masked record."""

    _traceback = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        # A bad format string is left as is: the handler reports it when formatting.
        with contextlib.suppress(Exception):
            record.msg, record.args = redact(record.getMessage()), None
        for name, value in _extra(record).items():
            setattr(record, name, redact_field(name, value))
        if record.exc_info and not record.exc_text:
            record.exc_text = self._traceback.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


# --- formatting ----------------------------------------------------------------------


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, service, logger, message, call_id, trace_id,
    span_id, the record's `extra` fields, and the traceback if any."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = _extra(record)
        line.update(
            time=datetime.fromtimestamp(record.created, UTC).isoformat(),
            level=record.levelname,
            service=self._service,
            logger=record.name,
            message=record.getMessage(),
        )
        call_id = line.get("call_id") or current_call_id()
        line.pop("call_id", None)
        if call_id:
            line["call_id"] = call_id
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            line["trace_id"] = format(span.trace_id, "032x")
            line["span_id"] = format(span.span_id, "016x")
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = record.stack_info
        return json.dumps(line, default=str)


def configure_logging(settings: Settings, service: str) -> None:
    """Root logging to stdout: JSON lines (or plain text with SWITCHBOARD_LOG_JSON=false),
    masked either way. Calling it again replaces the handler."""
    handler = logging.StreamHandler(sys.stdout)
    handler.addFilter(RedactingFilter())
    if settings.log_json:
        handler.setFormatter(JsonFormatter(service))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    for noisy in ("aio_pika", "aiormq", "pymongo", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

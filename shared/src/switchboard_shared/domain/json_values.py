"""Free-form JSON that every part of Switchboard can store, publish and read back.

A call's `variables` and `metadata` travel through both stores (SQLite keeps JSON text,
MongoDB keeps BSON), the event bus (pydantic JSON) and the providers (stdlib JSON).
Each of them has a limit that plain JSON does not: pydantic's JSON parser refuses
documents nested deeper than about 200 levels, BSON holds 64-bit integers and keys
without NUL, no encoder accepts NaN, infinities or lone UTF-16 surrogates. A value
outside those limits would be accepted once and then break every read of the record, so
the API refuses it up front:

- `check_json_value` walks a value (iteratively: depth cannot exhaust the stack) and
  raises `UnsafeJsonValue` naming the first offending place;
- `SafeJsonObject` is the pydantic type of such fields (a `json_value` validation error);
- `parse_json_document` parses a request body as strict JSON (RFC 8259, UTF-8, no `NaN`
  or `Infinity`, bounded nesting, no lone surrogates) and raises `json.JSONDecodeError`.
"""

from __future__ import annotations

import json
import math
from typing import Annotated, Any

from pydantic import AfterValidator
from pydantic_core import PydanticCustomError

# Objects and arrays inside one another, counting the value itself: `{}` is 1 level,
# `{"a": [1]}` is 2. Far below every store's and parser's own limit (BSON: 100 levels
# for the whole document, pydantic's JSON parser: 200).
MAX_JSON_DEPTH = 32
# A whole request body may nest deeper than one field, but no route takes more than
# this; deeper bodies are refused as not valid JSON, before any field is validated.
MAX_DOCUMENT_DEPTH = 2 * MAX_JSON_DEPTH
# What both stores hold exactly: SQLite's integers and BSON's int64.
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
# Longer number literals are refused while parsing, before converting them.
MAX_NUMBER_DIGITS = 100
# How much of a key is quoted in an error message.
_QUOTED_KEY_CHARS = 40
_QUOTED_PATH_CHARS = 200


class UnsafeJsonValue(ValueError):
    """`value` cannot be stored and read back everywhere; `path` says where (`a.b[2]`)."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}" if path else reason)
        self.path = path
        self.reason = reason


# What JSON arrays and objects are in Python (concrete types: ABC checks are slow).
_CONTAINERS = (dict, list, tuple)
# Where a value sits, built only when an error names it: (parent, key or index) links.
_Place = tuple["_Place | None", str | int] | None


def _render(place: _Place, limit: int = _QUOTED_PATH_CHARS) -> str:
    parts: list[str | int] = []
    while place is not None:
        place, part = place
        parts.append(part)
    path = ""
    for part in reversed(parts):
        if isinstance(part, int):
            path += f"[{part}]"
            continue
        shown = part if len(part) <= _QUOTED_KEY_CHARS else part[:_QUOTED_KEY_CHARS] + "..."
        if not shown.isidentifier():
            shown = json.dumps(shown)
        path = f"{path}.{shown}" if path else shown
    return path if len(path) <= limit else "..." + path[-limit:].lstrip(".")


def _valid_unicode(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # only lone surrogates fail
        return False
    return True


def check_json_value(
    value: Any, *, max_depth: int = MAX_JSON_DEPTH, strict_numbers: bool = True
) -> None:
    """Raise `UnsafeJsonValue` unless `value` is JSON every store and encoder round-trips:
    objects with string keys (no NUL), arrays, valid Unicode strings, booleans, null,
    finite floats and integers within int64, nested at most `max_depth` levels.

    With `strict_numbers=False` numbers are not checked (they are for the fields' own
    validation to name), only the structure and the strings.
    """
    if not isinstance(value, _CONTAINERS):
        _check_scalar(value, None, strict_numbers)
        return
    # Containers still to look into; scalars are checked as their parent is walked.
    pending: list[tuple[Any, _Place, int]] = [(value, None, 1)]
    while pending:
        item, place, depth = pending.pop()
        if depth > max_depth:
            # Where exactly hardly matters: a short path.
            raise UnsafeJsonValue(_render(place, 40), f"nested more than {max_depth} levels deep")
        if isinstance(item, dict):
            for key, child in item.items():
                if not isinstance(key, str):
                    raise UnsafeJsonValue(_render(place), "object keys must be strings")
                if not _valid_unicode(key):
                    raise UnsafeJsonValue(
                        _render(place), "a key with a lone UTF-16 surrogate is not valid Unicode"
                    )
                if "\x00" in key:
                    raise UnsafeJsonValue(_render((place, key)), "keys must not contain NUL")
                if isinstance(child, _CONTAINERS):
                    pending.append((child, (place, key), depth + 1))
                else:
                    _check_scalar(child, (place, key), strict_numbers)
        else:
            for index, child in enumerate(item):
                if isinstance(child, _CONTAINERS):
                    pending.append((child, (place, index), depth + 1))
                else:
                    _check_scalar(child, (place, index), strict_numbers)


def _check_scalar(item: Any, place: _Place, strict_numbers: bool) -> None:
    if isinstance(item, str):
        if not _valid_unicode(item):
            raise UnsafeJsonValue(
                _render(place), "a string with a lone UTF-16 surrogate is not valid Unicode"
            )
    elif item is None or isinstance(item, bool):
        return
    elif isinstance(item, int):
        if strict_numbers and not INT64_MIN <= item <= INT64_MAX:
            raise UnsafeJsonValue(
                _render(place), "integers must be within -2^63 .. 2^63-1 (64-bit)"
            )
    elif isinstance(item, float):
        if strict_numbers and not math.isfinite(item):
            raise UnsafeJsonValue(
                _render(place), "numbers must be finite (no NaN, Infinity or overflow)"
            )
    else:
        raise UnsafeJsonValue(_render(place), f"{type(item).__name__} is not a JSON value")


def _safe_json_object(value: dict[str, Any]) -> dict[str, Any]:
    try:
        check_json_value(value)
    except UnsafeJsonValue as exc:
        where = f"at {exc.path}: " if exc.path else ""
        raise PydanticCustomError(
            "json_value",
            "{where}{reason}",
            {
                "where": where,
                "reason": exc.reason,
            },
        ) from None
    return value


# A JSON object field the stores can round-trip (see `check_json_value`).
SafeJsonObject = Annotated[dict[str, Any], AfterValidator(_safe_json_object)]


# --- request bodies -------------------------------------------------------------------


class _Refused(ValueError):
    pass


def _refuse_constant(name: str) -> Any:
    raise _Refused(f"{name} is not a JSON number")


def _parse_int(literal: str) -> int:
    if len(literal) > MAX_NUMBER_DIGITS:
        raise _Refused(f"a number has more than {MAX_NUMBER_DIGITS} digits")
    return int(literal)


def _parse_float(literal: str) -> float:
    if len(literal) > MAX_NUMBER_DIGITS:
        raise _Refused(f"a number has more than {MAX_NUMBER_DIGITS} digits")
    return float(literal)


def parse_json_document(body: bytes, *, max_depth: int = MAX_DOCUMENT_DEPTH) -> Any:
    """Parse `body` as strict JSON, or raise `json.JSONDecodeError` saying why.

    Refused: bytes that are not UTF-8, invalid JSON, `NaN` / `Infinity` (not JSON),
    number literals over `MAX_NUMBER_DIGITS` digits, nesting deeper than `max_depth`, and
    strings or keys with a lone surrogate escape (`"\\ud800"`: not Unicode). Floats that
    overflow (`1e400`) and integers beyond int64 parse; `check_json_value` refuses them
    where it applies, naming the field.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise json.JSONDecodeError(
            f"the body is not UTF-8 (invalid byte at offset {exc.start})", "", 0
        ) from None
    try:
        value = json.loads(
            text,
            parse_constant=_refuse_constant,
            parse_int=_parse_int,
            parse_float=_parse_float,
        )
    except json.JSONDecodeError as exc:
        raise json.JSONDecodeError(exc.msg, "", exc.pos) from None
    except _Refused as exc:
        raise json.JSONDecodeError(str(exc), "", 0) from None
    except RecursionError:
        # The parser recurses once per level, up to the interpreter's limit (far above
        # `max_depth`); anything shallower is measured by the walk below.
        raise json.JSONDecodeError(f"nested more than {max_depth} levels deep", "", 0) from None
    try:
        check_json_value(value, max_depth=max_depth, strict_numbers=False)
    except UnsafeJsonValue as exc:
        raise json.JSONDecodeError(str(exc), "", 0) from None
    return value

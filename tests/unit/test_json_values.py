"""Free-form JSON that every store keeps: `check_json_value` and `parse_json_document`."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from switchboard_shared.domain.json_values import (
    INT64_MAX,
    INT64_MIN,
    MAX_DOCUMENT_DEPTH,
    MAX_JSON_DEPTH,
    SafeJsonObject,
    UnsafeJsonValue,
    check_json_value,
    parse_json_document,
)


def nested(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


@pytest.mark.parametrize(
    "value",
    [
        {},
        {"s": "text", "n": None, "t": True, "f": False, "e": "\U0001f600 ж"},
        {"max": INT64_MAX, "min": INT64_MIN, "float": 1.5e308, "tiny": 5e-324, "z": -0.0},
        {"$dollar": 1, "dot.ted": 2, "": 3, "nul in value": "a\x00b"},
        nested(MAX_JSON_DEPTH),
        {"list": [[[["deep"]]]]},
    ],
)
def test_storable_values_pass(value: Any) -> None:
    check_json_value(value)


@pytest.mark.parametrize(
    ("value", "path", "says"),
    [
        # The path of a depth error is shortened to its last 40 characters.
        (
            nested(MAX_JSON_DEPTH + 1),
            "..." + ("a." * (MAX_JSON_DEPTH - 1) + "a")[-40:].lstrip("."),
            "deep",
        ),
        ({"x": [math.nan]}, "x[0]", "finite"),
        ({"x": math.inf}, "x", "finite"),
        ({"x": -math.inf}, "x", "finite"),
        ({"x": INT64_MAX + 1}, "x", "64-bit"),
        ({"x": INT64_MIN - 1}, "x", "64-bit"),
        ({"x": {"y z": "\ud800"}}, 'x."y z"', "surrogate"),
        ({"k\udc00": 1}, "", "surrogate"),
        ({"a\x00b": 1}, '"a\\u0000b"', "NUL"),
        ({"x": {1, 2}}, "x", "not a JSON value"),
        ({"x": b"bytes"}, "x", "not a JSON value"),
    ],
)
def test_unstorable_values_are_refused_with_their_place(value: Any, path: str, says: str) -> None:
    with pytest.raises(UnsafeJsonValue) as raised:
        check_json_value(value)
    assert says in raised.value.reason
    assert raised.value.path == path


def test_depth_counts_arrays_and_objects_alike() -> None:
    value: Any = 1
    for level in range(MAX_JSON_DEPTH):
        value = [value] if level % 2 else {"k": value}
    check_json_value(value)
    with pytest.raises(UnsafeJsonValue):
        check_json_value([value])


def test_a_very_deep_value_is_refused_without_recursion() -> None:
    value: Any = []
    for _ in range(100_000):
        value = [value]
    with pytest.raises(UnsafeJsonValue, match="levels deep"):
        check_json_value(value)


def test_a_long_path_is_clipped() -> None:
    with pytest.raises(UnsafeJsonValue) as raised:
        check_json_value({"k" * 10_000: {"j" * 10_000: math.nan}})
    assert len(str(raised.value)) < 400


class Body(BaseModel):
    data: SafeJsonObject


def test_the_pydantic_type_reports_a_json_value_error() -> None:
    assert Body(data={"a": 1}).data == {"a": 1}
    with pytest.raises(ValidationError) as raised:
        Body(data={"a": [1, 2**64]})
    (error,) = raised.value.errors()
    assert error["type"] == "json_value"
    assert error["loc"] == ("data",)
    assert error["msg"].startswith("at a[1]: integers must be within")


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b'{"a": "\xff"}', "not UTF-8"),
        ('{"a": 1}'.encode("utf-16"), "not UTF-8"),
        (b'{"a": NaN}', "NaN is not a JSON number"),
        (b'{"a": -Infinity}', "-Infinity is not a JSON number"),
        (b'{"a": ' + b"7" * 101 + b"}", "more than 100 digits"),
        (b'{"a": 1.' + b"5" * 200 + b"}", "more than 100 digits"),
        (b"[" * (MAX_DOCUMENT_DEPTH + 1) + b"]" * (MAX_DOCUMENT_DEPTH + 1), "levels deep"),
        (b"[" * 100_000, "levels deep"),
        (b'{"a": "\\ud800"}', "surrogate"),
        (b'{"\\udfff": 1}', "surrogate"),
        (b'{"a": 1', "Expecting"),
        (b"", "Expecting value"),
    ],
)
def test_request_bodies_must_be_strict_json(body: bytes, says: str) -> None:
    with pytest.raises(json.JSONDecodeError) as raised:
        parse_json_document(body)
    assert says in raised.value.msg


@pytest.mark.parametrize(
    "body",
    [
        b'{"a": "[[[[{{{{ brackets in strings do not nest \\" ]]"}',
        b"[" * MAX_DOCUMENT_DEPTH + b"]" * MAX_DOCUMENT_DEPTH,
        b'{"a": 1e400, "b": 170141183460469231731687303715884105728}',  # for the fields
        b'{"e": "\\ud83d\\ude00", "s": "\\u0000"}',
    ],
)
def test_strict_json_still_parses_what_is_json(body: bytes) -> None:
    assert parse_json_document(body) == json.loads(body)

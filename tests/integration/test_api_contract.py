"""The served OpenAPI document is a contract a client generator can use: every operation
has a camelCase `operationId` worth keeping, request bodies and responses carry examples
that match their schemas, and every error response has our error shape and names the
codes it may carry, each one documented in docs/api.md."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import TypeAdapter

from switchboard_shared.http.errors import ErrorResponse
from tests.support.api_client import running_api

API_DOC = Path(__file__).parents[2] / "docs" / "api.md"
CAMEL_CASE = re.compile(r"^[a-z]+(?:[A-Z][a-z0-9]+)*$")
JSON = "application/json"

Spec = dict[str, Any]


@pytest.fixture(scope="module")
async def spec(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Spec]:
    async with (
        running_api(tmp_path_factory.mktemp("contract")) as api,
        httpx.AsyncClient(base_url=api.base_url) as anonymous,
    ):
        yield (await anonymous.get("/openapi.json")).json()


def operations(spec: Spec) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, methods in spec["paths"].items()
        for method, operation in methods.items()
    ]


def resolve(spec: Spec, schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref", "")
    return spec["components"]["schemas"][ref.rsplit("/", 1)[-1]] if ref else schema


def test_operation_ids_are_camel_case_unique_and_named_after_what_they_do(spec: Spec) -> None:
    ids = [operation["operationId"] for _, _, operation in operations(spec)]
    assert len(ids) == len(set(ids))
    for operation_id in ids:
        assert CAMEL_CASE.match(operation_id), operation_id
    assert {"createCall", "getCall", "listCalls", "cancelCall", "listAgents"} <= set(ids)


def test_request_bodies_and_success_responses_have_examples(spec: Spec) -> None:
    for method, path, operation in operations(spec):
        bodies = [operation["requestBody"]] if "requestBody" in operation else []
        successes = [r for code, r in operation["responses"].items() if code.startswith("2")]
        for part in bodies + successes:
            media = part.get("content", {}).get(JSON)
            if media is None:
                continue  # 204: no body
            schema = resolve(spec, media["schema"])
            assert media.get("examples") or schema.get("examples"), (method, path)


def test_examples_match_their_models(spec: Spec) -> None:
    # Every documented example parses as the model its schema was made from.
    from switchboard_api import schemas
    from switchboard_api.routes import deliveries, webhooks
    from switchboard_shared.domain import agents, calls
    from switchboard_shared.http import ops

    for module in (schemas, deliveries, webhooks, agents, calls, ops):
        for name, model in vars(module).items():
            if name in spec["components"]["schemas"] and hasattr(model, "model_validate"):
                for example in spec["components"]["schemas"][name].get("examples", []):
                    TypeAdapter(model).validate_python(example)


def test_every_error_response_has_the_error_shape_and_names_its_codes(spec: Spec) -> None:
    documented_codes = set(re.findall(r"^\| \d{3} \| `([a-z_]+)` \|", API_DOC.read_text(), re.M))
    seen: set[str] = set()
    for method, path, operation in operations(spec):
        if path in ("/healthz", "/readyz"):
            continue
        errors = {c: r for c, r in operation["responses"].items() if c[0] in "45"}
        assert "4XX" in errors, (method, path)
        assert {"401", "429", "500", "503"} <= set(errors), (method, path)
        for status, response in errors.items():
            media = response["content"][JSON]
            assert media["schema"] == {"$ref": "#/components/schemas/ErrorResponse"}
            if status == "4XX":
                continue
            assert media["examples"], (method, path, status)
            for code, example in media["examples"].items():
                body = ErrorResponse.model_validate(example["value"])
                assert body.error.code == code
                assert f"`{code}`" in response["description"]
                assert code in documented_codes, f"{code} is not in docs/api.md#errors"
                seen.add(code)
    assert {"invalid_phone", "unknown_agent", "call_not_found", "rate_limited"} <= seen

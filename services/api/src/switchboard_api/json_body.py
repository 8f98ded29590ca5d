"""Strict JSON request bodies for every API route.

FastAPI parses a JSON body with `json.loads`: it accepts `NaN` and `Infinity`, decodes
UTF-16 and UTF-32 as well as UTF-8, keeps lone surrogate escapes, and answers anything
that is not a `JSONDecodeError` (invalid UTF-8, a 5,000-digit number, nesting deep
enough for a `RecursionError`) with a bare 400. `JsonApiRoute` swaps in a request whose
`json()` is `parse_json_document`: every refusal is a `JSONDecodeError`, which FastAPI
turns into the 422 `validation_error` the error table documents ("not JSON").
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from switchboard_shared.domain.json_values import parse_json_document


class StrictJsonRequest(Request):
    """A request whose JSON body is parsed strictly (see `parse_json_document`)."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = parse_json_document(await self.body())
        return self._json


class JsonApiRoute(APIRoute):
    """The route class of every API router: request bodies are parsed strictly."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def strict_json_handler(request: Request) -> Response:
            return await handle(StrictJsonRequest(request.scope, request.receive))

        return strict_json_handler

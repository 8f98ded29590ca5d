"""Domain errors become HTTP answers in one table at the edge."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from switchboard_shared.domain import errors
from switchboard_shared.domain.errors import DomainError
from switchboard_shared.http.error_handling import install_error_handlers
from switchboard_shared.http.errors import DOMAIN_ERROR_STATUS, status_of

KINDS = [
    kind
    for kind in vars(errors).values()
    if isinstance(kind, type) and issubclass(kind, DomainError) and kind is not DomainError
]


def test_every_kind_of_domain_error_has_a_status() -> None:
    assert KINDS
    assert set(KINDS) == set(DOMAIN_ERROR_STATUS)


@pytest.mark.parametrize(
    ("kind", "status"),
    [
        (errors.MalformedInput, 400),
        (errors.NotAuthenticated, 401),
        (errors.NotFound, 404),
        (errors.Conflict, 409),
        (errors.InvalidRequest, 422),
    ],
)
def test_each_kind_maps_to_its_status(kind: type[DomainError], status: int) -> None:
    assert status_of(kind("some_code", "why")) == status


def test_a_subclass_takes_its_base_status_and_an_unmapped_one_is_a_400() -> None:
    class UnknownPlan(errors.NotFound):
        pass

    class Unmapped(DomainError):
        pass

    assert status_of(UnknownPlan("unknown_plan", "no plan")) == 404
    assert status_of(Unmapped("odd", "odd")) == 400


async def test_a_route_raising_one_answers_with_the_error_shape() -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/thing")
    async def thing() -> None:
        raise errors.NotFound("unknown_thing", "no such thing")

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/thing")
    assert response.status_code == 404
    assert response.json() == {"error": {"code": "unknown_thing", "message": "no such thing"}}

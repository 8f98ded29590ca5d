"""Over its request rate a tenant gets 429 `rate_limited` with Retry-After; others don't."""

from __future__ import annotations

from pathlib import Path

from switchboard_shared.runtime.settings import Settings
from tests.support.api_client import running_api
from tests.support.net import eventually


async def test_a_tenant_over_its_rate_gets_429_and_others_are_unaffected(tmp_path: Path) -> None:
    settings = Settings(api_rate_limit_per_second=2, api_rate_limit_burst=3)
    async with running_api(tmp_path, settings=settings) as api:
        _, busy = await api.tenant()
        _, quiet = await api.tenant()
        statuses = [(await busy.get("/v1/agents")).status_code for _ in range(3)]
        assert statuses == [200, 200, 200]

        limited = await busy.get("/v1/agents")
        assert limited.status_code == 429
        assert limited.json()["error"]["code"] == "rate_limited"
        assert int(limited.headers["Retry-After"]) >= 1
        assert (await quiet.get("/v1/agents")).status_code == 200

        async def allowed_again() -> bool:
            return (await busy.get("/v1/agents")).status_code == 200

        await eventually(allowed_again, within=5, interval=0.3)


async def test_the_limit_can_be_turned_off(tmp_path: Path) -> None:
    settings = Settings(api_rate_limit_per_second=0, api_rate_limit_burst=1)
    async with running_api(tmp_path, settings=settings) as api:
        _, client = await api.tenant()
        statuses = {(await client.get("/v1/agents")).status_code for _ in range(20)}
        assert statuses == {200}

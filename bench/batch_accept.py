"""How long `POST /v1/batches` takes to accept 100,000 rows (JSON and CSV), on this
machine: the API app served over loopback by uvicorn on a fresh SQLite store (the
all-in-one's), timed from sending the request to the 201. Then checks that every call is
stored, `scheduled` and due, and that GET /v1/batches/{id} counts them.

    .venv/bin/python -m bench.batch_accept [--rows 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import tempfile
import time
from pathlib import Path

import httpx

from switchboard_api.app import create_app
from switchboard_shared.adapters.bus.inprocess import InProcessBus
from switchboard_shared.adapters.store.sqlite import SqliteStore
from switchboard_shared.runtime.operator import create_api_key, create_tenant, load_agents_file
from switchboard_shared.runtime.settings import Settings
from switchboard_testing.servers import serving

AGENTS = Path(__file__).resolve().parents[1] / "deploy" / "agents.example.yaml"


def numbers(count: int, offset: int) -> list[str]:
    return [f"+99670{offset + i:07d}" for i in range(count)]


async def accept(client: httpx.AsyncClient, label: str, **request: object) -> str:
    started = time.perf_counter()
    response = await client.post("/v1/batches", **request)  # type: ignore[arg-type]
    elapsed = time.perf_counter() - started
    response.raise_for_status()
    body = response.json()
    print(f"{label}: {body['total']} rows accepted in {elapsed:.2f} s ({response.status_code})")
    return str(body["batch_id"])


async def main(rows: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(Path(tmp) / "bench.db")
        await store.start()
        bus = InProcessBus(close_timeout=2)
        await bus.start()
        try:
            await load_agents_file(store, AGENTS)
            tenant = await create_tenant(store, "bench")
            raw, _ = await create_api_key(store, tenant)
            app = create_app(settings=Settings(), store=store, bus=bus)
            async with (
                serving(app) as base_url,
                httpx.AsyncClient(
                    base_url=base_url, headers={"Authorization": f"Bearer {raw}"}, timeout=120
                ) as client,
            ):
                calls = [
                    {"phone": p, "variables": {"n": i}} for i, p in enumerate(numbers(rows, 0))
                ]
                payload = json.dumps({"agent": "altynai", "calls": calls}).encode()
                print(f"JSON body: {len(payload) / 1e6:.1f} MB")
                json_batch = await accept(
                    client, "JSON", content=payload, headers={"Content-Type": "application/json"}
                )
                text = io.StringIO()
                writer = csv.writer(text)
                writer.writerow(["phone", "n"])
                writer.writerows([p, i] for i, p in enumerate(numbers(rows, rows)))
                await accept(
                    client,
                    "CSV",
                    content=text.getvalue().encode(),
                    headers={"Content-Type": "text/csv"},
                    params={"agent": "altynai"},
                )
                started = time.perf_counter()
                batch = (await client.get(f"/v1/batches/{json_batch}")).json()
                print(
                    f"GET /v1/batches/{{id}}: counts {batch['counts']['scheduled']} scheduled "
                    f"in {time.perf_counter() - started:.2f} s"
                )
                assert batch["counts"]["scheduled"] == rows, batch
        finally:
            await bus.close()
            await store.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    asyncio.run(main(parser.parse_args().rows))

"""Whatever free-form JSON the API accepts (`check_json_value` passes), both stores keep
exactly: a call carrying it reads back equal, lists, and its event serializes."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from switchboard_shared.calls.events import Event
from switchboard_shared.calls.outbox import event_for
from switchboard_shared.domain.calls import Call, CallFilter
from switchboard_shared.domain.json_values import (
    INT64_MAX,
    INT64_MIN,
    MAX_JSON_DEPTH,
    UnsafeJsonValue,
    check_json_value,
)
from switchboard_shared.ports import Store
from tests.support.stores import STORE_KINDS, StoreKind, open_store

pytestmark = pytest.mark.timeout(120)

keys = st.text(max_size=12) | st.sampled_from(["$set", "a.b", "_id", "", "$", "..", "\U0001f600"])
values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=INT64_MIN, max_value=INT64_MAX)
    | st.sampled_from([INT64_MIN, INT64_MAX, 0, -1])
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=4),
    max_leaves=30,
)
objects = st.dictionaries(keys, values, max_size=6)


def deepest_allowed() -> dict[str, Any]:
    value: Any = "leaf"
    for level in range(MAX_JSON_DEPTH):
        value = {"k": value} if level % 2 == 0 else [value]
    return value if isinstance(value, dict) else {"k": value}


@pytest.fixture(scope="module", params=STORE_KINDS)
async def store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Store]:
    kind: StoreKind = request.param
    url = request.getfixturevalue("mongodb_url") if kind == "mongo" else None
    tmp = Path(tmp_path_factory.mktemp(f"json-{kind}"))
    async with open_store(kind, tmp_path=tmp, mongodb_url=url) as started:
        yield started


@settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(variables=objects, metadata=objects)
@example(variables=deepest_allowed(), metadata={"nul": "a\x00b", "e": "\U0001f600"})
@example(variables={"max": INT64_MAX, "min": INT64_MIN}, metadata={"z": -0.0, "t": 5e-324})
async def test_accepted_json_round_trips_through_the_store(
    store: Store, variables: dict[str, Any], metadata: dict[str, Any]
) -> None:
    try:
        check_json_value(variables)
        check_json_value(metadata)
    except UnsafeJsonValue:
        return  # the API refuses it; only what it accepts must round-trip
    agent = f"agent-{uuid.uuid4().hex[:8]}"  # this call alone matches the filter
    call = Call(
        tenant_id="tenant-json",
        agent=agent,
        phone="+996700000000",
        variables=variables,
        metadata=metadata,
    )
    await store.insert_call(call, idempotency_ttl_seconds=60)
    stored = await store.get_call(call.call_id, "tenant-json")
    assert stored is not None
    assert stored.variables == variables
    assert stored.metadata == metadata
    # Exactly: an integer stays an integer, a float a float.
    assert json.dumps(stored.variables, sort_keys=True) == json.dumps(variables, sort_keys=True)
    page = await store.list_calls("tenant-json", CallFilter(agent=agent), 10, None)
    assert [c.call_id for c in page.calls] == [call.call_id]
    assert page.calls[0].metadata == metadata
    event = event_for(stored)
    assert Event.from_bytes(event.to_bytes()).data["variables"] == variables

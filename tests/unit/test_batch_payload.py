"""The webhook body of `batch.completed`: the batch view, nothing else."""

from __future__ import annotations

import json

import pytest

from switchboard_notifier.payload import UnusableEvent, build_payload
from switchboard_shared.calls.events import Event, EventType
from switchboard_shared.domain.batches import Batch, BatchProgress, BatchView
from switchboard_shared.domain.calls import utcnow


def test_a_batch_completed_webhook_carries_the_batch_view() -> None:
    batch = Batch(tenant_id="t", agent="altynai", total=2, completed_at=utcnow())
    view = BatchView.of(batch, BatchProgress.of({"completed": 2}, 2))
    data = view.model_dump(mode="json") | {"tenant_id": "t", "internal": "x"}
    event = Event(type=EventType.BATCH_COMPLETED, tenant_id="t", data=data)
    body = json.loads(build_payload(event))
    assert body["type"] == "batch.completed"
    assert body["data"]["batch_id"] == batch.batch_id
    assert body["data"]["status"] == "completed"
    assert body["data"]["counts"]["completed"] == 2
    assert "tenant_id" not in body["data"]
    assert "internal" not in body["data"]


def test_a_batch_completed_without_a_batch_is_unusable() -> None:
    event = Event(type=EventType.BATCH_COMPLETED, tenant_id="t", data={"nope": 1})
    with pytest.raises(UnusableEvent):
        build_payload(event)

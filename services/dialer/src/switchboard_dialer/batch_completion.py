"""`batch.completed`: published once every call of a batch is terminal.

Each round looks at the batches not completed yet; one with no open call (one index
probe) gets its event published, then `completed_at` set by compare-and-set. The event's
id is the batch's, so a round that dies between the two publishes the same event again
and the notifier delivers it once.
"""

from __future__ import annotations

import logging

from switchboard_shared.calls.events import Event, EventType
from switchboard_shared.domain.batches import BatchView
from switchboard_shared.domain.calls import utcnow
from switchboard_shared.ports import Bus, PublishError, Store

log = logging.getLogger(__name__)


def batch_event_id(batch_id: str) -> str:
    return f"evt_batch_{batch_id.replace('-', '')}"


class BatchCompletion:
    def __init__(self, store: Store, bus: Bus, *, batch_size: int = 100) -> None:
        self._store = store
        self._bus = bus
        self._batch_size = batch_size

    async def run_once(self) -> int:
        """Complete every open batch whose calls are all terminal; returns how many."""
        completed = 0
        for batch in await self._store.find_open_batches(self._batch_size):
            if await self._store.batch_has_open_calls(batch.batch_id):
                continue
            finished = batch.model_copy(update={"completed_at": utcnow()})
            view = BatchView.of(finished, await self._store.batch_progress(batch.batch_id))
            event = Event(
                id=batch_event_id(batch.batch_id),
                type=EventType.BATCH_COMPLETED,
                occurred_at=finished.completed_at or utcnow(),
                tenant_id=batch.tenant_id,
                data=view.model_dump(mode="json"),
            )
            try:
                await self._bus.publish(event)
            except PublishError as exc:
                log.warning("batch.completed not published yet: %s", exc)
                return completed  # the broker is down: next round
            if await self._store.mark_batch_completed(batch.batch_id, view.finished_at or utcnow()):
                completed += 1
        return completed

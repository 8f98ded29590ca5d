"""The notifier's consumer: turns call events into signed customer webhooks.

For each customer-facing event the handler works out the targets (the tenant's endpoint
if it subscribes to the event type, and the call's own `webhook_url`), records one
`Delivery` per (event, URL) — the store dedupes them — and makes the first attempt of
each delivery it just created. The store, not the broker, remembers what is pending: a
delivery is created due at the end of a lease (so a notifier that dies mid-attempt only
delays it), and an attempt worth retrying records it `pending`, due after the next delay
of the webhook schedule (or the receiver's `Retry-After`, when longer). The message is
acked either way; `DeliveryScheduler` (scheduler.py) claims due deliveries and makes the
later attempts, and after the last delay a delivery ends `failed`, kept for a manual
replay (`webhook.replay_requested`), which sends it again at once and restarts its
schedule. A redelivered message finds its deliveries already made and leaves the pending
ones to the scheduler, so it sends nothing twice.

Once a terminal call's `call.completed` (or an ended session's `session.ended`) has
its deliveries (or no target), the call's (session's) `notify_pending` is cleared;
`NotifySweep` (scheduler.py) handles the ended calls and sessions whose event never
arrived. The bus retries a message (`HANDLER_RETRY_DELAYS`) only when the handler itself
failed, e.g. the store was unreachable.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Protocol

from switchboard_notifier.payload import UnusableEvent, build_payload
from switchboard_shared.calls.events import CUSTOMER_EVENT_TYPES, Event, EventType
from switchboard_shared.domain.call_changes import CallChanges, CallGuard
from switchboard_shared.domain.calls import utcnow
from switchboard_shared.domain.webhooks import (
    DEFAULT_WEBHOOK_EVENTS,
    Delivery,
    DeliveryAttempt,
    DeliveryFilter,
    DeliveryStatus,
    WebhookEndpoint,
)
from switchboard_shared.observability.metrics import WEBHOOK_DELIVERIES_ENDED
from switchboard_shared.ports import (
    Bus,
    CallStore,
    MessageContext,
    Reject,
    SessionStore,
    Subscription,
    WebhookStore,
)
from switchboard_shared.runtime.settings import Settings
from switchboard_shared.webhooks.sender import AttemptOutcome, AttemptResult, WebhookSender
from switchboard_shared.webhooks.signing import generate_secret, live_secrets, sign

log = logging.getLogger(__name__)

QUEUE = "notifier.events"
ROUTING_KEYS = ("call.*", "session.*", "webhook.*", "batch.*")
# Bus retries of a message whose handling failed (the store down, say); webhook retries
# are scheduled by the store, not here. An ended call's event that exhausts them is still
# delivered by the completion sweep.
HANDLER_RETRY_DELAYS: tuple[float, ...] = (1.0, 5.0, 30.0, 120.0, 300.0)
ABANDONED = "the endpoint no longer receives this event (URL or events changed)"


class DeliveryStore(CallStore, SessionStore, WebhookStore, Protocol):
    """The part of the store the notifier uses: calls and sessions (their completion
    flags) and webhook endpoints with their deliveries."""


class WebhookNotifier:
    """Delivers customer webhooks for the events on the `notifier.events` queue, and
    makes the scheduled attempts `DeliveryScheduler` hands it."""

    def __init__(
        self,
        store: DeliveryStore,
        bus: Bus,
        settings: Settings,
        sender: WebhookSender | None = None,
    ) -> None:
        self._store = store
        self._bus = bus
        self._settings = settings
        self._lease = timedelta(seconds=settings.delivery_lease_seconds)
        self._sender = sender or WebhookSender(settings)
        self._owns_sender = sender is None

    def subscription(self) -> Subscription:
        """The queue, bindings and the bus's retry schedule for failed handling."""
        return Subscription(
            queue=QUEUE,
            routing_keys=ROUTING_KEYS,
            handler=self.handle,
            retry_delays=HANDLER_RETRY_DELAYS,
            prefetch=self._settings.notifier_prefetch,
        )

    async def close(self) -> None:
        if self._owns_sender:
            await self._sender.close()

    async def handle(self, event: Event, context: MessageContext) -> None:
        """The bus handler: `deliver`. Raises only when handling failed (the bus retries
        the message), and Reject for an event that can never be delivered."""
        await self.deliver(event)

    async def deliver(self, event: Event) -> None:
        """Create the deliveries of `event` and make the first attempt of each one
        created now; a replay request sends its delivery again. Returns once every new
        delivery is delivered, failed, or scheduled for a retry."""
        if event.type is EventType.WEBHOOK_REPLAY_REQUESTED:
            await self._replay(event)
            return
        if event.type not in CUSTOMER_EVENT_TYPES:
            return  # internal commands (call.requested, ...) never reach a customer
        created = await self._create_deliveries(event)
        if event.type is EventType.CALL_COMPLETED and event.call_id:
            # The store now remembers the completion's deliveries: the sweep can skip it.
            await self._store.update_call(
                event.call_id,
                CallChanges(notify_pending=False),
                guard=CallGuard(notify_pending=True),
            )
        if event.type is EventType.SESSION_ENDED and event.session_id:
            await self._store.mark_session_notified(event.session_id)
        if created:
            endpoint = await self._endpoint(event.tenant_id)
            await asyncio.gather(*(self.send(delivery, endpoint) for delivery in created))

    async def retry(self, delivery: Delivery) -> None:
        """One scheduled attempt at a delivery claimed from the store.

        The event's targets are worked out again: a delivery whose URL is no longer one
        of them ends `failed`, saying why, and a target the event has no delivery for yet
        (the endpoint moved to a new URL, say) gets one, attempted now. A delivery
        started by a replay is sent anyway.
        """
        if delivery.replayed_at is not None:
            await self.send(delivery)
            return
        urls = await self._target_urls(delivery.tenant_id, delivery.event_type, delivery.call_id)
        to_send = []
        if delivery.url in urls:
            to_send.append(delivery)
        else:
            await self._abandon(delivery)
        lease_until = utcnow() + self._lease
        for url in urls:
            if url == delivery.url:
                continue
            added, made = await self._store.create_delivery(
                Delivery(
                    tenant_id=delivery.tenant_id,
                    event_id=delivery.event_id,
                    event_type=delivery.event_type,
                    call_id=delivery.call_id,
                    url=url,
                    payload=delivery.payload,  # the same event: the same body
                    next_attempt_at=lease_until,
                )
            )
            if made:
                to_send.append(added)
        await asyncio.gather(*(self.send(one) for one in to_send))

    async def send(
        self, delivery: Delivery, endpoint: WebhookEndpoint | None = None
    ) -> Delivery | None:
        """Attempt `delivery` once and record the outcome with its next due time."""
        endpoint = endpoint or await self._endpoint(delivery.tenant_id)
        outcome = await self._attempt(delivery, endpoint)
        status, next_attempt_at = self._next_step(delivery, outcome)
        recorded = await self._store.record_attempt(
            delivery.delivery_id, outcome.attempt, status, next_attempt_at
        )
        if recorded is not None and status is not DeliveryStatus.PENDING:
            WEBHOOK_DELIVERIES_ENDED.labels(_end_reason(status, outcome)).inc()
        return recorded

    # --- which deliveries ------------------------------------------------------------

    async def _create_deliveries(self, event: Event) -> list[Delivery]:
        """The deliveries of a customer event created now: one that exists already was
        made by an earlier copy of this message and is the scheduler's."""
        urls = await self._target_urls(event.tenant_id, event.type, event.call_id)
        await self._settle_abandoned(event, urls)
        if not urls:
            return []
        try:
            payload = build_payload(event)
        except UnusableEvent as exc:
            raise Reject(str(exc)) from None
        # Held by this handler until its first attempt is recorded; should it die
        # mid-attempt, the scheduler takes the delivery over when the lease ends.
        lease_until = utcnow() + self._lease
        created = []
        for url in urls:
            delivery, made = await self._store.create_delivery(
                Delivery(
                    tenant_id=event.tenant_id,
                    event_id=event.id,
                    event_type=str(event.type),
                    call_id=event.call_id,
                    url=url,
                    payload=payload,
                    next_attempt_at=lease_until,
                )
            )
            if made:
                created.append(delivery)
            elif delivery.status is DeliveryStatus.PENDING and delivery.next_attempt_at is None:
                # Made before the store scheduled retries (its retry message just came
                # back from the broker): the scheduler takes it from now on.
                await self._store.restart_delivery(delivery.delivery_id, utcnow(), None)
        return created

    async def _settle_abandoned(self, event: Event, urls: list[str]) -> None:
        """A pending delivery of `event` whose URL is no longer a target (the endpoint
        changed its URL or events, or was deleted, since) ends `failed`, saying why, so
        none stays pending for ever; a replay still sends it."""
        page = await self._store.list_deliveries(
            event.tenant_id,
            DeliveryFilter(event_id=event.id, status=DeliveryStatus.PENDING),
            limit=100,
            cursor=None,
        )
        for delivery in page.deliveries:
            if delivery.url not in urls and delivery.replayed_at is None:
                await self._abandon(delivery)

    async def _abandon(self, delivery: Delivery) -> Delivery | None:
        recorded = await self._store.record_attempt(
            delivery.delivery_id, DeliveryAttempt(error=ABANDONED), DeliveryStatus.FAILED
        )
        if recorded is not None:
            WEBHOOK_DELIVERIES_ENDED.labels("abandoned").inc()
        return recorded

    async def _target_urls(self, tenant_id: str, event_type: str, call_id: str | None) -> list[str]:
        endpoint = await self._store.get_webhook_endpoint(tenant_id)
        subscribed = endpoint.events if endpoint else DEFAULT_WEBHOOK_EVENTS
        urls: list[str] = []
        # A test event goes to the endpoint whatever it subscribes to.
        is_test = event_type == EventType.WEBHOOK_TEST
        if endpoint and endpoint.url and (is_test or event_type in subscribed):
            urls.append(endpoint.url)
        if call_id and not is_test and event_type in subscribed:
            call = await self._store.get_call(call_id, tenant_id)
            if call and call.webhook_url and call.webhook_url not in urls:
                urls.append(call.webhook_url)
        return urls

    async def _replay(self, event: Event) -> None:
        """Send the delivery a replay asks for now, through a fresh schedule, unless this
        request (a redelivered or retried message) or a later one already started it."""
        delivery_id = str(event.data.get("delivery_id", ""))
        delivery = await self._store.get_delivery(delivery_id, event.tenant_id)
        if delivery is None:
            log.warning("replay of an unknown delivery %s ignored", delivery_id)
            return
        # Stores keep milliseconds: compare at that precision.
        requested_at = _aware(event.occurred_at)
        requested_at = requested_at.replace(microsecond=requested_at.microsecond // 1000 * 1000)
        if delivery.replayed_at is not None and _aware(delivery.replayed_at) >= requested_at:
            return
        restarted = await self._store.restart_delivery(
            delivery.delivery_id, utcnow() + self._lease, requested_at
        )
        if restarted is not None:
            await self.send(restarted)

    async def _endpoint(self, tenant_id: str) -> WebhookEndpoint:
        """The tenant's endpoint, whose secret signs every delivery; created without a
        URL when the tenant only uses per-call URLs (the secret is shown by the API)."""
        endpoint = await self._store.get_webhook_endpoint(tenant_id)
        if endpoint is None:
            # Atomic: whoever creates it first (another worker, the API) wins, and every
            # delivery is signed with the one secret the customer can be shown.
            endpoint, _ = await self._store.create_webhook_endpoint(
                WebhookEndpoint(tenant_id=tenant_id, url=None, secret=generate_secret())
            )
        return endpoint

    # --- one attempt --------------------------------------------------------------------

    async def _attempt(self, delivery: Delivery, endpoint: WebhookEndpoint) -> AttemptOutcome:
        body = delivery.payload.encode()
        headers = sign(delivery.event_id, body, live_secrets(endpoint))
        outcome = await self._sender.send(delivery.url, body, headers)
        if outcome.result is not AttemptResult.DELIVERED:
            log.info(
                "webhook attempt %s: %s",
                outcome.result,
                outcome.attempt.error,
                extra={"call_id": delivery.call_id, "delivery_id": delivery.delivery_id},
            )
        return outcome

    def _next_step(
        self, delivery: Delivery, outcome: AttemptOutcome
    ) -> tuple[DeliveryStatus, datetime | None]:
        """The status after this attempt and, while pending, when the next one is due:
        the schedule's next delay, or the receiver's Retry-After when longer (at most the
        schedule's longest delay). After the schedule's last delay: failed."""
        if outcome.result is AttemptResult.DELIVERED:
            return DeliveryStatus.DELIVERED, None
        delays = self._settings.webhook_retry_delays
        step = delivery.schedule_attempts  # attempts of this schedule before this one
        if outcome.result is AttemptResult.FAILED or step >= len(delays):
            return DeliveryStatus.FAILED, None
        delay = delays[step]
        if outcome.retry_after is not None:
            delay = max(delay, min(outcome.retry_after, max(delays)))
        return DeliveryStatus.PENDING, utcnow() + timedelta(seconds=delay)


def _end_reason(status: DeliveryStatus, outcome: AttemptOutcome) -> str:
    if status is DeliveryStatus.DELIVERED:
        return "delivered"
    return "refused" if outcome.result is AttemptResult.FAILED else "exhausted"


def _aware(moment: datetime) -> datetime:
    # A store may hand back naive datetimes; every one it keeps is UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)

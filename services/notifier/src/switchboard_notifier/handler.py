"""The notifier's consumer: turns call events into signed customer webhooks.

For each customer-facing event the handler works out the targets (the tenant's endpoint
if it subscribes to the event type, and the call's own `webhook_url`), records one
`Delivery` per (event, URL) — the store dedupes them, so a redelivered message finds the
deliveries it made before — and makes one attempt at each delivery still pending. When
some need another try it raises `RetryLater` and the bus brings the message back after
the next delay of the webhook schedule: nothing sleeps here. On the last attempt the
deliveries still pending are marked failed, and stay in the log for a manual replay
(`webhook.replay_requested`), which sends one delivery again through a fresh schedule.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from switchboard_notifier.payload import UnusableEvent, build_payload
from switchboard_shared.domain.webhooks import (
    DEFAULT_WEBHOOK_EVENTS,
    Delivery,
    DeliveryAttempt,
    DeliveryFilter,
    DeliveryStatus,
    WebhookEndpoint,
)
from switchboard_shared.events import CUSTOMER_EVENT_TYPES, Event, EventType
from switchboard_shared.ports import Bus, MessageContext, Reject, RetryLater, Store, Subscription
from switchboard_shared.settings import Settings
from switchboard_shared.webhook_sender import AttemptOutcome, AttemptResult, WebhookSender
from switchboard_shared.webhook_signing import generate_secret, live_secrets, sign

log = logging.getLogger(__name__)

QUEUE = "notifier.events"
ROUTING_KEYS = ("call.*", "webhook.*")


class WebhookNotifier:
    """Delivers customer webhooks for the events on the `notifier.events` queue."""

    def __init__(
        self, store: Store, bus: Bus, settings: Settings, sender: WebhookSender | None = None
    ) -> None:
        self._store = store
        self._bus = bus
        self._settings = settings
        self._sender = sender or WebhookSender(settings)
        self._owns_sender = sender is None

    def subscription(self) -> Subscription:
        """The queue, bindings and retry schedule (`webhook_retry_delays`) to consume with."""
        return Subscription(
            queue=QUEUE,
            routing_keys=ROUTING_KEYS,
            handler=self.handle,
            retry_delays=tuple(self._settings.webhook_retry_delays),
            prefetch=self._settings.notifier_prefetch,
        )

    async def close(self) -> None:
        if self._owns_sender:
            await self._sender.close()

    async def handle(self, event: Event, context: MessageContext) -> None:
        """Attempt every pending delivery of `event` once.

        Returns when each is delivered or failed for good; raises RetryLater when some
        are worth another attempt (never on the message's last attempt: those are marked
        failed instead), and Reject for an event that can never be delivered.
        """
        if event.type is EventType.WEBHOOK_REPLAY_REQUESTED:
            deliveries = await self._replayed(event)
        elif event.type in CUSTOMER_EVENT_TYPES:
            deliveries = await self._deliveries_for(event)
        else:
            return  # internal commands (call.requested, ...) never reach a customer
        if not deliveries:
            return
        endpoint = await self._endpoint(event.tenant_id)
        outcomes = await asyncio.gather(
            *(self._attempt(delivery, endpoint) for delivery in deliveries)
        )
        retry_after: list[float] = []
        waiting = 0
        for delivery, outcome in zip(deliveries, outcomes, strict=True):
            status = _status_after(outcome, last_attempt=context.is_last_attempt)
            await self._store.record_attempt(delivery.delivery_id, outcome.attempt, status)
            if status is DeliveryStatus.PENDING:
                waiting += 1
                if outcome.retry_after is not None:
                    retry_after.append(outcome.retry_after)
        if waiting:
            raise RetryLater(
                f"{waiting} webhook deliveries of {event.id} to retry",
                delay=self._delay(context, retry_after),
            )

    # --- which deliveries ------------------------------------------------------------

    async def _deliveries_for(self, event: Event) -> list[Delivery]:
        """The pending deliveries of a customer event, created on first sight."""
        urls = await self._target_urls(event)
        await self._settle_abandoned(event, urls)
        if not urls:
            return []
        try:
            payload = build_payload(event)
        except UnusableEvent as exc:
            raise Reject(str(exc)) from None
        pending = []
        for url in urls:
            delivery, _ = await self._store.create_delivery(
                Delivery(
                    tenant_id=event.tenant_id,
                    event_id=event.id,
                    event_type=str(event.type),
                    call_id=event.call_id,
                    url=url,
                    payload=payload,
                )
            )
            # Delivered or failed for good by an earlier copy of this message: done.
            if delivery.status is DeliveryStatus.PENDING:
                pending.append(delivery)
        return pending

    async def _settle_abandoned(self, event: Event, urls: list[str]) -> None:
        """A pending delivery whose URL is no longer a target (the endpoint changed its
        URL or events, or was deleted, between retries) ends `failed`, saying why, so
        none stays pending for ever; a replay still sends it."""
        page = await self._store.list_deliveries(
            event.tenant_id,
            DeliveryFilter(event_id=event.id, status=DeliveryStatus.PENDING),
            limit=100,
            cursor=None,
        )
        for delivery in page.deliveries:
            if delivery.url not in urls:
                reason = "the endpoint no longer receives this event (URL or events changed)"
                await self._store.record_attempt(
                    delivery.delivery_id, DeliveryAttempt(error=reason), DeliveryStatus.FAILED
                )

    async def _target_urls(self, event: Event) -> list[str]:
        endpoint = await self._store.get_webhook_endpoint(event.tenant_id)
        subscribed = endpoint.events if endpoint else DEFAULT_WEBHOOK_EVENTS
        urls: list[str] = []
        # A test event goes to the endpoint whatever it subscribes to.
        wanted = event.type is EventType.WEBHOOK_TEST or event.type in subscribed
        if endpoint and endpoint.url and wanted:
            urls.append(endpoint.url)
        if event.call_id and event.type is not EventType.WEBHOOK_TEST and event.type in subscribed:
            call = await self._store.get_call(event.call_id, event.tenant_id)
            if call and call.webhook_url and call.webhook_url not in urls:
                urls.append(call.webhook_url)
        return urls

    async def _replayed(self, event: Event) -> list[Delivery]:
        """The delivery a replay asks for, unless an attempt made since the request
        already settled it (a redelivered or retried replay message)."""
        delivery_id = str(event.data.get("delivery_id", ""))
        delivery = await self._store.get_delivery(delivery_id, event.tenant_id)
        if delivery is None:
            log.warning("replay of an unknown delivery %s ignored", delivery_id)
            return []
        # Stores keep milliseconds: compare at that precision.
        requested_at = _aware(event.occurred_at)
        requested_at = requested_at.replace(microsecond=requested_at.microsecond // 1000 * 1000)
        settled_since = delivery.status is not DeliveryStatus.PENDING and any(
            _aware(attempt.at) >= requested_at for attempt in delivery.attempts
        )
        return [] if settled_since else [delivery]

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

    def _delay(self, context: MessageContext, retry_after: list[float]) -> float | None:
        """The receivers' Retry-After, never sooner than the schedule's next delay; None
        (the schedule) when no receiver asked."""
        if not retry_after:
            return None
        delays = self._settings.webhook_retry_delays
        scheduled = delays[context.attempt - 1] if context.attempt <= len(delays) else 0.0
        return max(max(retry_after), scheduled)


def _aware(moment: datetime) -> datetime:
    # A store may hand back naive datetimes; every one it keeps is UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _status_after(outcome: AttemptOutcome, *, last_attempt: bool) -> DeliveryStatus:
    if outcome.result is AttemptResult.DELIVERED:
        return DeliveryStatus.DELIVERED
    if outcome.result is AttemptResult.FAILED or last_attempt:
        return DeliveryStatus.FAILED
    return DeliveryStatus.PENDING

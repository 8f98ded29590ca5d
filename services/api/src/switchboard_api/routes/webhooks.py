"""`/v1/webhooks`: the tenant's webhook endpoint, its signing secret, and a test event."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from switchboard_api.deps import BusDep, SettingsDep, StoreDep, TenantDep
from switchboard_api.error_codes import (
    BROKER_UNAVAILABLE,
    INVALID_WEBHOOK_URL,
    PAYLOAD_TOO_LARGE,
    TENANT_ROUTE,
    VALIDATION_ERROR,
    WEBHOOK_NOT_CONFIGURED,
)
from switchboard_api.json_body import JsonApiRoute
from switchboard_shared.calls.events import Event, EventType
from switchboard_shared.domain.calls import utcnow
from switchboard_shared.domain.webhooks import DEFAULT_WEBHOOK_EVENTS, WebhookEndpoint
from switchboard_shared.http.errors import ApiError, clip, error_responses_doc
from switchboard_shared.ports import PublishError, Store
from switchboard_shared.runtime.settings import Settings
from switchboard_shared.webhooks.signing import generate_secret
from switchboard_shared.webhooks.url_guard import UnsafeUrl, check_url

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"], route_class=JsonApiRoute)

MAX_URL_LENGTH = 2048
# The event types an endpoint may subscribe to (`webhook.test` always reaches it).
SubscribableEvent = Literal[
    "call.dialing",
    "call.ringing",
    "call.in_progress",
    "call.attempt_ended",
    "call.completed",
    "session.ended",
    "batch.completed",
]
TEST_MESSAGE = "This is a test webhook from Switchboard."


class WebhookEndpointRequest(BaseModel):
    """Body of `PUT /v1/webhooks`."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"url": "https://example.com/switchboard", "events": ["call.completed"]}]
        },
    )

    url: str = Field(
        min_length=1,
        max_length=MAX_URL_LENGTH,
        description="https:// URL that receives the events; checked against SSRF rules.",
    )
    events: list[SubscribableEvent] = Field(
        default_factory=lambda: list(DEFAULT_WEBHOOK_EVENTS),  # type: ignore[arg-type]
        min_length=1,
        description="Event types to send; `call.completed` and `session.ended` when omitted.",
    )


class WebhookEndpointView(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "url": "https://example.com/switchboard",
                    "events": ["call.completed"],
                    "created_at": "2026-01-15T09:00:00Z",
                    "updated_at": "2026-01-15T09:00:00Z",
                    "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                }
            ]
        }
    )

    url: str | None = Field(
        description="Null when only per-call `webhook_url`s are used (they share the secret)."
    )
    events: list[str]
    created_at: datetime
    updated_at: datetime
    secret: str | None = Field(
        default=None,
        description="The signing secret (`whsec_...`): only in the response that created it.",
    )


class RotatedSecret(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "secret": "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
                    "previous_secret_expires_at": "2026-01-16T09:00:00Z",
                }
            ]
        }
    )

    secret: str = Field(description="The new signing secret; shown only here.")
    previous_secret_expires_at: datetime | None = Field(
        description="Until then every webhook is also signed with the previous secret."
    )


class TestEventAccepted(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"event_id": "evt_2b7c9d1e4f5a6b7c8d9e0f1a"}]}
    )

    event_id: str = Field(description="The `id` (and `webhook-id`) of the test webhook.")


def _view(endpoint: WebhookEndpoint, *, with_secret: bool = False) -> WebhookEndpointView:
    view = WebhookEndpointView(
        url=endpoint.url,
        events=endpoint.events,
        created_at=endpoint.created_at,
        updated_at=endpoint.updated_at,
    )
    if with_secret:
        view.secret = endpoint.secret  # set only here, so exclude_unset shows it
    return view


async def _endpoint(store: Store, tenant_id: str) -> WebhookEndpoint:
    endpoint = await store.get_webhook_endpoint(tenant_id)
    if endpoint is None:
        raise ApiError(404, "webhook_not_configured", "no webhook endpoint is configured")
    return endpoint


async def checked_url(url: str, settings: Settings) -> str:
    """`url` if the SSRF guard lets it through now; 422 `invalid_webhook_url` otherwise."""
    try:
        await check_url(
            url,
            allow_http=settings.webhook_allow_http,
            allow_private=settings.webhook_allow_private_networks,
        )
    except UnsafeUrl as exc:
        raise ApiError(422, "invalid_webhook_url", f"webhook URL refused: {clip(exc)}") from None
    return url


@router.put(
    "",
    response_model=WebhookEndpointView,
    response_model_exclude_unset=True,
    summary="Set the webhook endpoint",
    responses={
        201: {"model": WebhookEndpointView, "description": "Created, with its signing secret"},
        **error_responses_doc(
            *TENANT_ROUTE, PAYLOAD_TOO_LARGE, VALIDATION_ERROR, INVALID_WEBHOOK_URL
        ),
    },
)
async def put_webhook(
    body: WebhookEndpointRequest,
    tenant: TenantDep,
    store: StoreDep,
    settings: SettingsDep,
    response: Response,
) -> WebhookEndpointView:
    """Create (201) or replace (200) the endpoint that receives the tenant's events.

    The response that first configures the endpoint carries the signing `secret`; later
    updates keep the secret and do not show it again (rotate it to get a new one).
    """
    url = await checked_url(body.url.strip(), settings)
    events = list(dict.fromkeys(body.events))  # keep the order, drop repeats
    now = utcnow()
    existing, _ = await store.create_webhook_endpoint(
        WebhookEndpoint(
            tenant_id=tenant.tenant_id, url=None, secret=generate_secret(), created_at=now
        )
    )
    endpoint = existing.model_copy(update={"url": url, "events": events, "updated_at": now})
    await store.put_webhook_endpoint(endpoint)
    # The secret is shown by the PUT that first sets a URL: a secret made for per-call
    # URLs only (url None, by the notifier or a rotation) was never shown by a PUT.
    first_configured = existing.url is None
    if first_configured:
        response.status_code = 201
    return _view(endpoint, with_secret=first_configured)


@router.get(
    "",
    response_model=WebhookEndpointView,
    response_model_exclude_unset=True,
    summary="Get the webhook endpoint",
    responses=error_responses_doc(*TENANT_ROUTE, WEBHOOK_NOT_CONFIGURED),
)
async def get_webhook(tenant: TenantDep, store: StoreDep) -> WebhookEndpointView:
    """The endpoint's URL and event types (never the secret); 404 `webhook_not_configured`."""
    return _view(await _endpoint(store, tenant.tenant_id))


@router.delete(
    "",
    status_code=204,
    response_class=Response,
    summary="Delete the webhook endpoint",
    responses=error_responses_doc(*TENANT_ROUTE, WEBHOOK_NOT_CONFIGURED),
)
async def delete_webhook(tenant: TenantDep, store: StoreDep) -> Response:
    """Remove the endpoint and its secrets; no event is sent to it afterwards."""
    if not await store.delete_webhook_endpoint(tenant.tenant_id):
        raise ApiError(404, "webhook_not_configured", "no webhook endpoint is configured")
    return Response(status_code=204)


@router.post(
    "/rotate-secret",
    response_model=RotatedSecret,
    summary="Rotate the signing secret",
    responses=error_responses_doc(*TENANT_ROUTE),
)
async def rotate_secret(tenant: TenantDep, store: StoreDep, settings: SettingsDep) -> RotatedSecret:
    """Issue a new signing secret. The previous one keeps signing too (a second
    `webhook-signature` entry) for `webhook_secret_rotation_hours`, so receivers can
    switch without missing a webhook. Without an endpoint, creates the secret that signs
    per-call `webhook_url` deliveries."""
    now = utcnow()
    existing, created = await store.create_webhook_endpoint(
        WebhookEndpoint(
            tenant_id=tenant.tenant_id, url=None, secret=generate_secret(), created_at=now
        )
    )
    window = timedelta(hours=settings.webhook_secret_rotation_hours)
    if created:
        endpoint = existing
    elif window > timedelta(0):
        endpoint = existing.model_copy(
            update={
                "secret": generate_secret(),
                "previous_secret": existing.secret,
                "previous_secret_expires_at": now + window,
                "updated_at": now,
            }
        )
    else:
        endpoint = existing.model_copy(
            update={
                "secret": generate_secret(),
                "previous_secret": None,
                "previous_secret_expires_at": None,
                "updated_at": now,
            }
        )
    await store.put_webhook_endpoint(endpoint)
    return RotatedSecret(
        secret=endpoint.secret, previous_secret_expires_at=endpoint.previous_secret_expires_at
    )


@router.post(
    "/test",
    status_code=202,
    response_model=TestEventAccepted,
    summary="Send a test webhook",
    responses=error_responses_doc(*TENANT_ROUTE, WEBHOOK_NOT_CONFIGURED, BROKER_UNAVAILABLE),
)
async def send_test_event(tenant: TenantDep, store: StoreDep, bus: BusDep) -> TestEventAccepted:
    """Queue a signed `webhook.test` event to the endpoint; its delivery shows in
    `GET /v1/webhook-deliveries` like any other."""
    endpoint = await _endpoint(store, tenant.tenant_id)
    if endpoint.url is None:
        raise ApiError(404, "webhook_not_configured", "no webhook endpoint URL is configured")
    event = Event(
        type=EventType.WEBHOOK_TEST, tenant_id=tenant.tenant_id, data={"message": TEST_MESSAGE}
    )
    try:
        await bus.publish(event)
    except PublishError as exc:
        raise ApiError(503, "broker_unavailable", "the event could not be queued; retry") from exc
    return TestEventAccepted(event_id=event.id)

"""Which index serves a listing of a tenant's deliveries, alike in both stores.

Every listing is newest first within one tenant; each filter with an index of its own
has one, (tenant_id, <filter>, created_at desc, delivery_id desc), so a page reads only
matching deliveries, whatever the size of the tenant's log. The most selective filter
given picks it: neither store can tell that an event has a delivery or two while a
status has millions (SQLite keeps no statistics; MongoDB's trial can pick the status).
"""

from __future__ import annotations

from switchboard_shared.domain.webhooks import DeliveryFilter

BY_TENANT = "deliveries_by_tenant_created"
BY_EVENT = "deliveries_by_tenant_event"
BY_CALL = "deliveries_by_tenant_call"
BY_STATUS = "deliveries_by_tenant_status"


def delivery_listing_index(filters: DeliveryFilter) -> str:
    """The index a listing with `filters` reads. An `event_type` alone (a customer's
    listing) reads the tenant's log newest first until its page is full."""
    if filters.event_id is not None:
        return BY_EVENT
    if filters.call_id is not None:
        return BY_CALL
    if filters.status is not None:
        return BY_STATUS
    return BY_TENANT

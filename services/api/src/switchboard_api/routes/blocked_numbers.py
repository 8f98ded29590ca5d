"""`/v1/blocked-numbers`: numbers the key's tenant never wants called."""

from __future__ import annotations

from fastapi import APIRouter, Response

from switchboard_api.deps import PageCursor, PageLimit, StoreDep, TenantDep
from switchboard_api.error_codes import (
    BLOCKED_NUMBER_NOT_FOUND,
    INVALID_CURSOR,
    INVALID_PHONE,
    TENANT_ROUTE,
    VALIDATION_ERROR,
)
from switchboard_api.json_body import JsonApiRoute
from switchboard_api.schemas import BlockedNumberList
from switchboard_shared.domain.blocked_numbers import BlockedNumber, BlockedNumberView
from switchboard_shared.domain.errors import InvalidRequest, NotFound
from switchboard_shared.domain.phone import InvalidPhoneNumber, normalize_e164
from switchboard_shared.http.errors import clip, error_responses_doc

router = APIRouter(prefix="/v1/blocked-numbers", tags=["blocked numbers"], route_class=JsonApiRoute)


def _e164(phone: str) -> str:
    try:
        return normalize_e164(phone)
    except InvalidPhoneNumber as exc:
        raise InvalidRequest("invalid_phone", str(exc)) from exc


@router.put(
    "/{phone}",
    response_model=BlockedNumberView,
    status_code=201,
    summary="Block a number",
    responses={
        200: {"model": BlockedNumberView, "description": "The number was blocked already"},
        **error_responses_doc(*TENANT_ROUTE, INVALID_PHONE),
    },
)
async def block_number(
    phone: str, tenant: TenantDep, store: StoreDep, response: Response
) -> BlockedNumberView:
    """Block `phone` (E.164; `+` may be sent as `%2B`) for this tenant: creating a call to
    it is refused with `422 number_blocked`, and a batch reports (or skips) its row.
    201 when newly blocked, 200 when it was already."""
    entry, created = await store.block_number(
        BlockedNumber(tenant_id=tenant.tenant_id, phone=_e164(phone))
    )
    if not created:
        response.status_code = 200
    return entry.public_view()


@router.delete(
    "/{phone}",
    status_code=204,
    summary="Unblock a number",
    responses=error_responses_doc(*TENANT_ROUTE, INVALID_PHONE, BLOCKED_NUMBER_NOT_FOUND),
)
async def unblock_number(phone: str, tenant: TenantDep, store: StoreDep) -> Response:
    """Calls to `phone` are allowed again; 404 `blocked_number_not_found` if it was not
    blocked."""
    if not await store.unblock_number(tenant.tenant_id, _e164(phone)):
        raise NotFound("blocked_number_not_found", f"'{clip(phone)}' is not blocked")
    return Response(status_code=204)


@router.get(
    "",
    response_model=BlockedNumberList,
    summary="List blocked numbers",
    responses=error_responses_doc(*TENANT_ROUTE, INVALID_CURSOR, VALIDATION_ERROR),
)
async def list_blocked_numbers(
    tenant: TenantDep, store: StoreDep, limit: PageLimit = 20, cursor: PageCursor = None
) -> BlockedNumberList:
    """The tenant's blocked numbers, newest first, with cursor pagination."""
    page = await store.list_blocked_numbers(tenant.tenant_id, limit, cursor)
    return BlockedNumberList(
        data=[entry.public_view() for entry in page.numbers], next_cursor=page.next_cursor
    )

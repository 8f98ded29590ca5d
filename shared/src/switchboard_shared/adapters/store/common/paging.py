"""The opaque paging cursor both stores issue: a position (created_at, id) in a listing.

Lists are newest first by (created_at, id); a cursor names the last item of a page and
the next page starts strictly after it, so items inserted meanwhile (newer, hence before
the cursor) are neither skipped nor repeated. The cursor is URL-safe base64 of a small
JSON array tagged with the listing it belongs to, so a delivery cursor is refused by the
call listing. Times are whole milliseconds since the epoch: the precision both stores
keep. `read_call_page` and `read_delivery_page` are the frame of every listing (limit
check, cursor, one extra item to tell whether more follow); a store supplies the fetch.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, TypeVar

from switchboard_shared.domain.batches import Batch, BatchPage
from switchboard_shared.domain.blocked_numbers import BlockedNumber, BlockedNumberPage
from switchboard_shared.domain.calls import Call, CallPage
from switchboard_shared.domain.webhooks import Delivery, DeliveryPage
from switchboard_shared.ports import InvalidCursor

Listing = Literal["calls", "deliveries", "blocked_numbers", "batches"]
T = TypeVar("T")

_TAGS: dict[str, str] = {"calls": "c", "deliveries": "d", "blocked_numbers": "b", "batches": "B"}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Anything longer is not a cursor we issued; refuse before decoding it.
_MAX_CURSOR_CHARS = 512


@dataclass(frozen=True)
class Position:
    """Where a page ended: the last item's creation time and id."""

    created_at: datetime
    id: str


def to_millis(moment: datetime) -> int:
    """Whole milliseconds since the epoch, rounded down (as BSON dates do); naive = UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def from_millis(millis: int) -> datetime:
    """The UTC datetime of `to_millis`' output."""
    return _EPOCH + timedelta(milliseconds=millis)


def encode_cursor(listing: Listing, position: Position) -> str:
    """An opaque, URL-safe token for `position` in `listing`."""
    raw = json.dumps([_TAGS[listing], to_millis(position.created_at), position.id])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(listing: Listing, cursor: str) -> Position:
    """The position `encode_cursor` packed; InvalidCursor for anything else, including a
    cursor of another listing."""
    if not cursor or len(cursor) > _MAX_CURSOR_CHARS:
        raise InvalidCursor("invalid cursor")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        tag, millis, item_id = json.loads(raw)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise InvalidCursor("invalid cursor") from exc
    valid = (
        tag == _TAGS[listing]
        and type(millis) is int
        and isinstance(item_id, str)
        and 0 < len(item_id) <= 200
    )
    if not valid:
        raise InvalidCursor("invalid cursor")
    try:
        return Position(from_millis(millis), item_id)
    except OverflowError as exc:
        raise InvalidCursor("invalid cursor") from exc


def check_limit(limit: int) -> None:
    """Raises ValueError for a page size below 1 (the API clamps the maximum)."""
    if limit < 1:
        raise ValueError("limit must be at least 1")


def split_page(
    listing: Listing, fetched: Sequence[T], limit: int, position: Callable[[T], Position]
) -> tuple[list[T], str | None]:
    """The page out of `fetched` (read with `limit + 1` so one extra item tells whether
    more follow) and the cursor continuing after it, None on the last page."""
    page = list(fetched[:limit])
    if len(fetched) <= limit:
        return page, None
    return page, encode_cursor(listing, position(page[-1]))


# Reads up to `limit` items of a listing, newest first, strictly after the position (None:
# from the newest).
Fetch = Callable[[Position | None, int], Awaitable[Sequence[T]]]


async def _read_page(
    listing: Listing,
    limit: int,
    cursor: str | None,
    fetch: Fetch[T],
    position: Callable[[T], Position],
) -> tuple[list[T], str | None]:
    check_limit(limit)
    after = decode_cursor(listing, cursor) if cursor is not None else None
    return split_page(listing, await fetch(after, limit + 1), limit, position)


async def read_call_page(limit: int, cursor: str | None, fetch: Fetch[Call]) -> CallPage:
    """The page of calls after `cursor`, with the cursor to the next one: the frame of
    every store's `list_calls`, around its own `fetch`. Raises ValueError for a limit
    below 1 and InvalidCursor for a cursor that is not one of this listing's."""
    calls, next_cursor = await _read_page(
        "calls", limit, cursor, fetch, lambda call: Position(call.created_at, call.call_id)
    )
    return CallPage(calls=calls, next_cursor=next_cursor)


async def read_delivery_page(
    limit: int, cursor: str | None, fetch: Fetch[Delivery]
) -> DeliveryPage:
    """As `read_call_page`, for `list_deliveries`."""
    deliveries, next_cursor = await _read_page(
        "deliveries", limit, cursor, fetch, lambda d: Position(d.created_at, d.delivery_id)
    )
    return DeliveryPage(deliveries=deliveries, next_cursor=next_cursor)


async def read_blocked_number_page(
    limit: int, cursor: str | None, fetch: Fetch[BlockedNumber]
) -> BlockedNumberPage:
    """As `read_call_page`, for `list_blocked_numbers` (ordered by created_at, phone)."""
    numbers, next_cursor = await _read_page(
        "blocked_numbers", limit, cursor, fetch, lambda b: Position(b.created_at, b.phone)
    )
    return BlockedNumberPage(numbers=numbers, next_cursor=next_cursor)


async def read_batch_page(limit: int, cursor: str | None, fetch: Fetch[Batch]) -> BatchPage:
    """As `read_call_page`, for `list_batches`."""
    batches, next_cursor = await _read_page(
        "batches", limit, cursor, fetch, lambda b: Position(b.created_at, b.batch_id)
    )
    return BatchPage(batches=batches, next_cursor=next_cursor)

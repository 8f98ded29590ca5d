"""Counted slots: at most `limit` holders at a time per scope (a tenant's concurrent calls,
say), shared by every replica through the store (`SlotStore`)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


class Slot(BaseModel):
    """One slot of `scope` held by `holder` (a call id, say) since `taken_at`."""

    scope: str
    holder: str
    taken_at: datetime

"""Numbers a tenant never wants called: stored normalized (E.164), one entry per number."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from switchboard_shared.domain.calls import utcnow


class BlockedNumber(BaseModel):
    """One tenant's block on one number (`phone` in E.164)."""

    tenant_id: str
    phone: str
    created_at: datetime = Field(default_factory=utcnow)

    def public_view(self) -> BlockedNumberView:
        return BlockedNumberView(phone=self.phone, created_at=self.created_at)


class BlockedNumberView(BaseModel):
    """A blocked number as `/v1/blocked-numbers` shows it."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"phone": "+996700000001", "created_at": "2026-01-15T09:30:00Z"}]
        }
    )

    phone: str = Field(description="The number, E.164.")
    created_at: datetime = Field(description="When it was blocked.")


class BlockedNumberPage(BaseModel):
    numbers: list[BlockedNumber]
    next_cursor: str | None

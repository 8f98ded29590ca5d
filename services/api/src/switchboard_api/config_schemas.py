"""Bodies of `GET/PUT /v1/config` (the OpenAPI document is the contract)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from switchboard_shared.domain.agents import Tier
from switchboard_shared.domain.tenant_config import SessionDefaults

CONFIG_EXAMPLE: dict[str, JsonValue] = {
    "tier": "basic",
    "prompt": "You are a helpful, friendly voice assistant. Keep answers short.",
    "language": "en",
    "max_duration": 300,
    "webhook_url": None,
}


class UpdateConfigRequest(SessionDefaults):
    """Body of `PUT /v1/config`: any subset of the fields; the ones left out keep their
    value (the defaults shown are a new tenant's). Unknown fields and nulls are refused."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"tier": "advanced", "max_duration": 600}]},
    )


class ConfigView(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [CONFIG_EXAMPLE]})

    tier: Tier = Field(description="`basic` (low cost, low latency) or `advanced` (quality).")
    prompt: str = Field(description="The agent's instructions (at most 8 KiB as UTF-8).")
    language: str = Field(description="ISO 639-1 code of the conversation's language.")
    max_duration: int = Field(description="Longest a session lasts, in seconds (10-3600).")
    webhook_url: str | None = Field(
        description="The tenant's webhook endpoint (read-only here; see `PUT /v1/webhooks`)."
    )

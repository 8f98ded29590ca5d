"""A tenant's defaults for new sessions (and calls whose agent leaves them open): tier,
prompt, language and the longest a session may last. Rules only, no I/O."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import pycountry
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from switchboard_shared.domain.agents import Tier
from switchboard_shared.domain.calls import utcnow

DEFAULT_PROMPT = "You are a helpful, friendly voice assistant. Keep answers short."
DEFAULT_LANGUAGE = "en"
DEFAULT_MAX_DURATION = 300
MIN_MAX_DURATION = 10
MAX_MAX_DURATION = 3600
MAX_PROMPT_BYTES = 8 * 1024


def iso_639_1(code: str) -> str:
    """`code` if it is a two-letter ISO 639-1 language code (lower case)."""
    if len(code) != 2 or not code.isascii() or not code.islower():
        raise ValueError("language must be a lower-case two-letter ISO 639-1 code, like 'en'")
    if pycountry.languages.get(alpha_2=code) is None:
        raise ValueError(f"'{code}' is not an ISO 639-1 language code")
    return code


def prompt_within_limit(prompt: str) -> str:
    """`prompt` if it is at most 8 KiB as UTF-8 (the limit is on bytes, not characters)."""
    size = len(prompt.encode("utf-8", "surrogatepass"))
    if size > MAX_PROMPT_BYTES:
        raise ValueError(f"prompt is {size} bytes as UTF-8; the limit is {MAX_PROMPT_BYTES}")
    return prompt


Language = Annotated[str, AfterValidator(iso_639_1)]
Prompt = Annotated[str, AfterValidator(prompt_within_limit)]
MaxDuration = Annotated[int, Field(ge=MIN_MAX_DURATION, le=MAX_MAX_DURATION, strict=True)]


class SessionDefaults(BaseModel):
    """The values a session takes unless its request gives its own."""

    model_config = ConfigDict(extra="forbid")

    tier: Tier = Tier.BASIC
    prompt: Prompt = DEFAULT_PROMPT
    language: Language = DEFAULT_LANGUAGE
    max_duration: MaxDuration = DEFAULT_MAX_DURATION


class TenantConfig(SessionDefaults):
    """A tenant's stored configuration; a tenant without one has the defaults."""

    tenant_id: str
    updated_at: datetime = Field(default_factory=utcnow)

    @classmethod
    def defaults_for(cls, tenant_id: str) -> TenantConfig:
        return cls(tenant_id=tenant_id)

    def with_changes(self, changes: SessionDefaults, fields: set[str]) -> TenantConfig:
        """A copy with the `fields` of `changes` applied (validated already) and a new
        `updated_at`."""
        update = {name: getattr(changes, name) for name in fields}
        return self.model_copy(update={**update, "updated_at": utcnow()})

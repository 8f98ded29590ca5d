"""Tenants and their API keys. Keys are random, shown once, and stored only as SHA-256."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import datetime

from pydantic import BaseModel, Field

from switchboard_shared.domain.calls import utcnow

API_KEY_PREFIX = "sk_"
# The calls a tenant may have dialing or live at once, unless set otherwise.
DEFAULT_MAX_CONCURRENT_CALLS = 10
# The most an operator may set: beyond it a limit protects nothing on one deployment.
MAX_CONCURRENT_CALLS_LIMIT = 10_000


class Tenant(BaseModel):
    tenant_id: str = Field(default_factory=lambda: str(uuid.uuid4()))
    name: str
    created_at: datetime = Field(default_factory=utcnow)
    # Tenants stored before the limit existed read as the default.
    max_concurrent_calls: int = DEFAULT_MAX_CONCURRENT_CALLS


class ApiKey(BaseModel):
    key_id: str = Field(default_factory=lambda: f"key_{uuid.uuid4().hex[:16]}")
    tenant_id: str
    key_hash: str
    # First characters of the key, so operators can tell keys apart without the secret.
    hint: str
    created_at: datetime = Field(default_factory=utcnow)
    revoked_at: datetime | None = None


def generate_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


def new_api_key(tenant_id: str, raw_key: str | None = None) -> tuple[str, ApiKey]:
    """Returns the raw key (to show once) and the record to store."""
    raw = raw_key or generate_api_key()
    return raw, ApiKey(tenant_id=tenant_id, key_hash=hash_api_key(raw), hint=raw[:7])

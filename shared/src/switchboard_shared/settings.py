"""Every setting Switchboard reads, from `SWITCHBOARD_*` environment variables.

Documented one by one in docs/configuration.md; `bootstrap` is the only reader.
Nested groups use `__`: `SWITCHBOARD_VOCODE__BASE_URL=https://api.vocode.dev`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ServiceName = Literal["all", "api", "dialer", "webhook-ingest", "notifier", "provider-sim"]


class ProviderSettings(BaseModel):
    """Connection to one voice-AI provider. A provider without `base_url` is disabled."""

    base_url: str | None = None
    api_key: SecretStr = SecretStr("")
    callback_secret: SecretStr = SecretStr("")
    from_number: str | None = None
    max_in_flight: int = Field(default=50, ge=1)
    timeout_seconds: float = Field(default=10.0, gt=0)


class SimulatorSettings(ProviderSettings):
    """The built-in simulator works with no configuration: setting one of its variables
    keeps the other defaults."""

    base_url: str | None = "http://127.0.0.1:8000/sim"
    api_key: SecretStr = SecretStr("sim-api-key")
    callback_secret: SecretStr = SecretStr("sim-callback-secret")
    from_number: str | None = "+15005550000"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="SWITCHBOARD_", env_nested_delimiter="__", extra="ignore"
    )

    # --- process -----------------------------------------------------------------
    env: Literal["development", "production"] = "development"
    service: ServiceName = "all"
    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Path(".switchboard")
    log_level: str = "INFO"
    log_json: bool = True

    # --- state and broker (unset = embedded SQLite / in-process bus) ---------------
    sqlite_path: Path | None = None
    mongodb_url: str | None = None
    mongodb_database: str = "switchboard"
    broker_url: str | None = None
    exchange: str = "switchboard.events"
    queue_prefix: str = ""

    # --- public API ----------------------------------------------------------------
    dev_api_key: str | None = None
    # Agents upserted from this YAML file at start-up (the all-in-one mode defaults to
    # deploy/agents.example.yaml when it exists).
    agents_file: Path | None = None
    max_body_bytes: int = 64 * 1024
    # Requests per second per tenant, in each API process (0: no limit), and the burst.
    api_rate_limit_per_second: float = Field(default=200.0, ge=0)
    api_rate_limit_burst: int = Field(default=400, ge=1)
    idempotency_ttl_hours: int = 24

    # --- providers -------------------------------------------------------------------
    callback_base_url: str = "http://127.0.0.1:8000"
    callback_tolerance_seconds: int = 300
    simulator: SimulatorSettings = SimulatorSettings()
    vocode: ProviderSettings = ProviderSettings()
    voxpria: ProviderSettings = ProviderSettings()

    # --- dialer ----------------------------------------------------------------------
    dial_retry_delays: list[float] = [2, 10, 30, 120, 300]
    dialer_prefetch: int = 100
    watchdog_interval_seconds: float = 30
    watchdog_grace_seconds: float = 120
    # A queued call whose last change is older than this is re-driven from the store
    # (its `call.requested` or a retry of it may have been lost in the broker).
    reconcile_queued_after_seconds: float = Field(default=60, gt=0)
    outbox_interval_seconds: float = 5
    outbox_min_age_seconds: float = 10

    # --- notifier ----------------------------------------------------------------------
    webhook_retry_delays: list[float] = [5, 300, 1800, 7200, 18000, 36000, 36000]
    webhook_timeout_seconds: float = 10
    webhook_allow_http: bool = False
    webhook_allow_private_networks: bool = False
    webhook_secret_rotation_hours: float = 24
    notifier_prefetch: int = 50

    # --- provider simulator --------------------------------------------------------
    sim_ring_delay_seconds: float = 0.5
    sim_answer_delay_seconds: float = 0.5
    sim_talk_seconds: float = 1.0
    sim_slow_answer_seconds: float = 5.0
    sim_request_latency_seconds: float = 0.0
    sim_callback_url: str | None = None

    # --- telemetry ------------------------------------------------------------------
    otlp_endpoint: str | None = None
    service_name_prefix: str = "switchboard"

    @field_validator("simulator", mode="before")
    @classmethod
    def _simulator_from_provider_settings(cls, value: Any) -> Any:
        # A plain ProviderSettings given in code means exactly those values.
        if isinstance(value, ProviderSettings) and not isinstance(value, SimulatorSettings):
            return value.model_dump()
        return value

    @property
    def effective_sqlite_path(self) -> Path:
        return self.sqlite_path or self.data_dir / "switchboard.db"

    def provider_settings(self) -> dict[str, ProviderSettings]:
        """Enabled providers by adapter name."""
        candidates = {"simulator": self.simulator, "vocode": self.vocode, "voxpria": self.voxpria}
        return {name: ps for name, ps in candidates.items() if ps.base_url}


def environment_variable_names() -> set[str]:
    """Every `SWITCHBOARD_*` variable `Settings` reads: top-level fields, and
    `GROUP__FIELD` for each provider group. Deployment files are checked against it."""
    names = {f"SWITCHBOARD_{name.upper()}" for name in Settings.model_fields}
    for group, info in Settings.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, ProviderSettings):
            names |= {
                f"SWITCHBOARD_{group.upper()}__{sub.upper()}" for sub in annotation.model_fields
            }
    return names

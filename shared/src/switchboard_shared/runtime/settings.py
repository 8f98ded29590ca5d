"""Every setting Switchboard reads, from `SWITCHBOARD_*` environment variables.

Documented one by one in docs/configuration.md; `bootstrap` is the only reader.
Nested groups use `__`: `SWITCHBOARD_VOCODE__BASE_URL=https://api.vocode.dev`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ServiceName = Literal[
    "all", "api", "dialer", "webhook-ingest", "notifier", "media-edge", "provider-sim"
]


class ProviderSettings(BaseModel):
    """Connection to one voice-AI provider. A provider without `base_url` is disabled."""

    base_url: str | None = None
    api_key: SecretStr = SecretStr("")
    callback_secret: SecretStr = SecretStr("")
    from_number: str | None = None
    max_in_flight: int = Field(default=50, ge=1)
    timeout_seconds: float = Field(default=10.0, gt=0)
    # Limits the provider (or its carrier) sets, held across every dialer replica: calls
    # live at once, and creates per second (carriers allow about 1 per number). None: none.
    max_concurrent_calls: int | None = Field(default=None, ge=1)
    calls_per_second: float | None = Field(default=None, gt=0)


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

    # --- HTTP server -----------------------------------------------------------------
    # Requests one process works on at once; more are answered `503 overloaded` at once.
    http_max_in_flight: int = Field(default=256, ge=1)
    http_retry_after_seconds: int = Field(default=1, ge=1)
    # Longer than clients' idle-connection timeouts (httpx 5 s, load balancers 60 s): a
    # server closing an idle connection just as a client reuses it is a ReadError there.
    http_keep_alive_seconds: int = Field(default=75, ge=1)

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
    # `POST /v1/batches` carries up to 100,000 rows.
    max_batch_body_bytes: int = 64 * 1024 * 1024
    # Requests per second per tenant, in each API process (0: no limit), and the burst.
    api_rate_limit_per_second: float = Field(default=200.0, ge=0)
    api_rate_limit_burst: int = Field(default=400, ge=1)
    idempotency_ttl_hours: int = 24

    # --- browser voice sessions ------------------------------------------------------
    # Where browsers reach the media edge (join_url = this + /sessions/{id}?token=...);
    # wss:// in production, behind the same TLS as the API.
    media_edge_url: str = "ws://127.0.0.1:8000/media"
    # Signs the join tokens; every api and media-edge replica needs the same one.
    # At least 32 bytes: HS256 wants a key as long as its hash (RFC 7518, 3.2).
    session_token_secret: SecretStr = SecretStr("dev-only-session-token-secret-change-me")
    session_join_token_seconds: float = Field(default=60, gt=0)
    # A session nobody relays for this long (never joined after its token expired, or
    # its media edge died) ends client_disconnected.
    session_disconnect_grace_seconds: float = Field(default=10, gt=0)
    # How often the timeout sweep ends sessions past their max_duration.
    session_sweep_interval_seconds: float = Field(default=2, gt=0)

    # --- providers -------------------------------------------------------------------
    callback_base_url: str = "http://127.0.0.1:8000"
    callback_tolerance_seconds: int = 300
    simulator: SimulatorSettings = SimulatorSettings()
    vocode: ProviderSettings = ProviderSettings()
    voxpria: ProviderSettings = ProviderSettings()
    vapi: ProviderSettings = ProviderSettings()
    # Retell signs its webhooks with the API key: its `callback_secret` signs only the
    # `ref` of our callback URLs.
    retell: ProviderSettings = ProviderSettings()
    # Browser voice sessions only (Conversational AI WebSocket API): https://api.elevenlabs.io
    elevenlabs: ProviderSettings = ProviderSettings()
    # Which providers serve each session tier (basic, advanced), in the order tried: ones
    # with a session adapter (simulator, elevenlabs). A session naming an agent tries that
    # agent's routes for its tier first. One name or a list per tier.
    session_tier_providers: dict[str, list[str]] = {
        "basic": ["simulator"],
        "advanced": ["simulator"],
    }
    session_provider_agent_id: str = "sim-session-agent"

    # --- dialer ----------------------------------------------------------------------
    dial_retry_delays: list[float] = [2, 10, 30, 120, 300]
    dialer_prefetch: int = 100
    # Provider circuit breakers (docs/providers.md): a replica opens one when, within the
    # window, at least `threshold` creates failed before the provider accepted them and
    # they were at least `ratio` of its creates; open, it refuses creates for the
    # cool-down, then lets one probe through.
    breaker_failure_threshold: int = Field(default=5, ge=1)
    breaker_failure_ratio: float = Field(default=0.5, gt=0, le=1)
    breaker_window_seconds: float = Field(default=30, gt=0)
    breaker_cool_down_seconds: float = Field(default=15, gt=0)
    watchdog_interval_seconds: float = 30
    watchdog_grace_seconds: float = 120
    # A queued call whose last change is older than this is re-driven from the store
    # (its `call.requested` or a retry of it may have been lost in the broker).
    reconcile_queued_after_seconds: float = Field(default=60, gt=0)
    outbox_interval_seconds: float = 5
    # How often the dialer's dispatcher queues scheduled calls that came due.
    dispatch_interval_seconds: float = Field(default=1, gt=0)
    # How often the dialer looks for batches whose calls all ended (`batch.completed`).
    batch_completion_interval_seconds: float = Field(default=5, gt=0)
    # Concurrency slots (docs/batches.md): how often the sweep looks, and how long a slot
    # stands before the sweep asks whether its call still needs it (a dead dialer's).
    slot_sweep_interval_seconds: float = Field(default=5, gt=0)
    slot_lease_seconds: float = Field(default=60, gt=0)
    outbox_min_age_seconds: float = 10

    # --- notifier ----------------------------------------------------------------------
    webhook_retry_delays: list[float] = [5, 300, 1800, 7200, 18000, 36000, 36000]
    webhook_timeout_seconds: float = 10
    webhook_allow_http: bool = False
    webhook_allow_private_networks: bool = False
    webhook_secret_rotation_hours: float = 24
    notifier_prefetch: int = 50
    # The store schedules webhook retries: how often a notifier claims the due ones, and
    # how long it holds one it attempts (a notifier that dies mid-attempt delays it this
    # long). The lease must outlast an attempt (`webhook_timeout_seconds`).
    delivery_poll_interval_seconds: float = Field(default=1, gt=0)
    delivery_lease_seconds: float = Field(default=60, gt=0)
    # An ended call whose `call.completed` produced no delivery this long after it ended
    # (the event was lost on the way) is delivered from the store.
    notify_sweep_after_seconds: float = Field(default=30, gt=0)

    # --- provider simulator --------------------------------------------------------
    sim_ring_delay_seconds: float = 0.5
    sim_answer_delay_seconds: float = 0.5
    sim_talk_seconds: float = 1.0
    sim_slow_answer_seconds: float = 5.0
    sim_request_latency_seconds: float = 0.0
    # The outage test number answers 503 this long after its first create attempt.
    sim_outage_seconds: float = Field(default=3.0, ge=0)
    # The accepted-then-timeout test number holds its create answer this long.
    sim_accept_timeout_seconds: float = Field(default=30.0, ge=0)
    sim_callback_url: str | None = None

    # --- telemetry ------------------------------------------------------------------
    otlp_endpoint: str | None = None
    service_name_prefix: str = "switchboard"

    @field_validator("session_token_secret")
    @classmethod
    def _long_enough_to_sign(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value().encode()) < 32:
            raise ValueError("must be at least 32 bytes")
        return value

    @field_validator("session_tier_providers", mode="before")
    @classmethod
    def _one_provider_is_a_list_of_one(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {
                tier: [names] if isinstance(names, str) else names for tier, names in value.items()
            }
        return value

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
        candidates = {
            "simulator": self.simulator,
            "vocode": self.vocode,
            "voxpria": self.voxpria,
            "vapi": self.vapi,
            "retell": self.retell,
        }
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

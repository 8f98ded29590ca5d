"""The interfaces business logic talks to; adapters live in `switchboard_shared.adapters`.

`store` (state), `bus` (messages) and `provider` (voice-AI providers), each with the errors
its adapters raise. Import from here or from the module.
"""

from switchboard_shared.ports.bus import (
    Bus,
    Handler,
    MessageContext,
    PublishError,
    Reject,
    RetryLater,
    Subscription,
)
from switchboard_shared.ports.provider import (
    InvalidCallback,
    LookupUnsupported,
    MalformedCallback,
    Provider,
    ProviderAmbiguousError,
    ProviderCallRequest,
    ProviderCallState,
    ProviderError,
    ProviderPermanentError,
    ProviderTransientError,
    RangeNotSatisfiable,
    RecordingNotFound,
    RecordingStream,
)
from switchboard_shared.ports.session_store import ConfigStore, SessionStore
from switchboard_shared.ports.store import (
    ActiveSessionExists,
    AgentStore,
    AlreadyExists,
    BatchStore,
    BreakerStore,
    CallStore,
    IdempotencyConflict,
    InvalidCursor,
    SlotStore,
    Store,
    StoreError,
    TenantStore,
    WebhookStore,
)

__all__ = [
    "ActiveSessionExists",
    "AgentStore",
    "AlreadyExists",
    "BatchStore",
    "BreakerStore",
    "Bus",
    "CallStore",
    "ConfigStore",
    "Handler",
    "IdempotencyConflict",
    "InvalidCallback",
    "InvalidCursor",
    "LookupUnsupported",
    "MalformedCallback",
    "MessageContext",
    "Provider",
    "ProviderAmbiguousError",
    "ProviderCallRequest",
    "ProviderCallState",
    "ProviderError",
    "ProviderPermanentError",
    "ProviderTransientError",
    "PublishError",
    "RangeNotSatisfiable",
    "RecordingNotFound",
    "RecordingStream",
    "Reject",
    "RetryLater",
    "SessionStore",
    "SlotStore",
    "Store",
    "StoreError",
    "Subscription",
    "TenantStore",
    "WebhookStore",
]

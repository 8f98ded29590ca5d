"""The notifier process: customer webhook delivery."""

from __future__ import annotations

from switchboard_notifier.handler import WebhookNotifier
from switchboard_shared.bootstrap import Components
from switchboard_shared.runtime import ServiceParts, consumer


def parts(components: Components) -> ServiceParts:
    notifier = WebhookNotifier(components.store, components.bus, components.settings)
    return ServiceParts(
        name="notifier",
        workers=[consumer(components, notifier.subscription())],
        closers=[notifier.close],
    )

"""Provider adapters: one per voice-AI provider, each mapping that provider's API,
statuses and callbacks to ours. `build_providers` is what the composition root calls."""

from __future__ import annotations

from collections.abc import Callable

from switchboard_shared.adapters.providers.http import HttpProvider
from switchboard_shared.adapters.providers.retell import RetellProvider
from switchboard_shared.adapters.providers.simulator import SimulatorProvider
from switchboard_shared.adapters.providers.vapi import VapiProvider
from switchboard_shared.adapters.providers.vocode import VocodeProvider
from switchboard_shared.adapters.providers.voxpria import VoxpriaProvider
from switchboard_shared.ports import Provider
from switchboard_shared.runtime.settings import ProviderSettings, Settings

# Each adapter class, called with (settings, callback_tolerance_seconds=...), is a Provider.
ADAPTERS: dict[str, Callable[..., Provider]] = {
    "simulator": SimulatorProvider,
    "vocode": VocodeProvider,
    "voxpria": VoxpriaProvider,
    "vapi": VapiProvider,
    "retell": RetellProvider,
}


def takes_inline_agent(name: str) -> bool:
    """Whether the adapter `name` can place a call for a route with no provider agent id."""
    adapter = ADAPTERS[name]
    return isinstance(adapter, type) and issubclass(adapter, HttpProvider) and adapter.inline_agent


def build_provider(name: str, settings: ProviderSettings, tolerance_seconds: float) -> Provider:
    """The adapter called `name`; KeyError for a provider Switchboard has no adapter for."""
    return ADAPTERS[name](settings, callback_tolerance_seconds=tolerance_seconds)


def build_providers(settings: Settings) -> dict[str, Provider]:
    """An adapter for every enabled provider (one with a `base_url`), by name.

    The caller owns them and closes them (`await provider.close()`) at shutdown.
    """
    return {
        name: build_provider(name, provider_settings, settings.callback_tolerance_seconds)
        for name, provider_settings in settings.provider_settings().items()
    }


__all__ = [
    "RetellProvider",
    "SimulatorProvider",
    "VapiProvider",
    "VocodeProvider",
    "VoxpriaProvider",
    "build_provider",
    "build_providers",
]

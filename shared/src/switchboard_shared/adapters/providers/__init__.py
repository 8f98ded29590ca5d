"""Provider adapters: one per voice-AI provider, each mapping that provider's API,
statuses and callbacks to ours. `build_providers` is what the composition root calls."""

from __future__ import annotations

from switchboard_shared.adapters.providers.simulator import SimulatorProvider
from switchboard_shared.adapters.providers.vocode import VocodeProvider
from switchboard_shared.adapters.providers.voxpria import VoxpriaProvider
from switchboard_shared.ports import Provider
from switchboard_shared.settings import ProviderSettings, Settings

ADAPTERS: dict[str, type[SimulatorProvider] | type[VocodeProvider] | type[VoxpriaProvider]] = {
    "simulator": SimulatorProvider,
    "vocode": VocodeProvider,
    "voxpria": VoxpriaProvider,
}


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
    "SimulatorProvider",
    "VocodeProvider",
    "VoxpriaProvider",
    "build_provider",
    "build_providers",
]

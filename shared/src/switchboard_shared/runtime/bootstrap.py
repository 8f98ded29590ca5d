"""The composition root: the only place that reads settings and picks adapters."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from switchboard_shared.ports import Bus, Provider, Store
from switchboard_shared.runtime.settings import Settings

log = logging.getLogger(__name__)


def build_store(settings: Settings) -> Store:
    """MongoDB when SWITCHBOARD_MONGODB_URL is set, else the embedded SQLite file."""
    if settings.mongodb_url:
        from switchboard_shared.adapters.store.mongo import MongoStore

        return MongoStore(settings.mongodb_url, settings.mongodb_database)
    from switchboard_shared.adapters.store.sqlite import SqliteStore

    return SqliteStore(settings.effective_sqlite_path)


def build_bus(settings: Settings) -> Bus:
    """RabbitMQ when SWITCHBOARD_BROKER_URL is set, else the in-process bus."""
    if settings.broker_url:
        from switchboard_shared.adapters.bus.rabbitmq import RabbitBus

        return RabbitBus(
            settings.broker_url,
            exchange=settings.exchange,
            queue_prefix=settings.queue_prefix,
            connection_name=f"switchboard-{settings.service}",
        )
    if settings.service != "all":
        log.warning(
            "no SWITCHBOARD_BROKER_URL: service %r uses an in-process bus and will not "
            "talk to other processes",
            settings.service,
        )
    from switchboard_shared.adapters.bus.inprocess import InProcessBus

    return InProcessBus()


def build_providers(settings: Settings) -> dict[str, Provider]:
    from switchboard_shared.adapters.providers import build_providers as build

    return build(settings)


@dataclass
class Components:
    """What a process talks to. Built once, started once, closed once."""

    settings: Settings
    store: Store
    bus: Bus
    providers: dict[str, Provider] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings) -> Components:
        return cls(
            settings=settings,
            store=build_store(settings),
            bus=build_bus(settings),
            providers=build_providers(settings),
        )

    async def start(self) -> None:
        await self.store.start()
        await self.bus.start()

    async def close(self) -> None:
        await self.bus.close()
        for provider in self.providers.values():
            await provider.close()
        await self.store.close()

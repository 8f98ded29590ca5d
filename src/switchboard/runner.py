"""`switchboard run <target>`: the same modules, wired for one service or for all of them.

`all` is the embedded mode: every service and the provider simulator in one process on
one port, with the SQLite store and the in-process bus unless SWITCHBOARD_BROKER_URL /
SWITCHBOARD_MONGODB_URL say otherwise, demo agents, a demo tenant and a printed key.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Literal, get_args

from switchboard.demo import DemoBackend, demo_router
from switchboard_api import service as api_service
from switchboard_dialer import service as dialer_service
from switchboard_ingest import service as ingest_service
from switchboard_media_edge import service as media_edge_service
from switchboard_notifier import service as notifier_service
from switchboard_provider_sim import service as sim_service
from switchboard_shared.runtime.bootstrap import Components
from switchboard_shared.runtime.operator import ensure_demo_tenant
from switchboard_shared.runtime.process import ServiceParts, run_process, run_stateless_process
from switchboard_shared.runtime.settings import Settings

log = logging.getLogger(__name__)

Target = Literal["all", "api", "dialer", "webhook-ingest", "notifier", "media-edge", "provider-sim"]
TARGETS: tuple[str, ...] = get_args(Target)
DEMO_AGENTS_FILE = Path("deploy/agents.example.yaml")
SIM_MOUNT_PATH = "/sim"


def all_in_one_settings(settings: Settings) -> Settings:
    """Defaults that make one process on one port work: the simulator and the callback
    URLs follow the port, and customer webhooks may go to local receivers."""
    explicit = settings.model_fields_set
    local = f"http://127.0.0.1:{settings.port}"
    updates: dict[str, object] = {"service": "all"}
    if "callback_base_url" not in explicit:
        updates["callback_base_url"] = local
    if "media_edge_url" not in explicit:
        updates["media_edge_url"] = f"ws://127.0.0.1:{settings.port}/media"
    if "simulator" not in explicit:
        updates["simulator"] = settings.simulator.model_copy(
            update={"base_url": local + SIM_MOUNT_PATH}
        )
    if "webhook_allow_http" not in explicit:
        updates["webhook_allow_http"] = True
    if "webhook_allow_private_networks" not in explicit:
        updates["webhook_allow_private_networks"] = True
    if "agents_file" not in explicit and DEMO_AGENTS_FILE.exists():
        updates["agents_file"] = DEMO_AGENTS_FILE
    return settings.model_copy(update=updates)


def _demo_setup(components: Components, demo: DemoBackend) -> Callable[[], Awaitable[None]]:
    """Seeds the embedded mode with a demo tenant and key (the API loads the agents); the
    demo page's backend uses that key."""

    async def start() -> None:
        settings = components.settings
        key = await ensure_demo_tenant(components.store, settings.dev_api_key)
        demo.api_key = key
        banner = (
            f"\n  Switchboard is running on http://{settings.host}:{settings.port}"
            f"\n  Demo API key: {key}\n"
            f"  Try: curl -X POST http://{settings.host}:{settings.port}/v1/calls "
            f'-H "Authorization: Bearer {key}" -H "Content-Type: application/json" '
            """-d '{"phone": "+996700000000", "agent": "altynai"}'\n"""
            f"  Voice session demo: http://{settings.host}:{settings.port}/demo\n"
        )
        print(banner, flush=True)

    return start


def run(target: str, settings: Settings | None = None) -> None:
    settings = settings or Settings()
    if target == "provider-sim":
        run_stateless_process("provider-sim", [sim_service.parts(settings)], settings)
        return
    if target == "all":
        settings = all_in_one_settings(settings)

        def build_all(components: Components) -> list[ServiceParts]:
            demo = DemoBackend(f"http://127.0.0.1:{components.settings.port}")
            # The demo page (a person's try-out) only in development.
            development = components.settings.env == "development"
            return [
                ServiceParts(
                    name="setup",
                    startup=[_demo_setup(components, demo)],
                    routers=[demo_router()] if development else [],
                    state={"demo": demo},
                ),
                api_service.parts(components),
                ingest_service.parts(components),
                dialer_service.parts(components),
                notifier_service.parts(components),
                media_edge_service.parts(components),
                sim_service.parts(components.settings, mount_path=SIM_MOUNT_PATH),
            ]

        run_process("all", build_all, settings)
        return
    single = {
        "api": api_service.parts,
        "dialer": dialer_service.parts,
        "webhook-ingest": ingest_service.parts,
        "notifier": notifier_service.parts,
        "media-edge": media_edge_service.parts,
    }[target]
    settings = settings.model_copy(update={"service": target})

    run_process(target, lambda components: [single(components)], settings)


__all__ = ["TARGETS", "run"]

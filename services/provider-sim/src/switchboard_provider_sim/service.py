"""The simulator as a part of a process: alone at the root, or mounted in the all-in-one."""

from __future__ import annotations

from switchboard_provider_sim.app import create_app
from switchboard_shared.runtime.process import ServiceParts
from switchboard_shared.runtime.settings import Settings


def parts(settings: Settings, mount_path: str | None = None) -> ServiceParts:
    app = create_app(settings)
    if mount_path:
        # A mounted app's lifespan never runs: close its callback client explicitly.
        return ServiceParts(
            name="provider-sim",
            mounts={mount_path: app},
            closers=[app.state.simulator.close],
        )
    return ServiceParts(name="provider-sim", root_app=app)

"""Request dependencies of the simulator's routes, as `Annotated` aliases (the api's style)."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Request

from switchboard_provider_sim.lifecycle import Simulator


# `async def` though it never awaits: FastAPI runs a plain `def` dependency in its
# thread pool, a thread hop per request.
# app.state is untyped: create_app puts the simulator there, so the cast holds.
async def get_simulator(request: Request) -> Simulator:
    return cast(Simulator, request.app.state.simulator)


SimulatorDep = Annotated[Simulator, Depends(get_simulator)]

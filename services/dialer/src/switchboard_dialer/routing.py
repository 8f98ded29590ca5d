"""Which of an agent's routes a call tries, in which order."""

from __future__ import annotations

import itertools
import random

from switchboard_shared.domain.agents import Agent, Route, Tier, route_rank


def trial_order(
    agent: Agent, tier: Tier | None = None, rng: random.Random | None = None
) -> list[tuple[int, Route]]:
    """The agent's routes for `tier` with their positions: by priority, and among routes
    of one priority a weighted random order (a route of weight 3 comes first three
    times as often as one of weight 1), so equal routes share the load."""
    rng = rng or random.Random()  # load spreading, not security
    ordered: list[tuple[int, Route]] = []
    ranked = agent.routes_for(tier)
    for _, group in itertools.groupby(ranked, key=lambda pair: route_rank(*pair)):
        members = list(group)
        # Efraimidis-Spirakis: sorting by u^(1/w) draws a weighted order without repeats.
        members.sort(key=lambda pair: rng.random() ** (1 / pair[1].weight), reverse=True)
        ordered.extend(members)
    return ordered

"""Agents: routes (and the single-provider form), tiers, placeholders."""

from __future__ import annotations

import random

import pytest
from pydantic import ValidationError

from switchboard_dialer.routing import trial_order
from switchboard_shared.domain.agents import (
    Agent,
    Route,
    Tier,
    agent_spec,
    fill_placeholders,
)
from switchboard_shared.domain.tenant_config import SessionDefaults

TENANT_DEFAULTS = SessionDefaults(prompt="Be brief, {{name}}.", language="ky", max_duration=90)


def agent(*routes: Route, **fields: object) -> Agent:
    return Agent.model_validate({"key": "a", "name": "A", "routes": list(routes), **fields})


def test_the_single_provider_fields_load_as_one_route() -> None:
    old = Agent.model_validate(
        {
            "key": "a",
            "name": "A",
            "provider": "vocode",
            "provider_agent_id": "v-1",
            "from_number": "+15005550001",
        }
    )
    assert old.routes == [
        Route(provider="vocode", provider_agent_id="v-1", from_number="+15005550001")
    ]


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({}, "no routes"),
        ({"routes": []}, "at least 1"),
        ({"provider": "vocode", "routes": [{"provider": "vocode"}]}, "not both"),
        ({"routes": [{"provider": "vocode", "wieght": 2}]}, "Extra inputs"),
        ({"routes": [{"provider": "vocode", "weight": 0}]}, "greater than or equal to 1"),
        ({"routes": [{"provider": "vocode", "tier": "premium"}]}, "basic"),
    ],
)
def test_bad_routes_are_refused(fields: dict[str, object], says: str) -> None:
    with pytest.raises(ValidationError, match=says):
        Agent.model_validate({"key": "a", "name": "A", **fields})


def test_routes_for_a_tier_keep_untiered_ones_and_rank_by_priority() -> None:
    basic = Route(provider="simulator", tier=Tier.BASIC)
    advanced = Route(provider="vocode", tier=Tier.ADVANCED)
    any_tier = Route(provider="voxpria", priority=0)
    a = agent(basic, advanced, any_tier)
    # Ranks: basic 0 (its position), advanced 1, any_tier 0 (its priority); ties keep
    # the list's order.
    assert a.routes_for(Tier.BASIC) == [(0, basic), (2, any_tier)]
    assert a.routes_for(Tier.ADVANCED) == [(2, any_tier), (1, advanced)]
    assert [i for i, _ in a.routes_for(None)] == [0, 2, 1]


def test_equal_routes_share_calls_by_weight_and_lower_priorities_wait() -> None:
    heavy = Route(provider="simulator", priority=0, weight=3)
    light = Route(provider="vocode", priority=0, weight=1)
    backup = Route(provider="voxpria", priority=1)
    a = agent(heavy, light, backup)
    rng = random.Random(7)
    firsts = [trial_order(a, rng=rng)[0][1].provider for _ in range(4000)]
    share = firsts.count("simulator") / len(firsts)
    assert 0.70 < share < 0.80  # 3 / (3 + 1)
    assert all(trial_order(a, rng=rng)[-1][1] is backup for _ in range(50))


def test_placeholders_are_filled_from_the_call_variables() -> None:
    variables = {"name": "Aida", "time": 15}
    assert fill_placeholders("Hi {{name}}, at {{ time }}?", variables) == "Hi Aida, at 15?"
    assert fill_placeholders("Hi {{missing}}", variables) == "Hi {{missing}}"
    assert fill_placeholders(None, variables) is None
    spec = agent(Route(provider="vocode"), prompt="Call {{name}}", initial_message="Salam {{name}}")
    filled = agent_spec(spec, variables, TENANT_DEFAULTS)
    assert (filled.prompt, filled.initial_message) == ("Call Aida", "Salam Aida")


def test_what_an_agent_leaves_open_comes_from_the_tenant_defaults() -> None:
    open_agent = agent(Route(provider="vocode"))
    assert (open_agent.prompt, open_agent.language, open_agent.max_duration_seconds) == (
        None,
        None,
        None,
    )
    filled = agent_spec(open_agent, {"name": "Aida"}, TENANT_DEFAULTS)
    # The tenant's prompt gets the call's variables like the agent's own would.
    assert (filled.prompt, filled.language, filled.max_duration_seconds) == (
        "Be brief, Aida.",
        "ky",
        90,
    )
    own = agent(Route(provider="vocode"), prompt="Mine", language="ru", max_duration_seconds=600)
    filled = agent_spec(own, {}, TENANT_DEFAULTS)
    assert (filled.prompt, filled.language, filled.max_duration_seconds) == ("Mine", "ru", 600)
    # What a tenant sees of an agent: its language, else the tenant's.
    assert open_agent.public_view("ky").language == "ky"
    assert own.public_view("ky").language == "ru"

"""`switchboard agents load|list`: the agents callers name, and their provider routing."""

from __future__ import annotations

from pathlib import Path

import click

from switchboard.cli.environment import on_store
from switchboard_shared.runtime.operator import AgentFileError, read_agents_file, upsert_agents


@click.group()
def agents() -> None:
    """Manage agents and their provider routing.

    Callers name an agent by its key (`"agent": "altynai"`); the agent says which
    provider places the call, with which provider agent and number.
    """


@agents.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def load(file: Path) -> None:
    """Create or update the agents of a YAML FILE.

    FILE holds a list under `agents:`, as deploy/agents.example.yaml does. The whole
    file is validated first: one bad entry and nothing is stored (exit 2).
    """
    try:
        loaded = read_agents_file(file)
    except AgentFileError as exc:
        raise click.BadParameter(str(exc), param_hint="FILE") from None
    on_store(lambda store: upsert_agents(store, loaded))
    for agent in loaded:
        click.echo(f"loaded agent {agent.key} ({'enabled' if agent.enabled else 'disabled'})")


@agents.command("list")
def list_agents() -> None:
    """List agents and their routing.

    The operator's view: unlike the API's, it shows each agent's providers, in route order.
    """
    stored = on_store(lambda store: store.list_agents())
    click.echo(f"{'KEY':<16} {'ENABLED':<8} {'LANG':<5} {'ROUTES':<24} {'TENANTS':<20} NAME")
    for agent in stored:
        tenants = ",".join(agent.tenants) if agent.tenants is not None else "*"
        routes = ",".join(route.provider for route in agent.routes)
        click.echo(
            f"{agent.key:<16} {'yes' if agent.enabled else 'no':<8} {agent.language or '-':<5} "
            f"{routes:<24} {tenants:<20} {agent.name}"
        )

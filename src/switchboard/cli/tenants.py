"""`switchboard tenants create|ensure NAME`: the customers whose keys call the API."""

from __future__ import annotations

import click

from switchboard.cli.environment import on_store
from switchboard_shared.runtime.operator import create_tenant, ensure_tenant


def tenant_name(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """A tenant name as given, refusing a blank one (usage error)."""
    if not value.strip():
        raise click.BadParameter("must not be blank", ctx=ctx, param=param)
    return value


@click.group()
def tenants() -> None:
    """Manage tenants.

    A tenant is one customer: it holds API keys, calls, a webhook and its usage.
    """


@tenants.command()
@click.argument("name", callback=tenant_name)
def create(name: str) -> None:
    """Create tenant NAME; prints its id. Exit 1 if NAME is taken (see `ensure`)."""
    tenant = on_store(lambda store: create_tenant(store, name))
    click.echo(f"created tenant {tenant.name} ({tenant.tenant_id})")


@tenants.command()
@click.argument("name", callback=tenant_name)
def ensure(name: str) -> None:
    """Create tenant NAME if missing; print its id.

    Exit 0 whether it was created or existed: for scripts and bootstrap jobs, running
    it again changes nothing. Only the id goes to stdout
    (`TENANT_ID=$(switchboard tenants ensure acme)`); what happened, to stderr.
    """
    tenant, created = on_store(lambda store: ensure_tenant(store, name))
    click.echo(f"tenant '{tenant.name}' {'created' if created else 'exists'}", err=True)
    click.echo(tenant.tenant_id)

"""`switchboard tenants create|ensure|show NAME`, `tenants set-limit NAME`: the customers
whose keys call the API, and the concurrent calls each may have."""

from __future__ import annotations

import click

from switchboard.cli.environment import on_store
from switchboard_shared.calls.concurrency import TENANT, lane
from switchboard_shared.domain.tenants import MAX_CONCURRENT_CALLS_LIMIT, Tenant
from switchboard_shared.ports import Store
from switchboard_shared.runtime.operator import (
    create_tenant,
    ensure_tenant,
    set_tenant_limits,
    tenant_named,
)


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


@tenants.command("set-limit")
@click.argument("name", callback=tenant_name)
@click.option(
    "--max-concurrent-calls",
    type=click.IntRange(1, MAX_CONCURRENT_CALLS_LIMIT),
    required=True,
    help="Calls placed and live at once; more wait in `queued` (default for a tenant: 10).",
)
def set_limit(name: str, max_concurrent_calls: int) -> None:
    """Set tenant NAME's concurrency limit; applies to the next call dialed."""
    tenant = on_store(
        lambda store: set_tenant_limits(store, name, max_concurrent_calls=max_concurrent_calls)
    )
    click.echo(f"tenant {tenant.name}: max_concurrent_calls {tenant.max_concurrent_calls}")


@tenants.command()
@click.argument("name", callback=tenant_name)
def show(name: str) -> None:
    """Print tenant NAME: id, concurrency limit and calls holding a slot now."""

    async def read(store: Store) -> tuple[Tenant, int]:
        tenant = await tenant_named(store, name)
        return tenant, await store.count_slots(lane(TENANT, tenant.tenant_id))

    tenant, active = on_store(read)
    click.echo(f"name: {tenant.name}")
    click.echo(f"tenant_id: {tenant.tenant_id}")
    click.echo(f"max_concurrent_calls: {tenant.max_concurrent_calls}")
    click.echo(f"active_calls: {active}")

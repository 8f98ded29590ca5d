"""`switchboard keys create|list|revoke`: tenants' API keys (only their hashes are kept)."""

from __future__ import annotations

import os

import click

from switchboard.cli.environment import on_store
from switchboard_shared.domain.tenants import ApiKey
from switchboard_shared.ports import Store
from switchboard_shared.runtime.operator import (
    InvalidInput,
    OperatorError,
    check_api_key_format,
    create_api_key,
    revoke_api_key,
    store_api_key,
    tenant_named,
)

tenant_option = click.option(
    "--tenant", "tenant_name", required=True, metavar="NAME", help="The tenant's name."
)


@click.group()
def keys() -> None:
    """Manage API keys.

    A tenant's backend calls the API with one of its keys: `Authorization: Bearer sk_…`.
    """


@keys.command()
@tenant_option
@click.option(
    "--key-from-env",
    "env_var",
    metavar="VAR",
    help="Store the key held in environment variable VAR instead of generating one. "
    "Idempotent: a key already stored for the tenant changes nothing. The key is not "
    "printed.",
)
def create(tenant_name: str, env_var: str | None) -> None:
    """Create an API key for tenant NAME.

    A generated key is printed once, now (`api key: sk_…`): only its hash is kept.
    With --key-from-env VAR the key is yours already (a demo key, a key from a secret
    manager): it must look like ours (sk_ then 8 to 200 letters, digits, _ or -).
    """
    if env_var is None:
        raw, key = on_store(lambda store: generate(store, tenant_name))
        click.echo(f"key id: {key.key_id}")
        click.echo(f"api key: {raw}")
        click.echo("store the key now: it is not shown again (only its hash is kept)")
        return
    raw = key_from_env(env_var)
    key, created = on_store(lambda store: store_given(store, tenant_name, raw))
    if created:
        click.echo(f"stored the key from {env_var} for tenant '{tenant_name}'", err=True)
    else:
        click.echo(f"the key from {env_var} is already stored for '{tenant_name}'", err=True)
    click.echo(f"key id: {key.key_id}")


def key_from_env(env_var: str) -> str:
    """The key in `env_var`; a usage error (the value never shown) unless it is one."""
    raw = os.environ.get(env_var, "")
    if not raw:
        raise click.BadParameter(
            f"environment variable {env_var} is not set", param_hint="--key-from-env"
        )
    try:
        check_api_key_format(raw)
    except InvalidInput as exc:
        raise click.BadParameter(f"{env_var} holds {exc}", param_hint="--key-from-env") from None
    return raw


async def generate(store: Store, tenant_name: str) -> tuple[str, ApiKey]:
    return await create_api_key(store, await tenant_named(store, tenant_name))


async def store_given(store: Store, tenant_name: str, raw: str) -> tuple[ApiKey, bool]:
    key, created = await store_api_key(store, await tenant_named(store, tenant_name), raw)
    if key.revoked_at is not None:
        raise OperatorError(f"that key was revoked ({key.key_id}): choose another")
    return key, created


@keys.command("list")
@tenant_option
def list_keys(tenant_name: str) -> None:
    """List a tenant's keys and their revocation.

    Shows each key's id, first characters, creation and revocation time; never a key.
    """

    async def listing(store: Store) -> list[ApiKey]:
        return await store.list_api_keys((await tenant_named(store, tenant_name)).tenant_id)

    click.echo(f"{'KEY ID':<22} {'HINT':<9} {'CREATED':<26} REVOKED")
    for key in on_store(listing):
        revoked = key.revoked_at.isoformat(timespec="seconds") if key.revoked_at else "-"
        created = key.created_at.isoformat(timespec="seconds")
        click.echo(f"{key.key_id:<22} {key.hint + '…':<9} {created:<26} {revoked}")


@keys.command()
@click.argument("key_id")
def revoke(key_id: str) -> None:
    """Revoke key KEY_ID: requests with it get 401.

    KEY_ID is the key's id (key_…), as `keys list` shows it. Exit 1 if there is no live
    key with that id.
    """
    on_store(lambda store: revoke_api_key(store, key_id))
    click.echo(f"revoked {key_id}")

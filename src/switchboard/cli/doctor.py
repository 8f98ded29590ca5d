"""`switchboard doctor`: is this deployment ready to take calls? One line per check
(`ok` or `FAIL`), exit 1 when any fails; nothing is placed or changed."""

from __future__ import annotations

import asyncio

import click

from switchboard.cli.environment import EXIT_FAILED, load_settings, quiet_libraries
from switchboard_shared.runtime.doctor import diagnose


@click.command()
@click.option(
    "--all-in-one",
    is_flag=True,
    help="Check what `switchboard run all` uses: its callback and simulator URLs follow "
    "SWITCHBOARD_PORT, and local webhook receivers are allowed.",
)
def doctor(all_in_one: bool) -> None:
    """Check settings, store, broker, providers, callback URL and webhook URL rules.

    Providers are checked with a read of a call that does not exist, so no call is
    placed. Exit 0 when every check passes, 1 when one fails, 2 on invalid settings.
    """
    settings = load_settings()
    if all_in_one:
        from switchboard.runner import all_in_one_settings

        settings = all_in_one_settings(settings)
    quiet_libraries()
    checks = asyncio.run(diagnose(settings))
    for check in checks:
        click.echo(f"{'ok' if check.ok else 'FAIL':<4}  {check.name}: {check.detail}")
    if not all(check.ok for check in checks):
        raise SystemExit(EXIT_FAILED)

"""`switchboard run [TARGET]`: every service in one process, or one service."""

from __future__ import annotations

import click

from switchboard import runner


@click.command()
@click.argument(
    "target", type=click.Choice(runner.TARGETS), default="all", required=False, metavar="[TARGET]"
)
def run(target: str) -> None:
    """Run every service, or one, until SIGTERM or Ctrl-C.

    TARGET is all (the default), api, dialer, webhook-ingest, notifier or provider-sim.
    `all` is the embedded mode: every service and the provider simulator on one port,
    with the SQLite store and an in-process bus unless SWITCHBOARD_MONGODB_URL /
    SWITCHBOARD_BROKER_URL are set, the demo agents and a demo tenant whose key is
    printed. Any other target is that one service, as its container runs it.
    """
    runner.run(target)

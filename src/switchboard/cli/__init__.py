"""The `switchboard` command: every operator command, each a thin shell over `shared/`.

    switchboard run [TARGET]                 all services in one process, or one of them
    switchboard tenants create|ensure|show NAME, tenants set-limit NAME --max-concurrent-calls N
    switchboard keys create|list --tenant NAME, keys revoke KEY_ID
    switchboard agents load FILE, agents list
    switchboard dlq list|replay QUEUE
    switchboard doctor [--all-in-one]       is this deployment ready to take calls?
    switchboard providers status

Exit codes (README.md): 0 done, 1 failed (store or broker unreachable, or the stored state
refuses the request), 2 usage (bad command, option, argument, input or setting).
"""

from __future__ import annotations

import importlib

import click

# Loaded when used, so `switchboard keys …` does not import every service (a second of
# start-up); `switchboard --help` loads them all.
COMMANDS = {
    "run": "switchboard.cli.run:run",
    "tenants": "switchboard.cli.tenants:tenants",
    "keys": "switchboard.cli.keys:keys",
    "agents": "switchboard.cli.agents:agents",
    "dlq": "switchboard.cli.dlq:dlq",
    "doctor": "switchboard.cli.doctor:doctor",
    "providers": "switchboard.cli.providers:providers",
}


class CommandTable(click.Group):
    """A group whose subcommands are COMMANDS, in that order, imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, _, attribute = target.partition(":")
        command: click.Command = getattr(importlib.import_module(module), attribute)
        return command


@click.group(cls=CommandTable, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="switchboard", prog_name="switchboard")
def main() -> None:
    """Switchboard: a gateway for outbound AI voice calls.

    Run the services, manage tenants, API keys, agents and dead letters, and check
    that a deployment is ready to take calls (`doctor`). Settings
    come from SWITCHBOARD_* environment variables (docs/configuration.md): the same
    SWITCHBOARD_MONGODB_URL (or SWITCHBOARD_SQLITE_PATH / SWITCHBOARD_DATA_DIR) and
    SWITCHBOARD_BROKER_URL as the services.

    Exit codes: 0 done; 1 failed (the store or broker is unreachable, or what is stored
    refuses the request); 2 usage error (unknown command or option, a missing or invalid
    argument, input or setting; nothing was changed).
    """


__all__ = ["main"]

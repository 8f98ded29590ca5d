"""The `switchboard` command: run services, and the operator's tenants/keys/agents tools."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from switchboard import runner
from switchboard.dead_letters import add_dead_letter_commands, run_dead_letter_command
from switchboard_api.admin import add_admin_commands
from switchboard_shared.bootstrap import build_store
from switchboard_shared.settings import Settings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="switchboard",
        description="Switchboard: a gateway for outbound AI voice calls. "
        "Settings come from SWITCHBOARD_* environment variables (docs/configuration.md).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run every service in one process, or one service")
    run.add_argument("target", nargs="?", default="all", choices=runner.TARGETS)
    add_admin_commands(commands)
    add_dead_letter_commands(commands)
    return parser


async def _run_admin(args: argparse.Namespace) -> int:
    store = build_store(Settings())
    await store.start()
    try:
        return int(await args.handler(args, store))
    finally:
        await store.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "run":
        runner.run(args.target)
        return 0
    if args.command == "dlq":
        return asyncio.run(run_dead_letter_command(args, Settings()))
    return asyncio.run(_run_admin(args))


if __name__ == "__main__":
    sys.exit(main())

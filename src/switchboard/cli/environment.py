"""What every operator command shares: its settings, an open store, and its exit codes.

A failure the operator can act on ends the command with one line on stderr and exit 1
(`Failed`); wrong usage or input exits 2 (Click's `UsageError`, `BadParameter`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import click
from pydantic import ValidationError

from switchboard_shared.ports import Store, StoreError
from switchboard_shared.runtime.bootstrap import build_store
from switchboard_shared.runtime.operator import OperatorError
from switchboard_shared.runtime.settings import Settings

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2  # Click's own code for usage errors

T = TypeVar("T")


class Failed(click.ClickException):
    """The command ran and failed: `Error: <message>` on stderr, exit 1."""

    exit_code = EXIT_FAILED


def one_line(error: BaseException, limit: int = 300) -> str:
    """The first line of `error`'s message, cut to `limit` characters."""
    lines = str(error).strip().splitlines()
    text = lines[0] if lines else type(error).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def load_settings() -> Settings:
    """The SWITCHBOARD_* settings; a usage error (exit 2) naming each invalid one."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            "SWITCHBOARD_" + "__".join(str(p) for p in error["loc"]).upper() + f": {error['msg']}"
            for error in exc.errors()
        )
        raise click.UsageError(f"invalid settings: {problems}") from None


def quiet_libraries() -> None:
    """Operator commands report failures themselves, in one line: keep the libraries
    under them quiet (the bus's "will keep trying", the driver's connection errors)."""
    logging.basicConfig(level=logging.CRITICAL, format="%(levelname)s %(name)s: %(message)s")


def describe_store(settings: Settings) -> str:
    """Where the store is, without credentials."""
    if settings.mongodb_url:
        hosts = settings.mongodb_url.split("://", 1)[-1].rsplit("@", 1)[-1].split("/", 1)[0]
        return f"MongoDB at {hosts}"
    return f"SQLite file {settings.effective_sqlite_path}"


def on_store(operation: Callable[[Store], Awaitable[T]]) -> T:
    """Open the store the settings name, run `operation` on it, close it.

    StoreError and OperatorError end the command with exit 1 and one line on stderr.
    """
    settings = load_settings()
    quiet_libraries()
    return asyncio.run(_on_store(settings, operation))


async def _on_store(settings: Settings, operation: Callable[[Store], Awaitable[T]]) -> T:
    where = describe_store(settings)
    store = build_store(settings)
    try:
        await store.start()
    except StoreError as exc:
        raise Failed(f"cannot open the store ({where}): {one_line(exc)}") from None
    try:
        return await operation(store)
    except OperatorError as exc:
        raise Failed(str(exc)) from None
    except StoreError as exc:
        raise Failed(f"the store failed ({where}): {one_line(exc)}") from None
    finally:
        await store.close()

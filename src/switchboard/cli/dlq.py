"""`switchboard dlq list|replay QUEUE`: the operator's view of a consumer's dead letters.

Dead-letter queues live in RabbitMQ, so these commands need SWITCHBOARD_BROKER_URL (and
the same SWITCHBOARD_EXCHANGE / SWITCHBOARD_QUEUE_PREFIX as the services). Replaying is
safe: consumers are idempotent by the call's state.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import click
from aio_pika.exceptions import ChannelNotFoundEntity

from switchboard.cli.environment import Failed, load_settings, one_line, quiet_libraries
from switchboard_shared.adapters.bus.rabbitmq import RabbitBus
from switchboard_shared.ports import PublishError

QUEUES = ("dialer.call-requested", "dialer.slots", "notifier.events")
T = TypeVar("T")

queue_argument = click.argument("queue", type=click.Choice(QUEUES), metavar="QUEUE")


@click.group()
def dlq() -> None:
    """Inspect and replay dead letters (RabbitMQ).

    Needs SWITCHBOARD_BROKER_URL, SWITCHBOARD_EXCHANGE and SWITCHBOARD_QUEUE_PREFIX as the
    services have them. QUEUE is a consumer's work queue: dialer.call-requested,
    dialer.slots or notifier.events; its dead letters wait in QUEUE.dlq. See docs/operations.md,
    "Dead-letter queues".
    """


@dlq.command("list")
@queue_argument
@click.option(
    "--limit", type=click.IntRange(min=1), default=100, show_default=True, help="At most this many."
)
def list_letters(queue: str, limit: int) -> None:
    """Show QUEUE's dead letters; they stay there.

    One line each: event id, type, call id, and why it was dead-lettered. QUEUE:
    dialer.call-requested, dialer.slots or notifier.events.
    """
    letters = on_bus(lambda bus: bus.peek_dead_letters(queue, limit=limit))
    for letter in letters:
        event = letter.event
        described = (
            f"{event.id} {event.type} call={event.call_id}"
            if event
            else f"<unparseable body, {len(letter.body)} bytes>"
        )
        click.echo(f"{described} reason={letter.reason!r}")
    click.echo(f"{len(letters)} dead letter(s) in {queue}.dlq", err=True)


@dlq.command()
@queue_argument
@click.option("--limit", type=click.IntRange(min=1), default=None, help="At most this many.")
def replay(queue: str, limit: int | None) -> None:
    """Send QUEUE's dead letters back to QUEUE.

    Each goes back as a fresh first attempt, with its full retry schedule. Only what is
    in QUEUE.dlq when it starts, so a message that fails again is not replayed twice.
    """
    replayed = on_bus(lambda bus: bus.replay_dead_letters(queue, limit=limit))
    click.echo(f"replayed {replayed} message(s) from {queue}.dlq to {queue}")


def on_bus(operation: Callable[[RabbitBus], Awaitable[T]]) -> T:
    """Connect to the services' RabbitMQ, run `operation`, disconnect.

    No SWITCHBOARD_BROKER_URL is a usage error (exit 2); an unreachable broker or a
    missing queue ends the command with exit 1 and one line on stderr.
    """
    settings = load_settings()
    if not settings.broker_url:
        raise click.UsageError("dead-letter queues live in RabbitMQ: set SWITCHBOARD_BROKER_URL")
    quiet_libraries()
    bus = RabbitBus(
        settings.broker_url,
        exchange=settings.exchange,
        queue_prefix=settings.queue_prefix,
        connection_name="switchboard-cli",
    )

    async def go() -> T:
        await bus.start()
        try:
            return await operation(bus)
        except PublishError as exc:
            raise Failed(f"broker unavailable: {one_line(exc)}") from None
        except ChannelNotFoundEntity as exc:
            raise Failed(
                f"no such queue (is SWITCHBOARD_QUEUE_PREFIX right?): {one_line(exc)}"
            ) from None
        finally:
            await bus.close()

    return asyncio.run(go())

"""`switchboard dlq list|replay QUEUE`: the operator's view of a consumer's dead letters.

Dead-letter queues live in RabbitMQ, so these commands need SWITCHBOARD_BROKER_URL (and
the same SWITCHBOARD_EXCHANGE / SWITCHBOARD_QUEUE_PREFIX as the services). Replaying is
safe: consumers drop an event id they already handled.
"""

from __future__ import annotations

import argparse
import sys

from switchboard_shared.adapters.bus_rabbitmq import RabbitBus
from switchboard_shared.settings import Settings

QUEUES = ("dialer.call-requested", "notifier.events")


def add_dead_letter_commands(subparsers: argparse._SubParsersAction) -> None:
    dlq = subparsers.add_parser("dlq", help="inspect and replay dead-lettered messages")
    commands = dlq.add_subparsers(dest="dlq_command", required=True)
    listing = commands.add_parser("list", help="show dead letters (they stay in the queue)")
    listing.add_argument("queue", choices=QUEUES)
    listing.add_argument("--limit", type=int, default=100)
    replay = commands.add_parser("replay", help="send dead letters back to their work queue")
    replay.add_argument("queue", choices=QUEUES)
    replay.add_argument("--limit", type=int, default=None, help="at most this many")


async def run_dead_letter_command(args: argparse.Namespace, settings: Settings) -> int:
    if not settings.broker_url:
        print("dead-letter queues live in RabbitMQ: set SWITCHBOARD_BROKER_URL", file=sys.stderr)
        return 2
    bus = RabbitBus(
        settings.broker_url,
        exchange=settings.exchange,
        queue_prefix=settings.queue_prefix,
        connection_name="switchboard-cli",
    )
    await bus.start()
    try:
        if args.dlq_command == "list":
            letters = await bus.peek_dead_letters(args.queue, limit=args.limit)
            for letter in letters:
                event = letter.event
                described = (
                    f"{event.id} {event.type} call={event.call_id}"
                    if event
                    else f"<unparseable body, {len(letter.body)} bytes>"
                )
                print(f"{described} reason={letter.reason!r}")
            print(f"{len(letters)} dead letter(s) in {args.queue}.dlq", file=sys.stderr)
        else:
            replayed = await bus.replay_dead_letters(args.queue, limit=args.limit)
            print(f"replayed {replayed} message(s) from {args.queue}.dlq to {args.queue}")
    finally:
        await bus.close()
    return 0

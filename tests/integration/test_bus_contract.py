"""One contract for every Bus adapter: the in-process bus and RabbitMQ (the real broker).

Each test gets a `BusHarness`: a started bus plus what the test needs to reach behind
it (raw deliveries, the dead-letter queue, queue depth). RabbitMQ tests use their own
exchange and queue prefix and delete what they declared.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aio_pika
import aio_pika.abc
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import REGISTRY

from switchboard_shared.adapters.bus.common import DeadLetter
from switchboard_shared.adapters.bus.inprocess import InProcessBus
from switchboard_shared.adapters.bus.rabbitmq import RabbitBus, retry_queue
from switchboard_shared.calls.events import Event, EventType
from switchboard_shared.ports import (
    Bus,
    Handler,
    MessageContext,
    PublishError,
    Reject,
    RetryLater,
    Subscription,
)
from switchboard_testing.net import free_port
from tests.support.net import eventually
from tests.support.tcp_proxy import CuttableProxy

pytestmark = pytest.mark.timeout(60)


def make_event(event_type: EventType = EventType.CALL_REQUESTED, **data: Any) -> Event:
    return Event(
        type=event_type,
        tenant_id="tenant-1",
        call_id=str(uuid.uuid4()),
        sequence=3,
        data={"status": "queued", "phone": "+996700000000", **data},
    )


class Received:
    """A handler that records what it got; `behaviour` decides what it does."""

    def __init__(
        self, behaviour: Callable[[Event, MessageContext], Awaitable[None]] | None = None
    ) -> None:
        self.items: list[tuple[Event, MessageContext, float]] = []
        self._behaviour = behaviour

    async def __call__(self, event: Event, context: MessageContext) -> None:
        self.items.append((event, context, time.monotonic()))
        if self._behaviour:
            await self._behaviour(event, context)

    @property
    def events(self) -> list[Event]:
        return [e for e, _, _ in self.items]

    @property
    def distinct_events(self) -> list[Event]:
        """The events in the order first received, each once: delivery is at least once,
        and a connection cut before an ack reached the broker redelivers that message."""
        return list({e.id: e for e in self.events}.values())

    @property
    def attempts(self) -> list[int]:
        return [c.attempt for _, c, _ in self.items]

    @property
    def times(self) -> list[float]:
        return [t for _, _, t in self.items]


class BusHarness:
    """A started bus and the back doors a contract test needs."""

    kind: str
    bus: InProcessBus | RabbitBus
    spans: InMemorySpanExporter
    tracer_provider: TracerProvider

    def queue(self, name: str) -> str:
        """The full name of queue `name` as the broker knows it."""
        return name

    async def subscribe(
        self,
        name: str,
        routing_keys: tuple[str, ...],
        handler: Handler,
        retry_delays: tuple[float, ...] = (0.1, 0.1),
        prefetch: int = 10,
        bus: Bus | None = None,
    ) -> None:
        await (bus or self.bus).subscribe(
            Subscription(name, routing_keys, handler, retry_delays=retry_delays, prefetch=prefetch)
        )

    async def inject_raw(self, name: str, body: bytes) -> None:
        raise NotImplementedError

    async def dead_lettered(self, name: str) -> list[bytes]:
        raise NotImplementedError

    async def aclose(self) -> None:
        raise NotImplementedError


class InProcessHarness(BusHarness):
    kind = "inprocess"

    def __init__(self) -> None:
        self.spans = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.inprocess = InProcessBus(tracer_provider=self.tracer_provider)
        self.bus = self.inprocess

    async def inject_raw(self, name: str, body: bytes) -> None:
        await self.inprocess.deliver_raw(name, body)

    async def dead_lettered(self, name: str) -> list[bytes]:
        return [letter.body for letter in await self.inprocess.peek_dead_letters(name)]

    async def aclose(self) -> None:
        await self.bus.close()


HARNESSES: dict[str, Callable[[str, str], Awaitable[BusHarness]]] = {}


async def _inprocess(_broker_url: str, _unique: str) -> BusHarness:
    harness = InProcessHarness()
    await harness.bus.start()
    return harness


HARNESSES["inprocess"] = _inprocess


class RabbitHarness(BusHarness):
    """A RabbitBus on its own exchange and queue prefix, plus a plain aio-pika connection
    to reach queues directly; deletes every queue and the exchange it used."""

    kind = "rabbitmq"

    def __init__(self, broker_url: str, unique: str) -> None:
        self.broker_url = broker_url
        self.exchange = f"{unique}.events"
        self.prefix = f"{unique}."
        self.spans = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.buses: list[RabbitBus] = []
        self.queues: set[str] = set()
        self.dead: dict[str, list[bytes]] = {}
        self.bus = self.new_bus()
        self.admin: aio_pika.abc.AbstractConnection | None = None

    def new_bus(self, url: str | None = None, **options: Any) -> RabbitBus:
        bus = RabbitBus(
            url or self.broker_url,
            exchange=self.exchange,
            queue_prefix=self.prefix,
            reconnect_interval=0.2,
            close_timeout=10,
            tracer_provider=self.tracer_provider,
            **options,
        )
        self.buses.append(bus)
        return bus

    def queue(self, name: str) -> str:
        return self.prefix + name

    async def subscribe(
        self,
        name: str,
        routing_keys: tuple[str, ...],
        handler: Handler,
        retry_delays: tuple[float, ...] = (0.1, 0.1),
        prefetch: int = 10,
        bus: Bus | None = None,
    ) -> None:
        full = self.queue(name)
        self.queues.update({full, f"{full}.dlq", *(retry_queue(full, d) for d in retry_delays)})
        await super().subscribe(name, routing_keys, handler, retry_delays, prefetch, bus)

    async def channel(self) -> aio_pika.abc.AbstractChannel:
        if self.admin is None:
            self.admin = await aio_pika.connect(self.broker_url)
        return await self.admin.channel()

    async def inject_raw(self, name: str, body: bytes) -> None:
        channel = await self.channel()
        await channel.default_exchange.publish(
            aio_pika.Message(body, message_id="garbage"), routing_key=self.queue(name)
        )
        await channel.close()

    async def dead_lettered(self, name: str) -> list[bytes]:
        """Drains `<queue>.dlq` into a list kept across calls (so polling loses nothing)."""
        kept = self.dead.setdefault(name, [])
        channel = await self.channel()
        queue = await channel.get_queue(f"{self.queue(name)}.dlq")
        while (message := await queue.get(no_ack=True, fail=False)) is not None:
            kept.append(message.body)
        await channel.close()
        return list(kept)

    async def depth(self, name: str) -> int:
        channel = await self.channel()
        queue = await channel.declare_queue(self.queue(name), passive=True)
        await channel.close()
        assert queue.declaration_result.message_count is not None
        return queue.declaration_result.message_count

    async def aclose(self) -> None:
        try:
            for bus in self.buses:
                await asyncio.wait_for(bus.close(), 20)
        finally:
            await self._delete_topology()

    async def _delete_topology(self) -> None:
        channel = await self.channel()
        for name in self.queues:
            await channel.queue_delete(name)
        await channel.exchange_delete(self.exchange)
        await channel.close()
        assert self.admin is not None
        await self.admin.close()


async def _rabbitmq(broker_url: str, unique: str) -> BusHarness:
    harness = RabbitHarness(broker_url, unique)
    await harness.bus.start()
    return harness


HARNESSES["rabbitmq"] = _rabbitmq


@pytest.fixture(params=sorted(HARNESSES))
async def harness(
    request: pytest.FixtureRequest, broker_url: str, unique_name: str
) -> AsyncIterator[BusHarness]:
    made = await HARNESSES[request.param](broker_url, unique_name)
    try:
        yield made
    finally:
        await made.aclose()


def counter(name: str, queue: str) -> float:
    return REGISTRY.get_sample_value(name, {"queue": queue}) or 0.0


# --- round trip and routing --------------------------------------------------------------


async def test_round_trip_keeps_the_envelope_and_carries_trace_context(
    harness: BusHarness,
) -> None:
    got = Received()
    await harness.subscribe("roundtrip", ("call.requested",), got)
    event = make_event(transcript="agent: Hello")

    tracer = harness.tracer_provider.get_tracer("test")
    with tracer.start_as_current_span("api request") as root:
        await harness.bus.publish(event, headers={"x-request-id": "req-1"})
    trace_id = root.get_span_context().trace_id

    await eventually(lambda: _true(got.items))
    received, context, _ = got.items[0]
    assert received == event
    assert received.model_dump() == event.model_dump()
    assert context.attempt == 1
    assert context.max_attempts == 3
    assert context.is_last_attempt is False
    assert context.redelivered is False
    assert context.headers["x-request-id"] == "req-1"
    traceparent = str(context.headers["traceparent"])
    assert traceparent.split("-")[1] == f"{trace_id:032x}"

    # The handler ran in a CONSUMER span whose parent is the publisher's (PRODUCER) span.
    def consumer_spans() -> list[ReadableSpan]:
        return [s for s in harness.spans.get_finished_spans() if s.kind is trace.SpanKind.CONSUMER]

    await eventually(lambda: _true(consumer_spans()))
    consumer = consumer_spans()[0]
    producer = next(
        s for s in harness.spans.get_finished_spans() if s.kind is trace.SpanKind.PRODUCER
    )
    assert consumer.context.trace_id == trace_id
    assert consumer.parent is not None
    assert consumer.parent.span_id == producer.context.span_id
    assert traceparent.split("-")[2] == f"{producer.context.span_id:016x}"


async def _true(value: Any) -> Any:
    return value


async def test_topic_routing(harness: BusHarness) -> None:
    marker = EventType.WEBHOOK_REPLAY_REQUESTED  # routed to every queue, published last
    wildcard, exact, hashed = Received(), Received(), Received()
    await harness.subscribe("wild", ("call.*", marker), wildcard, prefetch=1)
    await harness.subscribe("exact", ("call.completed", marker), exact, prefetch=1)
    await harness.subscribe("hashed", ("webhook.#",), hashed, prefetch=1)

    requested = make_event(EventType.CALL_REQUESTED)
    completed = make_event(EventType.CALL_COMPLETED, status="completed")
    webhook_test = make_event(EventType.WEBHOOK_TEST)
    for event in (requested, completed, webhook_test, make_event(marker)):
        await harness.bus.publish(event)

    # One handler at a time per queue: once the marker is in, nothing earlier can follow.
    for got in (wildcard, exact, hashed):
        await eventually(lambda got=got: _true(marker in [e.type for e in got.events]))
    assert [e.id for e in wildcard.events[:-1]] == [requested.id, completed.id]
    assert [e.id for e in exact.events[:-1]] == [completed.id]
    assert [e.id for e in hashed.events[:-1]] == [webhook_test.id]


# --- retries and dead letters ---------------------------------------------------------------


async def test_retry_counts_attempts_and_waits_the_schedule(harness: BusHarness) -> None:
    async def fail_twice(_: Event, context: MessageContext) -> None:
        if context.attempt < 3:
            raise RetryLater("not yet")

    got = Received(fail_twice)
    await harness.subscribe("retry", ("call.requested",), got, retry_delays=(0.2, 0.5))
    retried_before = counter("switchboard_messages_retried_total", harness.queue("retry"))
    event = make_event()
    await harness.bus.publish(event)

    await eventually(lambda: _true(len(got.items) == 3))
    assert got.attempts == [1, 2, 3]
    assert {e.id for e in got.events} == {event.id}
    assert [c.is_last_attempt for _, c, _ in got.items] == [False, False, True]
    first_gap, second_gap = (b - a for a, b in zip(got.times, got.times[1:], strict=False))
    assert 0.18 <= first_gap < 3
    assert 0.45 <= second_gap < 3
    retried = counter("switchboard_messages_retried_total", harness.queue("retry"))
    assert retried - retried_before == 2
    assert await harness.dead_lettered("retry") == []


async def test_retry_later_delay_picks_the_smallest_configured_delay_that_is_long_enough(
    harness: BusHarness,
) -> None:
    async def ask_for_a_delay(_: Event, context: MessageContext) -> None:
        if context.attempt == 1:
            raise RetryLater("busy", delay=0.3)

    got = Received(ask_for_a_delay)
    await harness.subscribe("pick", ("call.requested",), got, retry_delays=(0.1, 0.6, 5.0))
    await harness.bus.publish(make_event())

    await eventually(lambda: _true(len(got.items) == 2))
    gap = got.times[1] - got.times[0]
    assert 0.55 <= gap < 4.0  # the 0.6 s queue: not 0.1 s, not 5 s
    assert got.attempts == [1, 2]


async def test_handler_exception_is_redelivered(harness: BusHarness) -> None:
    async def crash_once(_: Event, context: MessageContext) -> None:
        if context.attempt == 1:
            raise RuntimeError("bug in the first attempt")

    got = Received(crash_once)
    await harness.subscribe("crash", ("call.requested",), got)
    event = make_event()
    await harness.bus.publish(event)

    await eventually(lambda: _true(len(got.items) == 2))
    assert got.attempts == [1, 2]
    assert got.events == [event, event]
    assert await harness.dead_lettered("crash") == []


async def test_exhausted_retries_are_dead_lettered(harness: BusHarness) -> None:
    async def always_fail(_: Event, __: MessageContext) -> None:
        raise RuntimeError("provider down")

    got = Received(always_fail)
    await harness.subscribe("exhaust", ("call.requested",), got, retry_delays=(0.05, 0.05))
    dead_before = counter("switchboard_messages_dead_lettered_total", harness.queue("exhaust"))
    event = make_event()
    await harness.bus.publish(event)

    dead = await eventually(lambda: harness.dead_lettered("exhaust"))
    assert [Event.from_bytes(body) for body in dead] == [event]
    assert got.attempts == [1, 2, 3]
    dead_after = counter("switchboard_messages_dead_lettered_total", harness.queue("exhaust"))
    assert dead_after - dead_before == 1


async def test_reject_dead_letters_at_once(harness: BusHarness) -> None:
    async def reject(_: Event, __: MessageContext) -> None:
        raise Reject("unknown agent")

    got = Received(reject)
    await harness.subscribe("reject", ("call.requested",), got)
    event = make_event()
    await harness.bus.publish(event)

    dead = await eventually(lambda: harness.dead_lettered("reject"))
    assert [Event.from_bytes(body) for body in dead] == [event]
    assert got.attempts == [1]


async def test_unparseable_body_is_dead_lettered_without_calling_the_handler(
    harness: BusHarness,
) -> None:
    got = Received()
    await harness.subscribe("garbage", ("call.requested",), got)
    await harness.inject_raw("garbage", b"\x00not json{")
    await harness.inject_raw("garbage", b'{"json": "but not an event"}')

    dead = await eventually(lambda: _dead_count(harness, "garbage", 2))
    assert sorted(dead) == sorted([b"\x00not json{", b'{"json": "but not an event"}'])
    assert got.items == []


async def _dead_count(harness: BusHarness, name: str, count: int) -> list[bytes] | None:
    dead = await harness.dead_lettered(name)
    return dead if len(dead) >= count else None


async def test_dead_letters_can_be_inspected_and_replayed(harness: BusHarness) -> None:
    fixed = False

    async def reject_until_fixed(_: Event, __: MessageContext) -> None:
        if not fixed:
            raise Reject("agent missing")

    got = Received(reject_until_fixed)
    await harness.subscribe("replay", ("call.requested",), got)
    event = make_event()
    await harness.bus.publish(event)

    async def peeked() -> list[DeadLetter]:
        return await harness.bus.peek_dead_letters("replay")

    dead = await eventually(peeked)
    assert [d.event for d in dead] == [event]
    assert dead[0].reason == "rejected: agent missing"
    assert len(await peeked()) == 1  # peeking leaves it there

    fixed = True
    assert await harness.bus.replay_dead_letters("replay") == 1
    await eventually(lambda: _true(len(got.items) == 2))
    assert got.events == [event, event]
    assert got.attempts == [1, 1]  # a replay starts the schedule over
    assert await peeked() == []
    assert await harness.bus.replay_dead_letters("replay") == 0


# --- flow control and shutdown -----------------------------------------------------------


async def test_prefetch_bounds_concurrent_handlers(harness: BusHarness) -> None:
    running = 0
    peak = 0
    gate = asyncio.Event()

    async def slow(_: Event, __: MessageContext) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        try:
            await gate.wait()
        finally:
            running -= 1

    got = Received(slow)
    await harness.subscribe("prefetch", ("call.requested",), got, prefetch=2)
    for _ in range(6):
        await harness.bus.publish(make_event())

    await eventually(lambda: _true(running == 2))
    await asyncio.sleep(0.3)  # give a third delivery the chance to break the bound
    assert peak == 2
    gate.set()
    await eventually(lambda: _true(len(got.items) == 6))
    assert peak == 2


async def test_queue_depth_counts_what_no_consumer_has_taken(harness: BusHarness) -> None:
    gate = asyncio.Event()

    async def held(_: Event, __: MessageContext) -> None:
        await gate.wait()

    got = Received(held)
    await harness.subscribe("depth", ("call.requested",), got, prefetch=1)
    assert await harness.bus.queue_depth("depth") == 0
    for _ in range(4):
        await harness.bus.publish(make_event())

    # One message is with the handler; the other three wait.
    await eventually(lambda: _true(len(got.items) == 1))

    async def three_waiting() -> bool:
        return await harness.bus.queue_depth("depth") == 3

    await eventually(three_waiting, within=5)
    gate.set()
    await eventually(lambda: _true(len(got.items) == 4))
    assert await harness.bus.queue_depth("depth") == 0
    assert await harness.bus.queue_depth("never-declared") == 0


async def test_close_waits_for_the_handler_in_flight(harness: BusHarness) -> None:
    gate = asyncio.Event()
    finished: list[str] = []

    async def slow(event: Event, _: MessageContext) -> None:
        await gate.wait()
        finished.append(event.id)

    got = Received(slow)
    await harness.subscribe("drain", ("call.requested",), got)
    event = make_event()
    await harness.bus.publish(event)
    await eventually(lambda: _true(got.items))

    closing = asyncio.create_task(harness.bus.close())
    await asyncio.sleep(0.2)
    assert not closing.done()
    gate.set()
    await asyncio.wait_for(closing, 10)
    assert finished == [event.id]


async def test_publish_after_close_raises(harness: BusHarness) -> None:
    await harness.bus.close()
    with pytest.raises(PublishError):
        await harness.bus.publish(make_event())
    with pytest.raises(PublishError):
        await harness.bus.ping()


async def test_event_no_queue_is_bound_to(harness: BusHarness) -> None:
    event = make_event(EventType.WEBHOOK_TEST)
    if harness.kind == "rabbitmq":
        # mandatory publish: an event nobody would ever see is an error, not a silent drop
        with pytest.raises(PublishError):
            await harness.bus.publish(event)
    else:
        await harness.bus.publish(event)  # documented difference: accepted and dropped


# --- RabbitMQ only ---------------------------------------------------------------------------


@pytest.fixture
async def rabbit(broker_url: str, unique_name: str) -> AsyncIterator[RabbitHarness]:
    harness = RabbitHarness(broker_url, unique_name)
    await harness.bus.start()
    try:
        yield harness
    finally:
        await harness.aclose()


async def test_unreachable_broker_fails_fast_and_start_does_not_block(
    rabbit: RabbitHarness,
) -> None:
    bus = rabbit.new_bus(f"amqp://guest:guest@127.0.0.1:{free_port()}/")
    started = time.monotonic()
    await bus.start()
    assert time.monotonic() - started < 3

    started = time.monotonic()
    with pytest.raises(PublishError):
        await bus.publish(make_event())
    with pytest.raises(PublishError):
        await bus.ping()
    assert time.monotonic() - started < 3

    # Subscribing waits for the broker in the background instead of blocking.
    await asyncio.wait_for(bus.subscribe(Subscription("never", ("call.*",), Received())), 3)


async def test_connects_late_and_recovers_after_the_broker_comes_back(
    rabbit: RabbitHarness, broker_url: str
) -> None:
    proxy = CuttableProxy.in_front_of(broker_url, 5672)
    bus = rabbit.new_bus(proxy.url)
    await bus.start()  # nothing listens yet
    with pytest.raises(PublishError):
        await bus.publish(make_event())
    got = Received()
    await rabbit.subscribe("late", ("call.requested",), got, bus=bus)

    first = make_event()
    await proxy.start()
    try:
        await eventually(lambda: _publishes(bus, first))
        await eventually(lambda: _true(got.events == [first]))

        await proxy.cut()  # the broker goes away
        await eventually(lambda: _fails_ping(bus))
        started = time.monotonic()
        with pytest.raises(PublishError):
            await bus.publish(make_event())
        assert time.monotonic() - started < 3

        # Subscribing while the broker is away returns; the queue comes with the broker.
        during = Received()
        await asyncio.wait_for(rabbit.subscribe("during", ("call.dialing",), during, bus=bus), 3)

        await proxy.start()  # ... and comes back: publish and consume resume
        second = make_event()
        await eventually(lambda: _publishes(bus, second))
        # `first` again too, if the cut came before its ack reached the broker.
        await eventually(lambda: _true(got.distinct_events == [first, second]))
        dialing = make_event(EventType.CALL_DIALING)
        await eventually(lambda: _publishes(bus, dialing))
        await eventually(lambda: _true(during.distinct_events == [dialing]))
        await bus.ping()
    finally:
        await bus.close()
        await proxy.cut()


async def _publishes(bus: Bus, event: Event) -> bool:
    try:
        await bus.publish(event)
    except PublishError:
        return False
    return True


async def _fails_ping(bus: Bus) -> bool:
    try:
        await bus.ping()
    except PublishError:
        return True
    return False


async def test_message_of_a_killed_consumer_goes_to_another_one(
    rabbit: RabbitHarness, broker_url: str
) -> None:
    gate = asyncio.Event()

    async def hang(_: Event, __: MessageContext) -> None:
        await gate.wait()

    proxy = CuttableProxy.in_front_of(broker_url, 5672)
    await proxy.start()
    victim = rabbit.new_bus(proxy.url)
    await victim.start()
    victim_got = Received(hang)
    await rabbit.subscribe("killed", ("call.requested",), victim_got, prefetch=1, bus=victim)
    event = make_event()
    await rabbit.bus.publish(event)
    await eventually(lambda: _true(victim_got.items))

    survivor_got = Received()
    await rabbit.subscribe("killed", ("call.requested",), survivor_got)
    await proxy.cut()  # the victim's connection dies without an ack

    await eventually(lambda: _true(survivor_got.items))
    received, context, _ = survivor_got.items[0]
    assert received == event
    assert context.redelivered is True
    assert context.attempt == 1
    assert victim_got.items[0][1].redelivered is False
    gate.set()  # the victim finishes; its ack goes nowhere
    await eventually(lambda: _depth_is(rabbit, "killed", 0))


async def _depth_is(rabbit: RabbitHarness, name: str, depth: int) -> bool:
    return await rabbit.depth(name) == depth


async def test_a_confirmed_message_waits_for_a_restarted_consumer(rabbit: RabbitHarness) -> None:
    before = rabbit.new_bus()
    await before.start()
    await rabbit.subscribe("restart", ("call.requested",), Received(), bus=before)
    await before.close()

    event = make_event()
    await rabbit.bus.publish(event)
    assert await rabbit.depth("restart") == 1

    after = rabbit.new_bus()
    await after.start()
    got = Received()
    await rabbit.subscribe("restart", ("call.requested",), got, bus=after)
    await eventually(lambda: _true(got.events == [event]))


async def test_poison_message_is_dead_lettered_by_the_delivery_limit(
    rabbit: RabbitHarness,
) -> None:
    # Declare the topology with a low limit, then play a consumer that crashes every
    # time (the message comes back unacked) with plain aio-pika.
    bus = rabbit.new_bus(delivery_limit=2)
    await bus.start()
    await rabbit.subscribe("poison", ("call.requested",), Received(), bus=bus)
    await bus.stop_consuming()
    event = make_event()
    await rabbit.bus.publish(event)

    channel = await rabbit.channel()
    queue = await channel.get_queue(rabbit.queue("poison"))
    for _ in range(10):
        message = await queue.get(fail=False)
        if message is None:
            break
        await message.nack(requeue=True)
    await channel.close()

    dead = await eventually(lambda: rabbit.dead_lettered("poison"))
    assert [Event.from_bytes(body) for body in dead] == [event]


_JSON = ("--formatter", "json")


@pytest.mark.skipif(not shutil.which("rabbitmqctl"), reason="needs rabbitmqctl")
async def test_topology(rabbit: RabbitHarness) -> None:
    await rabbit.subscribe("topo", ("call.*",), Received(), retry_delays=(0.5, 2.0))
    listing = await asyncio.to_thread(
        subprocess.run,
        [*("rabbitmqctl", "-q", "list_queues", "name", "type", "durable", "arguments"), *_JSON],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    queues = {q["name"]: q for q in json.loads(listing.stdout) if q["name"] in rabbit.queues}

    def arguments(name: str) -> dict[str, Any]:
        # rabbitmqctl renders arguments as [[key, amqp_type, value], ...]
        return {key: value for key, _, value in queues[rabbit.queue(name)]["arguments"]}

    work = queues[rabbit.queue("topo")]
    assert (work["type"], work["durable"]) == ("quorum", True)
    assert arguments("topo") == {
        "x-queue-type": "quorum",
        "x-delivery-limit": 20,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": rabbit.queue("topo.dlq"),
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }
    assert queues[rabbit.queue("topo.dlq")]["type"] == "quorum"
    assert arguments("topo.retry.500")["x-message-ttl"] == 500
    # Retries survive a broker restart: quorum, dead-lettered back at least once.
    assert arguments("topo.retry.2000") == {
        "x-queue-type": "quorum",
        "x-message-ttl": 2000,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": rabbit.queue("topo"),
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }
    assert queues[rabbit.queue("topo.retry.2000")]["type"] == "quorum"

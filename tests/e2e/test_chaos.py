"""Combined faults under a steady load ("Calls and webhooks lost under combined faults"):
a few hundred calls created over ~25 s while the dialer is SIGKILLed, the real RabbitMQ
stops for ~10 s, the customer's receiver answers 500 for 10 s, and the notifier and
webhook-ingest are SIGKILLed. Afterwards every call must end, be dialed at most once,
and reach the customer as exactly one `call.completed` carrying the stored status, with
nothing dead-lettered.

The faults are aimed at in-flight work, not just at a time: the dialer is killed while
it holds provider requests (the simulator answers creates after 1 s), so the restarted
dialer finds those calls claimed and parks them in its longest TTL retry queue; the
broker is stopped while those retries, and the notifier's retries of the deliveries the
receiver refused, wait in their TTL queues, and stays down until they have expired
(RabbitMQ drops a message that expires while it is stopped: its dead-lettering back to
the work queue is at most once). Only a store-driven recovery (re-driving calls queued
too long, re-sending deliveries still pending, sweeping ended calls without a delivery)
brings those back.

One SQLite file shared by the five processes, as in the issue. Needs this machine's
RabbitMQ; as root with `rabbitmqctl` the outage is a real `stop_app`/`start_app`,
otherwise the services' link to the broker is cut at the test's proxy (which does not
stop TTL queues, so it cannot show the lost retries).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import pytest_asyncio

from switchboard_notifier.handler import HANDLER_RETRY_DELAYS
from switchboard_testing.net import free_port
from switchboard_testing.processes import ServiceProcess
from switchboard_testing.servers import serving
from tests.e2e.conftest import (
    AGENTS_FILE,
    E2E_TENANT_LIMIT,
    SERVICES,
    Pipeline,
    extract_key,
    pipeline_env,
)
from tests.e2e.test_graceful_shutdown import dialer_in_flight
from tests.e2e.test_pipeline import TERMINAL, sim_dials, unique_numbers
from tests.support.broker import (
    can_stop_broker,
    ensure_broker_running,
    queue_depths,
    start_broker,
    stop_broker,
)
from tests.support.receiver import WebhookReceiver
from tests.support.tcp_proxy import CuttableProxy

pytestmark = pytest.mark.e2e

# --- the load ---------------------------------------------------------------------------
CALLS = 250
CREATES_PER_SECOND = 10.0  # 25 s of creates
AGENTS = ("altynai", "akylai", "altai")  # one per provider adapter
NUMBER_BLOCK = 9  # unique_numbers(CALLS, 9): +99670 09 xxxxx, used by no other e2e test
CREATE_GIVE_UP_AFTER = 60.0  # a customer retrying one create for this long

# --- the faults, in seconds after the first create ---------------------------------------
DIALER_KILL_AT, DIALER_DOWN_FOR = 3.0, 3.0
RECEIVER_FAILS_FROM, RECEIVER_FAILS_UNTIL = 7.0, 17.0
BROKER_STOP_AT, BROKER_DOWN_FOR, BROKER_DOWN_AT_MOST = 12.0, 10.0, 14.0
NOTIFIER_KILL_AT = 25.0
INGEST_KILL_AT = 28.0

# After the last create and fault: every call ended and delivered within this.
SETTLE_WITHIN = 75.0

DIAL_RETRY_DELAYS = [1, 2, 5, 15]
WEBHOOK_RETRY_DELAYS = [1, 2, 4, 8]

PIPELINE_ENV = {
    # A provider that takes 1 s to accept a call: the dialer holds requests when killed.
    "SWITCHBOARD_SIM_REQUEST_LATENCY_SECONDS": "1",
    "SWITCHBOARD_SIM_RING_DELAY_SECONDS": "1",
    "SWITCHBOARD_SIM_ANSWER_DELAY_SECONDS": "0.5",
    "SWITCHBOARD_SIM_TALK_SECONDS": "1.5",
    "SWITCHBOARD_DIAL_RETRY_DELAYS": str(DIAL_RETRY_DELAYS),
    "SWITCHBOARD_WEBHOOK_RETRY_DELAYS": str(WEBHOOK_RETRY_DELAYS),
    "SWITCHBOARD_WEBHOOK_TIMEOUT_SECONDS": "5",
    # The recovery settings of the fix (ignored by services that do not know them yet).
    "SWITCHBOARD_RECONCILE_QUEUED_AFTER_SECONDS": "5",
    "SWITCHBOARD_WATCHDOG_INTERVAL_SECONDS": "1",
    "SWITCHBOARD_DELIVERY_POLL_INTERVAL_SECONDS": "0.5",
    "SWITCHBOARD_DELIVERY_LEASE_SECONDS": "10",
    "SWITCHBOARD_NOTIFY_SWEEP_AFTER_SECONDS": "5",
}


# --- the system: the e2e pipeline on one SQLite file -------------------------------------


@pytest_asyncio.fixture(scope="module")
async def sqlite_pipeline(
    rabbitmq_port: int, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Pipeline]:
    """The e2e pipeline (every service its own process, RabbitMQ behind a cuttable
    proxy), sharing one SQLite file instead of MongoDB, with `PIPELINE_ENV`."""
    logs = tmp_path_factory.mktemp("chaos")
    broker = CuttableProxy(free_port(), "127.0.0.1", rabbitmq_port)
    await broker.start()
    ports = {name: free_port() for name in SERVICES}
    env = pipeline_env(broker.port, "", "", ports)
    del env["SWITCHBOARD_MONGODB_URL"], env["SWITCHBOARD_MONGODB_DATABASE"]
    env["SWITCHBOARD_SQLITE_PATH"] = str(logs / "switchboard.db")
    env.update(PIPELINE_ENV)
    processes = {
        name: ServiceProcess(name, ports[name], env, logs / f"{name}.log") for name in SERVICES
    }
    pipeline = Pipeline(env, processes, broker, "", "", "")
    pipeline.cli("agents", "load", str(AGENTS_FILE))
    pipeline.cli("tenants", "create", "e2e")
    # These tests push calls for throughput and faults, not the default limit of 10
    # (test_batch_concurrency.py sets its own).
    pipeline.cli("tenants", "set-limit", "e2e", "--max-concurrent-calls", E2E_TENANT_LIMIT)
    pipeline.api_key = extract_key(pipeline.cli("keys", "create", "--tenant", "e2e"))
    try:
        for process in processes.values():
            await asyncio.to_thread(process.start)
        yield pipeline
    finally:
        # Whatever happened to the test (a timeout mid-outage): the broker runs again.
        await asyncio.to_thread(ensure_broker_running)
        for process in reversed(processes.values()):
            await asyncio.to_thread(process.stop)
        await broker.close()


# --- what happened when -------------------------------------------------------------------


@dataclass
class Timeline:
    start: float = field(default_factory=time.monotonic)
    events: list[tuple[float, str]] = field(default_factory=list)

    def now(self) -> float:
        return time.monotonic() - self.start

    def mark(self, what: str) -> None:
        self.events.append((self.now(), what))

    async def until(self, offset: float) -> None:
        await asyncio.sleep(max(0.0, self.start + offset - time.monotonic()))

    def render(self) -> str:
        return "\n".join(f"  t={at:6.1f}s  {what}" for at, what in self.events)


async def first_true(probe: Callable[[], Awaitable[Any]], within: float) -> Any:
    """`probe()` once it is truthy, or its last value after `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        value = await probe()
        if value or time.monotonic() >= deadline:
            return value
        await asyncio.sleep(0.1)


# --- the customer: creates with retries ------------------------------------------------------


@dataclass
class Created:
    phone: str
    key: str
    call_id: str | None = None
    attempts: int = 0
    error: str = ""


async def create_call_as_a_customer(
    client: httpx.AsyncClient, timeline: Timeline, at: float, phone: str, agent: str
) -> Created:
    """At `at`, create a call with its own Idempotency-Key; retry a transport error, a
    5xx or a 429 with the same key, as a customer would."""
    created = Created(phone, f"chaos-{uuid.uuid4().hex}")
    await timeline.until(at)
    deadline = time.monotonic() + CREATE_GIVE_UP_AFTER
    while True:
        created.attempts += 1
        try:
            response = await client.post(
                "/v1/calls",
                json={"phone": phone, "agent": agent},
                headers={"Idempotency-Key": created.key},
            )
        except httpx.TransportError as exc:
            created.error = repr(exc)
        else:
            if response.status_code == 201:
                created.call_id = str(response.json()["call_id"])
                return created
            created.error = f"HTTP {response.status_code}: {response.text[:300]}"
            if response.status_code != 429 and response.status_code < 500:
                return created  # refused for good: reported, not retried
        if time.monotonic() >= deadline:
            return created
        await asyncio.sleep(min(0.2 * 2**created.attempts, 2.0))


# --- the faults -----------------------------------------------------------------------------


@dataclass
class Chaos:
    pipeline: Pipeline
    receiver: WebhookReceiver
    broker_url: str  # the real broker, not through the proxy
    timeline: Timeline
    dialer_retry_seen: list[tuple[float, int]] = field(default_factory=list)

    def queue(self, name: str) -> str:
        return self.pipeline.env["SWITCHBOARD_QUEUE_PREFIX"] + name

    @property
    def dialer_longest_retry_queue(self) -> str:
        return self.queue(f"dialer.call-requested.retry.{max(DIAL_RETRY_DELAYS) * 1000}")

    def retry_queues(self) -> list[str]:
        dialer = [f"dialer.call-requested.retry.{d * 1000}" for d in DIAL_RETRY_DELAYS]
        # The notifier's webhook retries wait in the store; its bus retries use these.
        notifier = [f"notifier.events.retry.{round(d * 1000)}" for d in HANDLER_RETRY_DELAYS]
        return [self.queue(name) for name in (*dialer, *notifier)]

    async def run(self) -> None:
        results = await asyncio.gather(
            self.kill_dialer(),
            self.watch_dialer_retries(),
            self.fail_receiver(),
            self.stop_broker(),
            self.kill_and_restart("notifier", NOTIFIER_KILL_AT, self.deliveries_in_flight),
            self.kill_and_restart("webhook-ingest", INGEST_KILL_AT, None),
            return_exceptions=True,
        )
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise errors[0]

    async def kill_dialer(self) -> None:
        dialer = self.pipeline.processes["dialer"]
        await self.timeline.until(DIALER_KILL_AT)
        # Aim at in-flight work: provider create requests the dialer has claimed calls for.
        in_flight = await first_true(self.dialer_requests_in_flight, within=3)
        await asyncio.to_thread(dialer.kill)
        self.timeline.mark(f"dialer SIGKILLed ({in_flight:.0f} provider requests in flight)")
        await self.timeline.until(DIALER_KILL_AT + DIALER_DOWN_FOR)
        self.timeline.mark("dialer starting again")
        await asyncio.to_thread(dialer.start)
        self.timeline.mark("dialer ready")

    async def watch_dialer_retries(self) -> None:
        """Until the broker stops: when the restarted dialer parks the calls it found
        claimed in its longest retry queue (so the outage can outlast their TTL)."""
        await self.timeline.until(DIALER_KILL_AT)
        last = 0
        while self.timeline.now() < BROKER_STOP_AT - 0.3:
            try:
                depths = await queue_depths(self.broker_url, [self.dialer_longest_retry_queue])
            except Exception:
                depths = {}  # a probe: the next one will do
            depth = depths.get(self.dialer_longest_retry_queue) or 0
            if depth > last:
                self.dialer_retry_seen.append((round(self.timeline.now(), 1), depth))
            last = depth
            await asyncio.sleep(0.4)

    async def fail_receiver(self) -> None:
        await self.timeline.until(RECEIVER_FAILS_FROM)
        self.receiver.failing = True
        self.timeline.mark("receiver answers 500")
        try:
            await self.timeline.until(RECEIVER_FAILS_UNTIL)
        finally:
            self.receiver.failing = False
            self.timeline.mark(f"receiver answers 200 again ({self.receiver.refused} refused)")

    async def stop_broker(self) -> None:
        await self.timeline.until(BROKER_STOP_AT)
        try:
            waiting = await queue_depths(self.broker_url, self.retry_queues())
        except Exception as exc:
            waiting = {"(unreadable)": None}
            self.timeline.mark(f"retry queues unreadable: {exc!r}")
        prefix = self.queue("")
        parked = {q.removeprefix(prefix): n for q, n in waiting.items() if n}
        real = can_stop_broker()
        if real:
            await stop_broker()
            self.timeline.mark(f"RabbitMQ stopped (rabbitmqctl stop_app); waiting: {parked}")
        else:
            await self.pipeline.broker.cut()
            self.timeline.mark(f"broker link cut at the proxy (no rabbitmqctl); waiting: {parked}")
        try:
            # Down ~10 s, and until the dialer's parked retries have expired (a little
            # longer when they were parked late), so they expire while it is stopped.
            end = BROKER_STOP_AT + BROKER_DOWN_FOR
            if self.dialer_retry_seen:
                expires = self.dialer_retry_seen[-1][0] + max(DIAL_RETRY_DELAYS) + 1.5
                end = min(max(end, expires), BROKER_STOP_AT + BROKER_DOWN_AT_MOST)
            await self.timeline.until(end)
        finally:
            if real:
                self.timeline.mark("RabbitMQ starting (rabbitmqctl start_app)")
                await start_broker()
                self.timeline.mark("RabbitMQ running")
            else:
                await self.pipeline.broker.restore()
                self.timeline.mark("broker link restored")

    async def dialer_requests_in_flight(self) -> float:
        try:
            return await dialer_in_flight(self.pipeline)
        except httpx.HTTPError:
            return 0.0

    async def deliveries_in_flight(self) -> bool:
        return self.receiver.in_flight > 0

    async def kill_and_restart(
        self, name: str, at: float, busy: Callable[[], Awaitable[bool]] | None
    ) -> None:
        process = self.pipeline.processes[name]
        await self.timeline.until(at)
        hit = await first_true(busy, within=3) if busy else None
        await asyncio.to_thread(process.kill)
        self.timeline.mark(f"{name} SIGKILLed" + ("" if hit is None else f" (busy: {hit})"))
        await asyncio.to_thread(process.start)
        self.timeline.mark(f"{name} ready again")


# --- watching the outcome -------------------------------------------------------------------


async def all_calls(client: httpx.AsyncClient) -> dict[str, dict[str, Any]]:
    """Every call of the tenant (this test's only), through the list endpoint."""
    calls: dict[str, dict[str, Any]] = {}
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 100}
        if cursor:
            params["cursor"] = cursor
        response = await client.get("/v1/calls", params=params)
        response.raise_for_status()
        page = response.json()
        calls.update({c["call_id"]: c for c in page["data"]})
        cursor = page["next_cursor"]
        if not cursor:
            return calls


def completed_webhooks(receiver: WebhookReceiver) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """call_id -> webhook-id -> the payloads received under it (2xx-answered only)."""
    grouped: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for item in receiver.received:
        payload = item.payload
        if payload["type"] == "call.completed":
            grouped[payload["data"]["call_id"]][item.headers["webhook-id"]].append(payload)
    return grouped


async def settle(
    client: httpx.AsyncClient, receiver: WebhookReceiver, call_ids: set[str], within: float
) -> tuple[dict[str, dict[str, Any]], float]:
    """Poll until every call is terminal and has its call.completed, or `within` runs
    out; returns the last view of the calls and how long it took."""
    started = time.monotonic()
    calls: dict[str, dict[str, Any]] = {}
    while True:
        with contextlib.suppress(httpx.HTTPError):  # the next round will do
            calls = await all_calls(client)
        ended = {cid for cid, c in calls.items() if c["status"] in TERMINAL}
        delivered = set(completed_webhooks(receiver))
        if call_ids <= ended and call_ids <= delivered:
            await asyncio.sleep(2)  # room for a late duplicate to show up
            return calls, time.monotonic() - started
        if time.monotonic() - started >= within:
            return calls, time.monotonic() - started
        await asyncio.sleep(1)


async def read_each(client: httpx.AsyncClient, call_ids: set[str]) -> dict[str, dict[str, Any]]:
    """GET /v1/calls/{id} for every call."""
    limit = asyncio.Semaphore(16)

    async def one(call_id: str) -> tuple[str, dict[str, Any]]:
        async with limit:
            response = await client.get(f"/v1/calls/{call_id}")
            assert response.status_code == 200, response.text
            return call_id, response.json()

    return dict(await asyncio.gather(*(one(cid) for cid in call_ids)))


def log_tail(process: ServiceProcess, lines: int = 15, width: int = 300) -> str:
    if not process.log_path.exists():
        return "  (no log)"
    tail = process.log_path.read_text(errors="replace").splitlines()[-lines:]
    return "\n".join(f"  {line[:width]}" for line in tail)


def sample(items: Any, n: int = 25) -> str:
    items = list(items)
    more = f" ... (+{len(items) - n} more)" if len(items) > n else ""
    return ", ".join(str(i) for i in items[:n]) + more


# --- the test ----------------------------------------------------------------------------------


@pytest.mark.timeout(240)
async def test_no_call_or_webhook_is_lost_under_combined_faults(
    sqlite_pipeline: Pipeline, broker_url: str
) -> None:
    pipeline = sqlite_pipeline
    receiver = WebhookReceiver(delay=0.05)
    phones = unique_numbers(CALLS, NUMBER_BLOCK)
    async with serving(receiver.app()) as receiver_url, pipeline.client() as client:
        registered = await client.put("/v1/webhooks", json={"url": f"{receiver_url}/hook"})
        assert registered.status_code in (200, 201), registered.text

        timeline = Timeline()
        chaos = Chaos(pipeline, receiver, broker_url, timeline)
        faults = asyncio.create_task(chaos.run())
        try:
            creates = await asyncio.gather(
                *(
                    create_call_as_a_customer(
                        client, timeline, i / CREATES_PER_SECOND, phone, AGENTS[i % len(AGENTS)]
                    )
                    for i, phone in enumerate(phones)
                )
            )
            timeline.mark(f"last create answered ({len(creates)} calls)")
            await faults
        finally:
            if not faults.done():
                faults.cancel()
                await asyncio.gather(faults, return_exceptions=True)
        timeline.mark("faults over; waiting for every call to end and be delivered")

        call_ids = {c.call_id for c in creates if c.call_id}
        phone_of = {c.call_id: c.phone for c in creates if c.call_id}
        _, settle_seconds = await settle(client, receiver, call_ids, SETTLE_WITHIN)
        timeline.mark(f"settled or gave up after {settle_seconds:.1f}s")
        calls = await read_each(client, call_ids)

    dials = await sim_dials(pipeline)
    prefix = pipeline.env["SWITCHBOARD_QUEUE_PREFIX"]
    dlqs = [f"{prefix}dialer.call-requested.dlq", f"{prefix}notifier.events.dlq"]
    dead = await queue_depths(broker_url, dlqs)
    webhooks = completed_webhooks(receiver)

    # --- what went wrong -------------------------------------------------------------
    not_created = [c for c in creates if not c.call_id]
    stuck = {cid: c["status"] for cid, c in calls.items() if c["status"] not in TERMINAL}
    ended = {cid: c for cid, c in calls.items() if c["status"] in TERMINAL}
    missing = {cid: c["status"] for cid, c in ended.items() if cid not in webhooks}
    several = {cid: sorted(ids) for cid, ids in webhooks.items() if len(ids) > 1}
    mismatched = {
        cid: (
            c["status"],
            sorted({p["data"]["status"] for ps in webhooks[cid].values() for p in ps}),
        )
        for cid, c in ended.items()
        if cid in webhooks
        and any(p["data"]["status"] != c["status"] for ps in webhooks[cid].values() for p in ps)
    }
    strangers = set(webhooks) - call_ids
    twice = {phone: n for phone in phones if (n := dials[phone]) > 1}
    undialed_completed = [
        cid for cid, c in ended.items() if c["status"] == "completed" and dials[phone_of[cid]] == 0
    ]
    dead_letters = {q: n for q, n in dead.items() if n}
    not_completed = Counter(
        (c["status"], c["ended_reason"]) for c in ended.values() if c["status"] != "completed"
    )
    resent = sum(len(ps) - 1 for ids in webhooks.values() for ps in ids.values())

    problems = []
    if not_created:
        problems.append(
            f"{len(not_created)} creates never got a 201: "
            + sample(f"{c.phone} after {c.attempts} tries: {c.error}" for c in not_created)
        )
    if stuck:
        problems.append(
            f"{len(stuck)} of {len(calls)} calls not terminal ({dict(Counter(stuck.values()))}): "
            + sample(f"{cid}={status}" for cid, status in stuck.items())
        )
    if missing:
        problems.append(
            f"{len(missing)} of {len(ended)} ended calls have no call.completed webhook "
            f"({dict(Counter(missing.values()))}): "
            + sample(f"{cid}={status}" for cid, status in missing.items())
        )
    if several:
        problems.append(
            f"{len(several)} calls got several call.completed ids: {sample(several.items())}"
        )
    if mismatched:
        problems.append(
            f"{len(mismatched)} webhooks disagree with the stored status: "
            + sample(mismatched.items())
        )
    if strangers:
        problems.append(f"call.completed for calls not created here: {sample(strangers)}")
    if twice:
        problems.append(f"{len(twice)} numbers dialed more than once: {sample(twice.items())}")
    if undialed_completed:
        problems.append(f"completed calls the provider never dialed: {sample(undialed_completed)}")
    if dead_letters:
        problems.append(f"dead letters: {dead_letters}")

    summary = "\n".join(
        [
            f"chaos run: {len(call_ids)} calls created "
            f"({sum(c.attempts - 1 for c in creates)} create retries), "
            f"statuses {dict(Counter(c['status'] for c in calls.values()))}, "
            f"not completed by (status, ended_reason): {dict(not_completed)}",
            f"webhooks: {len(webhooks)} calls with call.completed, {len(receiver.received)} "
            f"received (2xx), {resent} re-sent duplicates, {receiver.refused} answered 500",
            f"{chaos.dialer_longest_retry_queue.removeprefix(prefix)} depth rising (t, depth): "
            f"{chaos.dialer_retry_seen}",
            f"dead-letter queues: {dead}",
            "timeline:",
            timeline.render(),
            *(f"PROBLEM: {p}" for p in problems),
        ]
    )
    print(summary)
    if problems:
        for name, process in pipeline.processes.items():
            print(f"--- {name} log tail ({process.log_path}) ---\n{log_tail(process)}")
    assert not problems, summary

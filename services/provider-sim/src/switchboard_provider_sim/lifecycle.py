"""The simulator's behaviour, whatever API dialect a call came through: accepting or
refusing a create by test number, playing the call's timeline, cancelling, and queueing
the signed callback of every status change, in order, without blocking anyone."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any

import phonenumbers

from switchboard_provider_sim.callbacks import CallbackSender
from switchboard_provider_sim.calls import CallBook, SimCall, SimStatus, now
from switchboard_provider_sim.errors import SimError
from switchboard_provider_sim.scenarios import FLAKY_CREATE_FAILURES, Scenario, scenario_for
from switchboard_shared.calls.callback_signing import CallbackSigner
from switchboard_shared.runtime.settings import Settings

log = logging.getLogger(__name__)

# How a call that ended in each status ended, in the simulator's words (`SimCall.ended_by`).
ENDED_BY: dict[SimStatus, str] = {
    SimStatus.COMPLETED: "customer_hangup",
    SimStatus.FAILED: "error",
    SimStatus.NO_ANSWER: "no_answer",
    SimStatus.BUSY: "busy",
    SimStatus.CANCELED: "canceled",
}
VOICEMAIL = "voicemail"  # ended_by of a call a voicemail answered


@dataclass(frozen=True)
class CallbackFormat:
    """How one dialect calls back: its body, where it goes, and how it is signed."""

    # The message(s) of the call's current state, None for a state it reports nothing of.
    body: Callable[[SimCall], dict[str, Any] | list[dict[str, Any]] | None]
    url: Callable[[SimCall], str]
    scheme: CallbackSigner
    secret: str
    new_id: Callable[[], str]  # the dialect's id style


@dataclass(frozen=True)
class CreateRequest:
    to_number: str
    from_number: str | None
    agent_id: str
    variables: Mapping[str, Any]
    callback_url: str | None
    idempotency_key: str | None
    reference: str | None = None  # native only: the caller's id for the call
    base_url: str = ""  # where the caller reached the simulator
    # Vocode only: an agent sent inline (prompt, greeting) instead of an agent id.
    inline_agent: Mapping[str, Any] | None = None


def _name(call: SimCall, unknown: str = "there") -> str:
    return str(call.variables.get("name") or call.variables.get("customer_name") or unknown)


def analysis_for(call: SimCall) -> dict[str, Any] | None:
    """The post-call analysis of a conversation that took place (summary, success,
    extracted fields); None for a call nobody talked in."""
    if call.status is not SimStatus.COMPLETED or call.ended_by == VOICEMAIL:
        return None
    return {
        "summary": f"The assistant reached {_name(call, 'the customer')}, who had no "
        "further questions.",
        "successful": True,
        "fields": {"callback_requested": False, "customer_name": _name(call, "") or None},
    }


def transcript_for(call: SimCall, finished: bool) -> str:
    """A short generated conversation; a call that failed mid-way stops early."""
    name = _name(call)
    if call.scenario is Scenario.VOICEMAIL:
        return f"agent: Hello {name}, this is your assistant; please call us back. Goodbye."
    lines = [
        f"agent: Hello {name}, this is your assistant calling as requested.",
        "user: Hi, yes, I can talk now.",
    ]
    if finished:
        lines += [
            "agent: Great. I have everything I need; is there anything else?",
            "user: No, that's all. Thank you, goodbye.",
            "agent: Thank you, goodbye!",
        ]
    return "\n".join(lines)


class Simulator:
    """All calls of one simulator instance. Create it once per app."""

    def __init__(self, settings: Settings, formats: Mapping[str, CallbackFormat]) -> None:
        self._settings = settings
        self._formats = dict(formats)
        self.calls = CallBook()
        self._sender = CallbackSender()
        self._tasks: set[asyncio.Task[Any]] = set()

    # --- API operations ----------------------------------------------------------------
    async def create(self, dialect: str, request: CreateRequest) -> tuple[SimCall, bool]:
        """Accept a call and start its timeline; returns (call, created).

        A repeated idempotency key returns the call it created (created=False). Raises
        SimError: 400 for an invalid number, 500/503 for the failing test numbers. The
        accepted-then-timeout number answers only after `sim_accept_timeout_seconds`.
        """
        if existing := self.calls.by_idempotency_key(request.idempotency_key):
            return existing, False
        scenario = scenario_for(request.to_number)
        if scenario is Scenario.CREATE_ERROR:
            raise SimError(500, "internal_error", "simulated provider failure")
        if scenario is Scenario.OUTAGE:
            key = request.idempotency_key or request.reference or request.to_number
            started = self.calls.first_attempt(key, time.monotonic())
            if time.monotonic() - started < self._settings.sim_outage_seconds:
                raise SimError(503, "unavailable", "simulated provider outage")
        if scenario is Scenario.FLAKY_CREATE:
            key = request.idempotency_key or request.reference or request.to_number
            if self.calls.count_attempt(key) <= FLAKY_CREATE_FAILURES:
                raise SimError(500, "internal_error", "simulated transient provider failure")
        if scenario is Scenario.INVALID_NUMBER or not _valid_number(request.to_number):
            raise SimError(400, "invalid_number", f"cannot call {request.to_number!r}")
        call = SimCall(
            id=self._formats[dialect].new_id(),
            dialect=dialect,
            to_number=request.to_number,
            from_number=request.from_number,
            agent_id=request.agent_id,
            variables=dict(request.variables),
            callback_url=request.callback_url,
            scenario=scenario,
            idempotency_key=request.idempotency_key,
            reference=request.reference,
            base_url=request.base_url,
            inline_agent=dict(request.inline_agent) if request.inline_agent else None,
        )
        self.calls.add(call)
        call.timeline = self._spawn(self._play(call))
        if scenario is Scenario.ACCEPTED_THEN_TIMEOUT:
            await asyncio.sleep(self._settings.sim_accept_timeout_seconds)
        return call, True

    def get(self, call_id: str) -> SimCall:
        call = self.calls.get(call_id)
        if call is None:
            raise SimError(404, "not_found", "no such call")
        return call

    def find(self, dialect: str, reference: str) -> list[SimCall]:
        """The calls `dialect` created with `reference` (its reference or idempotency
        key), oldest first; empty when there are none."""
        return [c for c in self.calls.by_reference(reference) if c.dialect == dialect]

    def cancel(self, call_id: str) -> SimCall:
        """End the call as `canceled` and call back; a call that already ended is left
        as it is (cancel is idempotent)."""
        call = self.get(call_id)
        if call.status.is_final:
            return call
        if call.timeline:
            call.timeline.cancel()
        self._end(call, SimStatus.CANCELED)
        return call

    def send_callback(self, url: str, body: bytes, scheme: CallbackSigner, secret: str) -> None:
        """POST a signed callback that belongs to no call (a session's webhook), in the
        background, with the usual retries."""
        self._spawn(self._deliver_after(None, url, body, scheme, secret))

    async def close(self) -> None:
        """Stop every timeline and pending callback, and close the HTTP client."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._sender.close()

    # --- the call's timeline -----------------------------------------------------------
    async def _play(self, call: SimCall) -> None:
        s = self._settings
        await asyncio.sleep(s.sim_ring_delay_seconds)
        if call.scenario is Scenario.BUSY:
            self._end(call, SimStatus.BUSY)
            return
        self._advance(call, SimStatus.RINGING)
        slow = call.scenario is Scenario.SLOW_ANSWER
        await asyncio.sleep(s.sim_slow_answer_seconds if slow else s.sim_answer_delay_seconds)
        if call.scenario is Scenario.NO_ANSWER:
            self._end(call, SimStatus.NO_ANSWER)
            return
        call.answered_at = now()
        self._advance(call, SimStatus.IN_PROGRESS)
        if call.scenario is Scenario.SILENT:
            return  # stays in progress forever, without a word
        if call.scenario is Scenario.FAILED:
            await asyncio.sleep(s.sim_talk_seconds / 2)
            self._end(call, SimStatus.FAILED)
            return
        await asyncio.sleep(s.sim_talk_seconds)
        self._end(call, SimStatus.COMPLETED)

    def _advance(self, call: SimCall, status: SimStatus) -> None:
        call.status = status
        if call.scenario is not Scenario.SILENT:
            self._notify(call)

    def _end(self, call: SimCall, status: SimStatus) -> None:
        call.ended_at = now()
        if call.answered_at:
            call.duration = max(0, round((call.ended_at - call.answered_at).total_seconds()))
            call.transcript = transcript_for(call, finished=status is not SimStatus.FAILED)
        else:
            call.duration = 0
        call.ended_by = ENDED_BY[status]
        if status is SimStatus.COMPLETED and call.scenario is Scenario.VOICEMAIL:
            call.ended_by = VOICEMAIL
        # Every call the simulator completes is recorded, but on the number that says not.
        call.recording = (
            status is SimStatus.COMPLETED and call.scenario is not Scenario.NO_RECORDING
        )
        self._advance(call, status)

    # --- callbacks -------------------------------------------------------------------------
    def _notify(self, call: SimCall) -> None:
        """Queue the callback for the call's current state behind its previous one."""
        fmt = self._formats[call.dialect]
        payload = fmt.body(call)
        for message in payload if isinstance(payload, list) else [payload] if payload else []:
            body = json.dumps(message).encode()
            call.delivery = self._spawn(
                self._deliver_after(call.delivery, fmt.url(call), body, fmt.scheme, fmt.secret)
            )

    async def _deliver_after(
        self,
        previous: asyncio.Task[None] | None,
        url: str,
        body: bytes,
        scheme: CallbackSigner,
        secret: str,
    ) -> None:
        if previous is not None and not previous.done():
            await asyncio.wait([previous])
        await self._sender.deliver(url, body, scheme, secret)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        # Keep a reference: the loop holds tasks only weakly.
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task


def _valid_number(number: str) -> bool:
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return False
    return phonenumbers.is_valid_number(parsed) and number.startswith("+")

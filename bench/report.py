"""The figures and ratios of a run, as the lines printed at the end (and written with
`--json`); bench/RESULTS.md records them."""

from __future__ import annotations

import argparse
import os
import platform
import sys
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from bench.load import Phase
from bench.sampler import RABBITMQ, Sampler

STATUS_SAMPLE = 100  # late calls whose stored status is read for the report

LoadAverage = tuple[float, float, float]


@dataclass
class Result:
    """What one measured run produced. Times are in seconds."""

    measured: Phase
    posting_seconds: float  # first POST sent → last response
    done: list[str]  # measured calls whose call.completed arrived in time
    missing: list[str]  # measured calls whose call.completed did not
    stuck: Counter[str]  # stored status of up to STATUS_SAMPLE missing calls
    not_completed_status: Counter[str]  # done calls that ended other than `completed`
    latency: list[float]  # 201 → call.completed webhook, per done call
    end_to_end: list[float]  # POST sent → call.completed webhook
    post_latency: list[float]  # POST sent → 201, per accepted call
    wall: float  # first POST → last call.completed webhook
    sampler: Sampler
    usage: dict[str, Any]  # GET /v1/usage
    delivered: tuple[int, int, int]  # webhooks received, signed, duplicate call.completed
    dials: Counter[str]  # the simulator's dials per number
    phones: list[str]  # the accepted calls' numbers
    counters: dict[str, float]
    handlers: dict[str, float]
    dead: dict[str, int]  # dead-letter queues holding messages
    load: tuple[LoadAverage, LoadAverage]  # before, after


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return float("nan")
    rank = max(1, -(-len(sorted_values) * q // 100))
    return sorted_values[int(min(rank, len(sorted_values))) - 1]


def distribution(values: list[float]) -> str:
    ordered = sorted(values)
    if not ordered:
        return "n/a"
    return (
        "  ".join(
            f"{label} {percentile(ordered, q) * 1000:7.0f}"
            for label, q in (("p50", 50), ("p95", 95), ("p99", 99), ("max", 100))
        )
        + "  ms"
    )


def machine() -> str:
    memory = f", {psutil.virtual_memory().total / 2**30:.0f} GiB RAM"
    return f"{os.cpu_count()} CPUs{memory}, {platform.system()} {platform.release()}"


def command(module: str = "bench.pipeline") -> str:
    """The command line of this run, as it would be typed."""
    return " ".join([Path(sys.executable).name, "-m", module, *sys.argv[1:]])


def resource_lines(sampler: Sampler) -> list[str]:
    """CPU and memory per process over the measured window, and peak queue depths."""
    wall = sampler.wall
    lines = [f"CPU over the measured {wall:.1f} s (1.00 = one core):"]
    total = 0.0
    for name in sampler.pids:
        used = sampler.used(name)
        if used is None:
            continue
        if name != RABBITMQ:
            total += used
        lines.append(
            f"  {name:<18} {used:7.1f} s CPU  avg {used / wall:4.2f}  "
            f"peak 1 s {sampler.peak_cpu.get(name, 0):4.2f}  "
            f"max RSS {sampler.peak_rss.get(name, 0):6.0f} MiB"
        )
    lines.append(f"  {'ours, w/o broker':<18} {total:7.1f} s CPU  avg {total / wall:4.2f}")
    share = sampler.machine_share()
    if share is not None:
        lines.append(
            f"  whole machine busy {share * 100:.0f} % of {os.cpu_count()} CPUs "
            "(other engineers' work included)"
        )
    if sampler.peak_depth:
        depths = ", ".join(f"{k} {v}" for k, v in sampler.peak_depth.items())
        lines.append(f"peak ready messages in queues: {depths}")
    return lines


def failures_line(args: argparse.Namespace, result: Result) -> str:
    measured, missing = result.measured, result.missing
    line = (
        f"failures    {sum(measured.refused.values())} POSTs not 201 "
        f"{dict(measured.refused) or ''}; "
        f"{len(missing)} accepted calls without call.completed within {args.timeout:g} s"
    )
    if missing:
        line += (
            f" (stored status of {min(len(missing), STATUS_SAMPLE)} of them, read right "
            f"after: {dict(result.stuck)})"
        )
    if result.not_completed_status:
        line += (
            f"; {sum(result.not_completed_status.values())} ended otherwise: "
            f"{dict(result.not_completed_status)}"
        )
    return line


def report(args: argparse.Namespace, result: Result, store: str) -> list[str]:
    """Every line of the summary, `store` naming the store the services shared."""
    measured = result.measured
    completed = len(result.done) - sum(result.not_completed_status.values())
    wall = result.wall
    accepted = measured.posted
    received, signed, duplicates = result.delivered
    dialed_twice = sum(1 for n in result.phones if result.dials[n] > 1)
    never_dialed = sum(1 for n in result.phones if result.dials[n] == 0)
    lines = [
        f"date        {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"command     {command()}",
        f"machine     {machine()}; load avg before/after "
        f"{result.load[0][0]:.2f}/{result.load[1][0]:.2f}",
        f"broker      RabbitMQ at {args.broker_url.split('@')[-1]}; store {store}",
        f"calls       {args.calls} POSTed, {len(accepted)} accepted (201), "
        f"agent {args.agent}, {args.concurrency} POSTs in flight",
        f"wall time   {wall:.1f} s (first POST → last call.completed webhook); "
        f"POSTing took {result.posting_seconds:.1f} s",
        f"throughput  {len(result.done) / max(wall, 1e-3):.1f} calls/s completed end to end; "
        f"{len(accepted) / max(result.posting_seconds, 1e-3):.1f} calls/s accepted",
        f"201 → call.completed webhook   {distribution(result.latency)}",
        f"POST sent → webhook            {distribution(result.end_to_end)}",
        f"POST → 201 (API)               {distribution(result.post_latency)}",
        failures_line(args, result),
        f"webhooks    {received} received by then, warm-up included ({signed} signed), "
        f"{duplicates} duplicate call.completed; measured calls ended `completed`: {completed}",
        f"dialed      {dialed_twice} accepted calls dialed more than once, {never_dialed} never "
        "(simulator's log)",
        "stored      by status a moment later (GET /v1/usage, warm-up included): "
        f"{result.usage.get('by_status')}",
    ]
    lines += resource_lines(result.sampler)
    if result.handlers:
        lines.append(
            "mean handler time: "
            + ", ".join(f"{k} {v * 1000:.1f} ms" for k, v in result.handlers.items())
        )
    if result.counters:
        lines.append("service counters (warm-up included):")
        lines += [f"  {k} {v:g}" for k, v in result.counters.items()]
    if result.dead:
        lines.append(f"DEAD LETTERS: {result.dead}")
    return lines

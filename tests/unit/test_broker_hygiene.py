"""Which broker names a test run may delete: its own kind, and only when old."""

from __future__ import annotations

import time

from switchboard_testing.broker_hygiene import MAX_AGE_SECONDS, run_prefix, stale


def test_fresh_prefixes_are_kept_and_old_ones_deleted() -> None:
    now = time.time()
    for kind in ("t", "e2e"):
        prefix = run_prefix(kind)
        queue = f"{prefix}.dialer.call-requested.retry.500"
        assert not stale(queue, now)
        assert stale(queue, now + MAX_AGE_SECONDS + 1)
        assert stale(f"{prefix}.events", now + MAX_AGE_SECONDS + 1)  # its exchange too


def test_names_that_are_not_a_test_runs_are_never_deleted() -> None:
    later = time.time() + 10 * MAX_AGE_SECONDS
    for name in (
        "switchboard.dialer.call-requested",
        "amq.topic",
        "bench.1a2b3c4d.events",
        "tenants",
        "t1764741234.no-random-part",
    ):
        assert not stale(name, later, include_legacy=True), name


def test_legacy_names_only_when_asked() -> None:
    later = time.time()
    for name in ("t0123456789ab.roundtrip", "e2e.0123456789.notifier.events"):
        assert not stale(name, later)
        assert stale(name, later, include_legacy=True)

"""`switchboard doctor` as an operator runs it, against `make run`'s stack: one line per
check, exit 0 when all pass, and exit 1 naming what is wrong (a broker nobody listens
on, a provider key the provider refuses, a callback URL with no webhook-ingest behind
it, production settings meant for a laptop)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

from switchboard_testing.net import free_port
from tests.support.all_in_one import REPO, AllInOne, running_all_in_one

pytestmark = pytest.mark.e2e

CHECKS = ("settings", "store", "broker", "provider simulator", "callback base URL", "webhook URLs")


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AllInOne]:
    with running_all_in_one(tmp_path_factory.mktemp("doctor")) as running:
        yield running


def doctor(system: AllInOne, *args: str, **env: str) -> tuple[int, dict[str, tuple[str, str]]]:
    """Exit code, and each check's (`ok`/`FAIL`, detail) by name."""
    result = subprocess.run(
        [sys.executable, "-m", "switchboard.cli", "doctor", *args],
        cwd=REPO,
        env={**system.env, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "Traceback" not in result.stderr, result.stderr
    lines: dict[str, tuple[str, str]] = {}
    for line in result.stdout.splitlines():
        verdict, _, rest = line.partition(" ")
        name, _, detail = rest.strip().partition(": ")
        lines[name] = (verdict, detail)
    return result.returncode, lines


def failed(lines: dict[str, tuple[str, str]]) -> set[str]:
    return {name for name, (verdict, _) in lines.items() if verdict != "ok"}


def test_a_working_all_in_one_passes_every_check(system: AllInOne) -> None:
    code, lines = doctor(system, "--all-in-one")
    assert tuple(lines) == CHECKS
    assert failed(lines) == set(), lines
    assert code == 0
    assert "credentials accepted" in lines["provider simulator"][1]


def test_the_real_broker_passes(system: AllInOne, broker_url: str) -> None:
    code, lines = doctor(system, "--all-in-one", SWITCHBOARD_BROKER_URL=broker_url)
    assert lines["broker"][0] == "ok", lines["broker"]
    assert code == 0


def test_a_broker_nobody_listens_on_fails_alone(system: AllInOne) -> None:
    url = f"amqp://guest:hunter2secret@127.0.0.1:{free_port()}/"
    code, lines = doctor(system, "--all-in-one", SWITCHBOARD_BROKER_URL=url)
    assert failed(lines) == {"broker"}, lines
    assert code == 1
    assert "hunter2secret" not in str(lines)


def test_a_refused_provider_key_fails(system: AllInOne) -> None:
    code, lines = doctor(
        system,
        "--all-in-one",
        SWITCHBOARD_SIMULATOR__BASE_URL=f"{system.url}/sim",
        SWITCHBOARD_SIMULATOR__API_KEY="not-the-simulators-key",
    )
    assert failed(lines) == {"provider simulator"}, lines
    assert "refused our credentials (HTTP 401)" in lines["provider simulator"][1]
    assert "not-the-simulators-key" not in str(lines)
    assert code == 1


def test_a_callback_url_without_webhook_ingest_fails(system: AllInOne) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    code, lines = doctor(system, "--all-in-one", SWITCHBOARD_CALLBACK_BASE_URL=nowhere)
    assert failed(lines) == {"callback base URL"}, lines
    assert code == 1


def test_production_refuses_laptop_settings(system: AllInOne) -> None:
    code, lines = doctor(
        system,
        SWITCHBOARD_ENV="production",
        SWITCHBOARD_CALLBACK_BASE_URL=system.url,
        SWITCHBOARD_SIMULATOR__BASE_URL=f"{system.url}/sim",
        SWITCHBOARD_WEBHOOK_ALLOW_PRIVATE_NETWORKS="true",
    )
    assert failed(lines) == {"settings", "callback base URL", "webhook URLs"}, lines
    assert "demo key" in lines["settings"][1]  # SWITCHBOARD_DEV_API_KEY is set
    assert "SESSION_TOKEN_SECRET is the development default" in lines["settings"][1]
    assert "MEDIA_EDGE_URL is ws://" in lines["settings"][1]
    assert "https" in lines["callback base URL"][1]
    assert code == 1


def test_invalid_settings_are_a_usage_error(system: AllInOne) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "switchboard.cli", "doctor"],
        cwd=REPO,
        env={**system.env, "SWITCHBOARD_PORT": "not-a-port"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "SWITCHBOARD_PORT" in result.stderr

"""Each service installs what it imports: the locked dependency closure of the simulator
carries no broker or database driver, the services with state carry both, and the
simulator runs with neither imported."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

LOCK = Path(__file__).parents[2] / "uv.lock"
DRIVERS = {"aio-pika", "pymongo"}


def closure(root: str) -> set[str]:
    """Every package `root` installs (its locked dependencies, extras followed)."""
    packages = {p["name"]: p for p in tomllib.loads(LOCK.read_text())["package"]}
    seen: set[str] = set()
    todo: list[tuple[str, tuple[str, ...]]] = [(root, ())]
    while todo:
        name, extras = todo.pop()
        key = f"{name}[{','.join(extras)}]"
        if key in seen:
            continue
        seen.add(key)
        package = packages[name]
        deps = list(package.get("dependencies", []))
        for extra in extras:
            deps += package.get("optional-dependencies", {}).get(extra, [])
        todo += [(dep["name"], tuple(dep.get("extra", ()))) for dep in deps]
    return {key.split("[")[0] for key in seen}


def test_the_simulator_installs_no_broker_or_database_driver() -> None:
    assert not closure("switchboard-provider-sim") & DRIVERS


@pytest.mark.parametrize(
    "service",
    [
        "switchboard-api",
        "switchboard-dialer",
        "switchboard-webhook-ingest",
        "switchboard-notifier",
    ],
)
def test_services_with_state_install_both_drivers(service: str) -> None:
    assert closure(service) >= DRIVERS


def test_the_simulator_starts_without_importing_a_driver() -> None:
    # Build the simulator's process parts as its entry point does, then look at what
    # got imported: a top-level driver import anywhere on its path would show up.
    script = (
        "import sys\n"
        "from switchboard_shared.runtime.settings import Settings\n"
        "from switchboard_shared.runtime.process import assemble_app\n"
        "from switchboard_shared.http.ops import Readiness\n"
        "from switchboard_provider_sim.service import parts\n"
        'built = [parts(Settings(service="provider-sim"))]\n'
        'assemble_app(built, Readiness(), "sim", Settings())\n'
        "print(sorted(m for m in ('aio_pika', 'pymongo', 'aiormq') if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"

"""The `switchboard` command as an operator runs it: a process (`python -m switchboard.cli`)
on a real SQLite file, checked by its output, its exit code and what it stored."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import click
import httpx
import pytest

from switchboard.cli import main as switchboard_cli
from switchboard_api.auth import tenant_for_key
from switchboard_shared.adapters.store.sqlite import SqliteStore
from switchboard_shared.domain.agents import Tier
from switchboard_shared.domain.breakers import BreakerState, ProviderBreaker
from switchboard_shared.ports import Store
from switchboard_testing.net import free_port
from tests.support.api_client import AGENTS_FILE, running_api
from tests.support.net import wait_for_port

REPO = Path(__file__).resolve().parents[2]
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


@dataclass
class Cli:
    """Runs `python -m switchboard.cli ARGS` with `env` (no SWITCHBOARD_* but these)."""

    env: dict[str, str]

    def __call__(self, *args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
        return subprocess.run(
            [sys.executable, "-m", "switchboard.cli", *args],
            cwd=REPO,
            env={**base, **self.env, **extra_env},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def ok(self, *args: str, **extra_env: str) -> str:
        """Stdout of a command that must succeed."""
        result = self(*args, **extra_env)
        assert result.returncode == EXIT_OK, f"switchboard {' '.join(args)}: {result.stderr}"
        return result.stdout


def assert_one_line_error(result: subprocess.CompletedProcess[str], code: int) -> str:
    """The command failed with `code` and said why in one line, without a traceback."""
    assert result.returncode == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    return lines[0]


def assert_usage_error(result: subprocess.CompletedProcess[str]) -> str:
    """Exit 2 with Click's usage block and one `Error:` line, without a traceback."""
    assert result.returncode == EXIT_USAGE, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("Usage: switchboard"), result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: "), result.stderr
    return last


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "cli.db"


@pytest.fixture
def cli(db: Path) -> Cli:
    return Cli({"SWITCHBOARD_SQLITE_PATH": str(db)})


@pytest.fixture
async def store(db: Path) -> AsyncIterator[Store]:
    """The same SQLite file the commands write, read by the test."""
    opened = SqliteStore(db)
    await opened.start()
    try:
        yield opened
    finally:
        await opened.close()


def raw_key_from(output: str) -> str:
    match = re.search(r"api key: (\S+)", output)
    assert match, output
    return match.group(1)


def key_id_from(output: str) -> str:
    match = re.search(r"key id: (\S+)", output)
    assert match, output
    return match.group(1)


# --- tenants --------------------------------------------------------------------------


async def test_tenants_create(cli: Cli, store: Store) -> None:
    out = cli.ok("tenants", "create", "acme")
    tenant = await store.get_tenant_by_name("acme")
    assert tenant is not None
    assert tenant.tenant_id in out
    again = cli("tenants", "create", "acme")
    assert "already exists" in assert_one_line_error(again, EXIT_FAILED)


async def test_tenants_ensure_twice_prints_the_same_id(cli: Cli, store: Store) -> None:
    first = cli("tenants", "ensure", "demo")
    assert first.returncode == EXIT_OK, first.stderr
    assert "created" in first.stderr
    second = cli("tenants", "ensure", "demo")
    assert second.returncode == EXIT_OK, second.stderr
    assert "exists" in second.stderr
    tenant = await store.get_tenant_by_name("demo")
    assert tenant is not None
    assert first.stdout == second.stdout == tenant.tenant_id + "\n"  # only the id: scriptable
    cli.ok("tenants", "create", "acme")
    acme = await store.get_tenant_by_name("acme")
    assert acme is not None
    assert cli.ok("tenants", "ensure", "acme").strip() == acme.tenant_id


async def test_tenants_set_limit_changes_what_show_and_the_store_say(
    cli: Cli, store: Store
) -> None:
    cli.ok("tenants", "create", "acme")
    assert "max_concurrent_calls: 10" in cli.ok("tenants", "show", "acme")  # the default

    out = cli.ok("tenants", "set-limit", "acme", "--max-concurrent-calls", "25")

    assert "25" in out
    tenant = await store.get_tenant_by_name("acme")
    assert tenant is not None
    assert tenant.max_concurrent_calls == 25
    shown = cli.ok("tenants", "show", "acme")
    assert "max_concurrent_calls: 25" in shown
    assert f"tenant_id: {tenant.tenant_id}" in shown
    assert "active_calls: 0" in shown


async def test_tenants_set_limit_refuses_bad_values_and_unknown_tenants(
    cli: Cli, store: Store
) -> None:
    cli.ok("tenants", "create", "acme")
    for bad in ("0", "-3", "10001", "many"):
        assert_usage_error(cli("tenants", "set-limit", "acme", "--max-concurrent-calls", bad))
    assert_usage_error(cli("tenants", "set-limit", "acme"))
    missing = cli("tenants", "set-limit", "nobody", "--max-concurrent-calls", "5")
    assert "no tenant named 'nobody'" in assert_one_line_error(missing, EXIT_FAILED)
    assert "no tenant" in assert_one_line_error(cli("tenants", "show", "nobody"), EXIT_FAILED)
    tenant = await store.get_tenant_by_name("acme")
    assert tenant is not None
    assert tenant.max_concurrent_calls == 10


def test_a_blank_tenant_name_is_a_usage_error(cli: Cli) -> None:
    assert "blank" in assert_usage_error(cli("tenants", "create", "  "))
    assert "blank" in assert_usage_error(cli("tenants", "ensure", ""))


# --- keys -----------------------------------------------------------------------------


async def test_keys_create_prints_the_key_once_and_stores_only_its_hash(
    cli: Cli, store: Store
) -> None:
    cli.ok("tenants", "create", "acme")
    raw = raw_key_from(cli.ok("keys", "create", "--tenant", "acme"))
    assert raw.startswith("sk_")
    tenant = await tenant_for_key(store, raw)
    assert tenant is not None
    assert tenant.name == "acme"
    (key,) = await store.list_api_keys(tenant.tenant_id)
    assert raw not in key.model_dump_json()

    listing = cli.ok("keys", "list", "--tenant", "acme")
    assert key.key_id in listing
    assert raw[:7] in listing
    assert raw not in listing


def test_keys_for_an_unknown_tenant(cli: Cli) -> None:
    for args in (
        ("keys", "create", "--tenant", "ghost"),
        ("keys", "list", "--tenant", "ghost"),
        ("keys", "create", "--tenant", "ghost", "--key-from-env", "KEY"),
    ):
        result = cli(*args, KEY="sk_ghost_key_123")
        assert "ghost" in assert_one_line_error(result, EXIT_FAILED)


async def test_keys_revoke(cli: Cli, store: Store) -> None:
    cli.ok("tenants", "create", "acme")
    first = raw_key_from(cli.ok("keys", "create", "--tenant", "acme"))
    second = raw_key_from(cli.ok("keys", "create", "--tenant", "acme"))
    tenant = await store.get_tenant_by_name("acme")
    assert tenant is not None
    keys = {k.hint: k for k in await store.list_api_keys(tenant.tenant_id)}
    key_id = keys[first[:7]].key_id

    assert cli.ok("keys", "revoke", key_id).strip() == f"revoked {key_id}"
    assert await tenant_for_key(store, first) is None
    assert await tenant_for_key(store, second) is not None
    assert_one_line_error(cli("keys", "revoke", key_id), EXIT_FAILED)  # already revoked
    assert "key_doesnotexist" in assert_one_line_error(
        cli("keys", "revoke", "key_doesnotexist"), EXIT_FAILED
    )
    listing = cli.ok("keys", "list", "--tenant", "acme")
    line = next(ln for ln in listing.splitlines() if key_id in ln)
    assert not line.rstrip().endswith("-")  # shows when it was revoked


async def test_a_key_from_the_command_works_on_the_api_until_revoked(
    cli: Cli, store: Store, tmp_path: Path
) -> None:
    cli.ok("agents", "load", str(AGENTS_FILE))
    cli.ok("tenants", "create", "acme")
    output = cli.ok("keys", "create", "--tenant", "acme")
    raw, key_id = raw_key_from(output), key_id_from(output)
    async with running_api(tmp_path, store=store) as api:
        client = api.client(raw)
        body = {"phone": "+996700000000", "agent": "altynai"}
        assert (await client.post("/v1/calls", json=body)).status_code == 201
        # In a thread: the API under test serves on this event loop.
        await asyncio.to_thread(cli.ok, "keys", "revoke", key_id)
        assert (await client.get("/v1/calls")).status_code == 401


async def test_keys_create_from_env_is_idempotent_and_never_prints_the_key(
    cli: Cli, store: Store
) -> None:
    chosen = "sk_demo_switchboard"
    cli.ok("tenants", "ensure", "demo")
    first = cli("keys", "create", "--tenant", "demo", "--key-from-env", "DEMO_KEY", DEMO_KEY=chosen)
    again = cli("keys", "create", "--tenant", "demo", "--key-from-env", "DEMO_KEY", DEMO_KEY=chosen)
    for result in (first, again):
        assert result.returncode == EXIT_OK, result.stderr
        assert chosen not in result.stdout + result.stderr, "the operator holds it already"
    assert "stored" in first.stderr
    assert "already stored" in again.stderr
    assert key_id_from(first.stdout) == key_id_from(again.stdout)
    tenant = await tenant_for_key(store, chosen)
    assert tenant is not None
    assert tenant.name == "demo"
    assert len(await store.list_api_keys(tenant.tenant_id)) == 1


async def test_keys_create_from_env_refuses_another_tenants_or_a_revoked_key(
    cli: Cli, store: Store
) -> None:
    cli.ok("tenants", "create", "acme")
    cli.ok("tenants", "create", "other")
    acmes = raw_key_from(cli.ok("keys", "create", "--tenant", "acme"))
    taken = cli("keys", "create", "--tenant", "other", "--key-from-env", "K", K=acmes)
    assert "another tenant" in assert_one_line_error(taken, EXIT_FAILED)
    assert acmes not in taken.stderr

    key_id = key_id_from(
        cli.ok("keys", "create", "--tenant", "acme", "--key-from-env", "K", K=acmes)
    )
    cli.ok("keys", "revoke", key_id)
    revoked = cli("keys", "create", "--tenant", "acme", "--key-from-env", "K", K=acmes)
    assert "revoked" in assert_one_line_error(revoked, EXIT_FAILED)
    other = await store.get_tenant_by_name("other")
    assert other is not None
    assert await store.list_api_keys(other.tenant_id) == []


@pytest.mark.parametrize(
    "value",
    [
        "hello",  # no prefix
        "sk_short",  # too short to be a key
        "sk_with space inside",
        "sk_" + "a" * 201,  # too long
        "pk_live_abcdefghijkl",  # someone else's key format
        " sk_demo_switchboard",  # stray whitespace from a secret file
    ],
)
async def test_keys_create_from_env_refuses_a_value_not_in_our_format(
    cli: Cli, store: Store, value: str
) -> None:
    cli.ok("tenants", "create", "acme")
    result = cli("keys", "create", "--tenant", "acme", "--key-from-env", "THE_KEY", THE_KEY=value)
    error = assert_usage_error(result)
    assert "THE_KEY" in error
    assert "sk_" in error  # says what a key looks like
    assert value.strip() not in result.stderr, "a secret is never echoed"
    tenant = await store.get_tenant_by_name("acme")
    assert tenant is not None
    assert await store.list_api_keys(tenant.tenant_id) == []


def test_keys_create_from_an_unset_variable(cli: Cli) -> None:
    cli.ok("tenants", "create", "acme")
    result = cli("keys", "create", "--tenant", "acme", "--key-from-env", "NOT_SET_ANYWHERE")
    assert "NOT_SET_ANYWHERE is not set" in assert_usage_error(result)
    empty = cli("keys", "create", "--tenant", "acme", "--key-from-env", "EMPTY", EMPTY="")
    assert "EMPTY is not set" in assert_usage_error(empty)


# --- agents ---------------------------------------------------------------------------


async def test_agents_load_the_example_file(cli: Cli, store: Store) -> None:
    out = cli.ok("agents", "load", str(AGENTS_FILE))
    agents = {a.key: a for a in await store.list_agents()}
    assert set(agents) == {"altynai", "akylai", "altai"}
    for agent in agents.values():
        assert agent.enabled
        assert agent.routes[0].provider == "simulator"  # what `make run` has
        assert agent.routes[0].provider_agent_id
        assert agent.routes[0].from_number
        assert agent.language in {"ky", "ru"}
        assert agent.max_duration_seconds is None or agent.max_duration_seconds >= 10
    assert out.count("loaded agent") == 3
    # Every field of the example loads: a second route, inline agent, placeholders.
    altynai = agents["altynai"]
    assert [(r.provider, r.tier) for r in altynai.routes] == [
        ("simulator", None),
        ("vocode", Tier.ADVANCED),
    ]
    assert altynai.routes[1].provider_agent_id is None
    assert altynai.prompt is not None
    assert "{{customer_name}}" in altynai.prompt
    assert set(altynai.analysis) == {"confirmed", "reschedule_to"}
    # Loading again updates in place.
    cli.ok("agents", "load", str(AGENTS_FILE))
    assert len(await store.list_agents()) == 3


async def test_agents_load_updates_changed_agents(cli: Cli, store: Store, tmp_path: Path) -> None:
    cli.ok("agents", "load", str(AGENTS_FILE))
    changed = tmp_path / "agents.yaml"
    changed.write_text(
        "agents:\n"
        "  - key: altai\n"
        "    name: Altai v2\n"
        "    provider: voxpria\n"
        "    provider_agent_id: agent_abc123\n"
        "    enabled: false\n"
        "    tenants: [acme]\n"
    )
    assert cli.ok("agents", "load", str(changed)).strip() == "loaded agent altai (disabled)"
    altai = await store.get_agent("altai")
    assert altai is not None
    assert (altai.name, altai.routes[0].provider, altai.enabled, altai.tenants) == (
        "Altai v2",
        "voxpria",
        False,
        ["acme"],
    )
    assert len(await store.list_agents()) == 3  # the others are kept


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("agents: [\n  - key: x\n", "invalid YAML"),
        ("", "non-empty list"),
        ("agents: {}\n", "non-empty list"),
        ("just a string\n", "non-empty list"),
        ("agents:\n  - key: ok\n    name: Ok\n", "provider"),  # missing provider fields
        (
            "agents:\n  - key: Bad Key!\n    name: B\n    provider: simulator\n"
            "    provider_agent_id: a\n",
            "key",
        ),
        (
            "agents:\n  - key: a\n    name: A\n    provider: simulator\n    provider_agent_id: a\n"
            "    from_number: '0555 123'\n",
            "from_number",
        ),
        (
            "agents:\n  - key: a\n    name: A\n    provider: simulator\n    provider_agent_id: a\n"
            "  - key: a\n    name: A2\n    provider: simulator\n    provider_agent_id: b\n",
            "twice",
        ),
        (
            "agents:\n  - key: a\n    name: A\n    provider: simulator\n    provider_agent_id: a\n"
            "    max_duration_seconds: 5\n",
            "max_duration_seconds",
        ),
    ],
)
async def test_a_bad_agents_file_is_refused_whole(
    cli: Cli, store: Store, tmp_path: Path, content: str, says: str
) -> None:
    # A valid agent first: it must not be stored when a later entry is bad.
    path = tmp_path / "agents.yaml"
    good = (
        "agents:\n  - key: first\n    name: F\n    provider: simulator\n    provider_agent_id: f\n"
    )
    path.write_text(
        content.replace("agents:\n", good, 1) if content.startswith("agents:\n ") else content
    )
    error = assert_usage_error(cli("agents", "load", str(path)))
    assert str(path) in error
    assert says in error
    assert await store.list_agents() == []


def test_every_route_problem_is_reported_with_its_agent_and_field(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "agents.yaml"
    path.write_text(
        "agents:\n"
        "  - key: one\n    name: One\n    routes:\n"
        "      - {provider: vocod, provider_agent_id: x}\n"  # no such adapter
        "      - {provider: simulator}\n"  # the simulator needs its agent id
        "  - key: two\n    name: Two\n    routes:\n"
        "      - {provider: vocode, from_number: '12345'}\n"  # inline agent: fine; number: not
        "      - {provider: voxpria, provider_agent_id: v, weight: 0}\n"
        "  - key: three\n    name: Three\n    routes:\n"
        "      - {provider: vocode, from_number: '12345'}\n"
    )
    error = assert_usage_error(cli("agents", "load", str(path)))
    for problem in (
        "agent #1 (one): routes.0.provider: unknown provider 'vocod'",
        "agent #1 (one): routes.1.provider_agent_id: required for simulator",
        "agent #2 (two): routes.1.weight",
        "agent #3 (three): routes.0.from_number: not a valid E.164 number",
    ):
        assert problem in error, error
    # The model's refusal (weight) stops that entry before its numbers are checked.
    assert "agent #2 (two): routes.0.from_number" not in error


def test_agents_load_a_missing_file(cli: Cli) -> None:
    error = assert_usage_error(cli("agents", "load", "/nonexistent/agents.yaml"))
    assert "cannot read" in error


def test_agents_list_shows_the_routing(cli: Cli) -> None:
    cli.ok("agents", "load", str(AGENTS_FILE))
    out = cli.ok("agents", "list")
    for key in ("altynai", "akylai", "altai"):
        assert key in out
    assert "simulator" in out  # operators do see providers


async def test_providers_status_shows_each_breaker(cli: Cli, store: Store) -> None:
    opened_at = datetime(2026, 5, 1, 9, 30, tzinfo=UTC)
    await store.save_breaker(
        ProviderBreaker(
            provider="vocode",
            state=BreakerState.OPEN,
            opened_at=opened_at,
            changed_at=opened_at,
            last_error="creates fail before being accepted",
        )
    )
    out = cli.ok("providers", "status", SWITCHBOARD_SIMULATOR__BASE_URL="http://127.0.0.1:9")
    rows = {line.split()[0]: line for line in out.strip().splitlines()[1:]}
    assert set(rows) == {"simulator", "vocode"}  # configured, or with a breaker on record
    assert rows["simulator"].split()[1] == "closed"
    assert rows["vocode"].split()[1:3] == ["open", opened_at.isoformat()]
    assert rows["vocode"].endswith("creates fail before being accepted")


# --- run ------------------------------------------------------------------------------


def test_run_serves_a_target_until_sigterm(cli: Cli, tmp_path: Path) -> None:
    port = free_port()
    base = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "switchboard.cli", "run", "provider-sim"],
        cwd=REPO,
        env={**base, **cli.env, "SWITCHBOARD_PORT": str(port)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for_port(port, timeout=30)
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == EXIT_OK
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        assert process.stderr is not None
        process.stderr.close()


# --- help, usage errors, an unreachable store ----------------------------------------

COMMAND_PATHS = [
    (),
    ("run",),
    ("tenants",),
    ("tenants", "create"),
    ("tenants", "ensure"),
    ("tenants", "set-limit"),
    ("tenants", "show"),
    ("keys",),
    ("keys", "create"),
    ("keys", "list"),
    ("keys", "revoke"),
    ("agents",),
    ("agents", "load"),
    ("agents", "list"),
    ("dlq",),
    ("dlq", "list"),
    ("dlq", "replay"),
    ("doctor",),
    ("providers",),
    ("providers", "status"),
]


def command_tree() -> set[tuple[str, ...]]:
    """Every command and group path the CLI has, walked from its root."""
    paths: set[tuple[str, ...]] = set()

    def walk(command: click.Command, path: tuple[str, ...], ctx: click.Context) -> None:
        paths.add(path)
        if isinstance(command, click.Group):
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                assert sub is not None
                walk(sub, (*path, name), click.Context(sub, info_name=name, parent=ctx))

    walk(switchboard_cli, (), click.Context(switchboard_cli, info_name="switchboard"))
    return paths


def test_every_command_has_a_help_test() -> None:
    assert set(COMMAND_PATHS) == command_tree()


@pytest.mark.parametrize("path", COMMAND_PATHS, ids=lambda p: " ".join(p) or "switchboard")
def test_help(cli: Cli, path: tuple[str, ...]) -> None:
    result = cli(*path, "--help")
    assert result.returncode == EXIT_OK, result.stderr
    assert result.stdout.startswith(f"Usage: {' '.join(('switchboard', *path))} ")
    description = result.stdout.split("\n\n", 1)[1].split("Options:")[0].strip()
    assert len(description.split()) >= 5, f"no meaningful help: {result.stdout}"
    if not path:
        assert "Exit codes" in result.stdout


def test_the_installed_command_is_the_same(cli: Cli) -> None:
    installed = Path(sys.executable).parent / "switchboard"
    result = subprocess.run(
        [str(installed), "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == EXIT_OK, result.stderr
    assert result.stdout.startswith("switchboard, version ")


@pytest.mark.parametrize(
    "args",
    [
        (),  # no command
        ("frob",),
        ("tenants",),  # a group without its subcommand
        ("tenants", "create"),  # missing NAME
        ("keys", "create"),  # missing --tenant
        ("keys", "list", "--tenant"),  # --tenant without a value
        ("agents", "list", "--bogus"),
        ("run", "everything"),
        ("dlq", "list", "nope.queue"),
        ("dlq", "replay", "notifier.events", "--limit", "0"),
    ],
    ids=lambda a: " ".join(a) or "nothing",
)
def test_usage_errors_exit_2(cli: Cli, args: tuple[str, ...]) -> None:
    result = cli(*args)
    assert result.returncode == EXIT_USAGE, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert "Usage: switchboard" in result.stderr or result.stderr.startswith("Error: ")


def test_invalid_settings_are_a_usage_error(cli: Cli) -> None:
    error = assert_usage_error(cli("agents", "list", SWITCHBOARD_PORT="eighty"))
    assert "SWITCHBOARD_PORT" in error


@pytest.mark.parametrize(
    "args",
    [
        ("tenants", "ensure", "acme"),
        ("keys", "create", "--tenant", "acme", "--key-from-env", "K"),
        ("keys", "list", "--tenant", "acme"),
        ("agents", "load", str(AGENTS_FILE)),
        ("agents", "list"),
    ],
    ids=" ".join,
)
def test_an_unreachable_store_exits_1_with_one_line(tmp_path: Path, args: tuple[str, ...]) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    unreachable = Cli({"SWITCHBOARD_SQLITE_PATH": str(blocker / "switchboard.db")})
    error = assert_one_line_error(unreachable(*args, K="sk_demo_switchboard"), EXIT_FAILED)
    assert "cannot open the store" in error
    assert str(blocker) in error


def test_an_unreachable_mongodb_exits_1_without_its_credentials() -> None:
    url = f"mongodb://operator:hunter2secret@127.0.0.1:{free_port()}/"
    error = assert_one_line_error(Cli({"SWITCHBOARD_MONGODB_URL": url})("agents", "list"), 1)
    assert "cannot open the store (MongoDB at 127.0.0.1:" in error
    assert "hunter2secret" not in error

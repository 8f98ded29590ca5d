"""Operator commands against a real SQLite store: tenants, keys and agents."""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from switchboard_api.admin import add_admin_commands, ensure_demo_tenant, load_agents_file
from switchboard_api.auth import tenant_for_key
from switchboard_shared.ports import Store
from tests.support.api_client import AGENTS_FILE, running_api
from tests.support.stores import open_store

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with open_store("sqlite", tmp_path=tmp_path) as opened:
        yield opened


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="switchboard")
    add_admin_commands(root.add_subparsers(dest="command", required=True))
    return root


async def run(store: Store, *argv: str) -> int:
    args = parser().parse_args(list(argv))
    return int(await args.handler(args, store))


def raw_key_from(output: str) -> str:
    match = re.search(r"api key: (\S+)", output)
    assert match, output
    return match.group(1)


# --- tenants and keys -----------------------------------------------------------------


async def test_tenants_create(store: Store, capsys: pytest.CaptureFixture[str]) -> None:
    assert await run(store, "tenants", "create", "acme") == 0
    tenant = await store.get_tenant_by_name("acme")
    assert tenant is not None
    assert tenant.tenant_id in capsys.readouterr().out
    assert await run(store, "tenants", "create", "acme") == 1
    assert "already exists" in capsys.readouterr().err


async def test_keys_create_prints_the_key_once_and_stores_only_its_hash(
    store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    await run(store, "tenants", "create", "acme")
    capsys.readouterr()
    assert await run(store, "keys", "create", "--tenant", "acme") == 0
    raw = raw_key_from(capsys.readouterr().out)
    tenant = await tenant_for_key(store, raw)
    assert tenant is not None
    assert tenant.name == "acme"
    (key,) = await store.list_api_keys(tenant.tenant_id)
    assert raw not in key.model_dump_json()

    assert await run(store, "keys", "list", "--tenant", "acme") == 0
    listing = capsys.readouterr().out
    assert key.key_id in listing
    assert raw[:7] in listing
    assert raw not in listing


async def test_keys_for_an_unknown_tenant(store: Store, capsys: pytest.CaptureFixture[str]) -> None:
    assert await run(store, "keys", "create", "--tenant", "ghost") == 1
    assert await run(store, "keys", "list", "--tenant", "ghost") == 1
    assert "ghost" in capsys.readouterr().err


async def test_keys_revoke(store: Store, capsys: pytest.CaptureFixture[str]) -> None:
    await run(store, "tenants", "create", "acme")
    await run(store, "keys", "create", "--tenant", "acme")
    await run(store, "keys", "create", "--tenant", "acme")
    first, second = re.findall(r"api key: (\S+)", capsys.readouterr().out)
    tenant = await store.get_tenant_by_name("acme")
    assert tenant is not None
    keys = {k.hint: k for k in await store.list_api_keys(tenant.tenant_id)}
    key_id = keys[first[:7]].key_id

    assert await run(store, "keys", "revoke", key_id) == 0
    assert await tenant_for_key(store, first) is None
    assert await tenant_for_key(store, second) is not None
    assert await run(store, "keys", "revoke", key_id) == 1  # already revoked
    assert await run(store, "keys", "revoke", "key_doesnotexist") == 1
    capsys.readouterr()
    await run(store, "keys", "list", "--tenant", "acme")
    line = next(ln for ln in capsys.readouterr().out.splitlines() if key_id in ln)
    assert not line.rstrip().endswith("-")  # shows when it was revoked


async def test_a_key_from_the_command_works_on_the_api_until_revoked(
    store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await load_agents_file(store, AGENTS_FILE)
    await run(store, "tenants", "create", "acme")
    await run(store, "keys", "create", "--tenant", "acme")
    output = capsys.readouterr().out
    raw = raw_key_from(output)
    key_id = re.search(r"key id: (\S+)", output).group(1)  # type: ignore[union-attr]
    async with running_api(tmp_path, store=store) as api:
        client = api.client(raw)
        body = {"phone": "+996700000000", "agent": "altynai"}
        assert (await client.post("/v1/calls", json=body)).status_code == 201
        await run(store, "keys", "revoke", key_id)
        assert (await client.get("/v1/calls")).status_code == 401


# --- agents -----------------------------------------------------------------------------


async def test_agents_load_the_example_file(
    store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await run(store, "agents", "load", str(AGENTS_FILE)) == 0
    agents = {a.key: a for a in await store.list_agents()}
    assert set(agents) == {"altynai", "akylai", "altai"}
    for agent in agents.values():
        assert agent.enabled
        assert agent.provider == "simulator"
        assert agent.provider_agent_id
        assert agent.from_number
        assert agent.language in {"ky", "ru"}
        assert agent.max_duration_seconds >= 10
    assert capsys.readouterr().out.count("loaded agent") == 3
    # Loading again updates in place.
    assert await run(store, "agents", "load", str(AGENTS_FILE)) == 0
    assert len(await store.list_agents()) == 3


async def test_agents_load_updates_changed_agents(store: Store, tmp_path: Path) -> None:
    await run(store, "agents", "load", str(AGENTS_FILE))
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
    assert await load_agents_file(store, changed) == 1
    altai = await store.get_agent("altai")
    assert altai is not None
    assert (altai.name, altai.provider, altai.enabled, altai.tenants) == (
        "Altai v2",
        "voxpria",
        False,
        ["acme"],
    )


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
    store: Store,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    content: str,
    says: str,
) -> None:
    # A valid agent first: it must not be stored when a later entry is bad.
    path = tmp_path / "agents.yaml"
    good = (
        "agents:\n  - key: first\n    name: F\n    provider: simulator\n    provider_agent_id: f\n"
    )
    path.write_text(
        content.replace("agents:\n", good, 1) if content.startswith("agents:\n ") else content
    )
    assert await run(store, "agents", "load", str(path)) == 2
    err = capsys.readouterr().err
    assert str(path) in err
    assert says in err
    assert await store.list_agents() == []


async def test_agents_load_a_missing_file(store: Store, capsys: pytest.CaptureFixture[str]) -> None:
    assert await run(store, "agents", "load", "/nonexistent/agents.yaml") == 2
    assert "cannot read" in capsys.readouterr().err


async def test_agents_list_shows_the_routing(
    store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    await run(store, "agents", "load", str(AGENTS_FILE))
    capsys.readouterr()
    assert await run(store, "agents", "list") == 0
    out = capsys.readouterr().out
    for key in ("altynai", "akylai", "altai"):
        assert key in out
    assert "simulator" in out  # operators do see providers


# --- all-in-one demo tenant -----------------------------------------------------------


async def test_ensure_demo_tenant_generates_a_working_key(store: Store) -> None:
    raw = await ensure_demo_tenant(store, None)
    tenant = await tenant_for_key(store, raw)
    assert tenant is not None
    assert tenant.name == "demo"
    again = await ensure_demo_tenant(store, None)  # a restart without a configured key
    assert again != raw
    assert (await tenant_for_key(store, again)) == tenant


async def test_ensure_demo_tenant_keeps_a_given_key_without_duplicates(store: Store) -> None:
    assert await ensure_demo_tenant(store, "sk_dev_local_key") == "sk_dev_local_key"
    assert await ensure_demo_tenant(store, "sk_dev_local_key") == "sk_dev_local_key"
    tenant = await store.get_tenant_by_name("demo")
    assert tenant is not None
    assert len(await store.list_api_keys(tenant.tenant_id)) == 1
    assert await tenant_for_key(store, "sk_dev_local_key") == tenant


async def test_ensure_demo_tenant_refuses_another_tenants_key(
    store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    await run(store, "tenants", "create", "acme")
    await run(store, "keys", "create", "--tenant", "acme")
    raw = raw_key_from(capsys.readouterr().out)
    with pytest.raises(ValueError, match="another tenant"):
        await ensure_demo_tenant(store, raw)


# --- through the real command line ----------------------------------------------------


async def test_the_switchboard_command_runs_these(tmp_path: Path) -> None:
    env = {**os.environ, "SWITCHBOARD_SQLITE_PATH": str(tmp_path / "cli.db")}
    env.pop("SWITCHBOARD_MONGODB_URL", None)

    async def switchboard(*argv: str) -> str:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "switchboard.cli",
            *argv,
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode == 0, err.decode()
        return out.decode()

    await switchboard("tenants", "create", "acme")
    raw = raw_key_from(await switchboard("keys", "create", "--tenant", "acme"))
    assert raw.startswith("sk_")
    assert "altynai" in await switchboard("agents", "load", str(AGENTS_FILE))

"""docker-compose.yml, the Dockerfile and .dockerignore: every reference resolves, every
setting is real, every image is hardened. No Docker engine needed: the files are read as
data, and the bootstrap script runs for real against a SQLite store."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

from switchboard_shared.runtime.settings import Settings, environment_variable_names

ROOT = Path(__file__).parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

# Dockerfile target → (workspace package it installs, module `python -m` runs).
SERVICE_TARGETS = {
    "api": ("switchboard-api", "switchboard_api"),
    "dialer": ("switchboard-dialer", "switchboard_dialer"),
    "webhook-ingest": ("switchboard-webhook-ingest", "switchboard_ingest"),
    "notifier": ("switchboard-notifier", "switchboard_notifier"),
    "media-edge": ("switchboard-media-edge", "switchboard_media_edge"),
    "provider-sim": ("switchboard-provider-sim", "switchboard_provider_sim"),
}
ALL_TARGET = "all"
ROOT_PACKAGE = "switchboard"
HEALTH_PATHS = {"/healthz", "/readyz"}
DEFAULT_PORT = str(Settings.model_fields["port"].default)


# --- settings -------------------------------------------------------------------------


def setting_names() -> set[str]:
    return environment_variable_names()


def interpolate(value: Any) -> str:
    """Compose's `${VAR:-default}` / `${VAR-default}` / `${VAR}` with nothing exported,
    as on a fresh `docker compose up`; `$$` is a literal dollar."""
    text = str(value)
    text = re.sub(r"\$\{(\w+)(?::?-([^}]*))?\}", lambda m: m.group(2) or "", text)
    return text.replace("$$", "$")


# --- Dockerfile -----------------------------------------------------------------------


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)


def parse_dockerfile(text: str) -> dict[str, Stage]:
    """Stages by name (or index) with their (INSTRUCTION, arguments), lines joined."""
    joined = re.sub(r"\\\n", " ", text)
    stages: dict[str, Stage] = {}
    current: Stage | None = None
    for raw in joined.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        op, _, rest = line.partition(" ")
        op = op.upper()
        if op == "FROM":
            words = rest.split()
            words = [w for w in words if not w.startswith("--platform")]
            name = words[2] if len(words) >= 3 and words[1].lower() == "as" else str(len(stages))
            current = Stage(name=name, base=words[0])
            stages[name] = current
        elif current is not None:
            current.instructions.append((op, rest.strip()))
    return stages


def stage_chain(stages: dict[str, Stage], target: str) -> list[Stage]:
    """The target and the stages it builds on, base first."""
    chain = []
    name: str | None = target
    while name in stages:
        stage = stages[name]
        chain.insert(0, stage)
        name = stage.base
    return chain


def effective(stages: dict[str, Stage], target: str, op: str) -> str | None:
    """The last `op` instruction in force for `target`, following FROM <stage>."""
    value = None
    for stage in stage_chain(stages, target):
        for inst, rest in stage.instructions:
            if inst == op:
                value = rest
    return value


def exec_form(arguments: str) -> list[str] | None:
    try:
        parsed = json.loads(arguments)
    except json.JSONDecodeError:
        return None
    return parsed if isinstance(parsed, list) and all(isinstance(a, str) for a in parsed) else None


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def stages() -> dict[str, Stage]:
    return parse_dockerfile(DOCKERFILE.read_text())


def built_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: svc for name, svc in compose["services"].items() if "build" in svc}


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): interpolate(v) for k, v in env.items()}


def in_default_profile(service: dict[str, Any]) -> bool:
    return not service.get("profiles")


# --- compose --------------------------------------------------------------------------


def test_compose_has_the_whole_system(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in ("rabbitmq", "mongodb", "bootstrap", *SERVICE_TARGETS):
        assert name in services, f"docker-compose.yml lacks service {name!r}"
        assert in_default_profile(services[name]), f"{name} must start with plain `up`"
    assert "management" in services["rabbitmq"]["image"], "RabbitMQ needs its management UI/API"
    declared = set(compose.get("volumes") or {})
    for name, svc in services.items():
        for volume in svc.get("volumes") or []:
            source = volume.split(":", 1)[0]
            if not source.startswith((".", "/")):
                assert source in declared, f"{name}: named volume {source!r} is not declared"


def test_build_contexts_and_targets_exist(
    compose: dict[str, Any], stages: dict[str, Stage]
) -> None:
    services = built_services(compose)
    assert set(SERVICE_TARGETS) <= set(services)
    for name, svc in services.items():
        build = svc["build"]
        context = ROOT / build.get("context", ".")
        assert context.is_dir(), f"{name}: build context {context} does not exist"
        dockerfile = context / build.get("dockerfile", "Dockerfile")
        assert dockerfile.is_file(), f"{name}: {dockerfile} does not exist"
        target = build.get("target")
        assert target in stages, f"{name}: target {target!r} is not a stage of {dockerfile}"
    for target in SERVICE_TARGETS:
        assert services[target]["build"]["target"] == target


def test_compose_mounts_exist(compose: dict[str, Any]) -> None:
    for name, svc in compose["services"].items():
        for volume in svc.get("volumes") or []:
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name}: mounts missing {source}"


def test_every_switchboard_variable_is_a_real_setting(compose: dict[str, Any]) -> None:
    real = setting_names()
    # Shell variables compose reads: a SWITCHBOARD_ name must mean that setting.
    for name in re.findall(r"\$\{(SWITCHBOARD_\w+)", COMPOSE_FILE.read_text()):
        assert name in real, f"docker-compose.yml reads ${{{name}}}, which is not a setting"
    for name, svc in compose["services"].items():
        for key in environment(svc):
            if key.startswith("SWITCHBOARD_"):
                assert key in real, (
                    f"{name}: {key} is not a setting (switchboard_shared.runtime.settings)"
                )


@pytest.mark.parametrize("service", [*sorted(SERVICE_TARGETS), "bootstrap"])
def test_compose_environment_makes_valid_settings(
    compose: dict[str, Any], service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in list(os.environ):
        if key.startswith("SWITCHBOARD_"):
            monkeypatch.delenv(key)
    for key, value in environment(compose["services"][service]).items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    assert settings.host == "0.0.0.0"  # reachable from other containers
    assert (settings.broker_url or "").startswith("amqp://")
    assert "replicaSet=" in (settings.mongodb_url or ""), "MongoDB must be a replica set"
    # Setting one SIMULATOR__ field replaces the group: the rest must be set too.
    simulator = settings.provider_settings()["simulator"]
    assert urlparse(simulator.base_url or "").hostname == "provider-sim"
    assert simulator.api_key.get_secret_value()
    assert simulator.callback_secret.get_secret_value()
    # The simulator calls back the URL the dialer hands it (CALLBACK_BASE_URL), or
    # SIM_CALLBACK_URL for the Vocode/Voxpria dialects: both must reach webhook-ingest.
    for url in (settings.callback_base_url, settings.sim_callback_url or ""):
        assert urlparse(url).hostname == "webhook-ingest", url


def health_url(test: list[str] | str) -> str | None:
    text = test if isinstance(test, str) else " ".join(test)
    match = re.search(r"https?://[^'\"\s]+", text)
    return match.group(0) if match else None


def test_healthchecks_ask_the_service_port(
    compose: dict[str, Any], stages: dict[str, Stage]
) -> None:
    for name, svc in built_services(compose).items():
        if svc.get("restart") == "no":
            continue  # one-shot jobs
        assert "healthcheck" in svc, f"{name}: no healthcheck"
        url = health_url(svc["healthcheck"]["test"])
        assert url, f"{name}: the healthcheck asks no URL"
        parsed = urlparse(url)
        port = (
            environment(svc).get("SWITCHBOARD_PORT") or image_env(stages, svc)["SWITCHBOARD_PORT"]
        )
        assert parsed.hostname in {"127.0.0.1", "localhost"}
        assert str(parsed.port) == port, f"{name}: healthcheck port {parsed.port} != {port}"
        assert parsed.path in HEALTH_PATHS, f"{name}: healthcheck path {parsed.path}"
        assert svc["healthcheck"]["test"][0] in {"CMD", "CMD-SHELL"}


def image_env(stages: dict[str, Stage], svc: dict[str, Any]) -> dict[str, str]:
    env: dict[str, str] = {}
    for stage in stage_chain(stages, svc["build"]["target"]):
        for op, rest in stage.instructions:
            if op == "ENV":
                env.update(re.findall(r"(\w+)=(\S+)", rest))
    return env


def has_healthcheck(compose: dict[str, Any], stages: dict[str, Stage], name: str) -> bool:
    svc = compose["services"][name]
    if "healthcheck" in svc:
        return not svc["healthcheck"].get("disable", False)
    if "build" in svc:
        hc = effective(stages, svc["build"]["target"], "HEALTHCHECK")
        return hc is not None and hc.upper() != "NONE"
    return False


def test_depends_on_conditions_can_be_met(
    compose: dict[str, Any], stages: dict[str, Stage]
) -> None:
    services = compose["services"]
    for name, svc in services.items():
        depends = svc.get("depends_on") or {}
        if isinstance(depends, list):
            depends = {dep: {"condition": "service_started"} for dep in depends}
        for dep, spec in depends.items():
            assert dep in services, f"{name} depends on unknown service {dep!r}"
            if in_default_profile(svc):
                assert in_default_profile(services[dep]), f"{name} needs {dep}, off by default"
            condition = spec.get("condition", "service_started")
            if condition == "service_healthy":
                assert has_healthcheck(compose, stages, dep), (
                    f"{name} waits on {dep}: no healthcheck"
                )
            elif condition == "service_completed_successfully":
                assert services[dep].get("restart") == "no", f"{dep} must be a one-shot job"
            else:
                assert condition == "service_started", f"{name}: unknown condition {condition}"
    for name in SERVICE_TARGETS:
        if name == "provider-sim":
            continue
        depends = services[name]["depends_on"]
        assert depends["rabbitmq"]["condition"] == "service_healthy"
        assert depends["mongodb"]["condition"] == "service_healthy"
        assert depends["bootstrap"]["condition"] == "service_completed_successfully"


def test_infrastructure_healthchecks(compose: dict[str, Any]) -> None:
    rabbit = " ".join(compose["services"]["rabbitmq"]["healthcheck"]["test"])
    assert "rabbitmq-diagnostics" in rabbit
    mongo = compose["services"]["mongodb"]
    assert "--replSet" in mongo["command"]
    replset = mongo["command"][mongo["command"].index("--replSet") + 1]
    check = " ".join(mongo["healthcheck"]["test"])
    assert "rs.initiate" in check, "compose itself must initiate the replica set"
    assert f"_id: '{replset}'" in check
    assert "isWritablePrimary" in check, "healthy only once the node is primary"
    url = environment(compose["services"]["api"])["SWITCHBOARD_MONGODB_URL"]
    assert f"replicaSet={replset}" in url


def test_only_api_webhook_ingest_and_the_media_edge_are_published(
    compose: dict[str, Any],
) -> None:
    published = {}
    for name, svc in compose["services"].items():
        if in_default_profile(svc) and svc.get("ports"):
            published[name] = [str(p) for p in svc["ports"]]
    assert published == {
        "api": ["8000:8000"],
        "webhook-ingest": ["8001:8000"],
        "media-edge": ["8002:8000"],
    }


def test_bootstrap_creates_the_demo_tenant_and_key(compose: dict[str, Any]) -> None:
    bootstrap = compose["services"]["bootstrap"]
    assert bootstrap["build"]["target"] == ALL_TARGET
    assert bootstrap["restart"] == "no"
    env = environment(bootstrap)
    assert env["SWITCHBOARD_DEV_API_KEY"], "a fixed demo key, overridable from the shell"
    assert re.search(r"\$\{\w+:-[^}]+\}", str(bootstrap["environment"]["SWITCHBOARD_DEV_API_KEY"]))
    mounted = [v for v in bootstrap.get("volumes", []) if "agents.example.yaml" in v]
    assert [m.split(":")[1] for m in mounted] == ["/app/deploy/agents.example.yaml"]


def test_bootstrap_runs_cli_commands_only(compose: dict[str, Any]) -> None:
    """The bootstrap script is `switchboard` commands (and an echo), not inline code."""
    bootstrap = compose["services"]["bootstrap"]
    (script,) = bootstrap["command"]
    lines = [line.strip() for line in script.splitlines() if line.strip()]
    assert lines
    for line in lines:
        assert line.split()[0] in {"switchboard", "echo"}, line
        assert not re.search(r"<<|python|\|\|", line), f"{line}: commands, no code or fallbacks"
    commands = [line.split()[1:3] for line in lines if line.startswith("switchboard")]
    assert commands == [["agents", "load"], ["tenants", "ensure"], ["keys", "create"]]


def test_bootstrap_script_runs_and_is_repeatable(compose: dict[str, Any], tmp_path: Path) -> None:
    """The bootstrap command, run as the container runs it (WORKDIR /app is the repo root
    here, compose's `$$` is a literal `$`), against the embedded store instead of MongoDB:
    twice, as a re-run would."""
    bootstrap = compose["services"]["bootstrap"]
    command = [*bootstrap["entrypoint"], *map(interpolate, bootstrap["command"])]
    assert command[:2] == ["sh", "-ec"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    key = environment(bootstrap)["SWITCHBOARD_DEV_API_KEY"]
    env |= {"SWITCHBOARD_DATA_DIR": str(tmp_path), "SWITCHBOARD_DEV_API_KEY": key}
    for attempt in (1, 2):
        result = subprocess.run(
            command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
        )
        assert result.returncode == 0, f"run {attempt}: {result.stdout}\n{result.stderr}"
        assert key in result.stdout, "the demo key must be printed in the logs"
        assert "altynai" in result.stdout
    listing = subprocess.run(
        ["switchboard", "keys", "list", "--tenant", "demo"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    (row,) = listing.stdout.splitlines()[1:]  # the re-run stored no second key
    assert key[:7] in row


def test_observability_profile(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in ("otel-collector", "jaeger"):
        assert services[name]["profiles"] == ["observability"]
    endpoint = environment(services["api"])["SWITCHBOARD_OTLP_ENDPOINT"]
    assert endpoint == "", "tracing is off unless the profile's endpoint is exported"
    config_mount = next(v for v in services["otel-collector"]["volumes"] if "otel" in v)
    config = yaml.safe_load((ROOT / config_mount.split(":")[0]).read_text())
    assert config["receivers"]["otlp"]["protocols"]["http"]["endpoint"].endswith(":4318")
    assert "SWITCHBOARD_OTLP_ENDPOINT=http://otel-collector:4318" in COMPOSE_FILE.read_text()
    pipeline = config["service"]["pipelines"]["traces"]
    for kind in ("receivers", "processors", "exporters"):
        for name in pipeline[kind]:
            assert name in config[kind], f"pipeline names undefined {kind[:-1]} {name}"
    exporters = [config["exporters"][n] for n in pipeline["exporters"]]
    assert any(urlparse(f"//{e['endpoint']}").hostname == "jaeger" for e in exporters)


# --- Dockerfile -----------------------------------------------------------------------


def final_targets() -> list[str]:
    return [*SERVICE_TARGETS, ALL_TARGET]


@pytest.mark.parametrize("target", final_targets())
def test_final_stage_is_hardened(stages: dict[str, Stage], target: str) -> None:
    assert target in stages, f"Dockerfile has no target {target!r}"
    user = effective(stages, target, "USER")
    assert user, f"{target}: no USER: it would run as root"
    assert user.split(":")[0] not in {"root", "0"}, f"{target}: runs as {user}"
    healthcheck = effective(stages, target, "HEALTHCHECK")
    assert (healthcheck or "NONE").upper() != "NONE", f"{target}: no HEALTHCHECK"
    assert healthcheck is not None
    assert "/healthz" in healthcheck, f"{target}: HEALTHCHECK must ask /healthz"
    assert "SWITCHBOARD_PORT" in healthcheck, f"{target}: HEALTHCHECK must follow the port"
    cmd = healthcheck[healthcheck.upper().index("CMD ") + 4 :]
    assert exec_form(cmd), f"{target}: HEALTHCHECK CMD is not exec form"
    assert not {"curl", "wget"} & set(re.findall(r"\w+", cmd)), "slim images have neither"
    entrypoint = effective(stages, target, "ENTRYPOINT")
    assert exec_form(entrypoint or ""), f"{target}: ENTRYPOINT must be exec form"
    command = effective(stages, target, "CMD")
    assert command is None or exec_form(command), f"{target}: CMD must be exec form"
    base = stage_chain(stages, target)[0].base
    assert base == "${PYTHON_IMAGE}", f"{target}: final image must build on the slim base"
    default = re.search(r"^ARG PYTHON_IMAGE=(\S+)", DOCKERFILE.read_text(), re.M)
    assert re.fullmatch(r"python:3\.11-slim(-\w+)?", default.group(1) if default else "")


def workspace_members() -> dict[str, Path]:
    members = {}
    for pyproject in [ROOT / "pyproject.toml", *ROOT.glob("shared/pyproject.toml")]:
        members[tomllib.loads(pyproject.read_text())["project"]["name"]] = pyproject.parent
    for pyproject in ROOT.glob("services/*/pyproject.toml"):
        members[tomllib.loads(pyproject.read_text())["project"]["name"]] = pyproject.parent
    return members


@pytest.mark.parametrize("target", list(SERVICE_TARGETS))
def test_service_image_runs_its_module(stages: dict[str, Stage], target: str) -> None:
    package, module = SERVICE_TARGETS[target]
    assert exec_form(effective(stages, target, "ENTRYPOINT") or "") == ["python", "-m", module]
    assert importlib.util.find_spec(module) is not None, f"{module} is not installed"
    assert importlib.util.find_spec(f"{module}.__main__") is not None, f"{module} has no __main__"
    assert package in workspace_members()


def test_all_image_runs_the_cli(stages: dict[str, Stage]) -> None:
    root = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    entrypoint = exec_form(effective(stages, ALL_TARGET, "ENTRYPOINT") or "")
    assert entrypoint == [next(iter(root["scripts"]))]
    assert exec_form(effective(stages, ALL_TARGET, "CMD") or "") == ["run", "all"]


def uv_syncs(stage: Stage) -> list[list[str]]:
    return [
        shlex.split(rest.split("uv sync", 1)[1])
        for op, rest in stage.instructions
        if op == "RUN" and "uv sync" in rest
    ]


@pytest.mark.parametrize(
    ("target", "package"),
    [(t, p) for t, (p, _) in SERVICE_TARGETS.items()] + [(ALL_TARGET, ROOT_PACKAGE)],
)
def test_builder_installs_only_its_package_from_the_lock(
    stages: dict[str, Stage], target: str, package: str
) -> None:
    final = stages[target]
    copies = [rest for op, rest in final.instructions if op == "COPY" and "--from=" in rest]
    builders = {re.search(r"--from=(\S+)", c).group(1) for c in copies if "/app/.venv" in c}  # type: ignore[union-attr]
    assert len(builders) == 1, f"{target}: copies its venv from {builders}"
    builder = builders.pop()
    assert builder in set(stages) - {target}
    env = " ".join(
        rest for s in stage_chain(stages, builder) for op, rest in s.instructions if op == "ENV"
    )
    syncs = uv_syncs(stages[builder])
    assert syncs, f"{builder}: no `uv sync`"
    for args in syncs:
        assert args[args.index("--package") + 1] == package, f"{builder}: syncs {args}"
        assert "--frozen" in args or "UV_FROZEN=1" in env, "install from uv.lock as it is"
        assert "--no-dev" in args or "UV_NO_DEV=1" in env, "no dev group in images"
    assert "--no-editable" in syncs[-1], "the venv must not point into the build context"
    assert package in workspace_members()
    assert "UV_PROJECT_ENVIRONMENT=/app/.venv" in env


def dockerignore_patterns() -> list[str]:
    lines = [line.strip() for line in DOCKERIGNORE.read_text().splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(out + r"\Z")


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins; a match on a parent directory
    excludes what is under it."""
    parts = path.strip("/").split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        regex = _pattern_regex(pattern.lstrip("!").strip("/"))
        if any(regex.match(c) for c in candidates):
            ignored = not negated
    return ignored


def test_dockerignore_rule_matches_docker() -> None:
    patterns = ["**/.venv", "tests", "deploy/*.yaml", "!deploy/agents.example.yaml"]
    assert dockerignored(".venv/bin/python", patterns)
    assert dockerignored("services/api/.venv/x", patterns)
    assert dockerignored("tests/unit/test_x.py", patterns)
    assert dockerignored("deploy/otel-collector.yaml", patterns)
    assert not dockerignored("deploy/agents.example.yaml", patterns)
    assert not dockerignored("shared/src/x.py", patterns)


def test_every_copied_file_is_in_the_build_context(stages: dict[str, Stage]) -> None:
    patterns = dockerignore_patterns()
    for stage in stages.values():
        for op, rest in stage.instructions:
            if op not in {"COPY", "ADD"} or "--from=" in rest:
                continue
            *sources, _ = [w for w in rest.split() if not w.startswith("--")]
            for source in sources:
                path = ROOT / source
                assert path.exists(), f"stage {stage.name}: COPY {source}: no such path"
                files = (
                    [path]
                    if path.is_file()
                    else [
                        p
                        for p in path.rglob("*")
                        if p.is_file()
                        and "__pycache__" not in p.parts
                        and p.suffix in {".py", ".toml", ".md", ".yaml", ".lock", ".typed"}
                    ]
                )
                assert files, f"COPY {source}: nothing to copy"
                for file in files:
                    rel = file.relative_to(ROOT).as_posix()
                    assert not dockerignored(rel, patterns), (
                        f"{rel} is copied but .dockerignore drops it"
                    )


def test_dockerignore_keeps_the_context_small() -> None:
    patterns = dockerignore_patterns()
    heavy = [
        ".venv/bin/python",
        ".git/HEAD",
        ".tools/bin/uv",
        "tests/unit/test_x.py",
        "bench/pipeline.py",
        "services/api/src/switchboard_api/__pycache__/app.cpython-311.pyc",
        ".switchboard/switchboard.db",
    ]
    for path in heavy:
        assert dockerignored(path, patterns), f"{path} would be sent to the Docker daemon"

"""deploy/k8s: the kustomize base and overlays validate against the Kubernetes schemas and
hold the promises of docs/operations.md (probes, hardening, PDBs, autoscaling, secrets
referenced and never committed, only real settings).

The overlays are rendered with `kubectl kustomize` when kubectl is installed; without it
they are rendered by `render_structurally` below (the subset of kustomize these files
use), and every check still runs. When kubectl is there, both renderings are compared.
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import click
import kubernetes_validate
import pytest
import yaml

from switchboard.cli import main as switchboard_cli
from switchboard_shared.runtime.settings import Settings, environment_variable_names
from tests.support.monitoring import rules

ROOT = Path(__file__).parents[2]
K8S = ROOT / "deploy" / "k8s"
BASE = K8S / "base"
OVERLAYS = {"dev": K8S / "overlays" / "dev", "production": K8S / "overlays" / "production"}
SETS = {"base": BASE, **OVERLAYS}
SECRET_EXAMPLE = BASE / "secret.example.yaml"
SECRET_NAME = "switchboard-secrets"
KUBECTL = shutil.which("kubectl")
# The oldest Kubernetes these manifests promise to work on, and the newest schemas shipped.
K8S_VERSIONS = ("1.31.0", kubernetes_validate.utils.latest_version())
KEDA_KINDS = {"ScaledObject", "TriggerAuthentication"}
# Custom resources with no schema in kubernetes-validate: their API group, checked here.
CUSTOM_KINDS = {kind: "keda.sh/v1alpha1" for kind in KEDA_KINDS} | {
    "PrometheusRule": "monitoring.coreos.com/v1"  # its rules: tests/unit/test_alert_rules.py
}

HTTP_SERVICES = {"switchboard-api", "switchboard-webhook-ingest", "switchboard-media-edge"}
# Worker Deployment → (its queue, the prefetch setting KEDA's `value` follows).
WORKERS = {
    "switchboard-dialer": ("dialer.call-requested", "SWITCHBOARD_DIALER_PREFETCH"),
    "switchboard-notifier": ("notifier.events", "SWITCHBOARD_NOTIFIER_PREFETCH"),
}
SIMULATOR = "switchboard-provider-sim"
INGEST_PATHS = ("/v1/webhooks/call-completed", "/v1/webhooks/providers")

Doc = dict[str, Any]


# --- loading and rendering --------------------------------------------------------------


def load_docs(path: Path) -> list[Doc]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def parse_env_file(path: Path) -> dict[str, str]:
    data = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            data[key.strip()] = value
    return data


def kustomization(directory: Path) -> Doc:
    return yaml.safe_load((directory / "kustomization.yaml").read_text())


def group_of(doc: Doc) -> str:
    api_version = doc["apiVersion"]
    return api_version.split("/")[0] if "/" in api_version else ""


def select(docs: list[Doc], target: Doc) -> list[Doc]:
    chosen = []
    for doc in docs:
        if "kind" in target and doc["kind"] != target["kind"]:
            continue
        if "group" in target and group_of(doc) != target["group"]:
            continue
        if "name" in target and not re.fullmatch(target["name"], doc["metadata"]["name"]):
            continue
        chosen.append(doc)
    return chosen


def apply_json_patch(doc: Doc, operations: list[Doc]) -> None:
    """RFC 6902 `add`, `replace` and `remove`, strict: a replaced path must exist."""
    for op in operations:
        *parents, last = [
            p.replace("~1", "/").replace("~0", "~") for p in op["path"][1:].split("/")
        ]
        node: Any = doc
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        key: Any = int(last) if isinstance(node, list) and last != "-" else last
        if op["op"] == "replace":
            if isinstance(node, list):
                assert key < len(node), f"replace {op['path']}: no such element"
            else:
                assert key in node, f"replace {op['path']}: no such field"
            node[key] = copy.deepcopy(op["value"])
        elif op["op"] == "add":
            if isinstance(node, list):
                node.insert(len(node) if key == "-" else key, copy.deepcopy(op["value"]))
            else:
                node[key] = copy.deepcopy(op["value"])
        elif op["op"] == "remove":
            del node[key]
        else:
            raise AssertionError(f"unsupported patch op {op['op']}")


def set_images(docs: list[Doc], images: list[Doc]) -> None:
    for image in images:
        matched = False
        for doc in docs:
            if doc["kind"] != "Deployment":
                continue
            for container in doc["spec"]["template"]["spec"]["containers"]:
                name, _, tag = container["image"].partition(":")
                if name == image["name"]:
                    matched = True
                    container["image"] = (
                        f"{image.get('newName', name)}:{image.get('newTag', tag or 'latest')}"
                    )
        assert matched, f"images: {image['name']} is no container's image"


def render_structurally(directory: Path) -> list[Doc]:
    """What kustomize makes of `directory`, for the features these files use (resources,
    configMapGenerator with merge, JSON 6902 and delete patches, images, namespace); fails
    on anything else, so the fallback never silently checks less."""
    kust = kustomization(directory)
    known = {
        "apiVersion", "kind", "resources", "configMapGenerator",
        "patches", "images", "namespace", "labels",
    }  # fmt: skip
    assert set(kust) <= known, f"{directory}: fallback renderer lacks {set(kust) - known}"
    docs: list[Doc] = []
    for resource in kust.get("resources", []):
        path = directory / resource
        docs += render_structurally(path) if path.is_dir() else load_docs(path)
    for generator in kust.get("configMapGenerator", []):
        data: dict[str, str] = {}
        for env in generator.get("envs", []):
            data |= parse_env_file(directory / env)
        for literal in generator.get("literals", []):
            key, _, value = literal.partition("=")
            data[key] = value
        if generator.get("behavior") == "merge":
            (target,) = select(docs, {"kind": "ConfigMap", "name": generator["name"]})
            target["data"] |= data
        else:
            docs.append(
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": generator["name"]},
                    "data": data,
                }
            )
    for patch in kust.get("patches", []):
        body = yaml.safe_load(patch.get("patch") or (directory / patch["path"]).read_text())
        if isinstance(body, list):
            targets = select(docs, patch["target"])
            assert targets, f"{directory}: patch target {patch['target']} matches nothing"
            for doc in targets:
                apply_json_patch(doc, body)
        elif body.get("$patch") == "delete":
            gone = select(docs, {"kind": body["kind"], "name": body["metadata"]["name"]})
            assert gone, f"{directory}: deletes {body['kind']}/{body['metadata']['name']}: absent"
            docs = [d for d in docs if all(d is not g for g in gone)]
        else:
            raise AssertionError(f"{directory}: fallback renderer lacks strategic merge patches")
    set_images(docs, kust.get("images", []))
    if "namespace" in kust:
        for doc in docs:
            if doc["kind"] != "Namespace":
                doc["metadata"]["namespace"] = kust["namespace"]
    return docs


def render_with_kubectl(directory: Path) -> list[Doc]:
    assert KUBECTL is not None
    result = subprocess.run(
        [KUBECTL, "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"kubectl kustomize {directory}:\n{result.stderr}"
    return [d for d in yaml.safe_load_all(result.stdout) if d]


_rendered: dict[str, list[Doc]] = {}


def rendered(name: str) -> list[Doc]:
    """The manifests of `name` as they would be applied: kubectl's rendering when
    kubectl is installed, the structural one otherwise."""
    if name not in _rendered:
        render = render_with_kubectl if KUBECTL else render_structurally
        _rendered[name] = render(SETS[name])
    return copy.deepcopy(_rendered[name])


@pytest.fixture(params=list(SETS))
def manifests(request: pytest.FixtureRequest) -> tuple[str, list[Doc]]:
    return request.param, rendered(request.param)


def of_kind(docs: list[Doc], kind: str) -> dict[str, Doc]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def config_data(docs: list[Doc]) -> dict[str, str]:
    (config,) = of_kind(docs, "ConfigMap").values()
    return {k: str(v) for k, v in config["data"].items()}


def secret_example() -> dict[str, str]:
    (secret,) = load_docs(SECRET_EXAMPLE)
    return secret["stringData"]


# --- settings -----------------------------------------------------------------------------


def setting_names() -> set[str]:
    return environment_variable_names()


def container_env(container: Doc, docs: list[Doc]) -> dict[str, str]:
    """The environment the container starts with, secrets taken from the example."""
    env: dict[str, str] = {}
    configmaps = of_kind(docs, "ConfigMap")
    secrets = secret_example()
    for source in container.get("envFrom", []):
        env |= {k: str(v) for k, v in configmaps[source["configMapRef"]["name"]]["data"].items()}
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = str(var["value"])
        else:
            ref = var["valueFrom"]["secretKeyRef"]
            env[var["name"]] = secrets[ref["key"]]
    return env


# --- checks ---------------------------------------------------------------------------------


def test_kubernetes_validate_ships_the_schemas_offline() -> None:
    for version in K8S_VERSIONS:
        kubernetes_validate.validate(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}, version, True
        )
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "x"},
                "spec": {"bogus": 1},
            },
            K8S_VERSIONS[0],
            True,
        )


def base_file_docs() -> list[Doc]:
    return [d for r in kustomization(BASE)["resources"] for d in load_docs(BASE / r)]


def validate_all(docs: list[Doc]) -> None:
    for doc in docs:
        name = f"{doc['kind']}/{doc['metadata']['name']}"
        if doc["kind"] in CUSTOM_KINDS:
            assert doc["apiVersion"] == CUSTOM_KINDS[doc["kind"]], name
            continue  # a CRD: checked field by field elsewhere
        for version in K8S_VERSIONS:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                path = ".".join(str(p) for p in exc.path)
                pytest.fail(f"{name} is invalid for Kubernetes {version}: {path}: {exc.message}")
            except kubernetes_validate.SchemaNotFoundError:
                pytest.fail(f"{name}: {doc['apiVersion']} is not served by Kubernetes {version}")


def test_base_files_validate_against_the_schemas() -> None:
    validate_all(base_file_docs())


def test_rendered_manifests_validate_against_the_schemas(
    manifests: tuple[str, list[Doc]],
) -> None:
    validate_all(manifests[1])


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")
@pytest.mark.parametrize("name", list(SETS))
def test_kubectl_kustomize_renders(name: str) -> None:
    assert render_with_kubectl(SETS[name])


def summary(docs: list[Doc]) -> dict[str, Any]:
    """What the overlays change, comparable across renderers (kustomize adds a hash to
    the ConfigMap name and labels; neither matters here)."""
    out: dict[str, Any] = {}
    for doc in docs:
        kind, name = doc["kind"], doc["metadata"]["name"]
        key = f"{kind}/{'config' if kind == 'ConfigMap' else name}"
        spec = doc.get("spec", {})
        if kind == "Deployment":
            pod = spec["template"]["spec"]
            out[key] = (
                spec.get("replicas"),
                [(c["image"], c["resources"]) for c in pod["containers"]],
                doc["metadata"].get("namespace"),
            )
        elif kind == "HorizontalPodAutoscaler":
            out[key] = (spec["minReplicas"], spec["maxReplicas"])
        elif kind == "ScaledObject":
            out[key] = (spec["minReplicaCount"], spec["maxReplicaCount"], spec["triggers"])
        elif kind == "ConfigMap":
            out[key] = {k: str(v) for k, v in doc["data"].items()}
        elif kind == "Ingress":
            out[key] = (spec.get("ingressClassName"), spec["rules"], spec.get("tls"))
        else:
            out[key] = doc["metadata"].get("namespace")
    return out


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")
@pytest.mark.parametrize("name", list(SETS))
def test_fallback_renderer_agrees_with_kubectl(name: str) -> None:
    assert summary(render_structurally(SETS[name])) == summary(render_with_kubectl(SETS[name]))


@pytest.mark.parametrize("name", list(SETS))
def test_overlay_patches_apply_structurally(name: str) -> None:
    """Runs without kubectl: every patch, image and generator of the overlay finds what
    it changes in the base (the renderer asserts it)."""
    docs = render_structurally(SETS[name])
    assert of_kind(docs, "Deployment")


def quantity(value: str | int) -> float:
    text = str(value)
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "k": 1e3, "M": 1e6, "G": 1e9}
    for suffix, factor in units.items():
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * factor
    return float(text)


def test_deployments_are_probed_hardened_and_bounded(manifests: tuple[str, list[Doc]]) -> None:
    name, docs = manifests
    port = config_data(docs)["SWITCHBOARD_PORT"]
    deployments = of_kind(docs, "Deployment")
    assert set(deployments) >= HTTP_SERVICES | set(WORKERS)
    for dep_name, dep in deployments.items():
        pod = dep["spec"]["template"]["spec"]
        where = f"{name}: {dep_name}"
        annotations = dep["spec"]["template"]["metadata"].get("annotations", {})
        assert annotations.get("prometheus.io/path") == "/metrics", f"{where}: not scraped"
        assert annotations.get("prometheus.io/port") == port, where
        assert pod["securityContext"]["runAsNonRoot"] is True, where
        assert pod["securityContext"].get("runAsUser", 1) != 0, where
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", where
        assert pod.get("automountServiceAccountToken") is False, where
        grace = pod["terminationGracePeriodSeconds"]
        assert grace >= (60 if dep_name in WORKERS else 30), f"{where}: grace {grace}s"
        tmp_volumes = {v["name"] for v in pod.get("volumes", []) if "emptyDir" in v}
        for container in pod["containers"]:
            sc = container["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["readOnlyRootFilesystem"] is True, where
            assert "ALL" in sc["capabilities"]["drop"], where
            assert sc.get("privileged", False) is False, where
            mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
            assert mounts.get("/tmp") in tmp_volumes, f"{where}: /tmp must be an emptyDir"
            resources = container["resources"]
            for res in ("cpu", "memory"):
                request, limit = resources["requests"][res], resources["limits"][res]
                assert quantity(request) <= quantity(limit), f"{where}: {res} request > limit"
            ports = {p["name"]: p["containerPort"] for p in container["ports"]}
            assert str(ports["http"]) == port, f"{where}: serves on SWITCHBOARD_PORT={port}"
            live, ready = container["livenessProbe"], container["readinessProbe"]
            assert live["httpGet"]["path"] == "/healthz", where
            assert ready["httpGet"]["path"] == "/readyz", where
            for probe in (live, ready, container.get("startupProbe")):
                if probe:
                    assert probe["httpGet"]["port"] in ("http", int(port)), where
            image = container["image"]
            assert re.search(
                r"/(api|webhook-ingest|dialer|notifier|media-edge|provider-sim):[\w.-]+$", image
            )
            if name == "production":
                assert not image.endswith(":latest"), f"{where}: pin the image tag"


def test_every_deployment_has_a_pod_disruption_budget(manifests: tuple[str, list[Doc]]) -> None:
    name, docs = manifests
    budgets = list(of_kind(docs, "PodDisruptionBudget").values())
    for dep_name, dep in of_kind(docs, "Deployment").items():
        labels = dep["spec"]["template"]["metadata"]["labels"]
        covering = [
            b for b in budgets if b["spec"]["selector"]["matchLabels"].items() <= labels.items()
        ]
        assert len(covering) == 1, f"{name}: {dep_name} needs exactly one PDB"
        spec = covering[0]["spec"]
        assert ("maxUnavailable" in spec) != ("minAvailable" in spec)
    for budget in budgets:
        assert budget["metadata"]["name"] in of_kind(docs, "Deployment"), "PDB of nothing"


def test_http_services_autoscale_on_cpu(manifests: tuple[str, list[Doc]]) -> None:
    name, docs = manifests
    deployments = of_kind(docs, "Deployment")
    hpas = of_kind(docs, "HorizontalPodAutoscaler")
    targets = {h["spec"]["scaleTargetRef"]["name"]: h for h in hpas.values()}
    assert set(targets) == HTTP_SERVICES
    for target, hpa in targets.items():
        spec = hpa["spec"]
        assert hpa["apiVersion"] == "autoscaling/v2"
        assert spec["scaleTargetRef"]["kind"] == "Deployment"
        assert target in deployments
        assert 1 <= spec["minReplicas"] <= spec["maxReplicas"], f"{name}: {target}"
        (metric,) = spec["metrics"]
        assert metric["type"] == "Resource"
        assert metric["resource"]["name"] == "cpu"
        assert metric["resource"]["target"]["type"] == "Utilization"
        assert 0 < metric["resource"]["target"]["averageUtilization"] <= 100
        assert "replicas" not in deployments[target]["spec"], "the HPA owns the replica count"


def test_workers_scale_on_queue_length_with_keda(manifests: tuple[str, list[Doc]]) -> None:
    name, docs = manifests
    deployments = of_kind(docs, "Deployment")
    config = config_data(docs)
    auths = of_kind(docs, "TriggerAuthentication")
    scaled = {
        s["spec"]["scaleTargetRef"]["name"]: s for s in of_kind(docs, "ScaledObject").values()
    }
    assert set(scaled) == set(WORKERS)
    for target, obj in scaled.items():
        queue, prefetch_setting = WORKERS[target]
        spec = obj["spec"]
        where = f"{name}: ScaledObject for {target}"
        assert target in deployments, where
        assert spec["scaleTargetRef"].get("kind", "Deployment") == "Deployment", where
        assert "replicas" not in deployments[target]["spec"], "KEDA owns the replica count"
        assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"] <= 100, where
        (trigger,) = spec["triggers"]
        meta = trigger["metadata"]
        assert trigger["type"] == "rabbitmq", where
        assert meta["protocol"] == "http", f"{where}: http counts unacked messages too"
        assert meta["queueName"] == config.get("SWITCHBOARD_QUEUE_PREFIX", "") + queue, where
        assert meta["mode"] == "QueueLength", where
        assert isinstance(meta["value"], str), f"{where}: KEDA metadata values are strings"
        assert int(meta["value"]) == int(config[prefetch_setting]), f"{where}: value ≠ prefetch"
        assert "host" not in meta, f"{where}: credentials belong in the TriggerAuthentication"
        auth = auths[trigger["authenticationRef"]["name"]]
        (ref,) = auth["spec"]["secretTargetRef"]
        assert ref["parameter"] == "host"
        assert ref["name"] == SECRET_NAME
        host = urlparse(secret_example()[ref["key"]])
        assert host.scheme == "http", "the management API, for protocol http"
        assert host.port == 15672
        assert host.path.endswith("/"), "a trailing slash selects the default vhost"


def test_services_select_their_deployments(manifests: tuple[str, list[Doc]]) -> None:
    name, docs = manifests
    deployments = of_kind(docs, "Deployment")
    services = of_kind(docs, "Service")
    expected = HTTP_SERVICES | ({SIMULATOR} if SIMULATOR in deployments else set())
    assert set(services) == expected, name
    for svc_name, svc in services.items():
        selector = svc["spec"]["selector"]
        chosen = [
            d
            for d in deployments.values()
            if selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert len(chosen) == 1, f"{name}: Service {svc_name} selects {len(chosen)} Deployments"
        ports = {
            p["name"]
            for c in chosen[0]["spec"]["template"]["spec"]["containers"]
            for p in c["ports"]
        }
        for port in svc["spec"]["ports"]:
            assert port["targetPort"] in ports, f"{name}: {svc_name} targets a missing port"


def ingress_backend(ingress: Doc, path: str) -> str:
    """The Service a request path reaches: the longest matching Prefix rule, matched per
    path element as Kubernetes does."""
    best, backend = -1, ""
    for rule in ingress["spec"]["rules"]:
        for entry in rule["http"]["paths"]:
            # ImplementationSpecific would leave the routing to the controller.
            assert entry["pathType"] in {"Prefix", "Exact"}, entry
            prefix = entry["path"].rstrip("/")
            if entry["pathType"] == "Exact":
                hit = path == entry["path"]
            else:
                hit = prefix == "" or path == prefix or path.startswith(prefix + "/")
            if hit and len(prefix) > best:
                best, backend = len(prefix), entry["backend"]["service"]["name"]
    return backend


def test_ingress_routes_callbacks_to_ingest_and_the_rest_to_the_api(
    manifests: tuple[str, list[Doc]],
) -> None:
    name, docs = manifests
    (ingress,) = of_kind(docs, "Ingress").values()
    services = of_kind(docs, "Service")
    routes = {
        "/v1/webhooks/call-completed": "switchboard-webhook-ingest",
        "/v1/webhooks/providers/vocode": "switchboard-webhook-ingest",
        "/v1/webhooks/providers/simulator": "switchboard-webhook-ingest",
        "/v1/webhooks": "switchboard-api",  # the customer's endpoint: an API route
        "/v1/webhooks-deliveries": "switchboard-api",
        "/v1/webhook-deliveries/abc/retry": "switchboard-api",
        "/v1/calls": "switchboard-api",
        "/media/sessions/sess_1": "switchboard-media-edge",
        "/v1/sessions": "switchboard-api",
        "/openapi.json": "switchboard-api",
        "/": "switchboard-api",
    }
    for path, service in routes.items():
        assert ingress_backend(ingress, path) == service, f"{name}: {path}"
    for rule in ingress["spec"]["rules"]:
        for entry in rule["http"]["paths"]:
            backend = entry["backend"]["service"]
            assert backend["name"] in services
            svc_ports = {p["name"] for p in services[backend["name"]]["spec"]["ports"]}
            assert backend["port"]["name"] in svc_ports
    if name == "production":
        assert ingress["spec"]["tls"], "production serves TLS"


def test_env_and_config_name_only_real_settings(manifests: tuple[str, list[Doc]]) -> None:
    name, docs = manifests
    real = setting_names()
    for key in config_data(docs):
        assert key in real, f"{name}: ConfigMap sets {key}, not a setting"
    configmaps = of_kind(docs, "ConfigMap")
    secret_keys = set(secret_example())
    for dep in of_kind(docs, "Deployment").values():
        for container in dep["spec"]["template"]["spec"]["containers"]:
            for source in container.get("envFrom", []):
                assert source["configMapRef"]["name"] in configmaps
            for var in container.get("env", []):
                assert var["name"] in real, f"{name}: env {var['name']} is not a setting"
                ref = var.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["name"] == SECRET_NAME
                    assert ref["key"] in secret_keys, f"{ref['key']} missing from the example"


@pytest.fixture
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> Callable[[dict[str, str]], Settings]:
    def load(env: dict[str, str]) -> Settings:
        for key in list(os.environ):
            if key.startswith("SWITCHBOARD_"):
                monkeypatch.delenv(key)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        return Settings()

    return load


def test_containers_get_valid_settings(
    manifests: tuple[str, list[Doc]], clean_environ: Callable[[dict[str, str]], Settings]
) -> None:
    name, docs = manifests
    services = of_kind(docs, "Service")
    for dep_name, dep in of_kind(docs, "Deployment").items():
        (container,) = dep["spec"]["template"]["spec"]["containers"]
        settings = clean_environ(container_env(container, docs))
        assert settings.host == "0.0.0.0", f"{dep_name} must listen on the pod IP"
        if dep_name == SIMULATOR:
            assert urlparse(settings.sim_callback_url or "").hostname in services
            continue
        assert (settings.broker_url or "").startswith("amqp"), dep_name
        assert (settings.mongodb_url or "").startswith("mongodb"), dep_name
        assert urlparse(settings.callback_base_url).scheme in {"http", "https"}
        simulator = settings.provider_settings().get("simulator")
        if SIMULATOR in of_kind(docs, "Deployment"):
            assert simulator is not None, f"{name}: the simulator is deployed but disabled"
            assert urlparse(simulator.base_url or "").hostname in services
            # The simulator calls back the URL the dialer hands it: it must resolve in-cluster.
            assert urlparse(settings.callback_base_url).hostname in services
            assert simulator.api_key.get_secret_value(), "one SIMULATOR__ field resets the rest"
            assert simulator.callback_secret.get_secret_value()
        else:
            assert simulator is None, f"{name}: the simulator is enabled but not deployed"
        if name == "production":
            assert not settings.webhook_allow_private_networks
            assert urlparse(settings.callback_base_url).scheme == "https"


def test_no_secret_is_committed() -> None:
    for resource in kustomization(BASE)["resources"]:
        assert "secret" not in resource, f"{resource}: secrets are created out of band"
    for directory in SETS.values():
        for doc in render_structurally(directory):
            assert doc["kind"] != "Secret", f"{directory}: commits a Secret"
    for path in K8S.rglob("*.yaml"):
        for doc in load_docs(path):
            if doc.get("kind") == "Secret":
                assert path == SECRET_EXAMPLE, f"{path}: a Secret outside the example"
    for key, value in secret_example().items():
        assert "CHANGE-ME" in value, f"secret.example.yaml: {key} holds a real-looking value"


def test_config_holds_no_credentials(manifests: tuple[str, list[Doc]]) -> None:
    name, docs = manifests
    for key, value in config_data(docs).items():
        assert not urlparse(value).password, f"{name}: {key} carries a password"
        if re.search(r"API_KEY|SECRET|PASSWORD", key):
            # The simulator's key and secret are its public defaults, not credentials.
            assert key.startswith("SWITCHBOARD_SIMULATOR__"), f"{name}: {key} is a secret"
        assert key not in {"SWITCHBOARD_BROKER_URL", "SWITCHBOARD_MONGODB_URL"}, (
            f"{name}: {key} holds credentials: it belongs in {SECRET_NAME}"
        )


BOOTSTRAP_JOB = BASE / "bootstrap-job.example.yaml"


def parse_cli(words: list[str]) -> dict[str, Any]:
    """The parameters `switchboard WORDS` would run its command with, without running it.

    Raises (failing the test) on an unknown command or option, a missing or invalid
    argument: what the CLI itself would refuse with exit 2.
    """
    command: click.Command = switchboard_cli
    ctx = click.Context(command, info_name="switchboard")
    while isinstance(command, click.Group):
        assert words, f"{ctx.command_path}: a subcommand is missing"
        name, *words = words
        found = command.get_command(ctx, name)
        assert found is not None, f"{ctx.command_path}: no command {name!r}"
        command = found
        ctx = click.Context(command, info_name=name, parent=ctx)
    return command.make_context(ctx.info_name, words, parent=ctx.parent).params


def test_bootstrap_job_example_is_valid_and_uses_real_commands() -> None:
    assert BOOTSTRAP_JOB.name not in kustomization(BASE)["resources"], "a Job is run once"
    (job,) = load_docs(BOOTSTRAP_JOB)
    validate_all([job])
    pod = job["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert re.search(r"/all:[\w.-]+$", container["image"]), "the image with the CLI"
    real = setting_names()
    for var in container["env"]:
        if var["name"].startswith("SWITCHBOARD_"):
            assert var["name"] in real
        ref = var.get("valueFrom", {}).get("secretKeyRef")
        if ref:
            assert ref["name"] == SECRET_NAME
            assert ref["key"] in secret_example()
    env = {v["name"]: v.get("value", "") for v in container["env"]}
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    script = container["args"][0]
    for line in script.splitlines():
        command = line.strip()
        if not command or command.startswith("#"):
            continue
        assert not re.search(r"\|\||python", command), f"{line}: commands, no fallbacks or code"
        words = [env.get(w.strip('"$'), w) if w.startswith('"$') else w for w in command.split()]
        assert words[0] == "switchboard", line
        params = parse_cli(words[1:])
        if params.get("file"):
            assert str(params["file"]).startswith(mounts["agents"] + "/"), "the agents ConfigMap"


OPERATIONS_DOC = ROOT / "docs" / "operations.md"


def exposed_metric_names() -> set[str]:
    from prometheus_client.metrics import MetricWrapperBase

    from switchboard_shared.observability import metrics

    names = set()
    for collector in vars(metrics).values():
        if isinstance(collector, MetricWrapperBase):
            for metric in collector.describe():
                names.add(metric.name + ("_total" if metric.type == "counter" else ""))
    return names


def test_operations_doc_explains_every_metric_and_alert() -> None:
    # That every metric has an alert: tests/unit/test_alert_rules.py.
    doc = OPERATIONS_DOC.read_text()
    names = exposed_metric_names()
    assert len(names) >= 10
    for name in sorted(names):
        assert f"| `{name}` |" in doc, f"docs/operations.md: no row for {name}"
    for rule in rules():
        assert f"| `{rule['alert']}` |" in doc, f"docs/operations.md: no row for {rule['alert']}"


def test_operations_doc_matches_the_manifests() -> None:
    doc = OPERATIONS_DOC.read_text()
    assert "(configuration.md)" in doc, "settings are documented in docs/configuration.md"
    for key in secret_example():
        assert f"`{key}`" in doc, f"docs/operations.md does not explain secret key {key}"
    assert f"kubectl -n switchboard create secret generic {SECRET_NAME}" in doc
    for queue, prefetch in WORKERS.values():
        assert queue in doc
        assert prefetch in doc
        assert f"{queue}.dlq" in doc, "the dead-letter runbook names each DLQ"
    real = setting_names()
    for name in set(re.findall(r"SWITCHBOARD_[A-Z0-9_]+[A-Z0-9]", doc)):
        if "<P>" not in name:
            assert name in real, f"docs/operations.md names {name}, not a setting"
    for overlay in OVERLAYS:
        assert f"overlays/{overlay}" in doc

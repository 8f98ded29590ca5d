"""Renders deploy/prometheus/rules.yaml as the Prometheus Operator's PrometheusRule in the
kustomize base, so the two never drift: `make prometheus-rule` (a test checks it ran)."""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

HERE = Path(__file__).parent
RULES = HERE / "rules.yaml"
PROMETHEUS_RULE = HERE.parents[1] / "deploy" / "k8s" / "base" / "prometheus-rule.yaml"
HEADER = """\
# Generated from deploy/prometheus/rules.yaml by `make prometheus-rule`: edit that file.
# Needs the Prometheus Operator's CRDs (monitoring.coreos.com/v1); its Prometheus picks
# this up when its ruleSelector matches the labels below.
"""


class _BlockDumper(yaml.SafeDumper):
    """Writes multi-line strings (the longer PromQL expressions) as `|` blocks."""


def _string(dumper: yaml.SafeDumper, text: str) -> yaml.Node:
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_BlockDumper.add_representer(str, _string)


def render() -> str:
    """The PrometheusRule manifest holding exactly the groups of rules.yaml."""
    rules = yaml.safe_load(RULES.read_text())
    manifest = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": "switchboard",
            "labels": {"app.kubernetes.io/name": "switchboard", "role": "alert-rules"},
        },
        "spec": {"groups": rules["groups"]},
    }
    return HEADER + yaml.dump(manifest, Dumper=_BlockDumper, sort_keys=False, width=100)


if __name__ == "__main__":
    PROMETHEUS_RULE.write_text(render())
    sys.stdout.write(f"wrote {PROMETHEUS_RULE}\n")

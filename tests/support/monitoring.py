"""The operator's monitoring files (Grafana dashboard, Prometheus rules) and the metric
names their PromQL uses, so tests can hold them to what the services export."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).parents[2]
RULES = ROOT / "deploy" / "prometheus" / "rules.yaml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "rules.test.yaml"
DASHBOARD = ROOT / "deploy" / "grafana" / "switchboard.json"

# PromQL words that are not metric names: functions, aggregations, operators, keywords.
PROMQL_WORDS = {
    "sum", "max", "min", "avg", "count", "rate", "irate", "increase", "delta",
    "histogram_quantile", "and", "or", "unless", "bool", "offset", "abs", "absent",
    "clamp_min", "clamp_max", "topk", "bottomk", "vector", "scalar", "time",
}  # fmt: skip
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"')
_SELECTORS = re.compile(r"\{[^}]*\}|\[[^\]]*\]")
_GROUPINGS = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_NUMBERS = re.compile(r"\b\d+(?:\.\d+)?(?:e[+-]?\d+)?\b")
_WORDS = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects (label names, functions, numbers,
    durations and Grafana's `$__…` variables stripped)."""
    text = _STRINGS.sub(" ", expr)
    text = _SELECTORS.sub(" ", text)
    text = _GROUPINGS.sub(" ", text)
    text = _NUMBERS.sub(" ", text)
    return {word for word in _WORDS.findall(text) if word not in PROMQL_WORDS}


def rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def dashboard_exprs() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [target["expr"] for panel in panels for target in panel.get("targets", [])]


def used_metric_names() -> set[str]:
    """Every metric the dashboard and the alert rules read."""
    exprs = [rule["expr"] for rule in rules()] + dashboard_exprs()
    return {name for expr in exprs for name in metric_names(expr)}

"""deploy/prometheus: the alert rules are valid (`promtool check rules`), every alert
fires in a unit test (`promtool test rules`), the PrometheusRule in the kustomize base
holds the same rules, and every metric the services define is alerted on.

promtool comes from Debian's `prometheus` package, which `make test` installs when it is
missing; without it these tests fail rather than skip."""

from __future__ import annotations

import shutil
import subprocess

import yaml
from prometheus_client.metrics import MetricWrapperBase

from deploy.prometheus import prometheus_rule
from switchboard_shared.observability import metrics
from tests.support.monitoring import (
    RULE_TESTS,
    RULES,
    dashboard_exprs,
    metric_names,
    rules,
    used_metric_names,
)

PROMTOOL = shutil.which("promtool")


def promtool(*args: str) -> str:
    assert PROMTOOL, "promtool is missing: `make test-tools` installs Debian's prometheus"
    result = subprocess.run(
        [PROMTOOL, *args], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_promtool_accepts_the_rules() -> None:
    assert f"SUCCESS: {len(rules())} rules found" in promtool("check", "rules", str(RULES))


def test_every_alert_passes_its_unit_tests() -> None:
    assert "SUCCESS" in promtool("test", "rules", str(RULE_TESTS))


def test_every_alert_fires_in_some_unit_test() -> None:
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    fired = {
        case["alertname"]
        for test in tests
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    alerts = {rule["alert"] for rule in rules()}
    assert alerts - fired == set(), "alerts no unit test sees firing"
    assert fired <= alerts


def test_the_prometheus_rule_is_rendered_from_the_rules_file() -> None:
    assert prometheus_rule.PROMETHEUS_RULE.read_text() == prometheus_rule.render(), (
        "run `make prometheus-rule`"
    )
    manifest = yaml.safe_load(prometheus_rule.PROMETHEUS_RULE.read_text())
    assert manifest["spec"]["groups"] == yaml.safe_load(RULES.read_text())["groups"]


def defined_metric_names() -> dict[str, set[str]]:
    """Each metric of `observability.metrics` and the sample names it exposes."""
    names: dict[str, set[str]] = {}
    for collector in vars(metrics).values():
        if isinstance(collector, MetricWrapperBase):
            for family in collector.describe():
                if family.type == "counter":
                    names[family.name] = {f"{family.name}_total"}
                elif family.type == "histogram":
                    names[family.name] = {f"{family.name}_{s}" for s in ("bucket", "count", "sum")}
                else:
                    names[family.name] = {family.name}
    return names


def test_every_metric_has_an_alert_and_a_dashboard_panel() -> None:
    alerted = {name for rule in rules() for name in metric_names(rule["expr"])}
    shown = {name for expr in dashboard_exprs() for name in metric_names(expr)}
    defined = defined_metric_names()
    assert len(defined) >= 15
    for metric, samples in defined.items():
        assert samples & alerted, f"no alert reads {metric}"
        assert samples & shown, f"no dashboard panel shows {metric}"


def test_the_dashboard_and_rules_use_only_our_metrics() -> None:
    # The live check (tests/e2e/test_metrics.py) compares with a real /metrics page; this
    # one says which word was taken for a metric when a PromQL function is new here.
    used = used_metric_names()
    assert used, "no metric found in the dashboard or the rules"
    assert {n for n in used if not n.startswith("switchboard_")} == set()


def test_metric_names_are_read_from_promql() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le, route) (rate(x_seconds_bucket{route!="a b"}'
        "[$__rate_interval]))) > 1 and sum(rate(y_total[5m])) == 0"
    )
    assert metric_names(expr) == {"x_seconds_bucket", "y_total"}

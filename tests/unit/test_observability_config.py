"""The alert rules and the Grafana dashboard are checked against the code that exports the metrics.

Prometheus and Grafana cannot run here, so every expression is parsed as PromQL (promql-parser, the
Rust parser of GreptimeDB), every metric it reads must be one the code registers (or Prometheus' own
`up`), and the compose file must mount the rule file, the provisioning and the dashboards where the
configuration says they are.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import promql_parser as promql
import pytest
import yaml  # type: ignore[import-untyped]
from prometheus_client import REGISTRY

import headwater.observability.metrics  # noqa: F401 - registers the metrics

ROOT = Path(__file__).resolve().parents[2]
ALERTS = yaml.safe_load((ROOT / "infra/prometheus/alerts.yml").read_text())
PROMETHEUS = yaml.safe_load((ROOT / "infra/prometheus/prometheus.yml").read_text())
DASHBOARD = json.loads((ROOT / "infra/grafana/dashboards/headwater.json").read_text())
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
PROMETHEUS_OWN = {"up"}  # series Prometheus makes for each target
SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum", "_created")}


def _exported() -> set[str]:
    """Every sample name the code's headwater_* metrics expose."""
    names: set[str] = set()
    for family in REGISTRY.collect():
        if family.name.startswith("headwater_"):
            names |= {family.name + suffix for suffix in SUFFIXES.get(family.type, ("",))}
    return names


EXPORTED = _exported()


def _grafana_to_promql(expr: str) -> str:
    return expr.replace("$__rate_interval", "5m").replace("$__range", "1h").replace("$__interval", "1m")


def _selected(expr: str) -> set[str]:
    """The metric names `expr` selects; raises ValueError if it is not PromQL."""
    tree = promql.parse(expr)
    found: set[str] = set()

    def visit(node: Any) -> None:
        if isinstance(node, promql.VectorSelector) and node.name:
            found.add(node.name)

    promql.walk(tree, pre_visit=visit)
    return found


RULES = [rule for group in ALERTS["groups"] for rule in group["rules"]]
TARGETS = [
    (panel["title"], target["expr"]) for panel in DASHBOARD["panels"] for target in panel.get("targets", [])
]


def test_the_registry_derivation_sees_the_metrics() -> None:
    # Guards the derivation: an empty set would let every name below fail open.
    assert {"headwater_stage_messages_in_total", "headwater_freshness_seconds_bucket"} <= EXPORTED
    assert "headwater_stage_messages_in" not in EXPORTED  # counters are read with their _total


def test_an_unknown_metric_or_bad_syntax_is_caught() -> None:
    assert _selected("rate(headwater_nope_total[5m])") - EXPORTED == {"headwater_nope_total"}
    with pytest.raises(ValueError, match="parenthesis"):
        _selected("sum by (stage) (rate(headwater_stage_messages_in_total[5m])")


@pytest.mark.parametrize("rule", RULES, ids=[r["alert"] for r in RULES])
def test_each_alert_is_well_formed_and_reads_metrics_the_code_exports(rule: dict[str, Any]) -> None:
    assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
    assert re.fullmatch(r"Headwater[A-Za-z]+", rule["alert"])
    assert rule["labels"]["severity"] in {"warning", "critical"}
    assert rule["annotations"]["summary"]
    if "for" in rule:
        assert re.fullmatch(r"\d+[smh]", rule["for"]), rule["for"]
    names = _selected(rule["expr"])
    assert names, "an alert that reads no metric"
    assert names <= EXPORTED | PROMETHEUS_OWN, names - EXPORTED


def test_the_required_alerts_exist() -> None:
    by_metric: dict[str, list[dict[str, Any]]] = {}
    for rule in RULES:
        for name in _selected(rule["expr"]):
            by_metric.setdefault(name, []).append(rule)
    assert len({r["alert"] for r in RULES}) == len(RULES), "duplicate alert names"
    lag = by_metric["headwater_consumer_lag_messages"]
    assert any(r.get("for") == "10m" and "delta(" in r["expr"] for r in lag), "lag growing for 10m"
    assert by_metric["headwater_stage_messages_dead_lettered_total"]
    assert by_metric["headwater_cdc_replication_slot_lag_bytes"]
    (freshness,) = by_metric["headwater_freshness_seconds_bucket"]
    tree = promql.parse(freshness["expr"])
    assert isinstance(tree, promql.BinaryExpr) and str(tree.op) == ">", tree
    assert isinstance(tree.rhs, promql.NumberLiteral)
    assert tree.rhs.val == 2, "the documented freshness budget is 2 s at p99"
    assert "0.99" in freshness["expr"]


def test_prometheus_loads_the_rule_file_that_compose_mounts() -> None:
    mounts = {
        str(v).split(":")[1]: str(v).split(":")[0] for v in COMPOSE["services"]["prometheus"]["volumes"]
    }
    for path in PROMETHEUS["rule_files"]:
        assert mounts.get(path) == "./infra/prometheus/alerts.yml", path


@pytest.mark.parametrize(("panel", "expr"), TARGETS, ids=[f"{t}: {e[:40]}" for t, e in TARGETS])
def test_each_dashboard_query_reads_metrics_the_code_exports(panel: str, expr: str) -> None:
    names = _selected(_grafana_to_promql(expr))
    assert names and names <= EXPORTED, names - EXPORTED


def test_the_dashboard_shows_every_metric_of_the_code() -> None:
    shown = {name for _, expr in TARGETS for name in _selected(_grafana_to_promql(expr))}
    families = {
        name.removesuffix("_bucket").removesuffix("_sum").removesuffix("_count").removesuffix("_total")
        for name in shown
    }
    missing = {
        family.name
        for family in REGISTRY.collect()
        if family.name.startswith("headwater_") and family.name not in families
    }
    assert not missing, f"metrics no panel shows: {sorted(missing)}"


def test_grafana_is_provisioned_with_the_dashboard_and_the_prometheus_data_source() -> None:
    grafana = COMPOSE["services"]["grafana"]
    mounts = {str(v).split(":")[1]: str(v).split(":")[0] for v in grafana["volumes"]}
    provisioning = ROOT / mounts["/etc/grafana/provisioning"].lstrip("./")
    (source,) = yaml.safe_load((provisioning / "datasources/prometheus.yml").read_text())["datasources"]
    assert source["url"] == "http://prometheus:9090" and "prometheus" in COMPOSE["services"]
    assert "127.0.0.1:9090:9090" in COMPOSE["services"]["prometheus"]["ports"]
    (provider,) = yaml.safe_load((provisioning / "dashboards/headwater.yml").read_text())["providers"]
    assert mounts[provider["options"]["path"]] == "./infra/grafana/dashboards"
    uids = {p["datasource"]["uid"] for p in DASHBOARD["panels"] if "datasource" in p}
    assert uids == {source["uid"]}
    ids = [p["id"] for p in DASHBOARD["panels"]]
    assert len(ids) == len(set(ids))

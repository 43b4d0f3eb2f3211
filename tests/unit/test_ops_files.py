"""The alert rules, their promtool tests and the Grafana dashboard that ship in ops/."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from sync.portal.monitoring import Monitor
from sync.settings import Settings
from sync.telemetry import counters
from tests.support.metrics import clear_buffer, parse
from tests.unit.test_monitoring_metrics import MAPPINGS, NOW

ROOT = Path(__file__).resolve().parents[2]
OPS = ROOT / "ops"
ALERTS = OPS / "prometheus" / "alerts.yml"
ALERT_TESTS = OPS / "prometheus" / "alerts_test.yml"
DASHBOARD = OPS / "grafana" / "billing-sync.json"
PROMTOOL = shutil.which("promtool")
METRIC = re.compile(r"\bbilling_sync_[a-z0-9_]+")

needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool is missing: run `make promtool` (Debian's prometheus)"
)


@pytest.fixture(scope="module")
def exposed(tmp_path_factory) -> set[str]:
    """Every sample name /metrics can expose (histogram parts and _total included)."""
    from sync.db.engine import make_engine, upgrade

    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('ops') / 'db.sqlite'}")
    upgrade(engine)
    clear_buffer()
    monitor = Monitor(Settings(), engine, clock=lambda: NOW, mappings=MAPPINGS)
    try:
        from sync.monitoring import metrics

        types, _ = parse(metrics.render(monitor.status).decode())
    finally:
        monitor.close()
        engine.dispose()
        clear_buffer()
    names: set[str] = set()
    for family, kind in types.items():
        if kind == "counter":
            names.add(f"{family}_total")
        elif kind == "histogram":
            names.update(f"{family}{suffix}" for suffix in ("_bucket", "_sum", "_count"))
        else:
            names.add(family)
    return names


def alert_rules() -> list[dict]:
    return [
        rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]
    ]


def dashboard_exprs() -> list[str]:
    document = json.loads(DASHBOARD.read_text())
    return [t["expr"] for panel in document["panels"] for t in panel.get("targets", [])]


@needs_promtool
def test_given_the_alert_rules_when_checked_by_promtool_then_valid():
    result = subprocess.run(
        [PROMTOOL, "check", "rules", str(ALERTS)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in result.stdout


@needs_promtool
def test_given_the_alert_unit_tests_when_run_by_promtool_then_every_alert_fires_as_expected():
    result = subprocess.run(
        [PROMTOOL, "test", "rules", ALERT_TESTS.name],
        capture_output=True,
        text=True,
        check=False,
        cwd=ALERT_TESTS.parent,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    tested = {
        check["alertname"]
        for test in yaml.safe_load(ALERT_TESTS.read_text())["tests"]
        for check in test["alert_rule_test"]
        if check.get("exp_alerts")
    }
    assert tested == {rule["alert"] for rule in alert_rules()}  # each one seen firing


def test_given_the_alert_rules_when_read_then_every_alert_has_a_for_severity_and_runbook():
    rules = alert_rules()
    assert {r["alert"] for r in rules} >= {
        "BillingSyncMappingLagging",
        "BillingSyncMappingNoSuccessfulPass",
        "BillingSyncOrgApiUsageHigh",
        "BillingSyncChangeSetsNeedAttention",
        "BillingSyncOutboxStuck",
        "BillingSyncNoWorkerHeartbeat",
        "BillingSyncPortalErrors",
    }
    for rule in rules:
        assert re.fullmatch(r"\d+[smh]", rule["for"]), rule["alert"]
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert len(rule["annotations"]["runbook"]) > 80, rule["alert"]
        assert rule["annotations"]["summary"]


def test_given_alerts_and_dashboard_when_their_metrics_listed_then_all_are_exposed(exposed):
    used = {
        m
        for expr in [r["expr"] for r in alert_rules()] + dashboard_exprs()
        for m in METRIC.findall(expr)
    }
    assert used, "no billing_sync metric referenced"
    assert used - exposed == set()
    # The dashboard covers what the issue asks for: lag, throughput, API, outbox, portal.
    exprs = " ".join(dashboard_exprs())
    for needed in (
        "billing_sync_mapping_lag_seconds",
        "billing_sync_pass_total",
        "billing_sync_crm_api_calls_total",
        "billing_sync_crm_api_usage_ratio",
        "billing_sync_outbox_change_sets",
        "billing_sync_push_duration_seconds_bucket",
        "billing_sync_portal_request_duration_seconds_bucket",
    ):
        assert needed in exprs, needed


def test_given_the_dashboard_when_loaded_then_valid_json_on_the_provisioned_datasource():
    document = json.loads(DASHBOARD.read_text())
    datasource = yaml.safe_load(
        (OPS / "grafana/provisioning/datasources/prometheus.yml").read_text()
    )
    uid = datasource["datasources"][0]["uid"]
    assert document["uid"] == "billing-sync" and document["title"]
    ids = [p["id"] for p in document["panels"]]
    assert len(ids) == len(set(ids))
    for panel in document["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == uid, panel["title"]
        assert panel["targets"] and all(t["expr"].strip() for t in panel["targets"])
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24


def test_given_compose_when_read_then_monitoring_services_mount_files_that_exist():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    for name in ("prometheus", "grafana"):
        for volume in compose["services"][name]["volumes"]:
            source = volume.split(":", 1)[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), source
    config = yaml.safe_load((OPS / "prometheus/prometheus.yml").read_text())
    assert config["scrape_configs"][0]["static_configs"][0]["targets"] == ["web:8000"]
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]
    assert counters.PORTAL_REQUESTS in ALERTS.read_text()

"""rollbot's monitoring as shipped: the PrometheusRule, the ServiceMonitor, the rules file
they come from, and the Alertmanager receiver, checked against the code and the Service.

Aspects:
- the PrometheusRule (components/prometheus-operator) holds exactly the groups of
  deploy/prometheus/rollbot-self.rules.yaml;
- every metric a rule of rollbot-self.rules.yaml reads is one bot/runtime/metrics.py
  defines (a counter by its `_total` name), and every label a rule matches on is one of
  that metric's labels; the alerts the issue asks for are there, and each one fires in
  the promtool unit tests (deploy/prometheus/tests/rollbot-self.test.yaml);
- the ServiceMonitor scrapes `/metrics` on the Service's port that reaches the container's
  internal port (server.internal_port), of the Service its selector picks;
- the Alertmanager receiver's URL (deploy/alertmanager/alertmanager.yaml) names the
  rollbot Service in its namespace, on the Service port that reaches the container's
  public port (server.port), at the webhook's route (bot.web.alertmanager.PATH).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from prometheus_client import Counter, Gauge, Histogram

from bot.runtime.metrics import Metrics
from bot.web.alertmanager import PATH as ALERTMANAGER_PATH
from bot.web.app import INTERNAL_PATHS
from tests.unit.deploy.kustomize import (
    DEPLOY,
    KUBE,
    OVERLAYS,
    by_kind,
    container_port,
    one,
    render,
)

RULES = DEPLOY / "prometheus" / "rollbot-self.rules.yaml"
RULE_TESTS = DEPLOY / "prometheus" / "tests" / "rollbot-self.test.yaml"
PROMETHEUS_RULE = KUBE / "components" / "prometheus-operator" / "prometheusrule.yaml"


def rules() -> list[dict[str, Any]]:
    return [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]


# ----------------------------------------------------------------------------- the rule


def test_the_prometheus_rule_holds_the_rules_file() -> None:
    rule = yaml.safe_load(PROMETHEUS_RULE.read_text())
    assert (rule["apiVersion"], rule["kind"]) == ("monitoring.coreos.com/v1", "PrometheusRule")
    assert rule["spec"]["groups"] == yaml.safe_load(RULES.read_text())["groups"], (
        "the PrometheusRule differs from deploy/prometheus/rollbot-self.rules.yaml: copy the "
        "file's groups under spec"
    )
    for overlay in OVERLAYS:
        assert one(render(overlay), "PrometheusRule")["spec"] == rule["spec"]


def defined_metrics() -> dict[str, set[str]]:
    """{exposed sample name: label names} of every metric Metrics registers."""
    metrics = Metrics()
    out: dict[str, set[str]] = {}
    for attribute in vars(metrics).values():
        if not isinstance(attribute, (Counter, Gauge, Histogram)):
            continue
        name = attribute._name  # the family's name, without the counter's _total
        labels = set(attribute._labelnames)
        if isinstance(attribute, Counter):
            out[f"{name}_total"] = labels
        elif isinstance(attribute, Histogram):
            for suffix in ("_bucket", "_sum", "_count"):
                out[name + suffix] = labels | ({"le"} if suffix == "_bucket" else set())
        else:
            out[name] = labels
    return out


_FUNCTIONS_AND_KEYWORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
    "offset", "bool", "sum", "max", "min", "avg", "count", "increase", "rate", "absent",
    "humanize", "humanizePercentage", "humanizeDuration",
}  # fmt: skip
_SELECTOR = re.compile(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{[^}]*\})?")
_MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)")


def series_used(expr: str) -> list[tuple[str, set[str]]]:
    """(metric name, label names matched) of every series selector in a PromQL expression."""
    text = re.sub(r"\[[^\]]*\]", "", expr)  # range selectors
    text = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", text)  # label lists
    text = re.sub(r"\boffset\s+\w+", "", text)
    out = []
    for m in _SELECTOR.finditer(text):
        name, matchers = m.group(1), m.group(2) or ""
        rest = text[m.end() :].lstrip()
        if name in _FUNCTIONS_AND_KEYWORDS or rest.startswith("(") or name.isdigit():
            continue
        if re.fullmatch(r"\d+(\.\d+)?", name):
            continue
        out.append((name, {k for k, _ in _MATCHER.findall(matchers)}))
    return out


def test_series_used_reads_selectors() -> None:
    """The parser below is not vacuous."""
    assert series_used(
        'sum by (job, action) (increase(x_total{result=~"a|b", job="j"}[15m]) > 0 '
        "or (y unless y offset 15m)) > 0"
    ) == [("x_total", {"result", "job"}), ("y", set()), ("y", set())]


def test_every_metric_a_rule_reads_is_defined_in_metrics() -> None:
    defined = defined_metrics()
    assert "rollbot_leader" in defined and "rollbot_watch_errors_total" in defined
    assert defined["rollbot_outbound_errors_total"] == {"service", "error"}
    used = set()
    for rule in rules():
        for name, labels in series_used(rule["expr"]):
            assert name in defined, f"{rule['alert']} reads {name}, which Metrics does not define"
            assert labels <= defined[name] | {"job", "instance"}, (rule["alert"], name, labels)
            used.add(name)
    assert len(used) >= 9


def test_a_rule_reading_an_unknown_metric_would_be_caught() -> None:
    defined = defined_metrics()
    assert [n for n, _ in series_used("rollbot_outbox_depth > 100") if n not in defined] == [
        "rollbot_outbox_depth"
    ]


WANTED = {
    "RollbotWatchDown": "the watch is unhealthy",
    "RollbotNoLeader": "no leader",
    "RollbotTwoLeaders": "two leaders",
    "RollbotWatchFlapping": "Kubernetes errors",
    "RollbotActionsFailing": "actions fail (Kubernetes or the flag provider)",
    "RollbotOutboxParked": "parked messages",
    "RollbotWebhooksPoisoned": "webhooks that cannot be processed",
    "RollbotAlertProcessingErrors": "stored alerts whose processing raised",
    "RollbotOutboxBacklog": "outbox backlog (the oldest waiting call's age)",
    "RollbotSlackErrors": "Slack errors",
    "RollbotKubernetesErrors": "Kubernetes errors",
}


def test_every_alert_is_there_and_fires_in_the_promtool_tests() -> None:
    alerts = [r["alert"] for r in rules()]
    assert set(alerts) == set(WANTED)
    fired = {
        case["alertname"]
        for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert fired == set(WANTED)
    for rule in rules():
        assert rule["labels"]["severity"] in ("page", "ticket"), rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]


# ----------------------------------------------------------------------------- scraping


def service_port_reaching(docs: list[dict[str, Any]], container_port_name: str) -> dict[str, Any]:
    (port,) = [
        p for p in one(docs, "Service")["spec"]["ports"] if p["targetPort"] == container_port_name
    ]
    return dict(port)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_service_monitor_scrapes_metrics_on_the_internal_port(overlay: str) -> None:
    docs = render(overlay)
    monitor = one(docs, "ServiceMonitor")
    service = one(docs, "Service")
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics" and "/metrics" in INTERNAL_PATHS
    assert endpoint["port"] == service_port_reaching(docs, "internal")["name"]
    assert container_port(docs, "internal") == 9090  # server.internal_port in base/rollbot.yaml
    # The rules' job label is the Service's name (the Prometheus Operator's default).
    assert service["metadata"]["name"] == "rollbot" and "jobLabel" not in monitor["spec"]


# ----------------------------------------------------------------------------- Alertmanager


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_alertmanager_receiver_reaches_the_webhook(overlay: str) -> None:
    config = yaml.safe_load((DEPLOY / "alertmanager" / "alertmanager.yaml").read_text())
    (receiver,) = [r for r in config["receivers"] if r["name"] == "rollbot"]
    (webhook,) = receiver["webhook_configs"]
    url = urlsplit(webhook["url"])
    assert url.scheme == "http" and url.hostname is not None
    service_name, namespace, svc = url.hostname.split(".")[:3]
    assert svc == "svc"
    docs = render(overlay)
    (service,) = [s for s in by_kind(docs, "Service") if s["metadata"]["name"] == service_name]
    assert service["metadata"]["namespace"] == namespace
    port = service_port_reaching(docs, "http")
    assert url.port == port["port"], "the receiver posts to another port than the Service's"
    assert url.path == ALERTMANAGER_PATH
    assert container_port(docs, "http") == 8080  # server.port in base/rollbot.yaml

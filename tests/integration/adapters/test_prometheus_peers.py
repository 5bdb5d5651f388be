"""The deploy rules and the Alertmanager receiver, checked by the real tools and run for real.

Aspects under test:

- `promtool check rules` accepts deploy/prometheus/*.rules.yaml (the canary gates and
  rollbot's own alerts: its watch failing, no leader), and `promtool test rules`
  passes deploy/prometheus/tests/*.yaml (every gate and burn-rate alert fires and stays
  quiet where it should, on synthetic series);
- `amtool check-config` accepts deploy/alertmanager/alertmanager.yaml, whose rollbot
  receiver reads its bearer token from a file, never a literal;
- the test rewrite of the rules (`shorten_rules`) changes only `for:` and the `[1m]` gate
  windows, and its output is still valid rules;
- a real Prometheus scrapes the metrics app under job="payment-router" and sees both
  versions;
- end to end in real Prometheus 2.42 and Alertmanager 0.25: with `degrade_canary()` the
  (time-shortened) deploy rules fire the three gate alerts for version="canary" only (and the
  service-level error-budget page), Alertmanager delivers a version-4 webhook carrying the
  Bearer token and every field of the 0.25 fixture to a recording HTTP server, rollbot's own
  parser reads it; after `heal()` a resolved webhook arrives for the gate alerts.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.core.alerts import parse_webhook
from bot.sim.metrics_app import MetricsApp
from tests.plugins.fixtures import load_fixture
from tests.plugins.peers import require_peer
from tests.plugins.prometheus import (
    AlertmanagerPeer,
    PrometheusPeer,
    amtool_binary,
    promtool_binary,
    shorten_rules,
)

REPO = Path(__file__).resolve().parents[3]
RULES = REPO / "deploy" / "prometheus" / "rollbot-canary.rules.yaml"
RULE_TESTS = sorted((REPO / "deploy" / "prometheus" / "tests").glob("*.yaml"))
AM_CONFIG = REPO / "deploy" / "alertmanager" / "alertmanager.yaml"

GATES = {
    "RollbotErrorRateHigh": "error_rate",
    "RollbotLatencyP95High": "latency_p95",
    "RollbotLatencyP99High": "latency_p99",
}
TOKEN = "test-token-9f2c"  # only ever in the test Alertmanager's config


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def _promtool() -> str:
    binary = promtool_binary()
    require_peer("promtool", binary is not None, "promtool not found")
    assert binary is not None
    return binary


# -- static checks ---------------------------------------------------------------------------


def test_promtool_check_rules_accepts_the_deploy_rules() -> None:
    files = sorted(RULES.parent.glob("*.rules.yaml"))
    assert {f.name for f in files} >= {"rollbot-canary.rules.yaml", "rollbot-self.rules.yaml"}
    result = _run([_promtool(), "check", "rules", *map(str, files)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(files)


def test_promtool_unit_tests_of_the_deploy_rules_pass() -> None:
    assert len(RULE_TESTS) >= 3  # the canary gates, the error budget, rollbot itself
    result = _run([_promtool(), "test", "rules", *map(str, RULE_TESTS)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "FAILED" not in result.stdout


def test_amtool_accepts_the_rollbot_receiver() -> None:
    binary = amtool_binary()
    require_peer("amtool", binary is not None, "amtool not found")
    assert binary is not None
    result = _run([binary, "check-config", str(AM_CONFIG)])
    assert result.returncode == 0, result.stdout + result.stderr

    config = yaml.safe_load(AM_CONFIG.read_text())
    (receiver,) = [r for r in config["receivers"] if r["name"] == "rollbot"]
    (webhook,) = receiver["webhook_configs"]
    assert webhook["url"] == "http://rollbot.rollbot.svc:8080/webhooks/alertmanager"
    assert webhook["send_resolved"] is True
    assert webhook["http_config"]["authorization"] == {
        "type": "Bearer",
        "credentials_file": "/etc/alertmanager/secrets/rollbot-token",
    }
    (route,) = [r for r in config["route"]["routes"] if r["receiver"] == "rollbot"]
    assert route["group_by"] == ["service", "alertname"]


def test_test_rewrite_changes_only_for_and_the_gate_windows(tmp_path: Path) -> None:
    original = RULES.read_text()
    short = shorten_rules(original)
    changed = [
        (a, b) for a, b in zip(original.splitlines(), short.splitlines(), strict=True) if a != b
    ]
    assert changed, "nothing was shortened"
    for before, after in changed:
        if before.strip().startswith("for:"):
            assert after.strip() == "for: 3s", (before, after)
        else:
            assert "[1m]" in before and after == before.replace("[1m]", "[10s]"), (before, after)
    assert sum(1 for b, _ in changed if b.strip().startswith("for:")) == 7  # 3 gates + 4 burns
    for window in ("5m", "30m", "1h", "2h", "6h", "1d", "3d"):
        assert short.count(f"[{window}]") == original.count(f"[{window}]") > 0

    copy = tmp_path / RULES.name
    copy.write_text(short)
    result = _run([_promtool(), "check", "rules", str(copy)])
    assert result.returncode == 0, result.stdout + result.stderr


# -- real Prometheus and Alertmanager --------------------------------------------------------


def _by_version(prom: PrometheusPeer, expr: str) -> dict[str, float]:
    return {r["metric"].get("version", ""): float(r["value"][1]) for r in prom.query(expr)}


def test_prometheus_scrapes_both_versions_of_the_metrics_app(
    metrics_app: MetricsApp, prometheus_peer: Any
) -> None:
    prom: PrometheusPeer = prometheus_peer(scrape=metrics_app)
    expr = 'sum by (version) (http_requests_total{job="payment-router"})'
    seen = prom.wait_for(
        lambda: (v := _by_version(prom, expr)).keys() == {"canary", "stable"} and v,
        timeout=20,
        what="both versions scraped",
    )
    assert all(count > 0 for count in seen.values())
    buckets = prom.query('count by (version) (http_request_duration_seconds_bucket{le="0.3"})')
    assert {r["metric"]["version"] for r in buckets} == {"canary", "stable"}


class WebhookRecorder:
    """A tiny HTTP server that records every POST (headers and JSON body) and answers 200."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                with recorder._lock:
                    recorder.received.append(
                        {
                            "path": self.path,
                            "headers": {k.lower(): v for k, v in self.headers.items()},
                            "raw": raw,
                            "body": json.loads(raw),
                        }
                    )
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/webhooks/alertmanager"

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.received)

    def find(self, *, status: str, alertname: str) -> dict[str, Any] | None:
        for request in self.snapshot():
            body = request["body"]
            if body.get("status") == status and body["groupLabels"].get("alertname") == alertname:
                return request
        return None


@pytest.fixture
def webhook_recorder() -> Iterator[WebhookRecorder]:
    recorder = WebhookRecorder()
    recorder.thread.start()
    try:
        yield recorder
    finally:
        recorder.server.shutdown()
        recorder.server.server_close()
        recorder.thread.join(timeout=5)


def _assert_webhook_shape(request: dict[str, Any], *, am: AlertmanagerPeer, status: str) -> None:
    """Every field of the Alertmanager 0.25 fixture, with rollbot's values."""
    fixture = load_fixture("alertmanager/alertmanager-0.25.firing.json")
    body = request["body"]
    assert request["path"] == "/webhooks/alertmanager"
    assert request["headers"]["authorization"] == f"Bearer {TOKEN}"
    assert request["headers"]["content-type"].startswith("application/json")
    assert set(fixture) <= set(body), set(fixture) - set(body)
    assert body["version"] == "4"
    assert body["receiver"] == "rollbot"
    assert body["status"] == status
    assert body["externalURL"] == am.url
    assert body["truncatedAlerts"] == 0
    alertname = body["groupLabels"]["alertname"]
    assert body["groupLabels"] == {"alertname": alertname, "service": "payment-router"}
    assert body["groupKey"] == (f'{{}}:{{alertname="{alertname}", service="payment-router"}}'), (
        body["groupKey"]
    )
    assert body["commonLabels"]["service"] == "payment-router"
    assert body["commonLabels"]["job"] == "payment-router"
    assert body["alerts"], body
    for alert in body["alerts"]:
        assert set(fixture["alerts"][0]) <= set(alert), set(fixture["alerts"][0]) - set(alert)
        assert alert["status"] == status
        assert re.fullmatch(r"[0-9a-f]{16}", alert["fingerprint"])
        datetime.fromisoformat(alert["startsAt"].replace("Z", "+00:00"))
        assert {"service", "severity", "slo", "job"} <= set(alert["labels"])
        assert {"summary", "description", "runbook_url"} <= set(alert["annotations"])
        assert (
            alert["annotations"]["runbook_url"]
            == "https://rollbot.example.com/runbooks/payment-router"
        )
    alerts, group = parse_webhook(request["raw"])  # rollbot's own reader accepts it
    assert [a.name for a in alerts] == [alertname] * len(body["alerts"])
    assert group["receiver"] == "rollbot"


@pytest.mark.timeout(120)
def test_degraded_canary_fires_the_deploy_rules_and_alertmanager_calls_rollbot(
    metrics_app: MetricsApp,
    prometheus_peer: Any,
    alertmanager_peer: Any,
    rules_for_test: Any,
    webhook_recorder: WebhookRecorder,
) -> None:
    am: AlertmanagerPeer = alertmanager_peer(webhook_url=webhook_recorder.url, token=TOKEN)
    prom: PrometheusPeer = prometheus_peer(
        scrape=metrics_app, rule_files=[rules_for_test(RULES)], alertmanager=am
    )

    # Healthy baseline: the gate ratios are recorded for both versions, nothing is active.
    ratio = "job_version:http_requests_5xx:ratio_rate1m"
    baseline = prom.wait_for(
        lambda: (v := _by_version(prom, ratio)).keys() == {"canary", "stable"} and v,
        timeout=20,
        what="gate ratios recorded for both versions",
    )
    assert baseline == {"canary": 0.0, "stable": 0.0}
    assert prom.alerts() == []

    metrics_app.degrade_canary()

    def gates_firing() -> list[dict[str, Any]] | None:
        # The gates and the page-level burn-rate alert fire within a few seconds of each
        # other, in no fixed order under load: wait for all of them.
        firing = [a for a in prom.alerts() if a["state"] == "firing"]
        names = {a["labels"]["alertname"] for a in firing}
        burn_page = any(
            a["labels"]["alertname"] == "RollbotErrorBudgetBurn"
            and a["labels"].get("severity") == "page"
            for a in firing
        )
        return firing if set(GATES) <= names and burn_page else None

    firing = prom.wait_for(
        gates_firing, timeout=40, what="the three gate alerts and a burn-rate page firing"
    )
    gate_alerts = [a for a in firing if a["labels"]["alertname"] in GATES]
    assert {a["labels"]["version"] for a in gate_alerts} == {"canary"}
    assert {a["labels"]["alertname"] for a in gate_alerts} == set(GATES)
    for alert in gate_alerts:
        assert alert["labels"]["slo"] == GATES[alert["labels"]["alertname"]]
        assert alert["labels"]["service"] == "payment-router"
        assert alert["labels"]["severity"] == "page"
    # Nothing at all about stable: every alert that has a version is the canary's.
    assert {a["labels"]["version"] for a in prom.alerts() if "version" in a["labels"]} == {"canary"}
    # The error budget is the service's (no version): 15 % of all requests fail, a page.
    burn = [a for a in firing if a["labels"]["alertname"] == "RollbotErrorBudgetBurn"]
    assert any(a["labels"]["severity"] == "page" for a in burn), firing
    assert all("version" not in a["labels"] for a in burn)

    # Alertmanager → rollbot: one firing webhook per (service, alertname) group.
    delivered = prom.wait_for(
        lambda: (
            all(webhook_recorder.find(status="firing", alertname=n) for n in GATES)
            and [webhook_recorder.find(status="firing", alertname=n) for n in GATES]
        ),
        timeout=20,
        what="firing webhooks for the three gates",
    )
    for request in delivered:
        _assert_webhook_shape(request, am=am, status="firing")
        body = request["body"]
        assert body["commonLabels"]["version"] == "canary"
        (alert,) = body["alerts"]
        assert alert["endsAt"] == "0001-01-01T00:00:00Z"

    metrics_app.heal()

    resolved = prom.wait_for(
        lambda: (
            all(webhook_recorder.find(status="resolved", alertname=n) for n in GATES)
            and [webhook_recorder.find(status="resolved", alertname=n) for n in GATES]
        ),
        timeout=40,
        what="resolved webhooks for the three gates",
    )
    for request in resolved:
        _assert_webhook_shape(request, am=am, status="resolved")
        (alert,) = request["body"]["alerts"]
        assert alert["labels"]["version"] == "canary"
        assert not alert["endsAt"].startswith("0001-")
    assert not [a for a in prom.alerts() if a["labels"]["alertname"] in GATES], (
        "gate alerts still active after heal()"
    )

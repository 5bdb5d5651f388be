"""deploy/ (all but deploy/kubernetes, which test_kustomize.py and its siblings read),
rollbot.example.yaml and the runbooks hold together.

Aspects:
- the Slack app manifest parses, has the /rollback and /release commands, the Home tab
  and its app_home_opened event, interactivity on /slack/events, the bot scopes rollbot
  needs and no socket mode;
- the payment-router Rollout, AnalysisTemplate and Istio VirtualService validate against
  the real CRD schemas (unknown fields rejected, as the API server would prune them), with
  the case study's steps and SLO gates; the VirtualService is the one the Rollout names,
  its route sends to the Rollout's stable and canary Services, all on stable to start;
- rollbot.example.yaml loads and passes check_config once the Slack secrets are in the
  environment;
- the runbook has its front matter and the exact Tier 1 commands.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.settings import check_config, load_settings
from tests.plugins.fixtures import FIXTURES
from tests.unit.deploy.kustomize import DEPLOY, REPO, crd_errors

ARGO = DEPLOY / "argo-rollouts"
SECRETS = {
    "ROLLBOT_SLACK__BOT_TOKEN": "xoxb-test",
    "ROLLBOT_SLACK__SIGNING_SECRET": "signing-test",
    "ROLLBOT_FLAGS__API_TOKEN": "unleash-admin-test",
}


def load_all(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


# ----------------------------------------------------------------------------- Slack


def test_slack_manifest() -> None:
    manifest = yaml.safe_load((DEPLOY / "slack" / "manifest.yaml").read_text())
    assert manifest["display_information"]["name"] == "rollbot"
    assert manifest["features"]["bot_user"]["display_name"] == "rollbot"
    command, release = manifest["features"]["slash_commands"]
    assert command["command"] == "/rollback"
    assert command["url"] == "https://rollbot.example.com/slack/events"
    assert command["usage_hint"]
    assert release["command"] == "/release"
    assert release["url"] == "https://rollbot.example.com/slack/events"
    assert release["usage_hint"].startswith("start SERVICE VERSION")
    assert release["should_escape"] is True  # an owner's @mention arrives as <@U…|name>
    assert manifest["features"]["app_home"] == {
        "home_tab_enabled": True,
        "messages_tab_enabled": False,
    }
    settings = manifest["settings"]
    assert settings["event_subscriptions"] == {
        "request_url": "https://rollbot.example.com/slack/events",
        "bot_events": ["app_home_opened"],
    }
    assert settings["interactivity"] == {
        "is_enabled": True,
        "request_url": "https://rollbot.example.com/slack/events",
    }
    assert settings["socket_mode_enabled"] is False
    assert settings["token_rotation_enabled"] is False
    assert settings["org_deploy_enabled"] is False
    assert set(manifest["oauth_config"]["scopes"]["bot"]) == {
        "commands",
        "chat:write",
        "chat:write.public",
        "users:read",
        "users:read.email",
        "usergroups:read",
        "channels:read",
        "groups:read",
        "channels:history",
        "groups:history",
    }


def test_slack_manifest_has_the_fixture_shape() -> None:
    """Same top-level keys as the real manifests in tests/fixtures/slack."""
    fixture_dir = FIXTURES / "slack"
    fixtures = sorted(fixture_dir.glob("*manifest*.json"))
    if not fixtures:
        pytest.fail(f"no Slack manifest fixtures in {fixture_dir}")
    manifest = yaml.safe_load((DEPLOY / "slack" / "manifest.yaml").read_text())
    for fixture in fixtures:
        real = yaml.safe_load(fixture.read_text())
        assert set(real) <= set(manifest)
        assert set(real["settings"]) <= set(manifest["settings"]) | {"event_subscriptions"}


# ----------------------------------------------------------------------------- Argo Rollouts


def test_rollout_validates_against_the_crd() -> None:
    rollout = yaml.safe_load((DEPLOY / "argo-rollouts" / "payment-router.rollout.yaml").read_text())
    assert crd_errors(rollout) == []
    assert rollout["metadata"] == {
        **rollout["metadata"],
        "name": "payment-router",
        "namespace": "payments",
    }
    steps = rollout["spec"]["strategy"]["canary"]["steps"]
    assert [s["setWeight"] for s in steps if "setWeight" in s] == [10, 25, 50, 100]
    kinds = [next(iter(s)) for s in steps]
    assert kinds == [
        "setWeight", "pause", "analysis",
        "setWeight", "pause", "analysis",
        "setWeight", "pause",
        "setWeight",
    ]  # fmt: skip
    templates = {
        t["templateName"] for s in steps if "analysis" in s for t in s["analysis"]["templates"]
    }
    assert templates == {"payment-router-slo"}


def test_analysis_template_validates_and_has_the_slo_gates() -> None:
    path = DEPLOY / "argo-rollouts" / "payment-router.analysistemplate.yaml"
    template = yaml.safe_load(path.read_text())
    assert crd_errors(template) == []
    assert template["metadata"]["name"] == "payment-router-slo"
    assert template["metadata"]["namespace"] == "payments"
    metrics = {m["name"]: m for m in template["spec"]["metrics"]}
    assert metrics["error-rate"]["successCondition"] == "result[0] < 0.02"
    assert metrics["latency-p95"]["successCondition"] == "result[0] < 300"
    assert metrics["latency-p99"]["successCondition"] == "result[0] < 200"
    for metric in metrics.values():
        assert (metric["interval"], metric["count"]) == ("1m", 5)  # 5 minutes
        assert "{{args.version}}" in metric["provider"]["prometheus"]["query"]


def test_rollout_gates_match_the_catalog_slo() -> None:
    settings = load_settings(REPO / "rollbot.example.yaml", environ={})
    slo = settings.service("payment-router").slo
    path = DEPLOY / "argo-rollouts" / "payment-router.analysistemplate.yaml"
    metrics = {m["name"]: m for m in yaml.safe_load(path.read_text())["spec"]["metrics"]}
    assert metrics["error-rate"]["successCondition"] == f"result[0] < {slo.error_rate}"
    assert metrics["latency-p95"]["successCondition"] == f"result[0] < {slo.latency_p95_ms:g}"
    assert metrics["latency-p99"]["successCondition"] == f"result[0] < {slo.latency_p99_ms:g}"


# ----------------------------------------------------------------------------- Istio


def test_the_virtual_service_is_the_one_the_rollout_shifts() -> None:
    rollout = yaml.safe_load((ARGO / "payment-router.rollout.yaml").read_text())
    service = yaml.safe_load((ARGO / "payment-router.virtualservice.yaml").read_text())
    assert crd_errors(service) == []
    canary = rollout["spec"]["strategy"]["canary"]
    istio = canary["trafficRouting"]["istio"]["virtualService"]
    assert service["metadata"] == {"name": istio["name"], "namespace": "payments"}
    routes = {r["name"]: r for r in service["spec"]["http"]}
    assert set(istio["routes"]) <= set(routes)
    for name in istio["routes"]:
        weights = {d["destination"]["host"]: d["weight"] for d in routes[name]["route"]}
        assert weights == {canary["stableService"]: 100, canary["canaryService"]: 0}


# ----------------------------------------------------------------------------- example config


def test_example_config_loads_and_passes_check_config() -> None:
    example = REPO / "rollbot.example.yaml"
    settings = load_settings(example, environ=SECRETS)
    assert sorted(settings.services) == ["fx-rates", "payment-router"]
    assert settings.kubernetes.namespaces == ["payments"]
    assert check_config(example, environ=SECRETS) == []
    missing = check_config(example, environ={})
    assert [p.key_path for p in missing] == [
        "slack.bot_token",
        "slack.signing_secret",
        "flags.api_token",
    ]


def test_example_service_is_the_design_catalog_entry() -> None:
    raw = yaml.safe_load((REPO / "rollbot.example.yaml").read_text())["services"]["payment-router"]
    assert raw == {
        "namespace": "payments",
        "rollout": "payment-router",
        "channel": "#payments-deploys",
        "runbook": "runbooks/payment-router.md",
        "owners": {"slack_usergroup": "S0PAYMENTS", "jira_assignee": "payments-lead@example.com"},
        "pagerduty": {"service_id": "PSVC123", "escalation_policy_id": "PESC123"},
        "jira": {"project": "PAY"},
        "flags": {
            "release": "payments.new-router.enabled",
            "experiment": "payments.dynamic-currency.enabled",
            "circuit": "payments.new-router.circuit-open",
        },
        "slo": {"error_rate": 0.02, "latency_p95_ms": 300, "latency_p99_ms": 200},
        "gitops": {
            "repo": "git@example.com:platform/configs.git",
            "path": "services/payment-router",
        },
    }


# ----------------------------------------------------------------------------- runbooks


def front_matter(path: Path) -> dict[str, Any]:
    text = path.read_text()
    assert text.startswith("---\n")
    head, _, _ = text[4:].partition("\n---\n")
    loaded = yaml.safe_load(head)
    assert isinstance(loaded, dict)
    return loaded


def test_payment_router_runbook() -> None:
    path = REPO / "runbooks" / "payment-router.md"
    meta = front_matter(path)
    assert meta["service"] == "payment-router"
    assert meta["flags"]["circuit"] == "payments.new-router.circuit-open"
    assert [t["tier"] for t in meta["tiers"]] == [1, 2, 3]
    text = path.read_text()
    assert "kubectl argo rollouts abort payment-router -n payments" in text
    assert "/rollback payment-router abort" in text
    assert "git revert <release SHA>" in text
    assert "services/payment-router" in text
    assert text.count("**Verify**") == 3


def test_runbook_template_has_front_matter() -> None:
    meta = front_matter(REPO / "runbooks" / "TEMPLATE.md")
    assert {"service", "owners", "flags", "tiers"} <= set(meta)

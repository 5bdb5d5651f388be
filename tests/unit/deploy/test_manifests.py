"""deploy/ (all but deploy/kubernetes, which test_kustomize.py and its siblings read),
rollbot.example.yaml and the runbooks hold together.

Aspects:
- the Slack app manifests, one per way in: manifest.yaml (HTTP: the /rollback and /release
  commands, interactivity and events on /slack/events, no socket mode) and
  manifest.socket-mode.yaml (socket mode on, no Request URL anywhere), otherwise the same:
  the Home tab and its app_home_opened event, the Messages tab (read-only) where the
  fresh-link DMs land; their bot scopes are exactly those of the Web API methods the code
  calls (found in bot/ by walking its syntax, each method's API name read from slack_sdk),
  per Slack's method reference, plus slash commands and posting where not invited;
- the payment-router Rollout, AnalysisTemplate and Istio VirtualService validate against
  the real CRD schemas (unknown fields rejected, as the API server would prune them), with
  the case study's steps and SLO gates; the VirtualService is the one the Rollout names,
  its route sends to the Rollout's stable and canary Services, all on stable to start;
- rollbot.example.yaml loads and passes check_config once the Slack secrets are in the
  environment;
- the runbook has its front matter and the exact Tier 1 commands.
"""

from __future__ import annotations

import ast
import inspect
import re
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

SLACK_MANIFESTS = {
    "http": DEPLOY / "slack" / "manifest.yaml",
    "socket": DEPLOY / "slack" / "manifest.socket-mode.yaml",
}
EVENTS_URL = "https://rollbot.example.com/slack/events"

#: The bot token scopes each Web API method rollbot calls needs, from Slack's method
#: reference (https://docs.slack.dev/reference/methods/<method>). The history and list
#: methods read public and private channels (a service's channel may be either); never DMs.
METHOD_SCOPES: dict[str, set[str]] = {
    "auth.test": set(),
    "chat.postMessage": {"chat:write"},
    "chat.update": {"chat:write"},
    "chat.postEphemeral": {"chat:write"},
    "conversations.history": {"channels:history", "groups:history"},
    "conversations.replies": {"channels:history", "groups:history"},
    "conversations.list": {"channels:read", "groups:read"},
    "usergroups.users.list": {"usergroups:read"},
    "users.info": {"users:read"},
    "users.lookupByEmail": {"users:read.email"},
    "views.open": set(),
    "views.update": set(),
    "views.publish": set(),
}
#: Called by the libraries on rollbot's behalf: Bolt's single-workspace authorization.
#: (Socket Mode's apps.connections.open uses the app-level token, not the bot's scopes.)
LIBRARY_METHODS = {"auth.test"}
#: Scopes no method above implies: the slash commands; chat.postMessage into a channel
#: rollbot was not invited to; users.info's profile.email (SlackChat.user_email).
FEATURE_SCOPES = {"commands", "chat:write.public", "users:read.email"}


def web_api_methods_called() -> set[str]:
    """Every Web API method the bot's code (bot/, not the sims) calls through slack_sdk:
    each ``<…client>.<method>`` reference (called, or handed to functools.partial), as the
    API method slack_sdk's own source says it calls."""
    from slack_sdk.web.async_client import AsyncWebClient

    names: set[str] = set()
    for path in sorted((REPO / "bot").rglob("*.py")):
        if "sim" in path.relative_to(REPO / "bot").parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Attribute):
                continue
            owner = node.value
            owner_name = (
                owner.attr
                if isinstance(owner, ast.Attribute)
                else owner.id
                if isinstance(owner, ast.Name)
                else ""
            )
            if owner_name.endswith("client") and callable(getattr(AsyncWebClient, node.attr, None)):
                names.add(node.attr)
    methods = set()
    for name in names:
        found = re.search(
            r'api_call\(\s*"([a-zA-Z.]+)"', inspect.getsource(getattr(AsyncWebClient, name))
        )
        if found is not None:  # api_call itself, and helpers that are not one method
            methods.add(found.group(1))
    return methods


def test_the_code_calls_the_methods_whose_scopes_are_written_down() -> None:
    called = web_api_methods_called()
    # The walk finds them (a sample that must be there), and none is missing its scopes.
    assert {"chat.postMessage", "conversations.list", "users.lookupByEmail"} <= called
    assert called - set(METHOD_SCOPES) == set(), "write down the scopes of these methods"
    # conversations.list reads private channels too: groups:read is needed for that.
    adapter = (REPO / "bot" / "adapters" / "slack.py").read_text()
    assert 'types="public_channel,private_channel"' in adapter


@pytest.mark.parametrize("mode", sorted(SLACK_MANIFESTS))
def test_slack_manifest_scopes_are_what_the_code_calls(mode: str) -> None:
    manifest = yaml.safe_load(SLACK_MANIFESTS[mode].read_text())
    needed = set().union(
        *(
            METHOD_SCOPES[m]
            for m in web_api_methods_called() | LIBRARY_METHODS
            if m in METHOD_SCOPES
        )
    )
    assert set(manifest["oauth_config"]["scopes"]["bot"]) == needed | FEATURE_SCOPES
    assert "user" not in manifest["oauth_config"]["scopes"]  # no user token


@pytest.mark.parametrize("mode", sorted(SLACK_MANIFESTS))
def test_slack_manifest(mode: str) -> None:
    manifest = yaml.safe_load(SLACK_MANIFESTS[mode].read_text())
    socket = mode == "socket"
    assert manifest["display_information"]["name"] == "rollbot"
    assert manifest["features"]["bot_user"]["display_name"] == "rollbot"
    command, release = manifest["features"]["slash_commands"]
    assert command["command"] == "/rollback"
    assert command["usage_hint"]
    assert release["command"] == "/release"
    assert release["usage_hint"].startswith("start SERVICE VERSION")
    assert release["should_escape"] is True  # an owner's @mention arrives as <@U…|name>
    assert manifest["features"]["app_home"] == {
        "home_tab_enabled": True,
        # The fresh-link DMs (chat.postMessage to a user id) land in the Messages tab.
        "messages_tab_enabled": True,
        "messages_tab_read_only_enabled": True,  # rollbot reads no message
    }
    settings = manifest["settings"]
    assert settings["event_subscriptions"]["bot_events"] == ["app_home_opened"]
    assert settings["interactivity"]["is_enabled"] is True
    assert settings["socket_mode_enabled"] is socket
    assert settings["token_rotation_enabled"] is False
    assert settings["org_deploy_enabled"] is False
    if socket:  # no Request URL anywhere: Slack sends over the WebSocket
        assert "url" not in command and "url" not in release
        assert "request_url" not in settings["event_subscriptions"]
        assert "request_url" not in settings["interactivity"]
    else:
        assert command["url"] == release["url"] == EVENTS_URL
        assert settings["event_subscriptions"]["request_url"] == EVENTS_URL
        assert settings["interactivity"]["request_url"] == EVENTS_URL


def test_the_two_slack_manifests_differ_only_in_how_slack_reaches_rollbot() -> None:
    http, socket = (yaml.safe_load(SLACK_MANIFESTS[m].read_text()) for m in ("http", "socket"))
    for command in http["features"]["slash_commands"]:
        del command["url"]
    del http["settings"]["event_subscriptions"]["request_url"]
    del http["settings"]["interactivity"]["request_url"]
    http["settings"]["socket_mode_enabled"] = True
    assert http == socket


@pytest.mark.parametrize("mode", sorted(SLACK_MANIFESTS))
def test_slack_manifest_has_the_fixture_shape(mode: str) -> None:
    """Same top-level keys as the real manifests in tests/fixtures/slack."""
    fixture_dir = FIXTURES / "slack"
    fixtures = sorted(fixture_dir.glob("*manifest*.json"))
    if not fixtures:
        pytest.fail(f"no Slack manifest fixtures in {fixture_dir}")
    manifest = yaml.safe_load(SLACK_MANIFESTS[mode].read_text())
    for fixture in fixtures:
        real = yaml.safe_load(fixture.read_text())
        assert set(real) <= set(manifest)
        assert set(real["settings"]) <= set(manifest["settings"]) | {"event_subscriptions"}
        for key, value in real["features"].get("app_home", {}).items():
            assert isinstance(manifest["features"]["app_home"][key], type(value))


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

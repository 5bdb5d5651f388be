"""deploy/, rollbot.example.yaml and the runbooks hold together.

Aspects:
- the Slack app manifest parses, has the /rollback and /release commands, the Home tab
  and its app_home_opened event, interactivity on /slack/events, the bot scopes rollbot
  needs and no socket mode;
- the payment-router Rollout and AnalysisTemplate validate against the real Argo Rollouts
  CRD schemas (unknown fields rejected, as the API server would prune them), with the
  case study's steps and SLO gates;
- RBAC grants exactly the verbs the adapter needs and nothing cluster-wide beyond that;
  no Lease permissions (the leader is elected in the database);
- the Deployment: 1 replica (Recreate), probes, secrets from rollbot-secrets under the env names
  settings reads, config mounted where ROLLBOT_CONFIG points, non-root, read-only root;
- kustomization lists every manifest;
- rollbot.example.yaml and the ConfigMap's rollbot.yaml load and pass check_config once
  the Slack secrets are in the environment;
- the runbook has its front matter and the exact Tier 1 commands.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from bot.settings import check_config, load_settings
from bot.sim.kube import default_crd_dir
from tests.plugins.fixtures import FIXTURES

REPO = Path(__file__).resolve().parents[3]
DEPLOY = REPO / "deploy"
CRDS = default_crd_dir()
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


def to_json_schema(node: Any) -> Any:
    """OpenAPI v3 (Kubernetes structural) schema → JSON Schema, pruning like the API server."""
    if isinstance(node, list):
        return [to_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: to_json_schema(v) for k, v in node.items() if not k.startswith("x-kubernetes")}
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if node.get("nullable"):
        out.pop("nullable")
        if "type" in out:
            out["type"] = [out["type"], "null"]
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


@functools.cache
def crd_validator(filename: str) -> jsonschema.protocols.Validator:
    crd = yaml.safe_load((CRDS / filename).read_text())
    schema = to_json_schema(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"])
    # metadata is `type: object` in CRDs; the API server checks it itself.
    validator_cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)
    validator_cls.check_schema(schema)
    return validator_cls(schema)


def errors_of(validator: jsonschema.protocols.Validator, doc: dict[str, Any]) -> list[str]:
    return [
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)
    ]


def test_rollout_validates_against_the_crd() -> None:
    rollout = yaml.safe_load((DEPLOY / "argo-rollouts" / "payment-router.rollout.yaml").read_text())
    assert errors_of(crd_validator("rollout-crd.yaml"), rollout) == []
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


def test_crd_validation_catches_mistakes() -> None:
    """The schema check is not vacuous: a typo and a wrong type are caught."""
    validator = crd_validator("rollout-crd.yaml")
    rollout = yaml.safe_load((DEPLOY / "argo-rollouts" / "payment-router.rollout.yaml").read_text())
    broken = copy.deepcopy(rollout)
    broken["spec"]["strategy"]["canary"]["stepz"] = broken["spec"]["strategy"]["canary"].pop(
        "steps"
    )
    broken["spec"]["replicas"] = "six"
    errors = errors_of(validator, broken)
    assert any("stepz" in e for e in errors)
    assert any(e.startswith("spec.replicas") for e in errors)


def test_analysis_template_validates_and_has_the_slo_gates() -> None:
    path = DEPLOY / "argo-rollouts" / "payment-router.analysistemplate.yaml"
    template = yaml.safe_load(path.read_text())
    assert errors_of(crd_validator("analysis-template-crd.yaml"), template) == []
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


# ----------------------------------------------------------------------------- Kubernetes


def rules_of(role: dict[str, Any]) -> dict[tuple[str, str], set[str]]:
    out: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        assert "nonResourceURLs" not in rule
        assert "resourceNames" not in rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                out.setdefault((group, resource), set()).update(rule["verbs"])
    return out


def test_rbac_is_least_privilege() -> None:
    docs = load_all(DEPLOY / "kubernetes" / "rbac.yaml")
    (account,) = by_kind(docs, "ServiceAccount")
    assert account["metadata"]["name"] == "rollbot"
    (cluster_role,) = by_kind(docs, "ClusterRole")
    assert rules_of(cluster_role) == {
        ("argoproj.io", "rollouts"): {"get", "list", "watch", "patch"},
        ("argoproj.io", "rollouts/status"): {"patch"},
        ("argoproj.io", "analysisruns"): {"get", "list", "watch"},
        ("argoproj.io", "analysistemplates"): {"get", "list"},
        ("apps", "replicasets"): {"get", "list"},
    }
    # The leader is elected in rollbot's database: no Lease, no namespaced Role at all.
    assert by_kind(docs, "Role") == [] and by_kind(docs, "RoleBinding") == []
    for rule in cluster_role["rules"]:
        assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"]
    bindings = by_kind(docs, "ClusterRoleBinding")
    assert {(b["kind"], b["roleRef"]["name"]) for b in bindings} == {
        ("ClusterRoleBinding", cluster_role["metadata"]["name"]),
    }
    for binding in bindings:
        assert [(s["kind"], s["name"]) for s in binding["subjects"]] == [
            ("ServiceAccount", "rollbot")
        ]


def test_deployment() -> None:
    (deployment,) = load_all(DEPLOY / "kubernetes" / "deployment.yaml")
    spec = deployment["spec"]
    # one voice: with SQLite (the base's database, one file per pod) a single replica and
    # no surge; several replicas need a shared PostgreSQL for their leader lease
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}
    pod = spec["template"]["spec"]
    assert pod["serviceAccountName"] == "rollbot"
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    env = {e["name"]: e for e in container["env"]}
    for name in (
        "ROLLBOT_SLACK__BOT_TOKEN",
        "ROLLBOT_SLACK__SIGNING_SECRET",
        "ROLLBOT_FLAGS__API_TOKEN",
    ):
        assert env[name]["valueFrom"]["secretKeyRef"]["name"] == "rollbot-secrets"
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert env["ROLLBOT_CONFIG"]["value"] == f"{mounts['config']}/rollbot.yaml"
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["config"]["configMap"]["name"] == "rollbot-config"
    # Every ROLLBOT_* variable the Deployment sets is a real setting.
    fake_env = {name: "rollbot" for name in env if name != "ROLLBOT_CONFIG"}
    load_settings(REPO / "rollbot.example.yaml", environ=fake_env)


def test_service_targets_the_pods() -> None:
    (service,) = load_all(DEPLOY / "kubernetes" / "service.yaml")
    (deployment,) = load_all(DEPLOY / "kubernetes" / "deployment.yaml")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["ports"][0]["targetPort"] == "http"


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((DEPLOY / "kubernetes" / "kustomization.yaml").read_text())
    others = {p.name for p in (DEPLOY / "kubernetes").glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == others


def test_configmap_config_passes_check_config(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (configmap,) = load_all(DEPLOY / "kubernetes" / "configmap.yaml")
    config = tmp_path / "rollbot.yaml"
    config.write_text(configmap["data"]["rollbot.yaml"])
    monkeypatch.chdir(REPO)  # runbooks ship beside the code, found from the working directory
    assert check_config(config, environ=SECRETS) == []


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

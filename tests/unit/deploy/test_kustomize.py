"""deploy/kubernetes: the base, the components and the two overlays, as `kubectl kustomize`
renders them, read the way the kubelet and rollbot would.

Aspects:
- every overlay renders, with the objects it promises; each component can be left out
  (the base alone, and the base with any one component, render and configure rollbot; only
  the flag provider's absence is said, as an advisory problem);
- namespaces: everything in `rollbot`, but the Roles and RoleBindings, which are in the
  namespaces of the service catalog (exactly those), bound to rollbot's ServiceAccount;
- the pod as the kubelet lays it out (config and runbooks from the ConfigMaps, the Secret as
  files): rollbot loads its settings from it and `check_config` finds no problem, the
  runbooks are found beside the config file; without one Secret key it names the setting;
- the Secret's keys: every one is read through a ROLLBOT_…_FILE variable from the Secret's
  mount, documented in the kustomization that wires it and in README's deploy section;
- single: one replica, Recreate, SQLite on a ReadWriteOnce PersistentVolumeClaim mounted
  where database.url points, no PodDisruptionBudget;
- ha: two replicas, RollingUpdate with maxUnavailable 0, preferred anti-affinity by
  hostname, a PodDisruptionBudget of maxUnavailable 1 that always lets a drain evict, the
  PostgreSQL URL from the Secret;
- ports: the probes and /metrics on the internal port (server.internal_port), the public
  endpoints on `http` (server.port); the Service maps both; the Ingress serves the public
  routes only, over TLS, at server.public_url's host;
- NetworkPolicy: in from the ingress controller to `http`, from the monitoring namespace to
  `http` (Alertmanager) and `internal` (Prometheus), nothing else; out to DNS, the API
  server, HTTPS, and every address rollbot's settings point at (Prometheus, the flag
  provider, PostgreSQL);
- no leftover of the retired Kubernetes Lease: no Lease permission, no LEASE variable.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from bot.settings import Settings, check_config, load_settings
from bot.web.alertmanager import PATH as ALERTMANAGER_PATH
from bot.web.app import INTERNAL_PATHS
from bot.web.pagerduty import PATH as PAGERDUTY_PATH
from bot.web.slack import PATH as SLACK_PATH
from tests.unit.deploy.kustomize import (
    COMPONENTS,
    KUBE,
    OVERLAYS,
    REPO,
    SECRET_MOUNT,
    Doc,
    LaidOut,
    by_kind,
    container,
    container_port,
    env_of,
    kustomize,
    lay_out,
    one,
    render,
    render_with,
    secret_keys_documented,
    secret_keys_read,
    secret_value,
)

ROLLBOT_NS = "rollbot"
POD_LABELS = {"app.kubernetes.io/name": "rollbot"}

KINDS = {
    "single": {
        ("Namespace", "rollbot"),
        ("ServiceAccount", "rollbot"),
        ("Role", "rollbot"),
        ("RoleBinding", "rollbot"),
        ("ClusterRole", "rollbot"),
        ("ClusterRoleBinding", "rollbot"),
        ("ConfigMap", "rollbot-config"),
        ("ConfigMap", "rollbot-runbooks"),
        ("Deployment", "rollbot"),
        ("Service", "rollbot"),
        ("Ingress", "rollbot"),
        ("NetworkPolicy", "rollbot"),
        ("NetworkPolicy", "rollbot-flags"),
        ("ServiceMonitor", "rollbot"),
        ("PrometheusRule", "rollbot"),
        ("PersistentVolumeClaim", "rollbot-data"),
    },
}
KINDS["ha"] = (KINDS["single"] - {("PersistentVolumeClaim", "rollbot-data")}) | {
    ("PodDisruptionBudget", "rollbot"),
    ("NetworkPolicy", "rollbot-postgresql"),
}


def unhashed(name: str, kind: str) -> str:
    """A generated ConfigMap's name without kustomize's content hash."""
    return name.rsplit("-", 1)[0] if kind == "ConfigMap" else name


def pod_settings(docs: list[Doc], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LaidOut:
    """The rendered pod laid out under tmp_path/pod with every key of the Secret it reads;
    the working directory is an empty one (no runbooks/ of this checkout to fall back on)."""
    secret = {key: secret_value(key) for key in secret_keys_read(docs)}
    laid = lay_out(docs, tmp_path / "pod", secret)
    empty = tmp_path / "cwd"
    empty.mkdir()
    monkeypatch.chdir(empty)
    return laid


def settings_of(laid: LaidOut) -> Settings:
    """What rollbot loads in that pod (ROLLBOT_CONFIG is /etc/rollbot/rollbot.yaml)."""
    return load_settings(laid.path("/etc/rollbot/rollbot.yaml"), environ=laid.env)


# ----------------------------------------------------------------------------- rendering


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_overlay_renders_what_it_promises(overlay: str) -> None:
    docs = render(overlay)
    kinds = {(d["kind"], unhashed(d["metadata"]["name"], d["kind"])) for d in docs}
    assert kinds == KINDS[overlay]
    for doc in docs:  # kustomize's labels reach every object
        assert doc["metadata"]["labels"]["app.kubernetes.io/name"] == "rollbot", doc["kind"]


def test_a_broken_kustomization_fails_to_render(tmp_path: Path) -> None:
    """The render check is not vacuous: a resource that is not there stops kustomize."""
    (tmp_path / "kustomization.yaml").write_text("resources: [nowhere.yaml]\n")
    done = kustomize(tmp_path)
    assert done.returncode != 0 and "nowhere.yaml" in done.stderr


@pytest.mark.parametrize("component", [None, *COMPONENTS])
def test_the_base_with_any_one_component_configures_rollbot(
    component: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Leaving components out (the overlays' comment invites it) leaves a working rollbot."""
    components = [KUBE / "components" / component] if component else []
    docs = render_with(tmp_path / "k", resources=[KUBE / "base"], components=components)
    laid = pod_settings(docs, tmp_path, monkeypatch)
    problems = check_config(laid.path("/etc/rollbot/rollbot.yaml"), environ=laid.env)
    assert [p for p in problems if not p.advisory] == []
    # Without the flag provider Tier 2 shows the manual steps: said, and served anyway.
    assert [p.key_path for p in problems] == (
        [] if component == "flags" else ["services.payment-router.flags.circuit"]
    )


# ----------------------------------------------------------------------------- namespaces


def catalog_namespaces(docs: list[Doc]) -> set[str]:
    (configmap,) = [
        d for d in by_kind(docs, "ConfigMap") if d["metadata"]["name"].startswith("rollbot-config")
    ]
    catalog = yaml.safe_load(configmap["data"]["rollbot.yaml"])
    return {s["namespace"] for s in catalog["services"].values()}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_namespaces(overlay: str) -> None:
    docs = render(overlay)
    cluster_scoped = {"Namespace", "ClusterRole", "ClusterRoleBinding"}
    rbac = {"Role", "RoleBinding"}
    for doc in docs:
        namespace = doc["metadata"].get("namespace")
        if doc["kind"] in cluster_scoped:
            assert namespace is None, doc["kind"]
        elif doc["kind"] not in rbac:
            assert namespace == ROLLBOT_NS, (doc["kind"], doc["metadata"]["name"])
    wanted = catalog_namespaces(docs)
    assert wanted == {"payments"}
    assert {r["metadata"]["namespace"] for r in by_kind(docs, "Role")} == wanted
    assert {b["metadata"]["namespace"] for b in by_kind(docs, "RoleBinding")} == wanted
    for binding in by_kind(docs, "RoleBinding") + by_kind(docs, "ClusterRoleBinding"):
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "rollbot", "namespace": ROLLBOT_NS}
        ]
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "rollbot"
    assert (
        one(docs, "Namespace")["metadata"]["labels"]["pod-security.kubernetes.io/enforce"]
        == "restricted"
    )


# ----------------------------------------------------------------------------- the pod


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_rollbot_configures_itself_from_the_pod(
    overlay: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = render(overlay)
    laid = pod_settings(docs, tmp_path, monkeypatch)
    config = laid.path(env_of(docs)["ROLLBOT_CONFIG"])
    assert check_config(config, environ=laid.env) == []
    settings = load_settings(config, environ=laid.env)
    # The catalog's runbooks are found beside the config file, from rollbot-runbooks.
    for name, service in settings.services.items():
        assert service.runbook is not None
        found = settings.runbook_path(name)
        assert found == config.parent / service.runbook
        assert found.read_text() == (REPO / service.runbook).read_text()
    # Every secret arrived, from its file.
    assert settings.slack.bot_token is not None
    assert settings.slack.bot_token.get_secret_value() == secret_value("slack-bot-token")
    assert settings.alertmanager.bearer_token is not None
    assert settings.server.link_secret is not None
    assert settings.pagerduty.api_token is not None
    assert settings.pagerduty.webhook_secret is not None
    assert settings.pagerduty.workflow_secret is not None
    assert settings.service("payment-router").pagerduty.routing_key is not None
    assert settings.jira.api_token is not None
    assert settings.flags.api_token is not None and settings.flags.client_token is not None
    # The ports rollbot listens on are the container's.
    assert settings.server.port == container_port(docs, "http")
    assert settings.server.internal_port == container_port(docs, "internal")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_a_missing_secret_key_is_named(
    overlay: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check above is not vacuous: without the Slack token's file, rollbot says so."""
    docs = render(overlay)
    secret = {k: secret_value(k) for k in secret_keys_read(docs) if k != "slack-bot-token"}
    laid = lay_out(docs, tmp_path / "pod", secret)
    monkeypatch.chdir(tmp_path)
    problems = check_config(laid.path("/etc/rollbot/rollbot.yaml"), environ=laid.env)
    assert {p.key_path for p in problems} == {"slack.bot_token"}
    assert any(
        f"cannot read '{laid.path(SECRET_MOUNT)}/slack-bot-token'" in p.message for p in problems
    ), problems


def readme_secret_keys() -> dict[str, str]:
    """{key: variable} of the table in README's *Deploying* section."""
    text = (REPO / "README.md").read_text()
    section = text.split("\n## Deploying\n", 1)[1].split("\n## ", 1)[0]
    out: dict[str, str] = {}
    for line in section.splitlines():
        cells = [c.strip().strip("`") for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and cells[1].startswith("ROLLBOT_") and cells[1].endswith("_FILE"):
            out[cells[0]] = cells[1]
    return out


def test_every_secret_key_is_read_from_the_secret_and_documented(tmp_path: Path) -> None:
    read: dict[str, str] = {}
    for overlay in OVERLAYS:
        docs = render(overlay)
        keys = secret_keys_read(docs)
        read.update(keys)
        mounts = {m["mountPath"]: m for m in container(docs)["volumeMounts"]}
        assert mounts[SECRET_MOUNT]["readOnly"] is True
    for component in COMPONENTS:  # those no overlay takes (socket-mode) as well
        read.update(
            secret_keys_read(
                render_with(
                    tmp_path / component,
                    resources=[KUBE / "base"],
                    components=[KUBE / "components" / component],
                )
            )
        )
    documented: dict[str, str] = {}
    for kustomization in sorted(KUBE.rglob("kustomization.yaml")):
        mine = secret_keys_documented(kustomization)
        assert not set(mine) & set(documented), kustomization  # each key documented once
        documented.update(mine)
    assert documented == read
    assert readme_secret_keys() == read
    assert {
        "slack-bot-token",
        "slack-signing-secret",
        "slack-app-token",
        "alertmanager-bearer-token",
        "link-secret",
        "pagerduty-api-token",
        "pagerduty-webhook-secret",
        "pagerduty-workflow-secret",
        "pagerduty-routing-key-payment-router",
        "jira-api-token",
        "flags-api-token",
        "flags-client-token",
        "gitops-github-token",
        "database-url",
    } == set(read)


def test_each_kustomization_documents_the_keys_it_wires(tmp_path: Path) -> None:
    """The keys a component adds are documented in that component's kustomization."""
    base = render_with(tmp_path / "base", resources=[KUBE / "base"])
    base_keys = secret_keys_read(base)
    assert secret_keys_documented(KUBE / "base" / "kustomization.yaml") == base_keys
    for component in COMPONENTS:
        docs = render_with(
            tmp_path / component,
            resources=[KUBE / "base"],
            components=[KUBE / "components" / component],
        )
        added = {k: v for k, v in secret_keys_read(docs).items() if k not in base_keys}
        path = KUBE / "components" / component / "kustomization.yaml"
        assert secret_keys_documented(path) == added, component
    ha = secret_keys_read(render("ha"))
    single = secret_keys_read(render("single"))
    ha_only = {k: v for k, v in ha.items() if k not in single}
    assert secret_keys_documented(KUBE / "overlays" / "ha" / "kustomization.yaml") == ha_only


# ----------------------------------------------------------------------------- overlays


def test_single_keeps_sqlite_on_a_persistent_volume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = render("single")
    spec = one(docs, "Deployment")["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}  # ReadWriteOnce: never two pods on it
    claim = one(docs, "PersistentVolumeClaim", "rollbot-data")
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    volumes = {v["name"]: v for v in spec["template"]["spec"]["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container(docs)["volumeMounts"]}
    url = settings_of(pod_settings(docs, tmp_path, monkeypatch)).database.url
    assert url.startswith("sqlite:////")
    database_dir = str(Path(url.removeprefix("sqlite:///")).parent)
    volume = volumes[mounts[database_dir]]
    assert volume["persistentVolumeClaim"]["claimName"] == "rollbot-data"
    assert by_kind(docs, "PodDisruptionBudget") == []


def test_ha_runs_two_replicas_on_postgresql(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = render("ha")
    spec = one(docs, "Deployment")["spec"]
    assert spec["replicas"] == 2
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
    }
    pod = spec["template"]["spec"]
    assert spec["template"]["metadata"]["labels"] == POD_LABELS
    anti = pod["affinity"]["podAntiAffinity"]
    assert "requiredDuringSchedulingIgnoredDuringExecution" not in anti
    (preferred,) = anti["preferredDuringSchedulingIgnoredDuringExecution"]
    assert preferred["podAffinityTerm"] == {
        "topologyKey": "kubernetes.io/hostname",
        "labelSelector": {"matchLabels": POD_LABELS},
    }
    budget = one(docs, "PodDisruptionBudget")["spec"]
    assert budget["maxUnavailable"] == 1 and "minAvailable" not in budget
    assert budget["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    assert budget["selector"] == {"matchLabels": POD_LABELS}
    assert by_kind(docs, "PersistentVolumeClaim") == []
    settings = settings_of(pod_settings(docs, tmp_path, monkeypatch))
    assert settings.database.url == secret_value("database-url")


# ----------------------------------------------------------------------------- ports


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_probes_and_metrics_on_the_internal_port_the_rest_on_http(overlay: str) -> None:
    docs = render(overlay)
    c = container(docs)
    for probe, path in (
        ("startupProbe", "/healthz"),
        ("readinessProbe", "/readyz"),
        ("livenessProbe", "/healthz"),
    ):
        assert c[probe]["httpGet"] == {"path": path, "port": "internal"}, probe
        assert path in INTERNAL_PATHS
    service = one(docs, "Service")
    assert service["spec"]["selector"] == POD_LABELS
    ports = {p["name"]: p for p in service["spec"]["ports"]}
    assert {n: p["targetPort"] for n, p in ports.items()} == {
        "http": "http",
        "internal": "internal",
    }
    assert ports["http"]["port"] == container_port(docs, "http")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_ingress_serves_the_public_routes_over_tls(
    overlay: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = render(overlay)
    settings = settings_of(pod_settings(docs, tmp_path, monkeypatch))
    assert settings.server.public_url is not None
    host = urlsplit(settings.server.public_url).hostname
    spec = one(docs, "Ingress")["spec"]
    assert [t["hosts"] for t in spec["tls"]] == [[host]] and spec["tls"][0]["secretName"]
    (rule,) = spec["rules"]
    assert rule["host"] == host
    paths = {(p["path"], p["pathType"]) for p in rule["http"]["paths"]}
    assert paths == {
        (SLACK_PATH, "Exact"),
        (PAGERDUTY_PATH, "Exact"),
        ("/runbooks", "Prefix"),
    }
    for p in rule["http"]["paths"]:
        assert p["backend"] == {"service": {"name": "rollbot", "port": {"name": "http"}}}
    for internal in (*INTERNAL_PATHS, ALERTMANAGER_PATH):  # in-cluster callers only
        assert not any(internal.startswith(path) for path, _ in paths), internal


# ----------------------------------------------------------------------------- network


def policies(docs: list[Doc]) -> list[dict[str, Any]]:
    out = []
    for policy in by_kind(docs, "NetworkPolicy"):
        assert policy["spec"]["podSelector"] == {"matchLabels": POD_LABELS}
        out.append(policy["spec"])
    return out


def peer_namespace(peer: dict[str, Any]) -> str | None:
    labels = (peer.get("namespaceSelector") or {}).get("matchLabels") or {}
    return labels.get("kubernetes.io/metadata.name")


def ingress_allowed(docs: list[Doc]) -> set[tuple[str, str]]:
    allowed = set()
    for spec in policies(docs):
        for rule in spec.get("ingress") or []:
            assert rule.get("from") and rule.get("ports"), "an ingress rule open to all"
            for peer in rule["from"]:
                assert set(peer) == {"namespaceSelector"}, peer
                for port in rule["ports"]:
                    allowed.add((str(peer_namespace(peer)), port["port"]))
    return allowed


def egress_allows(docs: list[Doc], host: str, port: int, protocol: str = "TCP") -> bool:
    """Whether some policy lets the pods reach host:port. `*.NS.svc[.cluster.local]` is in
    namespace NS; any other host is outside the cluster (an ipBlock)."""
    labels = host.split(".")
    namespace = labels[1] if len(labels) > 2 and labels[2] == "svc" else None
    for spec in policies(docs):
        for rule in spec.get("egress") or []:
            ports = rule.get("ports") or [{"port": port, "protocol": protocol}]
            if not any(p["port"] == port and p.get("protocol", "TCP") == protocol for p in ports):
                continue
            for peer in rule.get("to") or []:
                if (peer.get("ipBlock") or {}).get("cidr") == "0.0.0.0/0":
                    return True
                if namespace is not None and peer_namespace(peer) == namespace:
                    return True
    return False


DEFAULT_PORTS = {"https": 443, "http": 80, "postgresql": 5432, "postgresql+psycopg": 5432}


def url_endpoint(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    assert parts.hostname is not None
    return parts.hostname, parts.port or DEFAULT_PORTS[parts.scheme]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policy(overlay: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    docs = render(overlay)
    for spec in policies(docs):
        assert "Egress" in spec["policyTypes"]
    (main,) = [p for p in policies(docs) if p["policyTypes"] == ["Ingress", "Egress"]]
    assert main["ingress"]
    assert ingress_allowed(docs) == {
        ("ingress-nginx", "http"),  # Slack, PagerDuty, people, through the Ingress
        ("monitoring", "http"),  # Alertmanager's webhook
        ("monitoring", "internal"),  # Prometheus's scrape
    }
    # Out: DNS, the API server, and everything the settings point at.
    assert egress_allows(docs, "kube-dns.kube-system.svc", 53, "UDP")
    assert egress_allows(docs, "kube-dns.kube-system.svc", 53, "TCP")
    assert egress_allows(docs, "kubernetes.default.svc", 443)
    assert egress_allows(docs, "10.0.0.1", 6443)  # the API server's endpoints
    settings = settings_of(pod_settings(docs, tmp_path, monkeypatch))
    urls = [
        settings.slack.api_url,
        settings.pagerduty.api_url,
        settings.pagerduty.events_url,
        settings.jira.url,
        settings.flags.url,
        settings.prometheus.url,
    ]
    if not settings.database.url.startswith("sqlite"):
        urls.append(settings.database.url)
    for url in urls:
        assert url is not None
        assert egress_allows(docs, *url_endpoint(url)), url
    assert not egress_allows(docs, "anything.elsewhere.svc", 8080)  # not open to all
    assert (overlay == "ha") == egress_allows(docs, "10.1.2.3", 5432)


def test_the_egress_check_is_not_vacuous() -> None:
    docs = render("single")
    broken = copy.deepcopy(docs)
    for policy in by_kind(broken, "NetworkPolicy"):
        if policy["metadata"]["name"] == "rollbot-flags":
            policy["spec"]["egress"][0]["ports"][0]["port"] = 4243
    assert egress_allows(docs, "unleash.unleash.svc.cluster.local", 4242)
    assert not egress_allows(broken, "unleash.unleash.svc.cluster.local", 4242)


# ----------------------------------------------------------------------------- the old Lease


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_leftover_of_the_kubernetes_lease(overlay: str) -> None:
    docs = render(overlay)
    assert not [name for name in env_of(docs) if "LEASE" in name]
    for role in by_kind(docs, "Role") + by_kind(docs, "ClusterRole"):
        for rule in role["rules"]:
            assert "coordination.k8s.io" not in rule["apiGroups"]
            assert "leases" not in rule["resources"]

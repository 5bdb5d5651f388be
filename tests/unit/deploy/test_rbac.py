"""RBAC (deploy/kubernetes/base/rbac.yaml) against what the Kubernetes adapter really asks.

The adapter (bot/adapters/kubernetes.py) runs its operations against the Kubernetes sim
through the real `kubernetes` client: every Rollout action, the Rollout's state (with its
stable ReplicaSet), the analysis templates it names (one AnalysisTemplate, one
ClusterAnalysisTemplate), the Argo CD Application Tier 3 verifies with, and the watch of
Rollouts, AnalysisRuns and ReplicaSets until its three streams are open. The sim's RBAC is
the shipped one (`namespaced_only`): the watch's first lists across the cluster are refused
with 403 and it watches the catalog's namespace instead; those refused requests are the
optional cluster-wide mode, not asked of the Roles. Each request the sim recorded becomes
the (API group, resource, verb) the API server's authorizer checks, as k8s.io/apiserver's
RequestInfo derives them: GET of an object is `get`, of a collection `list`, or `watch` with
`?watch=true`; PATCH is `patch`; a subresource is `resource/subresource`.

Aspects:
- the Role in the catalog namespace grants exactly the namespaced triples the run asked,
  and the ClusterRole exactly the cluster-scoped ones: nothing missing, nothing extra, no
  non-resource URL;
- the run covers the adapter: every method of the Kubernetes client its source names (read
  from its syntax tree), and the watch, was seen on the wire; a new call fails here until
  this table and the run learn it;
- the comparison is not vacuous: one verb less, or one more, is told;
- the optional component `gitops` grants `get` on Applications in Argo CD's namespace, the
  one call Tier 3's verification makes there, and wires the token file and a clone volume;
- the optional component `cluster-watch` grants exactly the lists and watches the watch
  makes across the cluster when RBAC allows them (a run with no namespaced-only rule), and
  those are exactly the requests the shipped RBAC refused.
"""

from __future__ import annotations

import ast
import asyncio
import copy
import inspect
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

import bot.adapters.kubernetes as adapter
from bot.adapters.kubernetes import KubeRollouts
from bot.core.model import RolloutAction
from bot.core.ports import WatchEvent
from bot.sim._server import RecordedRequest
from bot.sim.argo.cd import application
from bot.sim.kube import KubeSim
from tests.helpers import eventually
from tests.plugins.fixtures import load_fixture
from tests.unit.deploy.kustomize import KUBE, by_kind, render, render_with

NS = "payments"  # the catalog's namespace (base/rollbot.yaml)
STABLE_HASH = "77f4f8ff97"

Triple = tuple[str, str, str]  # (API group, resource, verb)

_PATH = re.compile(
    r"^/(?:api/v1|apis/(?P<group>[^/]+)/[^/]+)"
    r"(?:/namespaces/(?P<ns>[^/]+))?/(?P<resource>[^/]+)"
    r"(?:/(?P<name>[^/]+)(?:/(?P<sub>[^/]+))?)?/?$"
)
_VERBS = {"PATCH": "patch", "PUT": "update", "POST": "create"}


def attributes(request: RecordedRequest) -> tuple[Triple, str | None]:
    """The (group, resource, verb) and namespace (None: cluster-scoped) of a request."""
    m = _PATH.match(request.path)
    assert m, f"a non-resource URL: {request.method} {request.path}"
    resource = m["resource"] + (f"/{m['sub']}" if m["sub"] else "")
    if request.method == "GET":
        watch = str(request.param("watch", "")).lower() in ("true", "1")
        verb = "get" if m["name"] else ("watch" if watch else "list")
    elif request.method == "DELETE":
        verb = "delete" if m["name"] else "deletecollection"
    else:
        verb = _VERBS[request.method]
    return (m["group"] or "", resource, verb), m["ns"]


def asked(requests: list[RecordedRequest]) -> tuple[set[Triple], set[Triple]]:
    """(namespaced triples, cluster-scoped triples) of the run; namespaced ones in NS only.
    A request RBAC refused (the watch's try across the cluster) is not asked of the Roles."""
    namespaced, cluster = set(), set()
    for request in requests:
        if request.status == 403:
            continue
        triple, namespace = attributes(request)
        if namespace is None:
            cluster.add(triple)
        else:
            assert namespace == NS, request.path
            namespaced.add(triple)
    return namespaced, cluster


def granted(role: dict[str, Any]) -> set[Triple]:
    out = set()
    for rule in role["rules"]:
        assert not rule.get("resourceNames") and not rule.get("nonResourceURLs"), rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    assert "*" not in (group, resource, verb), rule
                    out.add((group, resource, verb))
    return out


def grants() -> tuple[set[Triple], set[Triple]]:
    """(what the Role in NS grants, what the ClusterRole grants) in the rendered overlays
    (the same in both)."""
    out = set()
    for overlay in ("single", "ha"):
        docs = render(overlay)
        (role,) = [r for r in by_kind(docs, "Role") if r["metadata"]["namespace"] == NS]
        (cluster_role,) = by_kind(docs, "ClusterRole")
        out.add((frozenset(granted(role)), frozenset(granted(cluster_role))))
    ((role_grants, cluster_grants),) = out
    return set(role_grants), set(cluster_grants)


# ----------------------------------------------------------------------------- the run


def rollout(name: str, *, spec: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
    obj = copy.deepcopy(
        load_fixture("argo-rollouts/argo-cd-health-testdata/suspended_v1.0_pausedRollout.yaml")
    )
    obj["metadata"] = {"name": name, "namespace": NS}
    obj["spec"].update(spec)
    # A background analysis naming an AnalysisTemplate and a ClusterAnalysisTemplate.
    obj["spec"]["strategy"]["canary"]["analysis"] = {
        "templates": [
            {"templateName": "payment-router-slo"},
            {"templateName": "cluster-slo", "clusterScope": True},
        ]
    }
    obj["status"].update({"stableRS": STABLE_HASH, "observedGeneration": "1", **status})
    return obj


#: Each action on a Rollout in the state that makes the plugin send all of its patches.
ACTIONS: dict[RolloutAction, tuple[dict[str, Any], dict[str, Any]]] = {
    RolloutAction.ABORT: ({}, {}),
    RolloutAction.RETRY: ({}, {"abort": True}),
    RolloutAction.PROMOTE: ({"paused": True}, {}),
    RolloutAction.PROMOTE_FULL: ({"paused": True}, {}),
    RolloutAction.PAUSE: ({}, {}),
}


@pytest.fixture
async def recorded(kube_sim: KubeSim, kubeconfig: Path) -> AsyncIterator[list[RecordedRequest]]:
    """The requests of a run of every operation of the adapter."""
    kube_sim.create(
        {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": f"payment-router-{STABLE_HASH}",
                "namespace": NS,
                "labels": {"app": "rollouts-demo", "rollouts-pod-template-hash": STABLE_HASH},
            },
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "rollouts-demo"}},
                "template": {
                    "metadata": {"labels": {"app": "rollouts-demo"}},
                    "spec": {"containers": [{"name": "app", "image": "example/app:1"}]},
                },
            },
        }
    )
    template = load_fixture("../../deploy/argo-rollouts/payment-router.analysistemplate.yaml")
    kube_sim.create(template)
    kube = KubeRollouts.from_kubeconfig(
        kubeconfig=str(kubeconfig), request_timeout=5.0, watch_read_timeout=2.0
    )
    try:
        for action, (spec, status) in ACTIONS.items():
            name = f"payment-router-{action.value}"
            kube_sim.create(rollout(name, spec=spec, status=status))
            await kube.apply(action, NS, name)
        state = await kube.get_state(NS, "payment-router-abort")
        assert state.name == "payment-router-abort"
        await kube.get_object(NS, "payment-router-pause")
        templates = await kube.analysis_templates(NS, "payment-router-pause")
        # The sim serves no cluster-scoped kind: asked all the same, answered 404.
        assert templates == {"payment-router-slo": True, "cluster/cluster-slo": False}
        kube_sim.create(
            application(
                "payment-router",
                namespace=NS,
                repo_url="https://git.example.com/platform/configs.git",
                path="apps/payment-router",
                dest_namespace=NS,
            )
        )
        app = await kube.get_application(NS, "payment-router")
        assert (app.name, app.sync) == ("payment-router", "Unknown")

        async def ignore(_: WatchEvent) -> None:
            return None

        kube_sim.namespaced_only = set(adapter.WATCHED_KINDS.values())  # the shipped RBAC
        watching = asyncio.create_task(kube.watch([NS], ignore))
        try:
            await eventually(lambda: kube_sim.open_watches() == 3, what="the three watches open")
        finally:
            watching.cancel()
            with pytest.raises(asyncio.CancelledError):
                await watching
        # The sim closes its end of a cancelled watch when it notices: until then a test
        # counting open watches would count these.
        await eventually(lambda: kube_sim.open_watches() == 0, what="the watches closed")
        yield list(kube_sim.requests)
    finally:
        kube.close()


# ----------------------------------------------------------------------------- the checks


async def test_the_roles_grant_exactly_what_the_adapter_asks(
    recorded: list[RecordedRequest],
) -> None:
    namespaced, cluster = asked(recorded)
    role, cluster_role = grants()
    assert role == namespaced, {"missing": namespaced - role, "extra": role - namespaced}
    assert cluster_role == cluster, {"missing": cluster - cluster_role, "extra": cluster_role}
    # What that is today, for the reader (the README's Deploying section says the same).
    assert namespaced == {
        ("argoproj.io", "rollouts", "get"),
        ("argoproj.io", "rollouts", "list"),
        ("argoproj.io", "rollouts", "watch"),
        ("argoproj.io", "rollouts", "patch"),
        ("argoproj.io", "rollouts/status", "patch"),
        ("argoproj.io", "analysisruns", "list"),
        ("argoproj.io", "analysisruns", "watch"),
        ("argoproj.io", "analysistemplates", "get"),
        ("argoproj.io", "applications", "get"),
        ("apps", "replicasets", "list"),
        ("apps", "replicasets", "watch"),
    }
    assert cluster == {("argoproj.io", "clusteranalysistemplates", "get")}


#: What each Kubernetes client method the adapter calls looks like on the wire.
SHAPES: dict[str, Callable[[Triple, str | None], bool]] = {
    "get_namespaced_custom_object": lambda t, ns: t[2] == "get" and ns is not None,
    "get_cluster_custom_object": lambda t, ns: t[2] == "get" and ns is None,
    "list_namespaced_custom_object": lambda t, ns: t[0] == adapter.GROUP and t[2] == "list",
    "patch_namespaced_custom_object": lambda t, ns: t[2] == "patch" and "/" not in t[1],
    "patch_namespaced_custom_object_status": lambda t, ns: t[1].endswith("/status"),
    "list_namespaced_replica_set": lambda t, ns: t == ("apps", "replicasets", "list"),
}


def client_calls() -> set[str]:
    """The Kubernetes client methods the adapter's source names (``self._custom.X``,
    ``self._apps.X``). The watch's lists and watches go out through httpx
    (bot.adapters.kube_informer), one per kind in `adapter.KINDS`: checked on the wire."""
    tree = ast.parse(inspect.getsource(adapter))
    names = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Attribute)
            and isinstance(node.value.value, ast.Name)
            and node.value.value.id == "self"
            and node.value.attr in ("_custom", "_apps")
        ):
            names.add(node.attr)
    return names


async def test_the_run_covers_every_kubernetes_call_of_the_adapter(
    recorded: list[RecordedRequest],
) -> None:
    calls = client_calls()
    assert calls >= {"get_namespaced_custom_object", "patch_namespaced_custom_object"}
    unknown = calls - set(SHAPES)
    assert not unknown, f"new Kubernetes calls {unknown}: add them to SHAPES and to the run"
    seen = [attributes(r) for r in recorded]
    for call in calls:
        assert any(SHAPES[call](triple, ns) for triple, ns in seen), f"{call} never ran"
    kinds = set(adapter.WATCHED_KINDS.values())
    assert {t[1] for t, ns in seen if t[2] == "watch" and ns == NS} == kinds
    assert {t[1] for t, ns in seen if t[2] == "list" and ns == NS} >= kinds
    refused = {attributes(r) for r in recorded if r.status == 403}
    assert refused == {((k.api_path.split("/")[2], k.plural, "list"), None) for k in adapter.KINDS}


async def test_a_grant_less_or_more_is_told(recorded: list[RecordedRequest]) -> None:
    namespaced, _ = asked(recorded)
    docs = render("single")
    (role,) = by_kind(docs, "Role")
    fewer = copy.deepcopy(role)
    fewer["rules"][0]["verbs"].remove("watch")
    assert granted(fewer) != namespaced
    assert namespaced - granted(fewer) == {("argoproj.io", "rollouts", "watch")}
    more = copy.deepcopy(role)
    more["rules"][2]["verbs"].append("get")  # analysisruns get: never asked
    assert granted(more) - namespaced == {("argoproj.io", "analysisruns", "get")}


async def test_the_cluster_watch_component_grants_exactly_the_watch_across_the_cluster(
    recorded: list[RecordedRequest], kube_sim: KubeSim, kubeconfig: Path, tmp_path: Path
) -> None:
    kube_sim.namespaced_only = set()  # RBAC that allows the watch across the cluster
    before = len(kube_sim.requests)
    kube = KubeRollouts.from_kubeconfig(kubeconfig=str(kubeconfig), request_timeout=5.0)

    async def ignore(_: WatchEvent) -> None:
        return None

    watching = asyncio.create_task(kube.watch([NS], ignore))
    try:
        await eventually(lambda: kube_sim.open_watches() == 3, what="the three watches open")
    finally:
        watching.cancel()
        with pytest.raises(asyncio.CancelledError):
            await watching
        kube.close()
    across = {triple for triple, ns in map(attributes, kube_sim.requests[before:]) if ns is None}
    assert all("/namespaces/" not in r.path for r in kube_sim.requests[before:])
    docs = render_with(
        tmp_path / "k",
        resources=[KUBE / "base"],
        components=[KUBE / "components" / "cluster-watch"],
    )
    (role,) = [r for r in by_kind(docs, "ClusterRole") if r["metadata"]["name"] == "rollbot-watch"]
    assert granted(role) == across
    refused = {attributes(r)[0] for r in recorded if r.status == 403}
    assert {(g, r, "list") for g, r, _ in across} == refused
    (binding,) = [
        b for b in by_kind(docs, "ClusterRoleBinding") if b["metadata"]["name"] == "rollbot-watch"
    ]
    assert binding["subjects"][0]["name"] == "rollbot"


async def test_the_gitops_component_grants_reading_applications_in_argo_cds_namespace(
    kube_sim: KubeSim, kubeconfig: Path, tmp_path: Path
) -> None:
    kube_sim.create(
        application(
            "payment-router",
            repo_url="https://git.example.com/platform/configs.git",
            path="services/payment-router",
            dest_namespace=NS,
        )
    )
    before = len(kube_sim.requests)
    kube = KubeRollouts.from_kubeconfig(kubeconfig=str(kubeconfig), request_timeout=5.0)
    try:
        app = await kube.get_application("argocd", "payment-router")
    finally:
        kube.close()
    assert app.namespace == "argocd"
    asked = {attributes(r) for r in kube_sim.requests[before:]}
    assert asked == {(("argoproj.io", "applications", "get"), "argocd")}
    docs = render_with(
        tmp_path / "k", resources=[KUBE / "base"], components=[KUBE / "components" / "gitops"]
    )
    role = next(r for r in by_kind(docs, "Role") if r["metadata"]["name"] == "rollbot-argocd")
    assert role["metadata"]["namespace"] == "argocd"
    assert granted(role) == {triple for triple, _ in asked}
    binding = next(
        b for b in by_kind(docs, "RoleBinding") if b["metadata"]["name"] == "rollbot-argocd"
    )
    assert binding["subjects"][0]["name"] == "rollbot"
    (deployment,) = by_kind(docs, "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert (
        env["ROLLBOT_GITOPS__GITHUB_TOKEN_FILE"] == "/var/run/secrets/rollbot/gitops-github-token"
    )
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert env["ROLLBOT_GITOPS__WORKDIR"] in mounts  # the clones go to a volume of their own

"""The watch as an informer (issue 17): bot.adapters.kubernetes's `watch` and
`cached_state` against the Kubernetes sim, over real HTTP.

Aspects under test:
- one list and one long-lived watch per kind across the cluster: no namespace in the path,
  `resourceVersion=0` lists (the API server's watch cache), `allowWatchBookmarks`, a server
  timeout drawn from [t, 2t]; objects of namespaces not watched are neither cached nor
  delivered;
- RBAC with namespaced Roles only (the sim's `namespaced_only`): one 403 per kind, then a
  list and watch per namespace, which a 410 re-list keeps (the cluster is not asked again);
- `cached_state` answers from the cache: after the events, reading every Rollout (with its
  stable ReplicaSet's image and revision) sends no request at all; a live `get_state`
  while watching is one GET, its stable ReplicaSet from the cache;
- `apply` while watching plans from the cache: an abort is its PATCH alone;
- a ReplicaSet's status churn is cached and not delivered; a change rollbot reads (its
  revision annotation) is;
- what the cache keeps is slim: no managedFields, no kubectl last-applied copy;
- a quiet watch stays open: with bookmarks more frequent than the read timeout (2 s),
  three idle seconds cost no request;
- no thread per watch: watching 40 namespaces one by one (120 watches) adds no thread per
  watch;
- nothing is handed on before every kind has listed, so a handler of the first list's
  events reads a whole cache (the stable ReplicaSet) and sends no request.
"""

from __future__ import annotations

import asyncio
import copy
import threading
from typing import Any

import pytest

from bot.adapters.kubernetes import KubeRollouts
from bot.core.model import RolloutAction
from bot.core.ports import WatchEvent
from bot.sim.kube import KubeSim
from tests.helpers import eventually
from tests.plugins.fixtures import load_fixture

NS, NAME = "payments", "payment-router"
STABLE = "77f4f8ff97"


def rollout(name: str = NAME, namespace: str = NS, **status: Any) -> dict[str, Any]:
    obj = copy.deepcopy(
        load_fixture("argo-rollouts/argo-cd-health-testdata/suspended_v1.0_pausedRollout.yaml")
    )
    obj["metadata"] = {
        "name": name,
        "namespace": namespace,
        "annotations": {
            "rollout.argoproj.io/revision": "42",
            "kubectl.kubernetes.io/last-applied-configuration": '{"spec": "all of it"}',
        },
        "managedFields": [{"manager": "kubectl", "operation": "Update"}],
    }
    obj["status"]["observedGeneration"] = "1"
    obj["status"]["stableRS"] = STABLE
    obj["status"].update(status)
    return obj


def replicaset(namespace: str = NS, *, revision: str = "41") -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": f"{NAME}-{STABLE}",
            "namespace": namespace,
            "labels": {"app": "rollouts-demo", "rollouts-pod-template-hash": STABLE},
            "annotations": {"rollout.argoproj.io/revision": revision},
            "ownerReferences": [
                {"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "name": NAME, "uid": "u"}
            ],
        },
        "spec": {
            "replicas": 5,
            "selector": {"matchLabels": {"app": "rollouts-demo"}},
            "template": {
                "metadata": {"labels": {"app": "rollouts-demo"}},
                "spec": {"containers": [{"name": "app", "image": "argoproj/rollouts-demo:blue"}]},
            },
        },
    }


class Recorder:
    def __init__(self) -> None:
        self.events: list[WatchEvent] = []

    async def on_event(self, event: WatchEvent) -> None:
        self.events.append(event)

    def of(self, kind: str) -> list[WatchEvent]:
        return [e for e in self.events if e.kind == kind]


async def watch(
    kube: KubeRollouts, namespaces: list[str], recorder: Recorder
) -> asyncio.Task[None]:
    task = asyncio.create_task(kube.watch(namespaces, recorder.on_event))
    await eventually(lambda: kube.informer is not None and kube.informer.synced.is_set())
    return task


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def object_requests(sim: KubeSim, since: int) -> list[tuple[str, str]]:
    """The requests since the `since`-th about one namespace's objects (not the watch's
    lists and watches across the cluster, which may reconnect at any time)."""
    return [(r.method, r.path) for r in sim.requests[since:] if "/namespaces/" in r.path]


def watch_requests(sim: KubeSim) -> list[Any]:
    return [r for r in sim.requests_matching("GET") if r.param("watch") == "true"]


async def test_one_list_and_one_long_lived_watch_per_kind_across_the_cluster(
    sim: KubeSim, kube: KubeRollouts
) -> None:
    sim.create(rollout())
    sim.create(rollout(namespace="elsewhere"))  # a namespace rollbot does not watch
    recorder = Recorder()
    task = await watch(kube, [NS], recorder)
    try:
        await eventually(lambda: sim.open_watches() == 3)
        lists = [r for r in sim.requests_matching("GET") if r.param("watch") is None]
        assert sorted(r.path for r in lists) == [
            "/apis/apps/v1/replicasets",
            "/apis/argoproj.io/v1alpha1/analysisruns",
            "/apis/argoproj.io/v1alpha1/rollouts",
        ]
        assert {r.param("resourceVersion") for r in lists} == {"0"}
        assert [r.param("labelSelector") for r in lists if "replicasets" in r.path] == [
            "rollouts-pod-template-hash"
        ]
        watches = watch_requests(sim)
        assert len(watches) == 3 and all("/namespaces/" not in r.path for r in watches)
        for request in watches:
            assert request.param("allowWatchBookmarks") == "true"
            assert 30 <= int(request.param("timeoutSeconds") or 0) <= 60
            assert request.param("resourceVersion") not in (None, "", "0")
        assert [(e.type, e.object["metadata"]["namespace"]) for e in recorder.of("Rollout")] == [
            ("ADDED", NS)
        ]
        assert kube.informer is not None and kube.informer.scopes == {
            "Rollout": "cluster",
            "AnalysisRun": "cluster",
            "ReplicaSet": "cluster",
        }
        sim.patch(
            "rollouts", "elsewhere", NAME, {"status": {"currentStepIndex": 2}}, subresource="status"
        )
        sim.patch("rollouts", NS, NAME, {"status": {"currentStepIndex": 3}}, subresource="status")
        await eventually(lambda: len(recorder.of("Rollout")) == 2)
        assert recorder.of("Rollout")[1].object["status"]["currentStepIndex"] == 3
        assert kube.informer.get("Rollout", "elsewhere", NAME) is None
        assert kube.informer.count("Rollout") == 1
    finally:
        await stop(task)


async def test_namespaced_roles_only_make_one_watch_per_namespace_for_good(
    sim: KubeSim, kube: KubeRollouts
) -> None:
    sim.namespaced_only = {"rollouts", "analysisruns", "replicasets"}
    sim.create(rollout())
    sim.create(rollout(namespace="checkout"))
    recorder = Recorder()
    task = await watch(kube, [NS, "checkout"], recorder)
    try:
        await eventually(lambda: sim.open_watches() == 6, what="3 kinds x 2 namespaces")
        refused = [r for r in sim.requests if r.status == 403]
        assert len(refused) == 3 and all("/namespaces/" not in r.path for r in refused)
        assert "at the cluster scope" in refused[0].response["message"]
        assert sorted(e.object["metadata"]["namespace"] for e in recorder.of("Rollout")) == [
            "checkout",
            NS,
        ]
        assert kube.informer is not None and set(kube.informer.scopes.values()) == {"namespaces"}
        before = len(sim.requests)
        sim.compact()
        sim.drop_watches()  # resumes from a compacted resourceVersion: 410, list again
        sim.patch("rollouts", NS, NAME, {"status": {"currentStepIndex": 5}}, subresource="status")
        await eventually(
            lambda: recorder.of("Rollout")[-1].object["status"].get("currentStepIndex") == 5
        )
        await eventually(lambda: sim.open_watches() == 6)
        later = sim.requests[before:]
        assert all("/namespaces/" in r.path for r in later), [r.path for r in later]
    finally:
        await stop(task)


async def test_cached_state_reads_nothing_from_the_api_server(
    sim: KubeSim, kube: KubeRollouts
) -> None:
    sim.create(replicaset())
    sim.create(rollout(currentStepIndex=1))
    recorder = Recorder()
    task = await watch(kube, [NS], recorder)
    try:
        sim.patch("rollouts", NS, NAME, {"status": {"currentStepIndex": 2}}, subresource="status")
        await eventually(lambda: len(recorder.of("Rollout")) == 2)
        before = len(sim.requests)
        state = await kube.cached_state(NS, NAME)
        assert state.step_index == 2 and state.revision == 42
        assert state.stable_image == "argoproj/rollouts-demo:blue"
        assert state.stable_revision == 41
        assert (
            state.resource_version
            == recorder.of("Rollout")[-1].object["metadata"]["resourceVersion"]
        )
        for _ in range(50):
            await kube.cached_state(NS, NAME)
        assert object_requests(sim, before) == []
        live = await kube.get_state(NS, NAME)  # the verifying read-back stays a live GET
        assert live == state
        assert object_requests(sim, before) == [
            ("GET", f"/apis/argoproj.io/v1alpha1/namespaces/{NS}/rollouts/{NAME}")
        ]  # its stable ReplicaSet from the cache
    finally:
        await stop(task)


async def test_apply_while_watching_plans_from_the_cache(sim: KubeSim, kube: KubeRollouts) -> None:
    sim.create(rollout(stableRS="other-hash", currentPodHash=STABLE))  # an update under way
    recorder = Recorder()
    task = await watch(kube, [NS], recorder)
    try:
        before = len(sim.requests)
        sent = await kube.apply(RolloutAction.ABORT, NS, NAME)
        assert [p.body for p in sent] == [{"status": {"abort": True}}]
        assert object_requests(sim, before) == [
            ("PATCH", f"/apis/argoproj.io/v1alpha1/namespaces/{NS}/rollouts/{NAME}/status")
        ]
        await eventually(lambda: recorder.of("Rollout")[-1].object["status"].get("abort"))
    finally:
        await stop(task)


async def test_replicaset_churn_is_cached_not_delivered(sim: KubeSim, kube: KubeRollouts) -> None:
    sim.create(replicaset())
    sim.create(rollout())
    recorder = Recorder()
    task = await watch(kube, [NS], recorder)
    try:
        assert len(recorder.of("ReplicaSet")) == 1
        for ready in range(1, 4):
            sim.patch(
                "replicasets",
                NS,
                f"{NAME}-{STABLE}",
                {"status": {"replicas": ready}},
                subresource="status",
            )
        sim.patch(
            "replicasets",
            NS,
            f"{NAME}-{STABLE}",
            {"metadata": {"annotations": {"rollout.argoproj.io/revision": "43"}}},
        )
        await eventually(lambda: len(recorder.of("ReplicaSet")) == 2, what="the revision change")
        changed = recorder.of("ReplicaSet")[1].object
        assert changed["metadata"]["annotations"] == {"rollout.argoproj.io/revision": "43"}
        assert "status" not in changed and "replicas" not in changed["spec"]
        assert (await kube.cached_state(NS, NAME)).stable_revision == 43
    finally:
        await stop(task)


async def test_the_cache_keeps_no_managed_fields_or_last_applied_copy(
    sim: KubeSim, kube: KubeRollouts
) -> None:
    sim.create(rollout())
    recorder = Recorder()
    task = await watch(kube, [NS], recorder)
    try:
        assert kube.informer is not None
        cached = kube.informer.get("Rollout", NS, NAME)
        assert cached is not None and "managedFields" not in cached["metadata"]
        assert cached["metadata"]["annotations"] == {"rollout.argoproj.io/revision": "42"}
        assert cached["spec"] and cached["status"]
    finally:
        await stop(task)


async def test_a_quiet_watch_stays_open_on_bookmarks(sim: KubeSim, kube: KubeRollouts) -> None:
    """Read timeout 2 s, bookmarks every 0.2 s: three quiet seconds, not one request."""
    sim.create(rollout())
    recorder = Recorder()
    task = await watch(kube, [NS], recorder)
    try:
        await eventually(lambda: sim.open_watches() == 3)
        before = len(sim.requests)
        marker = sim.patch("rollouts", "payments", NAME, {"metadata": {"labels": {"t": "0"}}})
        await eventually(lambda: len(recorder.of("Rollout")) == 2)
        await asyncio.sleep(3.0)  # the idle period measured, not a synchronisation
        sim.patch("rollouts", "payments", NAME, {"metadata": {"labels": {"t": "1"}}})
        await eventually(lambda: len(recorder.of("Rollout")) == 3, what="still watching")
        assert marker["metadata"]["labels"] == {"t": "0"}
        assert sim.requests[before:] == []
    finally:
        await stop(task)


async def test_no_thread_per_watch(sim: KubeSim, kube: KubeRollouts) -> None:
    namespaces = [f"team-{i}" for i in range(40)]
    sim.namespaced_only = {"rollouts", "analysisruns", "replicasets"}
    threads = threading.active_count()
    recorder = Recorder()
    task = await watch(kube, namespaces, recorder)
    try:
        await eventually(lambda: sim.open_watches() == 120, what="120 watches")
        # asyncio.to_thread's shared pool parses the lists: a few threads, never 120.
        assert threading.active_count() - threads < 10
    finally:
        await stop(task)


async def test_nothing_is_handed_on_before_every_kind_has_listed(
    sim: KubeSim, kube: KubeRollouts
) -> None:
    """As client-go's controllers wait for HasSynced: a handler reading the Rollout of the
    first list's event finds its stable ReplicaSet in the cache (no live read)."""
    sim.create(replicaset())
    sim.create(rollout())
    states = []
    early = []

    async def read_at_once(event: WatchEvent) -> None:
        if event.kind == "Rollout":
            assert kube.informer is not None
            if not kube.informer.synced.is_set():
                early.append(event)
            states.append(await kube.cached_state(NS, NAME))

    sim.hold_answers(1, method="GET", path_contains="/replicasets")  # the last kind to list
    task = asyncio.create_task(kube.watch([NS], read_at_once))
    try:
        await eventually(
            lambda: any(r.path.endswith("/rollouts") and r.status == 200 for r in sim.requests),
            what="the Rollouts listed while the ReplicaSets' answer waits",
        )
        sim.release_answers()
        await eventually(lambda: states, what="the first list's event handled")
        assert early == []
        assert states[0].stable_image == "argoproj/rollouts-demo:blue"
        assert [r for r in sim.requests if "/namespaces/" in r.path] == []
    finally:
        await stop(task)

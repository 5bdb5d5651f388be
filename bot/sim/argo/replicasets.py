"""The ReplicaSets the Argo Rollouts sim keeps for a Rollout, and the revision annotation.

One ReplicaSet ``{rollout}-{pod-template-hash}`` per pod template, owned by the Rollout and
annotated with its ``rollout.argoproj.io/revision``; scaled from the canary weight (stable at
``spec.replicas``, canary at its share, the rest at 0). There are no pods: the ready and
available counts equal the desired ones.
"""

from __future__ import annotations

import copy
import math
from typing import Any

from bot.sim.argo.canary import HASH_LABEL, REVISION, rollout_revision
from bot.sim.kube import KubeSim

__all__ = [
    "ensure_replicaset",
    "owned_replicasets",
    "owner_ref",
    "scale_replicasets",
    "set_revision_annotation",
]


def owner_ref(ro: dict[str, Any]) -> dict[str, Any]:
    """The controller owner reference to the Rollout (on its ReplicaSets and AnalysisRuns)."""
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "name": ro["metadata"]["name"],
        "uid": ro["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def owned_replicasets(sim: KubeSim, ro: dict[str, Any]) -> list[dict[str, Any]]:
    """The ReplicaSets in the Rollout's namespace that it owns (by uid)."""
    uid = ro["metadata"]["uid"]
    return [
        rs
        for rs in sim.list("replicasets", ro["metadata"]["namespace"])
        if any(ref.get("uid") == uid for ref in rs["metadata"].get("ownerReferences") or [])
    ]


def set_revision_annotation(sim: KubeSim, ro: dict[str, Any], revision: int) -> dict[str, Any]:
    """The Rollout with its revision annotation at `revision` (patched when it differs)."""
    if rollout_revision(ro) == revision:
        return ro
    meta = ro["metadata"]
    return sim.patch(
        "rollouts",
        meta["namespace"],
        meta["name"],
        {"metadata": {"annotations": {REVISION: str(revision)}}},
    )


def ensure_replicaset(sim: KubeSim, ro: dict[str, Any], pod_hash: str, revision: int) -> None:
    """Create the ReplicaSet of `pod_hash` (at 0 replicas), or move its revision annotation."""
    meta = ro["metadata"]
    name = f"{meta['name']}-{pod_hash}"
    existing = sim.get("replicasets", meta["namespace"], name)
    if existing is not None:
        if (existing["metadata"].get("annotations") or {}).get(REVISION) != str(revision):
            sim.patch(
                "replicasets",
                meta["namespace"],
                name,
                {"metadata": {"annotations": {REVISION: str(revision)}}},
            )
        return
    template = copy.deepcopy(ro["spec"]["template"])
    tmeta = template.setdefault("metadata", {})
    tmeta.setdefault("labels", {})[HASH_LABEL] = pod_hash
    selector = copy.deepcopy(ro["spec"].get("selector") or {"matchLabels": {}})
    selector.setdefault("matchLabels", {})[HASH_LABEL] = pod_hash
    sim.create(
        {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": name,
                "namespace": meta["namespace"],
                "labels": dict(tmeta["labels"]),
                "annotations": {
                    REVISION: str(revision),
                    "rollout.argoproj.io/desired-replicas": str(ro["spec"].get("replicas", 1)),
                },
                "ownerReferences": [owner_ref(ro)],
            },
            "spec": {"replicas": 0, "selector": selector, "template": template},
            "status": {"replicas": 0},
        }
    )


def scale_replicasets(
    sim: KubeSim, ro: dict[str, Any], status: dict[str, Any], weight: int
) -> None:
    """Scale the Rollout's ReplicaSets for `weight` and write their (pod-less) status."""
    replicas = int(ro["spec"].get("replicas", 1))
    current, stable = status.get("currentPodHash"), status.get("stableRS")
    for rs in owned_replicasets(sim, ro):
        h = (rs["metadata"].get("labels") or {}).get(HASH_LABEL)
        if h == stable:
            want = replicas
        elif h == current:
            want = math.ceil(replicas * weight / 100)
        else:
            want = 0
        if rs["spec"].get("replicas") != want:
            rs["spec"]["replicas"] = want
            rs = sim.replace(rs)
        rs_status = {
            "replicas": want,
            "readyReplicas": want,
            "availableReplicas": want,
            "fullyLabeledReplicas": want,
            "observedGeneration": rs["metadata"]["generation"],
        }
        if want == 0:
            rs_status = {"replicas": 0, "observedGeneration": rs["metadata"]["generation"]}
        if rs.get("status") != rs_status:
            sim.update_status(
                "replicasets", rs["metadata"]["namespace"], rs["metadata"]["name"], rs_status
            )

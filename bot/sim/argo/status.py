"""How the Argo Rollouts sim writes a Rollout's status after a reconcile pass.

Replica counts derived from the weight, ``status.canary.weights`` when traffic routing is
configured, the conditions (Available, Progressing with the controller's reasons and
messages, Paused, Completed, Healthy, as ``utils/conditions`` sets them) and ``phase`` /
``message`` as ``rolloututil.CalculateRolloutPhase`` computes them; then the ReplicaSets are
scaled to match and the status is written through the ``status`` subresource.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from bot.sim.argo.canary import pod_template_hash, rollout_revision
from bot.sim.argo.replicasets import scale_replicasets
from bot.sim.kube import KubeSim

__all__ = ["abort_message", "rollout_phase", "set_condition", "write_status"]


def set_condition(
    status: dict[str, Any], type_: str, cond_status: str, reason: str, message: str, now: str
) -> None:
    """Set condition `type_` as the controller does: a new status or reason is a transition
    (its time kept when only the reason moves), a new message only an update."""
    conds = status.setdefault("conditions", [])
    current = next((c for c in conds if c.get("type") == type_), None)
    if current is not None and current["status"] == cond_status and current["reason"] == reason:
        if current.get("message") != message:
            current["message"] = message
            current["lastUpdateTime"] = now
        return
    new = {
        "lastTransitionTime": now,
        "lastUpdateTime": now,
        "message": message,
        "reason": reason,
        "status": cond_status,
        "type": type_,
    }
    if current is not None and current["status"] == cond_status:
        new["lastTransitionTime"] = current["lastTransitionTime"]
    status["conditions"] = [c for c in conds if c.get("type") != type_] + [new]


def abort_message(ro: dict[str, Any], status: dict[str, Any]) -> str:
    """``Rollout aborted update to revision N`` (``: <run message>`` after a failed run)."""
    message = f"Rollout aborted update to revision {rollout_revision(ro)}"
    run = (status.get("canary") or {}).get("currentStepAnalysisRunStatus") or {}
    if run.get("status") in ("Failed", "Error") and run.get("message"):
        message = f"{message}: {run['message']}"
    return message


def rollout_phase(spec: dict[str, Any], status: dict[str, Any], replicas: int) -> tuple[str, str]:
    """``rolloututil.CalculateRolloutPhase``."""
    for cond in status.get("conditions") or []:
        if cond["type"] == "InvalidSpec":
            return "Degraded", f"InvalidSpec: {cond['message']}"
        if cond["reason"] in ("RolloutAborted", "ProgressDeadlineExceeded"):
            return "Degraded", f"{cond['reason']}: {cond['message']}"
    if spec.get("paused"):
        return "Paused", "manually paused"
    for cond in status.get("pauseConditions") or []:
        return "Paused", cond["reason"]
    if status.get("updatedReplicas", 0) < replicas:
        return "Progressing", "more replicas need to be updated"
    if status.get("availableReplicas", 0) < status.get("updatedReplicas", 0):
        return "Progressing", "updated replicas are still becoming available"
    if not status.get("stableRS") or status.get("stableRS") != status.get("currentPodHash"):
        return "Progressing", "waiting for all steps to complete"
    return "Healthy", ""


def write_status(
    sim: KubeSim,
    ro: dict[str, Any],
    status: dict[str, Any],
    *,
    weight: int,
    stalled: bool,
    wall: Callable[[], str],
) -> dict[str, Any]:
    """Complete `status` for `weight` (`stalled`: past the progress deadline), scale the
    ReplicaSets and write it; the Rollout as stored afterwards."""
    meta, spec = ro["metadata"], ro["spec"]
    ns, name = meta["namespace"], meta["name"]
    canary_spec = (spec.get("strategy") or {}).get("canary") or {}
    replicas = int(spec.get("replicas", 1))
    pod_hash = status["currentPodHash"]
    stable = status.get("stableRS") or pod_hash
    promoted = stable == pod_hash
    aborted = bool(status.get("abort"))
    paused = bool(status.get("pauseConditions")) or bool(spec.get("paused"))

    updated = replicas if promoted else math.ceil(replicas * weight / 100)
    total = replicas if promoted else replicas + updated
    status.update(
        replicas=total,
        updatedReplicas=updated,
        readyReplicas=total,
        availableReplicas=total,
        HPAReplicas=total,
    )
    selector = ",".join(
        f"{k}={v}"
        for k, v in sorted(((spec.get("selector") or {}).get("matchLabels") or {}).items())
    )
    if selector:
        status["selector"] = selector
    status["observedGeneration"] = str(meta.get("generation", 1))
    status["currentStepHash"] = pod_template_hash({"steps": canary_spec.get("steps") or []})
    canary = status.setdefault("canary", {})
    if canary_spec.get("trafficRouting"):
        canary["weights"] = {
            "canary": {"podTemplateHash": pod_hash, "weight": weight},
            "stable": {"podTemplateHash": stable, "weight": 100 - weight},
        }
    if not canary:
        status["canary"] = {}
    status.setdefault("blueGreen", {})

    set_condition(
        status, "Available", "True", "AvailableReason", "Rollout has minimum availability", wall()
    )
    rs_name = f"{name}-{pod_hash}"
    if stalled and not aborted:
        set_condition(
            status,
            "Progressing",
            "False",
            "ProgressDeadlineExceeded",
            f'ReplicaSet "{rs_name}" has timed out progressing.',
            wall(),
        )
    elif aborted:
        pass  # set by the abort paths
    elif paused:
        set_condition(
            status, "Progressing", "Unknown", "RolloutPaused", "Rollout is paused", wall()
        )
    elif promoted:
        set_condition(
            status,
            "Progressing",
            "True",
            "NewReplicaSetAvailable",
            f'ReplicaSet "{rs_name}" has successfully progressed.',
            wall(),
        )
    else:
        set_condition(
            status,
            "Progressing",
            "True",
            "ReplicaSetUpdated",
            f'ReplicaSet "{rs_name}" is progressing.',
            wall(),
        )
    pause_cond = next((c for c in status.get("conditions", []) if c["type"] == "Paused"), None)
    if (paused or pause_cond is not None) and not aborted:
        set_condition(
            status,
            "Paused",
            "True" if paused else "False",
            "RolloutPaused",
            "Rollout is paused",
            wall(),
        )
    set_condition(
        status,
        "Completed",
        "True" if promoted else "False",
        "RolloutCompleted",
        "RolloutCompleted",
        wall(),
    )
    healthy = promoted and not paused and not aborted
    if healthy or any(c["type"] == "Healthy" for c in status["conditions"]):
        set_condition(
            status,
            "Healthy",
            "True" if healthy else "False",
            "RolloutHealthy",
            "Rollout is healthy" if healthy else "Rollout is not healthy",
            wall(),
        )
    status["phase"], status["message"] = rollout_phase(spec, status, replicas)
    if not status["message"]:
        status.pop("message")
    scale_replicasets(sim, ro, status, weight)
    if status == ro.get("status"):
        return ro
    return sim.update_status("rollouts", ns, name, status)

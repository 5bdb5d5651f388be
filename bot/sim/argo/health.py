"""A Rollout's health as Argo CD reports it, and the worst of several.

``rollout_health`` follows Argo CD's health check for the ``argoproj.io/Rollout`` kind
(``resource_customizations/argoproj.io/Rollout/health.lua`` in argoproj/argo-cd): the spec
not yet observed is Progressing; a ``status.phase`` (Argo Rollouts v1.0 and later) is
surfaced as it is, ``Paused`` as Suspended; older Rollouts are judged by their conditions,
pauses, replica counts and stable ReplicaSet. ``worst`` orders health codes as the
gitops-engine does (``pkg/health``: Healthy, Suspended, Progressing, Missing, Degraded,
Unknown) for the Application's health, the worst of its resources'.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["HEALTH_ORDER", "rollout_health", "worst"]

HEALTH_ORDER = ("Healthy", "Suspended", "Progressing", "Missing", "Degraded", "Unknown")


def worst(codes: Iterable[str]) -> str:
    """The least healthy of `codes` (Healthy when there are none)."""
    out = "Healthy"
    for code in codes:
        rank = HEALTH_ORDER.index(code) if code in HEALTH_ORDER else len(HEALTH_ORDER) - 1
        if rank > HEALTH_ORDER.index(out):
            out = HEALTH_ORDER[rank]
    return out


def _number(value: Any) -> float | None:
    """Lua's `tonumber` on a JSON value: numbers and numeric strings, else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _generation_observed(obj: Mapping[str, Any]) -> bool:
    status = obj.get("status")
    if status is None:
        return False
    observed = _number(status.get("observedGeneration"))
    generation = _number((obj.get("metadata") or {}).get("generation"))
    if observed is None or (generation is not None and observed > generation):
        return True  # a v0.9 Rollout (hashed observedGeneration)
    return observed == generation


def _workload_generation_observed(obj: Mapping[str, Any]) -> bool:
    annotations = (obj.get("metadata") or {}).get("annotations")
    if (obj.get("spec") or {}).get("workloadRef") is None or annotations is None:
        return True
    wanted = _number(annotations.get("rollout.argoproj.io/workload-generation"))
    observed = _number((obj.get("status") or {}).get("workloadObservedGeneration"))
    return wanted == observed


def rollout_health(obj: Mapping[str, Any]) -> tuple[str, str]:
    """(status, message) of a Rollout as Argo CD's Rollout health check computes them."""
    if not _generation_observed(obj) or not _workload_generation_observed(obj):
        return "Progressing", "Waiting for rollout spec update to be observed"
    spec: Mapping[str, Any] = obj.get("spec") or {}
    status: Mapping[str, Any] = obj.get("status") or {}
    phase = status.get("phase")
    if phase is not None:
        return ("Suspended" if phase == "Paused" else str(phase)), str(status.get("message") or "")
    for cond in status.get("conditions") or []:
        if cond.get("type") == "InvalidSpec":
            return "Degraded", str(cond.get("message") or "")
        if cond.get("type") == "Progressing" and cond.get("reason") in (
            "RolloutAborted",
            "ProgressDeadlineExceeded",
        ):
            return "Degraded", str(cond.get("message") or "")
    if status.get("pauseConditions") or spec.get("paused"):
        return "Suspended", "Rollout is paused"
    if status.get("currentPodHash") is None:
        return "Progressing", "Waiting for rollout to finish: status has not been reconciled."
    desired = _number(spec.get("replicas"))
    desired = 1 if desired is None else desired
    replicas = _number(status.get("replicas")) or 0
    updated = _number(status.get("updatedReplicas")) or 0
    available = _number(status.get("availableReplicas")) or 0
    if updated < desired:
        return "Progressing", "Waiting for roll out to finish: More replicas need to be updated"
    if available < updated:
        return (
            "Progressing",
            "Waiting for roll out to finish: updated replicas are still becoming available",
        )
    stable = status.get("stableRS")
    if stable is None:
        stable = (status.get("canary") or {}).get("stableRS", "")
    strategy = spec.get("strategy") or {}
    current = status.get("currentPodHash")
    if strategy.get("blueGreen") is not None:
        active = (status.get("blueGreen") or {}).get("activeSelector")
        if status.get("blueGreen") is None or active != current:
            return "Progressing", "active service cutover pending"
        if stable != "" and stable != current:
            return "Progressing", "waiting for analysis to complete"
    elif strategy.get("canary") is not None:
        if replicas > updated:
            return (
                "Progressing",
                "Waiting for roll out to finish: old replicas are pending termination",
            )
        if stable in ("", None) or stable != current:
            return "Progressing", "Waiting for rollout to finish steps"
    return "Healthy", ""

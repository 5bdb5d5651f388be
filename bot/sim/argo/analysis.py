"""The AnalysisRuns of the Argo Rollouts sim: one per ``analysis`` step, and how each ends.

A run ``{rollout}-{hash}-{revision}-{stepIndex}`` (``.N`` on a name collision) is created
owned by the Rollout with the metrics and args of its AnalysisTemplates, stays Running for
the metrics' ``initialDelay + interval × count`` on the injected clock, then ends with the
outcome a test or the demo scripted for that step (Successful by default), with metric
results, a run summary and the controller's message (``Metric "x" assessed Failed due to
failed (1) > failureLimit (0)``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from bot.sim.argo.canary import HASH_LABEL, REVISION, parse_duration, rollout_revision
from bot.sim.argo.replicasets import owner_ref
from bot.sim.kube import KubeSim

__all__ = ["OUTCOMES", "AnalysisRuns", "metric_seconds"]

OUTCOMES = ("Successful", "Failed", "Error", "Inconclusive")


def metric_seconds(metrics: list[dict[str, Any]]) -> float:
    """How long a run of `metrics` takes: the longest ``initialDelay + interval × count``."""
    longest = 0.0
    for metric in metrics:
        interval = parse_duration(metric.get("interval")) or 0.0
        count = metric.get("count")
        count = int(count) if isinstance(count, int | str) and str(count).isdigit() else 1
        longest = max(longest, parse_duration(metric.get("initialDelay")) + interval * count)
    return longest


class AnalysisRuns:
    """Creates and finishes the step AnalysisRuns; holds the scripted outcomes.

    Not locked: the controller calls it under its own lock.
    """

    def __init__(
        self,
        sim: KubeSim,
        *,
        clock: Callable[[], float],
        wall: Callable[[], str],
        outcomes: dict[tuple[str, str, int], str | tuple[str, str]] | None = None,
    ) -> None:
        self.sim = sim
        self.clock = clock
        self.wall = wall
        self._outcomes: dict[tuple[str, str, int], tuple[str, str]] = {}
        for key, value in (outcomes or {}).items():
            outcome, message = (value, "") if isinstance(value, str) else value
            self._outcomes[key] = (outcome, message)
        self._run_started: dict[tuple[str, str], float] = {}

    def script(
        self, namespace: str, rollout: str, *, step_index: int, outcome: str, message: str = ""
    ) -> None:
        """Decide how the analysis run at ``step_index`` ends (Successful by default)."""
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {OUTCOMES}")
        self._outcomes[(namespace, rollout, step_index)] = (outcome, message)

    def _metrics(
        self, ro: dict[str, Any], step: dict[str, Any]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        ns = ro["metadata"]["namespace"]
        metrics: list[dict[str, Any]] = []
        args: list[dict[str, Any]] = []
        for ref in step.get("templates") or []:
            tpl = self.sim.get("analysistemplates", ns, ref.get("templateName", ""))
            if tpl is None:
                continue
            metrics.extend(copy.deepcopy(tpl["spec"].get("metrics") or []))
            step_args = {a["name"]: a for a in step.get("args") or []}
            for arg in tpl["spec"].get("args") or []:
                merged = dict(arg)
                if arg["name"] in step_args and "value" in step_args[arg["name"]]:
                    merged["value"] = step_args[arg["name"]]["value"]
                args.append(merged)
        return metrics, args

    def ensure(
        self, ro: dict[str, Any], status: dict[str, Any], idx: int, step: dict[str, Any]
    ) -> dict[str, Any]:
        """The run of step `idx` of the current revision, created (Running) when missing."""
        meta = ro["metadata"]
        ns = meta["namespace"]
        pod_hash = status["currentPodHash"]
        base = f"{meta['name']}-{pod_hash}-{rollout_revision(ro)}-{idx}"
        current = (status.get("canary") or {}).get("currentStepAnalysisRunStatus") or {}
        name = current.get("name", "")
        if name == base or name.startswith(base + "."):
            run = self.sim.get("analysisruns", ns, name)
            if run is not None:
                return run
        name, n = base, 0
        while self.sim.get("analysisruns", ns, name) is not None:  # collision counter
            n += 1
            name = f"{base}.{n}"
        metrics, args = self._metrics(ro, step)
        spec: dict[str, Any] = {"metrics": metrics}
        if args:
            spec["args"] = args
        run = self.sim.create(
            {
                "apiVersion": "argoproj.io/v1alpha1",
                "kind": "AnalysisRun",
                "metadata": {
                    "name": name,
                    "namespace": ns,
                    "labels": {
                        "rollout-type": "Step",
                        "step-index": str(idx),
                        HASH_LABEL: pod_hash,
                    },
                    "annotations": {REVISION: str(rollout_revision(ro))},
                    "ownerReferences": [owner_ref(ro)],
                },
                "spec": spec,
                "status": {"phase": "Running", "startedAt": self.wall()},
            }
        )
        self._run_started[(ns, name)] = self.clock()
        status.setdefault("canary", {})["currentStepAnalysisRunStatus"] = {
            "name": name,
            "status": "Running",
        }
        return run

    def advance(self, ro: dict[str, Any], run: dict[str, Any], idx: int) -> dict[str, Any]:
        """Finish a Running run when its metrics' time is up."""
        rstatus = run.get("status") or {}
        if rstatus.get("phase", "Running") not in ("Running", "Pending", ""):
            return run
        ns, name = run["metadata"]["namespace"], run["metadata"]["name"]
        started = self._run_started.setdefault((ns, name), self.clock())
        metrics = run["spec"].get("metrics") or []
        if self.clock() < started + metric_seconds(metrics):
            return run
        outcome, message = self._outcomes.get((ns, ro["metadata"]["name"], idx), ("Successful", ""))
        metric_name = metrics[0]["name"] if metrics else "analysis"
        if not message and outcome != "Successful":
            counter, limit = {
                "Failed": ("failed (1)", "failureLimit (0)"),
                "Error": ("consecutiveErrors (5)", "consecutiveErrorLimit (4)"),
                "Inconclusive": ("inconclusive (1)", "inconclusiveLimit (0)"),
            }[outcome]
            message = f'Metric "{metric_name}" assessed {outcome} due to {counter} > {limit}'
        now = self.wall()
        results = []
        summary = {"count": 0, "successful": 0, "failed": 0, "inconclusive": 0, "error": 0}
        for i, metric in enumerate(metrics):
            phase = outcome if i == 0 else "Successful"
            key = {
                "Successful": "successful",
                "Failed": "failed",
                "Inconclusive": "inconclusive",
                "Error": "error",
            }[phase]
            summary["count"] += 1
            summary[key] += 1
            measurement = {"phase": phase, "startedAt": now, "finishedAt": now}
            result: dict[str, Any] = {
                "name": metric["name"],
                "phase": phase,
                "count": 1,
                "measurements": [measurement],
            }
            if phase == "Error":
                result["error"] = 5
                result["consecutiveError"] = 5
                measurement["message"] = "simulated provider error"
            else:
                result[key] = 1
                measurement["value"] = "[0.001]" if phase == "Successful" else "[0.05]"
            results.append(result)
        new_status = dict(rstatus)
        new_status.update(phase=outcome, metricResults=results, runSummary=summary, completedAt=now)
        new_status.setdefault("startedAt", now)
        if message:
            new_status["message"] = message
        return self.sim.update_status("analysisruns", ns, name, new_status)

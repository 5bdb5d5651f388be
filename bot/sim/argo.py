"""An Argo Rollouts controller simulation, driving Rollouts stored in a :class:`KubeSim`.

It follows the real controller's observable behaviour for canary Rollouts
(``rollout/canary.go``, ``rollout/sync.go``, ``utils/conditions``, ``utils/rollout``):

* a new pod template gets a pod-template-hash (FNV-32a of the template, safe-encoded like
  ``controller.ComputeHash``), a ReplicaSet ``{rollout}-{hash}`` owned by the Rollout and the
  next ``rollout.argoproj.io/revision``; the very first revision is promoted at once, as the real
  controller skips the steps when there is no stable ReplicaSet yet;
* steps ``setWeight``, ``pause`` (``CanaryPauseStep`` pause condition, ``controllerPause``; timed
  pauses end on the injected clock) and ``analysis`` (an AnalysisRun
  ``{rollout}-{hash}-{revision}-{stepIndex}`` owned by the Rollout, Running for the metrics'
  ``interval × count``, then the scripted outcome, Successful by default);
* Failed / Error analysis aborts (``status.abort``, ``abortedAt``, Progressing=False
  ``RolloutAborted`` with ``Rollout aborted update to revision N: <run message>``, canary weight
  0); Inconclusive pauses with ``InconclusiveAnalysisRun``;
* the user's patches: abort, retry (``abort: false``), promote (clearing ``pauseConditions`` /
  ``spec.paused: false`` / moving ``currentStepIndex``), promote-full, pause (``spec.paused``);
* ``phase`` / ``message`` computed as ``CalculateRolloutPhase`` does (``Degraded`` with
  ``RolloutAborted: …`` or ``ProgressDeadlineExceeded: …``, ``Paused`` with ``manually paused``
  or the first pause reason, ``Progressing``, ``Healthy``).

Simplified: no pods (replica counts are derived from the weight), no experiments, no background
analysis, no blue-green, traffic routing is only reflected in ``status.canary.weights``.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.sim.kube import ApiError, KubeSim

log = logging.getLogger(__name__)

REVISION = "rollout.argoproj.io/revision"
HASH_LABEL = "rollouts-pod-template-hash"
OUTCOMES = ("Successful", "Failed", "Error", "Inconclusive")
_SAFE_ALPHANUMS = "bcdfghjklmnpqrstvwxz2456789"
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")


def parse_duration(value: str | int | None) -> float:
    """``2m`` / ``30s`` / ``1h30m`` / ``10`` (seconds) → seconds."""
    if value is None or value == "":
        return 0.0
    if isinstance(value, int | float):
        return float(value)
    if value.isdigit():
        return float(value)
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    total = 0.0
    pos = 0
    for m in _DURATION.finditer(value):
        if m.start() != pos:
            raise ValueError(f"invalid duration {value!r}")
        total += float(m.group(1)) * units[m.group(2)]
        pos = m.end()
    if pos != len(value):
        raise ValueError(f"invalid duration {value!r}")
    return total


def pod_template_hash(template: dict[str, Any], collision_count: int = 0) -> str:
    """A pod-template-hash shaped like ``controller.ComputeHash`` (fnv32a, safe-encoded)."""
    data = json.dumps(template, sort_keys=True, separators=(",", ":")).encode()
    h = 0x811C9DC5
    for b in data + (str(collision_count).encode() if collision_count else b""):
        h ^= b
        h = (h * 0x01000193) & 0xFFFFFFFF
    return "".join(_SAFE_ALPHANUMS[ord(c) % len(_SAFE_ALPHANUMS)] for c in str(h))


class ArgoController:
    """One reconcile pass moves every Rollout as far as is due at ``clock()``."""

    def __init__(
        self,
        sim: KubeSim,
        *,
        clock: Callable[[], float] = time.monotonic,
        analysis_outcomes: dict[tuple[str, str, int], str | tuple[str, str]] | None = None,
    ) -> None:
        self.sim = sim
        self.clock = clock
        self._outcomes: dict[tuple[str, str, int], tuple[str, str]] = {}
        for key, value in (analysis_outcomes or {}).items():
            outcome, message = (value, "") if isinstance(value, str) else value
            self._outcomes[key] = (outcome, message)
        self._epoch = datetime.now(UTC).replace(microsecond=0)
        self._clock0 = clock()
        self._pause_started: dict[tuple[str, str, str, int], float] = {}
        self._run_started: dict[tuple[str, str], float] = {}
        self._last_step: dict[tuple[str, str], int | None] = {}
        self._stalled: set[tuple[str, str]] = set()
        self._lock = threading.RLock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    # ---------------------------------------------------------------- public

    def script_analysis(
        self, namespace: str, rollout: str, *, step_index: int, outcome: str, message: str = ""
    ) -> None:
        """Decide how the analysis run at ``step_index`` ends (Successful by default)."""
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {OUTCOMES}")
        with self._lock:
            self._outcomes[(namespace, rollout, step_index)] = (outcome, message)

    def stall(self, namespace: str, rollout: str) -> None:
        """Make the rollout exceed its progress deadline (Progressing=False, phase Degraded)."""
        with self._lock:
            self._stalled.add((namespace, rollout))
        self.reconcile()

    def reconcile(self) -> None:
        with self._lock:
            for ro in self.sim.list("rollouts"):
                try:
                    self._reconcile_one(ro)
                except ApiError as exc:  # a concurrent write: the next pass picks it up
                    log.debug("reconcile of %s failed: %s", ro["metadata"]["name"], exc.message)

    def run_in_thread(self, *, interval: float = 0.05) -> None:
        if self._thread is not None:
            return
        self._stop.clear()

        def loop() -> None:
            while not self._stop.wait(interval):
                try:
                    self.reconcile()
                except Exception:
                    log.exception("argo controller sim pass failed")

        self._thread = threading.Thread(target=loop, name="argo-controller-sim", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self._thread = None

    def adopt_as_stable(self, namespace: str, name: str, *, revision: int) -> dict[str, Any]:
        """Mark the Rollout's current template as a fully rolled-out stable ``revision``.

        For seeding a world with history (the real controller would have walked the steps).
        """
        with self._lock:
            ro = self._get_rollout(namespace, name)
            pod_hash = pod_template_hash(ro["spec"]["template"])
            ro = self._set_revision_annotation(ro, revision)
            self._ensure_replicaset(ro, pod_hash, revision)
            status = copy.deepcopy(ro.get("status") or {})
            steps = self._steps(ro)
            status.update(currentPodHash=pod_hash, stableRS=pod_hash, currentStepIndex=len(steps))
            status.pop("abort", None)
            status.pop("abortedAt", None)
            status.pop("pauseConditions", None)
            status.pop("controllerPause", None)
            self._last_step[(namespace, name)] = len(steps)
            return self._write_status(ro, status, weight=0)

    # ---------------------------------------------------------------- time

    def _wall(self) -> str:
        at = self._epoch + timedelta(seconds=self.clock() - self._clock0)
        return at.strftime("%Y-%m-%dT%H:%M:%SZ")

    # ---------------------------------------------------------------- helpers

    def _get_rollout(self, namespace: str, name: str) -> dict[str, Any]:
        ro = self.sim.get("rollouts", namespace, name)
        if ro is None:
            raise KeyError(f"rollout {namespace}/{name} not found")
        return ro

    @staticmethod
    def _steps(ro: dict[str, Any]) -> list[dict[str, Any]]:
        return ((ro["spec"].get("strategy") or {}).get("canary") or {}).get("steps") or []

    @staticmethod
    def _revision(ro: dict[str, Any]) -> int:
        try:
            return int((ro["metadata"].get("annotations") or {}).get(REVISION, "0"))
        except ValueError:
            return 0

    def _set_revision_annotation(self, ro: dict[str, Any], revision: int) -> dict[str, Any]:
        if self._revision(ro) == revision:
            return ro
        meta = ro["metadata"]
        return self.sim.patch(
            "rollouts",
            meta["namespace"],
            meta["name"],
            {"metadata": {"annotations": {REVISION: str(revision)}}},
        )

    def _replicasets(self, ro: dict[str, Any]) -> list[dict[str, Any]]:
        uid = ro["metadata"]["uid"]
        return [
            rs
            for rs in self.sim.list("replicasets", ro["metadata"]["namespace"])
            if any(ref.get("uid") == uid for ref in rs["metadata"].get("ownerReferences") or [])
        ]

    @staticmethod
    def _owner_ref(ro: dict[str, Any]) -> dict[str, Any]:
        return {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Rollout",
            "name": ro["metadata"]["name"],
            "uid": ro["metadata"]["uid"],
            "controller": True,
            "blockOwnerDeletion": True,
        }

    def _ensure_replicaset(self, ro: dict[str, Any], pod_hash: str, revision: int) -> None:
        meta = ro["metadata"]
        name = f"{meta['name']}-{pod_hash}"
        existing = self.sim.get("replicasets", meta["namespace"], name)
        if existing is not None:
            if (existing["metadata"].get("annotations") or {}).get(REVISION) != str(revision):
                self.sim.patch(
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
        self.sim.create(
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
                    "ownerReferences": [self._owner_ref(ro)],
                },
                "spec": {"replicas": 0, "selector": selector, "template": template},
                "status": {"replicas": 0},
            }
        )

    def _scale_replicasets(self, ro: dict[str, Any], status: dict[str, Any], weight: int) -> None:
        replicas = int(ro["spec"].get("replicas", 1))
        current, stable = status.get("currentPodHash"), status.get("stableRS")
        for rs in self._replicasets(ro):
            h = (rs["metadata"].get("labels") or {}).get(HASH_LABEL)
            if h == stable:
                want = replicas
            elif h == current:
                want = math.ceil(replicas * weight / 100)
            else:
                want = 0
            if rs["spec"].get("replicas") != want:
                rs["spec"]["replicas"] = want
                rs = self.sim.replace(rs)
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
                self.sim.update_status(
                    "replicasets", rs["metadata"]["namespace"], rs["metadata"]["name"], rs_status
                )

    # ---------------------------------------------------------------- analysis

    def _metric_seconds(self, metrics: list[dict[str, Any]]) -> float:
        longest = 0.0
        for metric in metrics:
            interval = parse_duration(metric.get("interval")) or 0.0
            count = metric.get("count")
            count = int(count) if isinstance(count, int | str) and str(count).isdigit() else 1
            longest = max(longest, parse_duration(metric.get("initialDelay")) + interval * count)
        return longest

    def _analysis_metrics(
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

    def _ensure_run(
        self, ro: dict[str, Any], status: dict[str, Any], idx: int, step: dict[str, Any]
    ) -> dict[str, Any]:
        meta = ro["metadata"]
        ns = meta["namespace"]
        pod_hash = status["currentPodHash"]
        base = f"{meta['name']}-{pod_hash}-{self._revision(ro)}-{idx}"
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
        metrics, args = self._analysis_metrics(ro, step)
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
                    "annotations": {REVISION: str(self._revision(ro))},
                    "ownerReferences": [self._owner_ref(ro)],
                },
                "spec": spec,
                "status": {"phase": "Running", "startedAt": self._wall()},
            }
        )
        self._run_started[(ns, name)] = self.clock()
        status.setdefault("canary", {})["currentStepAnalysisRunStatus"] = {
            "name": name,
            "status": "Running",
        }
        return run

    def _advance_run(self, ro: dict[str, Any], run: dict[str, Any], idx: int) -> dict[str, Any]:
        """Finish a Running run when its metrics' time is up."""
        rstatus = run.get("status") or {}
        if rstatus.get("phase", "Running") not in ("Running", "Pending", ""):
            return run
        ns, name = run["metadata"]["namespace"], run["metadata"]["name"]
        started = self._run_started.setdefault((ns, name), self.clock())
        metrics = run["spec"].get("metrics") or []
        if self.clock() < started + self._metric_seconds(metrics):
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
        now = self._wall()
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

    # ---------------------------------------------------------------- the state machine

    def _reconcile_one(self, ro: dict[str, Any]) -> None:
        meta = ro["metadata"]
        ns, name = meta["namespace"], meta["name"]
        key = (ns, name)
        spec = ro["spec"]
        status = copy.deepcopy(ro.get("status") or {})
        steps = self._steps(ro)
        pod_hash = pod_template_hash(spec["template"])
        weight: int | None = None

        if status.get("currentPodHash") != pod_hash:
            # a new revision
            rss = self._replicasets(ro)
            revisions = [
                int((rs["metadata"].get("annotations") or {}).get(REVISION, "0") or 0) for rs in rss
            ]
            revision = max([*revisions, self._revision(ro) if rss else 0]) + 1
            ro = self._set_revision_annotation(ro, revision)
            self._ensure_replicaset(ro, pod_hash, revision)
            status["currentPodHash"] = pod_hash
            for k in ("abort", "abortedAt", "pauseConditions", "controllerPause", "promoteFull"):
                status.pop(k, None)
            status.setdefault("canary", {}).pop("currentStepAnalysisRunStatus", None)
            self._stalled.discard(key)
            if not status.get("stableRS") or not steps:
                # the first revision (or a canary without steps) is promoted at once
                status["stableRS"] = pod_hash
                status["currentStepIndex"] = len(steps)
            else:
                status["currentStepIndex"] = 0
            self._last_step[key] = status["currentStepIndex"]

        idx = int(status.get("currentStepIndex", 0) or 0)
        last = self._last_step.get(key)
        user_moved_step = last is not None and last != idx
        aborted = bool(status.get("abort"))

        if status.get("promoteFull"):
            aborted = False
            status["stableRS"] = pod_hash
            status["currentStepIndex"] = idx = len(steps)
            for k in ("promoteFull", "pauseConditions", "controllerPause", "abort", "abortedAt"):
                status.pop(k, None)
            status.setdefault("canary", {}).pop("currentStepAnalysisRunStatus", None)
            self._stalled.discard(key)

        if aborted:
            if not status.get("abortedAt"):
                status["abortedAt"] = self._wall()
                status.pop("pauseConditions", None)
                status.pop("controllerPause", None)
                self._stalled.discard(key)
            status["currentStepIndex"] = idx = 0
            weight = 0
            message = self._abort_message(ro, status)
            self._set_condition(status, "Progressing", "False", "RolloutAborted", message)
        else:
            if status.get("abortedAt"):  # retry: abort was cleared
                status.pop("abortedAt", None)
                status.pop("abort", None)
                status["currentStepIndex"] = idx = 0
                status.setdefault("canary", {}).pop("currentStepAnalysisRunStatus", None)
                self._set_condition(
                    status, "Progressing", "Unknown", "RolloutRetry", "Retrying Rollout after abort"
                )
                self._stalled.discard(key)
                user_moved_step = False
            if user_moved_step:
                # a promote patch moved the step: drop the pause of the step it left
                status.pop("pauseConditions", None)
                status.pop("controllerPause", None)
                status.setdefault("canary", {}).pop("currentStepAnalysisRunStatus", None)
                self._stalled.discard(key)
            if status.get("controllerPause") and not status.get("pauseConditions"):
                self._stalled.discard(key)
            if key not in self._stalled and not spec.get("paused"):
                idx = self._walk_steps(ro, status, steps, idx, user_moved_step)
            status["currentStepIndex"] = idx
            if idx >= len(steps):
                status["stableRS"] = pod_hash
        if weight is None:
            weight = self._current_weight(status, steps, idx)
        self._last_step[key] = status["currentStepIndex"]
        self._write_status(ro, status, weight=weight)

    def _walk_steps(
        self,
        ro: dict[str, Any],
        status: dict[str, Any],
        steps: list[dict[str, Any]],
        idx: int,
        user_moved_step: bool,
    ) -> int:
        ns, name = ro["metadata"]["namespace"], ro["metadata"]["name"]
        revision = str(self._revision(ro))
        unpausing = (
            bool(status.get("controllerPause"))
            and not status.get("pauseConditions")
            and not user_moved_step
        )
        while idx < len(steps):
            step = steps[idx]
            if "setWeight" in step:
                idx += 1
                continue
            if "pause" in step:
                pause_key = (ns, name, revision, idx)
                conds = status.get("pauseConditions") or []
                if unpausing:  # promote cleared the pause conditions
                    unpausing = False
                    status.pop("controllerPause", None)
                    self._pause_started.pop(pause_key, None)
                    idx += 1
                    continue
                duration = (step.get("pause") or {}).get("duration")
                if not any(c.get("reason") == "CanaryPauseStep" for c in conds):
                    status["pauseConditions"] = [
                        *conds,
                        {"reason": "CanaryPauseStep", "startTime": self._wall()},
                    ]
                    status["controllerPause"] = True
                    self._pause_started[pause_key] = self.clock()
                started = self._pause_started.setdefault(pause_key, self.clock())
                if duration is not None and self.clock() >= started + parse_duration(duration):
                    status.pop("pauseConditions", None)
                    status.pop("controllerPause", None)
                    self._pause_started.pop(pause_key, None)
                    idx += 1
                    continue
                break
            if "analysis" in step:
                run = self._ensure_run(ro, status, idx, step.get("analysis") or {})
                run = self._advance_run(ro, run, idx)
                rstatus = run.get("status") or {}
                phase = rstatus.get("phase", "Running")
                run_status = {"name": run["metadata"]["name"], "status": phase}
                if rstatus.get("message"):
                    run_status["message"] = rstatus["message"]
                status.setdefault("canary", {})["currentStepAnalysisRunStatus"] = run_status
                if phase == "Successful":
                    status["canary"].pop("currentStepAnalysisRunStatus", None)
                    idx += 1
                    continue
                if phase == "Inconclusive":
                    conds = status.get("pauseConditions") or []
                    if unpausing:
                        unpausing = False
                        status.pop("controllerPause", None)
                        status["canary"].pop("currentStepAnalysisRunStatus", None)
                        idx += 1
                        continue
                    if not any(c.get("reason") == "InconclusiveAnalysisRun" for c in conds):
                        status["pauseConditions"] = [
                            *conds,
                            {"reason": "InconclusiveAnalysisRun", "startTime": self._wall()},
                        ]
                        status["controllerPause"] = True
                    break
                if phase in ("Failed", "Error"):
                    status["abort"] = True
                    status["abortedAt"] = self._wall()
                    status.pop("pauseConditions", None)
                    status.pop("controllerPause", None)
                    self._set_condition(
                        status,
                        "Progressing",
                        "False",
                        "RolloutAborted",
                        self._abort_message(ro, status),
                    )
                    status["currentStepIndex"] = 0
                    return 0
                break
            idx += 1  # steps the sim does not model (experiment, plugins…) pass through
        return idx

    def _abort_message(self, ro: dict[str, Any], status: dict[str, Any]) -> str:
        message = f"Rollout aborted update to revision {self._revision(ro)}"
        run = (status.get("canary") or {}).get("currentStepAnalysisRunStatus") or {}
        if run.get("status") in ("Failed", "Error") and run.get("message"):
            message = f"{message}: {run['message']}"
        return message

    @staticmethod
    def _current_weight(status: dict[str, Any], steps: list[dict[str, Any]], idx: int) -> int:
        if status.get("abort") or status.get("stableRS") == status.get("currentPodHash"):
            return 0
        weight = 0
        for step in steps[: idx + 1]:
            if "setWeight" in step:
                weight = int(step["setWeight"])
        return weight

    # ---------------------------------------------------------------- status writing

    def _set_condition(
        self, status: dict[str, Any], type_: str, cond_status: str, reason: str, message: str
    ) -> None:
        conds = status.setdefault("conditions", [])
        current = next((c for c in conds if c.get("type") == type_), None)
        now = self._wall()
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

    def _write_status(
        self, ro: dict[str, Any], status: dict[str, Any], *, weight: int
    ) -> dict[str, Any]:
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

        self._set_condition(
            status, "Available", "True", "AvailableReason", "Rollout has minimum availability"
        )
        rs_name = f"{name}-{pod_hash}"
        if (ns, name) in self._stalled and not aborted:
            self._set_condition(
                status,
                "Progressing",
                "False",
                "ProgressDeadlineExceeded",
                f'ReplicaSet "{rs_name}" has timed out progressing.',
            )
        elif aborted:
            pass  # set by the abort paths
        elif paused:
            self._set_condition(
                status, "Progressing", "Unknown", "RolloutPaused", "Rollout is paused"
            )
        elif promoted:
            self._set_condition(
                status,
                "Progressing",
                "True",
                "NewReplicaSetAvailable",
                f'ReplicaSet "{rs_name}" has successfully progressed.',
            )
        else:
            self._set_condition(
                status,
                "Progressing",
                "True",
                "ReplicaSetUpdated",
                f'ReplicaSet "{rs_name}" is progressing.',
            )
        pause_cond = next((c for c in status.get("conditions", []) if c["type"] == "Paused"), None)
        if (paused or pause_cond is not None) and not aborted:
            self._set_condition(
                status,
                "Paused",
                "True" if paused else "False",
                "RolloutPaused",
                "Rollout is paused",
            )
        self._set_condition(
            status,
            "Completed",
            "True" if promoted else "False",
            "RolloutCompleted",
            "RolloutCompleted",
        )
        healthy = promoted and not paused and not aborted
        if healthy or any(c["type"] == "Healthy" for c in status["conditions"]):
            self._set_condition(
                status,
                "Healthy",
                "True" if healthy else "False",
                "RolloutHealthy",
                "Rollout is healthy" if healthy else "Rollout is not healthy",
            )
        status["phase"], status["message"] = self._phase(spec, status, replicas)
        if not status["message"]:
            status.pop("message")
        self._scale_replicasets(ro, status, weight)
        if status == ro.get("status"):
            return ro
        return self.sim.update_status("rollouts", ns, name, status)

    @staticmethod
    def _phase(spec: dict[str, Any], status: dict[str, Any], replicas: int) -> tuple[str, str]:
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

"""The Argo Rollouts controller sim's loop: one reconcile pass per Rollout, the step walk.

:class:`ArgoController` reads every Rollout from the :class:`KubeSim`, starts a new revision
when the pod template changed, applies the user's patches (abort, retry, promote,
promote-full, pause), walks the canary steps as far as is due at ``clock()`` (weights, pauses,
analysis runs) and writes the status. The steps' arithmetic is in ``canary``, the
ReplicaSets in ``replicasets``, the AnalysisRuns in ``analysis``, the status in ``status``.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.sim.argo.analysis import AnalysisRuns
from bot.sim.argo.canary import (
    REVISION,
    current_weight,
    parse_duration,
    pod_template_hash,
    rollout_revision,
    rollout_steps,
)
from bot.sim.argo.loop import PassLoop
from bot.sim.argo.replicasets import (
    ensure_replicaset,
    owned_replicasets,
    set_revision_annotation,
)
from bot.sim.argo.status import abort_message, set_condition, write_status
from bot.sim.kube import ApiError, KubeSim

__all__ = ["ArgoController"]

log = logging.getLogger(__name__)


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
        self._epoch = datetime.now(UTC).replace(microsecond=0)
        self._clock0 = clock()
        self._runs = AnalysisRuns(sim, clock=clock, wall=self._wall, outcomes=analysis_outcomes)
        self._pause_started: dict[tuple[str, str, str, int], float] = {}
        self._last_step: dict[tuple[str, str], int | None] = {}
        self._stalled: set[tuple[str, str]] = set()
        self._lock = threading.RLock()
        self._loop = PassLoop(self.reconcile, "argo-controller-sim")

    # ---------------------------------------------------------------- public

    def script_analysis(
        self, namespace: str, rollout: str, *, step_index: int, outcome: str, message: str = ""
    ) -> None:
        """Decide how the analysis run at ``step_index`` ends (Successful by default)."""
        with self._lock:
            self._runs.script(
                namespace, rollout, step_index=step_index, outcome=outcome, message=message
            )

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
        self._loop.start(interval)

    def stop(self) -> None:
        self._loop.stop()

    def adopt_as_stable(self, namespace: str, name: str, *, revision: int) -> dict[str, Any]:
        """Mark the Rollout's current template as a fully rolled-out stable ``revision``.

        For seeding a world with history (the real controller would have walked the steps).
        """
        with self._lock:
            ro = self.sim.get("rollouts", namespace, name)
            if ro is None:
                raise KeyError(f"rollout {namespace}/{name} not found")
            pod_hash = pod_template_hash(ro["spec"]["template"])
            ro = set_revision_annotation(self.sim, ro, revision)
            ensure_replicaset(self.sim, ro, pod_hash, revision)
            status = copy.deepcopy(ro.get("status") or {})
            steps = rollout_steps(ro)
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

    # ---------------------------------------------------------------- status writing

    def _set_condition(
        self, status: dict[str, Any], type_: str, cond_status: str, reason: str, message: str
    ) -> None:
        set_condition(status, type_, cond_status, reason, message, self._wall())

    def _write_status(
        self, ro: dict[str, Any], status: dict[str, Any], *, weight: int
    ) -> dict[str, Any]:
        meta = ro["metadata"]
        stalled = (meta["namespace"], meta["name"]) in self._stalled
        return write_status(self.sim, ro, status, weight=weight, stalled=stalled, wall=self._wall)

    # ---------------------------------------------------------------- the state machine

    def _reconcile_one(self, ro: dict[str, Any]) -> None:
        meta = ro["metadata"]
        ns, name = meta["namespace"], meta["name"]
        key = (ns, name)
        spec = ro["spec"]
        status = copy.deepcopy(ro.get("status") or {})
        steps = rollout_steps(ro)
        pod_hash = pod_template_hash(spec["template"])
        weight: int | None = None

        if status.get("currentPodHash") != pod_hash:
            # a new revision
            rss = owned_replicasets(self.sim, ro)
            revisions = [
                int((rs["metadata"].get("annotations") or {}).get(REVISION, "0") or 0) for rs in rss
            ]
            revision = max([*revisions, rollout_revision(ro) if rss else 0]) + 1
            ro = set_revision_annotation(self.sim, ro, revision)
            ensure_replicaset(self.sim, ro, pod_hash, revision)
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
            message = abort_message(ro, status)
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
            weight = current_weight(status, steps, idx)
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
        revision = str(rollout_revision(ro))
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
                run = self._runs.ensure(ro, status, idx, step.get("analysis") or {})
                run = self._runs.advance(ro, run, idx)
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
                        abort_message(ro, status),
                    )
                    status["currentStepIndex"] = 0
                    return 0
                break
            idx += 1  # steps the sim does not model (experiment, plugins…) pass through
        return idx

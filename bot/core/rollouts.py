"""Argo Rollout objects read as `RolloutState`, and the patches that act on them.

Pure: plain dicts in (as the API server returns them), model objects out. The rules follow
the upstream sources, so that what rollbot says matches `kubectl argo rollouts get`:

- phase: `utils/rollout/rolloututil.go` `GetRolloutPhase` (controller-computed `status.phase`
  when present, else `CalculateRolloutPhase` for v0.10 and older objects);
- step label and weights: `pkg/kubectl-argo-rollouts/info/rollout_info.go` and
  `utils/replicaset/canary.go` (`GetCurrentCanaryStep`, `GetCurrentSetWeight`);
- patches: `pkg/kubectl-argo-rollouts/cmd/{abort,retry,promote,pause}` — merge patches, status
  subresource first with the main resource as fallback on 404 (Rollouts v0.9 without it).

    parse_rollout(obj)          -> RolloutState
    trouble(state)              -> Trouble | None      (why it deserves a card by itself)
    plan(action, obj)           -> list[Patch]         (InvalidRequest when pointless)
    verify(action, before, after) -> Verification      (what reading back must show)
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.core.errors import InvalidRequest
from bot.core.model import (
    AnalysisStatus,
    Patch,
    RolloutAction,
    RolloutState,
    Trouble,
    TroubleKind,
    Verification,
)
from bot.core.timeline import message_words

MERGE_PATCH = "application/merge-patch+json"
REVISION_ANNOTATION = "rollout.argoproj.io/revision"
WORKLOAD_GENERATION_ANNOTATION = "rollout.argoproj.io/workload-generation"
POD_TEMPLATE_HASH_LABEL = "rollouts-pod-template-hash"

# conditions.RolloutAbortedReason / conditions.TimedOutReason / v1alpha1.InvalidSpec
ABORTED_REASON = "RolloutAborted"
TIMED_OUT_REASON = "ProgressDeadlineExceeded"
INVALID_SPEC = "InvalidSpec"
INCONCLUSIVE_PAUSE = "InconclusiveAnalysisRun"

HEALTHY, PROGRESSING, PAUSED, DEGRADED = "Healthy", "Progressing", "Paused", "Degraded"
_BAD_ANALYSIS = ("Failed", "Error")
_COMPLETED_ANALYSIS = ("Successful", "Failed", "Error", "Inconclusive")


# ── small readers ────────────────────────────────────────────────────────────


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _int(value: Any, default: int = 0) -> int:
    parsed = _opt_int(value)
    return default if parsed is None else parsed


def _opt_int(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None


def _time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    return None


def _conditions(status: dict[str, Any]) -> list[dict[str, Any]]:
    # Seen in the wild: `conditions: {}` on objects written by hand.
    return [c for c in _list(status.get("conditions")) if isinstance(c, dict)]


def _condition(status: dict[str, Any], type_: str) -> dict[str, Any] | None:
    for cond in _conditions(status):
        if cond.get("type") == type_:
            return cond
    return None


def _steps(spec: dict[str, Any]) -> list[dict[str, Any]]:
    canary = _dict(_dict(spec.get("strategy")).get("canary"))
    return [s if isinstance(s, dict) else {} for s in _list(canary.get("steps"))]


def _is_blue_green(spec: dict[str, Any]) -> bool:
    return _dict(spec.get("strategy")).get("blueGreen") is not None


def _stable_rs(status: dict[str, Any]) -> str:
    # v0.9 kept it under status.canary.stableRS (rollout_info.go still reads both).
    return str(status.get("stableRS") or _dict(status.get("canary")).get("stableRS") or "")


def _first_image(pod_template: Any) -> str | None:
    containers = _list(_dict(_dict(pod_template).get("spec")).get("containers"))
    for container in containers:
        image = _dict(container).get("image")
        if image:
            return str(image)
    return None


# ── phase (rolloututil.GetRolloutPhase / CalculateRolloutPhase) ───────────────


def _generation_observed(obj: dict[str, Any]) -> bool:
    observed = _opt_int(_dict(obj.get("status")).get("observedGeneration"))
    if observed is None:  # a v0.9 hash, or absent
        return True
    generation = _int(_dict(obj.get("metadata")).get("generation"))
    return observed >= generation


def _workload_generation_observed(obj: dict[str, Any]) -> bool:
    annotations = _dict(_dict(obj.get("metadata")).get("annotations"))
    wanted = _opt_int(annotations.get(WORKLOAD_GENERATION_ANNOTATION))
    observed = _opt_int(_dict(obj.get("status")).get("workloadObservedGeneration"))
    if wanted is None or observed is None:
        return True
    return wanted == observed


def _calculate_phase(spec: dict[str, Any], status: dict[str, Any]) -> tuple[str, str]:
    for cond in _conditions(status):
        if cond.get("type") == INVALID_SPEC:
            return DEGRADED, f"{INVALID_SPEC}: {cond.get('message', '')}"
        reason = cond.get("reason")
        if reason in (ABORTED_REASON, TIMED_OUT_REASON):
            return DEGRADED, f"{reason}: {cond.get('message', '')}"
    if status.get("abort"):
        # Aborted, but the controller has not written its condition yet.
        return DEGRADED, f"{ABORTED_REASON}: Rollout is aborted"
    if spec.get("paused"):
        return PAUSED, "manually paused"
    for pause in _list(status.get("pauseConditions")):
        return PAUSED, str(_dict(pause).get("reason", ""))
    restart_at = spec.get("restartAt")
    if restart_at and _time(restart_at) != _time(status.get("restartedAt")):
        return PROGRESSING, "rollout is restarting"
    replicas = _int(spec.get("replicas"), 1) if spec.get("replicas") is not None else 1
    updated = _int(status.get("updatedReplicas"))
    available = _int(status.get("availableReplicas"))
    if updated < replicas:
        return PROGRESSING, "more replicas need to be updated"
    if available < updated:
        return PROGRESSING, "updated replicas are still becoming available"
    stable = _stable_rs(status)
    current = str(status.get("currentPodHash") or "")
    fully_promoted = bool(stable) and stable == current
    strategy = _dict(spec.get("strategy"))
    if strategy.get("blueGreen") is not None:
        active = _dict(status.get("blueGreen")).get("activeSelector") or ""
        if not active or active != current:
            return PROGRESSING, "active service cutover pending"
        if not fully_promoted:
            bg_spec = _dict(strategy.get("blueGreen"))
            post = _dict(_dict(status.get("blueGreen")).get("postPromotionAnalysisRunStatus"))
            if bg_spec.get("postPromotionAnalysis") is not None and (
                post.get("status") not in _COMPLETED_ANALYSIS
            ):
                return PROGRESSING, "waiting for analysis to complete"
            return PROGRESSING, "waiting for post-promotion verification to complete"
    elif strategy.get("canary") is not None:
        canary = _dict(strategy.get("canary"))
        if canary.get("trafficRouting") is None and _int(status.get("replicas")) > updated:
            return PROGRESSING, "old replicas are pending termination"
        if not fully_promoted:
            return PROGRESSING, "waiting for all steps to complete"
    return HEALTHY, ""


def _phase(obj: dict[str, Any]) -> tuple[str, str]:
    spec = _dict(obj.get("spec"))
    status = _dict(obj.get("status"))
    if not _generation_observed(obj):
        return PROGRESSING, "waiting for rollout spec update to be observed"
    if status.get("controllerPause") and not _list(status.get("pauseConditions")):
        return PROGRESSING, "waiting for rollout to unpause"
    if spec.get("workloadRef") is not None and not _workload_generation_observed(obj):
        return (
            PROGRESSING,
            "waiting for rollout spec update to be observed for the reference workload",
        )
    if status.get("phase"):
        return str(status["phase"]), str(status.get("message") or "")
    return _calculate_phase(spec, status)


# ── steps and weights (replicasetutil) ───────────────────────────────────────


def _step_index(status: dict[str, Any], steps: list[dict[str, Any]]) -> int | None:
    """`status.currentStepIndex`, None when unset (the plugin then shows no step)."""
    if not steps:
        return None
    return _opt_int(status.get("currentStepIndex"))


def _set_weight(steps: list[dict[str, Any]], index: int) -> int:
    """GetCurrentSetWeight without its abort short-cut: what the current step asks for."""
    if not steps or index >= len(steps) or index < 0:
        return 100
    for i in range(index, -1, -1):
        weight = _opt_int(steps[i].get("setWeight"))
        if weight is not None:
            return _clamp(weight)
    return 0


def _clamp(weight: int) -> int:
    return max(0, min(100, weight))


def _canary_weight(
    spec: dict[str, Any], status: dict[str, Any], steps: list[dict[str, Any]]
) -> int:
    if status.get("abort"):
        return 0
    stable = _stable_rs(status)
    current = str(status.get("currentPodHash") or "")
    if _is_blue_green(spec):
        active = _dict(status.get("blueGreen")).get("activeSelector") or ""
        return 100 if (stable and stable == current) or (active and active == current) else 0
    if not stable or stable == current:
        return 100
    weights = _dict(_dict(_dict(status.get("canary")).get("weights")).get("canary"))
    if "weight" in weights:
        return _clamp(_int(weights.get("weight")))
    return _set_weight(steps, _int(status.get("currentStepIndex")))


# ── analysis ────────────────────────────────────────────────────────────────


def _analysis_from_run(run: dict[str, Any]) -> AnalysisStatus:
    status = _dict(run.get("status"))
    phase = str(status.get("phase") or "Pending")
    message = str(status.get("message") or "")
    if not message:
        for result in _list(status.get("metricResults")):
            result = _dict(result)
            if result.get("phase") == phase and phase not in ("Successful", "Running", "Pending"):
                detail = result.get("message")
                message = f'metric "{result.get("name", "")}" assessed {phase}' + (
                    f": {detail}" if detail else ""
                )
                break
    return AnalysisStatus(
        name=str(_dict(run.get("metadata")).get("name") or ""), status=phase, message=message
    )


def _analysis(status: dict[str, Any], run: dict[str, Any] | None) -> AnalysisStatus | None:
    if run is not None:
        return _analysis_from_run(run)
    canary = _dict(status.get("canary"))
    blue_green = _dict(status.get("blueGreen"))
    candidates = [
        _dict(canary.get("currentStepAnalysisRunStatus")),
        _dict(canary.get("currentBackgroundAnalysisRunStatus")),
        _dict(blue_green.get("prePromotionAnalysisRunStatus")),
        _dict(blue_green.get("postPromotionAnalysisRunStatus")),
    ]
    found = [
        AnalysisStatus(
            name=str(c.get("name") or ""),
            status=str(c.get("status") or "Pending"),
            message=str(c.get("message") or ""),
        )
        for c in candidates
        if c.get("name")
    ]
    for wanted in (_BAD_ANALYSIS, ("Inconclusive",)):
        for analysis in found:
            if analysis.status in wanted:
                return analysis
    return found[0] if found else None


# ── public API ───────────────────────────────────────────────────────────────


def parse_rollout(
    obj: dict[str, Any],
    *,
    stable_rs_obj: dict[str, Any] | None = None,
    analysis_run: dict[str, Any] | None = None,
) -> RolloutState:
    """Read a Rollout object (and optionally its stable ReplicaSet and AnalysisRun)."""
    metadata = _dict(obj.get("metadata"))
    spec = _dict(obj.get("spec"))
    status = _dict(obj.get("status"))
    annotations = _dict(metadata.get("annotations"))
    steps = _steps(spec)
    blue_green = _is_blue_green(spec)
    phase, message = _phase(obj)
    step_index = None if blue_green else _step_index(status, steps)

    stable = _stable_rs(status) or None
    stable_image: str | None = None
    stable_revision: int | None = None
    if stable_rs_obj is not None:
        rs_meta = _dict(stable_rs_obj.get("metadata"))
        rs_hash = _dict(rs_meta.get("labels")).get(POD_TEMPLATE_HASH_LABEL)
        if rs_hash is None or rs_hash == stable:
            stable_image = _first_image(_dict(stable_rs_obj.get("spec")).get("template"))
            stable_revision = _opt_int(_dict(rs_meta.get("annotations")).get(REVISION_ANNOTATION))

    progressing = _condition(status, "Progressing")
    return RolloutState(
        namespace=str(metadata.get("namespace") or ""),
        name=str(metadata.get("name") or ""),
        uid=str(metadata.get("uid") or ""),
        revision=_int(annotations.get(REVISION_ANNOTATION)),
        phase=phase,
        message=message,
        step_index=step_index,
        step_count=0 if blue_green else len(steps),
        canary_weight=_canary_weight(spec, status, steps),
        set_weight=None if blue_green else _set_weight(steps, _int(status.get("currentStepIndex"))),
        aborted=bool(status.get("abort")),
        aborted_at=_time(status.get("abortedAt")),
        paused=bool(spec.get("paused")),
        controller_pause=bool(status.get("controllerPause")),
        pause_reasons=tuple(
            str(_dict(p).get("reason", "")) for p in _list(status.get("pauseConditions"))
        ),
        progressing_reason=str(progressing["reason"])
        if progressing and progressing.get("reason")
        else None,
        stable_rs=stable,
        current_pod_hash=str(status["currentPodHash"]) if status.get("currentPodHash") else None,
        canary_image=_first_image(spec.get("template")),
        stable_image=stable_image,
        stable_revision=stable_revision,
        analysis=_analysis(status, analysis_run),
        created_at=_time(metadata.get("creationTimestamp")),
        resource_version=str(metadata.get("resourceVersion") or ""),
        generation=_int(metadata.get("generation")),
        strategy="blueGreen" if blue_green else "canary",
        template_annotations=_template_annotations(spec.get("template")),
    )


def _template_annotations(pod_template: Any) -> tuple[tuple[str, str], ...]:
    """`spec.template.metadata.annotations`, sorted; non-string values as their text."""
    annotations = _dict(_dict(_dict(pod_template).get("metadata")).get("annotations"))
    return tuple(
        sorted((str(k), v if isinstance(v, str) else str(v)) for k, v in annotations.items())
    )


def _where(state: RolloutState) -> str:
    if state.step_index is not None:
        return f"step {state.step_label}, canary at {state.canary_weight}%"
    return f"canary at {state.canary_weight}%"


def _detail(message: str) -> str:
    return f": {message}" if message else ""


def trouble(state: RolloutState) -> Trouble | None:
    """Why this Rollout needs people now, in one sentence; None when it does not."""
    rev = f"revision {state.revision}" if state.revision else "the current revision"
    analysis = state.analysis
    if analysis is not None and analysis.status in _BAD_ANALYSIS:
        tail = (
            f"the controller aborted the update to {rev}"
            if state.aborted
            else f"the update to {rev} is at {_where(state)}"
        )
        return Trouble(
            TroubleKind.ANALYSIS_FAILED,
            f"Analysis `{analysis.name}` {analysis.status}{_detail(analysis.message)} — {tail}",
        )
    if state.phase == DEGRADED and state.message.startswith(INVALID_SPEC):
        detail = state.message[len(INVALID_SPEC) :].lstrip(": ")
        return Trouble(
            TroubleKind.INVALID_SPEC,
            f"Rollout `{state.key}` has an invalid spec{_detail(detail)} — the controller "
            "will not act on it until the spec is fixed",
        )
    if state.aborted:
        return Trouble(
            TroubleKind.ABORTED,
            f"The update to {rev} was aborted{_detail(message_words(state))} — "
            "traffic is back on the stable version; `spec.template` still names the new one",
        )
    if INCONCLUSIVE_PAUSE in state.pause_reasons or (
        analysis is not None and analysis.status == "Inconclusive"
    ):
        name = f" `{analysis.name}`" if analysis is not None else ""
        message = _detail(analysis.message) if analysis is not None else ""
        return Trouble(
            TroubleKind.INCONCLUSIVE,
            f"Analysis{name} was inconclusive{message} — the update to {rev} is paused at "
            f"{_where(state)} until someone promotes or aborts it",
        )
    if state.progressing_reason == TIMED_OUT_REASON:
        return Trouble(
            TroubleKind.PROGRESS_DEADLINE,
            f"The update to {rev} exceeded its progress deadline"
            f"{_detail(_strip_reason(state.message))} — at {_where(state)}",
        )
    if state.phase == DEGRADED:
        return Trouble(
            TroubleKind.DEGRADED,
            f"Rollout `{state.key}` is Degraded{_detail(state.message)} — at {_where(state)}",
        )
    return None


def _strip_reason(message: str) -> str:
    for reason in (ABORTED_REASON, TIMED_OUT_REASON):
        if message.startswith(f"{reason}: "):
            return message[len(reason) + 2 :]
    return message


def _status_patch(body: dict[str, Any]) -> Patch:
    return Patch(content_type=MERGE_PATCH, body=body, subresource="status", fallback_to_main=True)


def _spec_patch(body: dict[str, Any]) -> Patch:
    return Patch(content_type=MERGE_PATCH, body=body)


def plan(action: RolloutAction, obj: dict[str, Any]) -> list[Patch]:
    """The patches `kubectl argo rollouts <action>` would send for this object, in order.

    Status patches go to the `status` subresource with `fallback_to_main` (the plugin retries
    on the main resource on 404); spec patches go to the main resource. Raises InvalidRequest
    when the action would change nothing, saying why.
    """
    metadata = _dict(obj.get("metadata"))
    spec = _dict(obj.get("spec"))
    status = _dict(obj.get("status"))
    key = f"{metadata.get('namespace', '')}/{metadata.get('name', '')}"
    revision = _int(_dict(metadata.get("annotations")).get(REVISION_ANNOTATION))
    stable = _stable_rs(status)
    current = str(status.get("currentPodHash") or "")
    fully_promoted = bool(stable) and stable == current
    aborted = bool(status.get("abort"))

    if action is RolloutAction.ABORT:
        if fully_promoted and not aborted:
            raise InvalidRequest(
                f"Rollout `{key}` is fully promoted to revision {revision}: there is no update "
                "in progress to abort. To go back, revert the release in Git (tier 3)."
            )
        return [_status_patch({"status": {"abort": True}})]

    if action is RolloutAction.RETRY:
        if not aborted:
            raise InvalidRequest(f"Rollout `{key}` is not aborted, so there is nothing to retry.")
        return [_status_patch({"status": {"abort": False}})]

    if action is RolloutAction.PAUSE:
        if spec.get("paused"):
            raise InvalidRequest(f"Rollout `{key}` is already paused (`spec.paused: true`).")
        return [_spec_patch({"spec": {"paused": True}})]

    if action is RolloutAction.PROMOTE_FULL:
        # promote.go: promoteFullPatch only when CurrentPodHash != StableRS.
        if current == stable:
            raise InvalidRequest(
                f"Rollout `{key}` is already fully promoted to revision {revision}."
            )
        patches = [_status_patch({"status": {"promoteFull": True}})]
        if spec.get("paused"):
            patches.append(_spec_patch({"spec": {"paused": False}}))
        return patches

    if action is RolloutAction.PROMOTE:
        return _plan_promote(key, revision, spec, status, aborted=aborted)

    raise InvalidRequest(f"Unknown Rollout action `{action}`.")  # pragma: no cover


def _plan_promote(
    key: str, revision: int, spec: dict[str, Any], status: dict[str, Any], *, aborted: bool
) -> list[Patch]:
    """promote.go getPatches, default branch (no --full, no deprecated skip flags)."""
    if aborted:
        raise InvalidRequest(
            f"Rollout `{key}` is aborted: promoting it does nothing. Retry it first, or "
            "promote it fully."
        )
    pause_conditions = _list(status.get("pauseConditions"))
    steps = _steps(spec)
    canary = _dict(spec.get("strategy")).get("canary") is not None
    status_body: dict[str, Any] | None = None
    step_analysis = _dict(_dict(status.get("canary")).get("currentStepAnalysisRunStatus"))
    inconclusive = canary and step_analysis.get("status") == "Inconclusive"
    if inconclusive and pause_conditions and status.get("controllerPause"):
        index = _next_index(status, steps)
        if index is not None:
            status_body = {
                "status": {
                    "pauseConditions": None,
                    "controllerPause": False,
                    "currentStepIndex": index,
                }
            }
    elif pause_conditions:
        status_body = {"status": {"pauseConditions": None}}
    elif canary:
        # Neither paused by a condition: advance past the running analysis/experiment step.
        index = _next_index(status, steps)
        if index is not None:
            status_body = {"status": {"pauseConditions": None, "currentStepIndex": index}}
    if status_body is not None and canary and steps:
        current = _int(status.get("currentStepIndex"))
        if not pause_conditions and current >= len(steps) and not spec.get("paused"):
            status_body = None  # already past the last step: nothing left to promote
    patches: list[Patch] = []
    if status_body is not None:
        patches.append(_status_patch(status_body))
    if spec.get("paused"):
        patches.append(_spec_patch({"spec": {"paused": False}}))
    if not patches:
        raise InvalidRequest(
            f"Rollout `{key}` (revision {revision}) is neither paused nor at a step that can be "
            "promoted: nothing to promote."
        )
    return patches


def _next_index(status: dict[str, Any], steps: list[dict[str, Any]]) -> int | None:
    """GetCurrentCanaryStep's index plus one, capped at len(steps); None without steps."""
    if not steps:
        return None
    index = _int(status.get("currentStepIndex"))
    return index + 1 if index < len(steps) else index


def verify(action: RolloutAction, before: RolloutState, after: RolloutState) -> Verification:
    """The checks that prove, from a fresh read, that the action took effect."""
    checks: list[tuple[str, bool]]
    if action is RolloutAction.ABORT:
        checks = [
            ("status.abort=true", after.aborted),
            ("phase=Degraded", after.phase == DEGRADED),
            ("canary weight 0", after.canary_weight == 0),
        ]
    elif action is RolloutAction.RETRY:
        checks = [
            ("status.abort cleared", not after.aborted),
            ("phase≠Degraded", after.phase != DEGRADED),
        ]
    elif action is RolloutAction.PROMOTE:
        advanced = (
            after.step_index is not None
            and (before.step_index is None or after.step_index > before.step_index)
        ) or (after.fully_promoted and not before.fully_promoted)
        pause_cleared = bool(before.pause_reasons) and not after.pause_reasons
        checks = [("step advanced or pause cleared", advanced or pause_cleared)]
        if before.paused:
            checks.append(("spec.paused=false", not after.paused))
    elif action is RolloutAction.PROMOTE_FULL:
        # The controller answers promoteFull by jumping to the last step (canary.go), then
        # clears it once fully promoted; blue-green switches the active selector.
        at_end = after.step_count > 0 and after.step_index == after.step_count
        taken = after.fully_promoted or at_end or after.canary_weight == 100
        checks = [("promoteFull taken (all steps skipped or fully promoted)", taken)]
        if before.paused:
            checks.append(("spec.paused=false", not after.paused))
    elif action is RolloutAction.PAUSE:
        checks = [("spec.paused=true", after.paused)]
    else:  # pragma: no cover
        raise InvalidRequest(f"Unknown Rollout action `{action}`.")
    return Verification(ok=all(ok for _, ok in checks), checks=tuple(checks))


def analysis_template_refs(rollout: dict[str, Any]) -> list[str]:
    """Names of the analysis templates a Rollout object refers to (steps, background
    analysis, pre/post-promotion for blue-green), in order, without repeats;
    ClusterAnalysisTemplates as ``cluster/NAME``."""
    spec = _dict(rollout.get("spec"))
    strategy = _dict(spec.get("strategy"))
    analyses: list[dict[str, Any]] = []
    canary = _dict(strategy.get("canary"))
    for step in canary.get("steps") or []:
        analyses.append(_dict(_dict(step).get("analysis")))
    analyses.append(_dict(canary.get("analysis")))
    blue_green = _dict(strategy.get("blueGreen"))
    for key in ("prePromotionAnalysis", "postPromotionAnalysis"):
        analyses.append(_dict(blue_green.get(key)))
    refs: list[str] = []
    for analysis in analyses:
        for template in analysis.get("templates") or []:
            t = _dict(template)
            name = str(t.get("templateName") or "")
            if not name:
                continue
            ref = f"cluster/{name}" if t.get("clusterScope") else name
            if ref not in refs:
                refs.append(ref)
    return refs

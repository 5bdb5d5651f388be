"""bot.core.rollouts: reading Rollout objects and planning `kubectl argo rollouts` patches.

Aspects under test:
- every Rollout fixture parses; phase, step label, weights and trouble match upstream rules
  (GetRolloutPhase / CalculateRolloutPhase, rollout_info.go, GetCurrentSetWeight);
- analysis comes from the Rollout's status or from an AnalysisRun object;
- the stable ReplicaSet gives the stable image and revision (and is ignored when it is not
  the stable one);
- any weight/step combination gives a weight in 0..100 and a consistent step label;
- plan(): exact bodies, subresources and content types per action, promote.go branches,
  InvalidRequest when the action is pointless;
- verify(): named checks per action.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from bot.core import rollouts
from bot.core.errors import InvalidRequest
from bot.core.model import Patch, RolloutAction, TroubleKind
from tests.plugins.fixtures import load_fixture, rollout_fixture_paths

MERGE = "application/merge-patch+json"

# fixture file name -> (phase, step label, canary weight, set weight, trouble kind)
EXPECTED: dict[str, tuple[str, str, int, int | None, TroubleKind | None]] = {
    "degraded_abortedRollout.yaml": ("Degraded", "0/6", 0, 40, TroubleKind.ABORTED),
    "degraded_statusPhaseMessage.yaml": ("Degraded", "2/2", 100, 100, TroubleKind.INVALID_SPEC),
    "healthy_newWorkloadGeneration.yaml": ("Healthy", "2/2", 100, 100, None),
    "suspended_v1.0_pausedRollout.yaml": ("Paused", "1/8", 21, 21, None),
    "bluegreen-paused.rollout.yaml": ("Paused", "-", 0, None, None),
    "canary-paused-inconclusive-analysis.rollout.yaml": (
        "Degraded",
        "1/2",
        25,
        25,
        TroubleKind.INCONCLUSIVE,
    ),
    "canary-progress-deadline-exceeded.rollout.yaml": (
        "Degraded",
        "0/8",
        20,
        20,
        TroubleKind.PROGRESS_DEADLINE,
    ),
    "rollout-aborted.rollout.yaml": ("Degraded", "0/2", 0, 10, TroubleKind.ANALYSIS_FAILED),
    "rollout-invalid.rollout.yaml": ("Degraded", "-", 100, 100, TroubleKind.INVALID_SPEC),
}


def _load(path: Any) -> dict[str, Any]:
    doc = yaml.safe_load(path.read_text())
    assert isinstance(doc, dict)
    return doc


def test_every_rollout_fixture_is_in_the_table() -> None:
    names = {p.name for p in rollout_fixture_paths()}
    assert names == set(EXPECTED), "a new Rollout fixture needs a row in EXPECTED"


@pytest.mark.parametrize("path", rollout_fixture_paths(), ids=lambda p: p.name)
def test_fixture_rollouts_parse_like_the_plugin(path: Any) -> None:
    obj = _load(path)
    phase, label, weight, set_weight, kind = EXPECTED[path.name]
    state = rollouts.parse_rollout(obj)
    assert state.name == obj["metadata"]["name"]
    assert state.namespace == obj["metadata"]["namespace"]
    assert state.phase == phase
    assert state.step_label == label
    assert state.canary_weight == weight
    assert state.set_weight == set_weight
    found = rollouts.trouble(state)
    assert (found.kind if found else None) == kind
    if found:
        assert found.summary and "\n" not in found.summary


def test_fixture_details() -> None:
    paused = rollouts.parse_rollout(
        load_fixture("argo-rollouts/argo-cd-health-testdata/suspended_v1.0_pausedRollout.yaml")
    )
    assert paused.message == "CanaryPauseStep"
    assert paused.pause_reasons == ("CanaryPauseStep",)
    assert paused.controller_pause and not paused.paused
    assert paused.revision == 2 and paused.stable_rs == "77f4f8ff97"
    assert paused.current_pod_hash == "8566c77b97" and not paused.fully_promoted
    assert paused.canary_image == "argoproj/rollouts-demo:yellow"
    assert paused.created_at is not None and paused.created_at.year == 2021

    aborted = rollouts.parse_rollout(
        load_fixture("argo-rollouts/testdata/rollout-aborted.rollout.yaml")
    )
    assert aborted.aborted and aborted.aborted_at is not None
    assert aborted.progressing_reason == "RolloutAborted"
    assert aborted.analysis is not None
    assert aborted.analysis.name == "rollout-background-analysis-db976bc44-2"
    assert aborted.analysis.status == "Failed"
    summary = rollouts.trouble(aborted)
    assert summary is not None
    assert summary.summary == (
        'Analysis `rollout-background-analysis-db976bc44-2` Failed: metric "web" assessed '
        "Failed due to failed (1) > failureLimit (0) — the controller aborted the update to "
        "revision 2"
    )

    old = rollouts.parse_rollout(
        load_fixture("argo-rollouts/argo-cd-health-testdata/degraded_abortedRollout.yaml")
    )
    assert old.stable_rs == "645d5dbc4c"  # v0.9 status.canary.stableRS

    bg = rollouts.parse_rollout(
        load_fixture("argo-rollouts/testdata/bluegreen-paused.rollout.yaml")
    )
    assert bg.strategy == "blueGreen" and bg.step_index is None and bg.step_count == 0
    assert bg.pause_reasons == ("BlueGreenPause",)


def test_analysis_from_analysisrun_objects() -> None:
    ro = load_fixture("argo-rollouts/testdata/canary-paused-inconclusive-analysis.rollout.yaml")
    run = load_fixture("argo-rollouts/testdata/analysisrun-inconclusive.yaml")
    state = rollouts.parse_rollout(ro, analysis_run=run)
    assert state.analysis is not None
    assert state.analysis.name == "rollout-experiment-analysis-random-fail-6f646bf7b7-skqcr"
    assert state.analysis.status == "Inconclusive"
    assert state.analysis.message == 'metric "random-fail" assessed Inconclusive'
    found = rollouts.trouble(state)
    assert found is not None and found.kind is TroubleKind.INCONCLUSIVE
    assert "rollout-experiment-analysis-random-fail-6f646bf7b7-skqcr" in found.summary
    assert "step 1/2" in found.summary

    ro = load_fixture("argo-rollouts/argo-cd-health-testdata/suspended_v1.0_pausedRollout.yaml")
    run = load_fixture(
        "argo-rollouts/argo-cd-health-testdata/failedAnalysisRunWithStatusMessage.yaml"
    )
    state = rollouts.parse_rollout(ro, analysis_run=run)
    found = rollouts.trouble(state)
    assert found is not None and found.kind is TroubleKind.ANALYSIS_FAILED
    assert found.summary.startswith(
        "Analysis `canary-demo-analysis-template-6c6bb7cf6f-9k5rj` Failed: Status Message: "
        "Assessed as Failed — the update to revision 2 is at step 1/8"
    )


def _rs(hash_: str, image: str, revision: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": f"rollouts-demo-{hash_}",
            "labels": {"rollouts-pod-template-hash": hash_},
            "annotations": {"rollout.argoproj.io/revision": revision},
        },
        "spec": {"template": {"spec": {"containers": [{"name": "app", "image": image}]}}},
    }


def test_stable_replicaset_gives_stable_image_and_revision() -> None:
    ro = load_fixture("argo-rollouts/argo-cd-health-testdata/suspended_v1.0_pausedRollout.yaml")
    state = rollouts.parse_rollout(
        ro, stable_rs_obj=_rs("77f4f8ff97", "argoproj/rollouts-demo:blue", "1")
    )
    assert state.stable_image == "argoproj/rollouts-demo:blue"
    assert state.stable_revision == 1
    other = rollouts.parse_rollout(ro, stable_rs_obj=_rs("8566c77b97", "x:y", "2"))
    assert other.stable_image is None and other.stable_revision is None


# ── synthetic objects ─────────────────────────────────────────────────────────

STEPS = [
    {"setWeight": 10},
    {"pause": {}},
    {"setWeight": 25},
    {"analysis": {"templates": [{"templateName": "error-rate"}]}},
    {"setWeight": 50},
    {"pause": {"duration": "5m"}},
    {"setWeight": 100},
    {"pause": {}},
]


def rollout(
    *,
    status: dict[str, Any] | None = None,
    spec: dict[str, Any] | None = None,
    steps: list[dict[str, Any]] | None = None,
    revision: str = "42",
) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {
            "name": "payment-router",
            "namespace": "payments",
            "uid": "u-1",
            "generation": 7,
            "resourceVersion": "100",
            "annotations": {"rollout.argoproj.io/revision": revision},
        },
        "spec": {
            "replicas": 4,
            "strategy": {"canary": {"steps": copy.deepcopy(STEPS if steps is None else steps)}},
            "template": {"spec": {"containers": [{"name": "app", "image": "pay:2.0"}]}},
        },
        "status": {
            "observedGeneration": "7",
            "stableRS": "aaa",
            "currentPodHash": "bbb",
            "currentStepIndex": 1,
            "replicas": 5,
            "updatedReplicas": 1,
            "availableReplicas": 5,
            "phase": "Paused",
            "message": "CanaryPauseStep",
            "controllerPause": True,
            "pauseConditions": [{"reason": "CanaryPauseStep", "startTime": "2024-05-01T10:00:00Z"}],
            "canary": {},
        },
    }
    obj["spec"].update(spec or {})
    obj["status"].update(status or {})
    return obj


@pytest.mark.parametrize(
    ("index", "weights", "extra", "expected"),
    [
        (0, None, {}, 10),
        (1, None, {}, 10),  # pause after setWeight 10
        (3, None, {}, 25),  # analysis after setWeight 25
        (8, None, {}, 100),  # index == len(steps)
        (3, 30, {}, 30),  # status.canary.weights wins
        (3, 30, {"abort": True}, 0),
        (3, None, {"currentPodHash": "aaa"}, 100),  # fully promoted
    ],
)
def test_canary_weight(
    index: int, weights: int | None, extra: dict[str, Any], expected: int
) -> None:
    status: dict[str, Any] = {"currentStepIndex": index, **extra}
    if weights is not None:
        status["canary"] = {"weights": {"canary": {"weight": weights, "podTemplateHash": "bbb"}}}
    assert rollouts.parse_rollout(rollout(status=status)).canary_weight == expected


def test_no_set_weight_before_the_step_means_zero() -> None:
    state = rollouts.parse_rollout(
        rollout(steps=[{"pause": {}}, {"setWeight": 50}], status={"currentStepIndex": 0})
    )
    assert state.set_weight == 0 and state.canary_weight == 0


def test_phase_fallbacks_without_status_phase() -> None:
    base = {"phase": None, "message": None}
    # generation not observed yet
    state = rollouts.parse_rollout(rollout(status={**base, "observedGeneration": "6"}))
    assert (state.phase, state.message) == (
        "Progressing",
        "waiting for rollout spec update to be observed",
    )
    # unpausing: controllerPause without pauseConditions
    state = rollouts.parse_rollout(rollout(status={**base, "pauseConditions": None}))
    assert (state.phase, state.message) == ("Progressing", "waiting for rollout to unpause")
    # spec.paused
    state = rollouts.parse_rollout(
        rollout(
            spec={"paused": True},
            status={**base, "controllerPause": False, "pauseConditions": None},
        )
    )
    assert (state.phase, state.message) == ("Paused", "manually paused")
    # aborted by our patch, controller has not written its condition yet
    state = rollouts.parse_rollout(rollout(status={**base, "abort": True}))
    assert state.phase == "Degraded"
    # progressing, then healthy
    state = rollouts.parse_rollout(
        rollout(status={**base, "controllerPause": False, "pauseConditions": None})
    )
    assert (state.phase, state.message) == ("Progressing", "more replicas need to be updated")
    done = {
        **base,
        "controllerPause": False,
        "pauseConditions": None,
        "currentPodHash": "aaa",
        "replicas": 4,
        "updatedReplicas": 4,
        "availableReplicas": 4,
        "currentStepIndex": 8,
    }
    state = rollouts.parse_rollout(rollout(status=done))
    assert state.phase == "Healthy" and state.fully_promoted and state.canary_weight == 100
    assert rollouts.trouble(state) is None


@given(
    steps=st.lists(
        st.one_of(
            st.builds(lambda w: {"setWeight": w}, st.integers(-50, 150)),
            st.just({"pause": {}}),
            st.just({"analysis": {}}),
        ),
        max_size=12,
    ),
    index=st.one_of(st.none(), st.integers(0, 15)),
    traffic=st.one_of(st.none(), st.integers(-10, 200)),
    aborted=st.booleans(),
    promoted=st.booleans(),
    blue_green=st.booleans(),
)
def test_any_weight_and_step_combination_is_consistent(
    steps: list[dict[str, Any]],
    index: int | None,
    traffic: int | None,
    aborted: bool,
    promoted: bool,
    blue_green: bool,
) -> None:
    status: dict[str, Any] = {"currentStepIndex": index, "abort": aborted}
    if promoted:
        status["currentPodHash"] = "aaa"
    if traffic is not None:
        status["canary"] = {"weights": {"canary": {"weight": traffic}}}
    spec: dict[str, Any] = {}
    if blue_green:
        spec["strategy"] = {"blueGreen": {"activeService": "a"}}
    state = rollouts.parse_rollout(rollout(status=status, spec=spec, steps=steps))
    assert 0 <= state.canary_weight <= 100
    assert state.set_weight is None or 0 <= state.set_weight <= 100
    if aborted:
        assert state.canary_weight == 0
    elif promoted:
        assert state.canary_weight == 100
    if blue_green or not steps or index is None:
        assert state.step_label == "-"
    else:
        assert state.step_label == f"{index}/{len(steps)}"
        assert state.step_count == len(steps)


# ── plan ─────────────────────────────────────────────────────────────────────


def test_plan_abort_and_retry() -> None:
    assert rollouts.plan(RolloutAction.ABORT, rollout()) == [
        Patch(MERGE, {"status": {"abort": True}}, subresource="status", fallback_to_main=True)
    ]
    aborted = rollout(status={"abort": True})
    assert rollouts.plan(RolloutAction.RETRY, aborted) == [
        Patch(MERGE, {"status": {"abort": False}}, subresource="status", fallback_to_main=True)
    ]
    with pytest.raises(InvalidRequest, match="not aborted"):
        rollouts.plan(RolloutAction.RETRY, rollout())
    with pytest.raises(InvalidRequest, match="fully promoted to revision 42"):
        rollouts.plan(RolloutAction.ABORT, rollout(status={"currentPodHash": "aaa"}))


def test_plan_pause() -> None:
    assert rollouts.plan(RolloutAction.PAUSE, rollout()) == [
        Patch(MERGE, {"spec": {"paused": True}})
    ]
    with pytest.raises(InvalidRequest, match="already paused"):
        rollouts.plan(RolloutAction.PAUSE, rollout(spec={"paused": True}))


def test_plan_promote_full() -> None:
    assert rollouts.plan(RolloutAction.PROMOTE_FULL, rollout()) == [
        Patch(MERGE, {"status": {"promoteFull": True}}, subresource="status", fallback_to_main=True)
    ]
    assert rollouts.plan(RolloutAction.PROMOTE_FULL, rollout(spec={"paused": True})) == [
        Patch(
            MERGE, {"status": {"promoteFull": True}}, subresource="status", fallback_to_main=True
        ),
        Patch(MERGE, {"spec": {"paused": False}}),
    ]
    with pytest.raises(InvalidRequest, match="already fully promoted to revision 42"):
        rollouts.plan(RolloutAction.PROMOTE_FULL, rollout(status={"currentPodHash": "aaa"}))


def _status(body: dict[str, Any]) -> Patch:
    return Patch(MERGE, body, subresource="status", fallback_to_main=True)


@pytest.mark.parametrize(
    ("spec", "status", "expected"),
    [
        # paused at a pause step: clear pauseConditions only (never also advance the index)
        ({}, {}, [_status({"status": {"pauseConditions": None}})]),
        # spec.paused too: status patch, then spec patch
        (
            {"paused": True},
            {},
            [
                _status({"status": {"pauseConditions": None}}),
                Patch(MERGE, {"spec": {"paused": False}}),
            ],
        ),
        # in the middle of an analysis step without pause conditions: advance the index
        (
            {},
            {"currentStepIndex": 3, "pauseConditions": None, "controllerPause": False},
            [_status({"status": {"pauseConditions": None, "currentStepIndex": 4}})],
        ),
        # currentStepIndex unset counts as 0
        (
            {},
            {"currentStepIndex": None, "pauseConditions": None, "controllerPause": False},
            [_status({"status": {"pauseConditions": None, "currentStepIndex": 1}})],
        ),
        # inconclusive step analysis with a controller pause: clear both and advance
        (
            {},
            {
                "currentStepIndex": 3,
                "controllerPause": True,
                "pauseConditions": [{"reason": "InconclusiveAnalysisRun"}],
                "canary": {
                    "currentStepAnalysisRunStatus": {"name": "ar", "status": "Inconclusive"}
                },
            },
            [
                _status(
                    {
                        "status": {
                            "pauseConditions": None,
                            "controllerPause": False,
                            "currentStepIndex": 4,
                        }
                    }
                )
            ],
        ),
        # manually paused past the last step: the plugin still sends the (no-op) index patch
        (
            {"paused": True},
            {"currentStepIndex": 8, "pauseConditions": None, "controllerPause": False},
            [
                _status({"status": {"pauseConditions": None, "currentStepIndex": 8}}),
                Patch(MERGE, {"spec": {"paused": False}}),
            ],
        ),
    ],
)
def test_plan_promote_follows_promote_go(
    spec: dict[str, Any], status: dict[str, Any], expected: list[Patch]
) -> None:
    assert rollouts.plan(RolloutAction.PROMOTE, rollout(spec=spec, status=status)) == expected


def test_plan_promote_blue_green_and_refusals() -> None:
    bg = load_fixture("argo-rollouts/testdata/bluegreen-paused.rollout.yaml")
    assert rollouts.plan(RolloutAction.PROMOTE, bg) == [
        _status({"status": {"pauseConditions": None}})
    ]
    done = rollout(
        status={
            "currentStepIndex": 8,
            "pauseConditions": None,
            "controllerPause": False,
            "currentPodHash": "aaa",
        }
    )
    with pytest.raises(InvalidRequest, match="nothing to promote"):
        rollouts.plan(RolloutAction.PROMOTE, done)
    with pytest.raises(InvalidRequest, match="aborted"):
        rollouts.plan(RolloutAction.PROMOTE, rollout(status={"abort": True}))
    no_steps = rollout(steps=[], status={"pauseConditions": None, "controllerPause": False})
    with pytest.raises(InvalidRequest, match="nothing to promote"):
        rollouts.plan(RolloutAction.PROMOTE, no_steps)


@pytest.mark.parametrize("path", rollout_fixture_paths(), ids=lambda p: p.name)
@pytest.mark.parametrize("action", list(RolloutAction))
def test_plan_on_every_fixture_is_merge_patches_or_a_reason(
    path: Any, action: RolloutAction
) -> None:
    try:
        patches = rollouts.plan(action, _load(path))
    except InvalidRequest as exc:
        assert exc.message
        return
    assert patches
    for patch in patches:
        assert patch.content_type == MERGE
        assert isinstance(patch.body, dict)
        if patch.subresource == "status":
            assert set(patch.body) == {"status"} and patch.fallback_to_main
        else:
            assert set(patch.body) == {"spec"} and patch.subresource is None


# ── verify ───────────────────────────────────────────────────────────────────


def test_verify_abort() -> None:
    before = rollouts.parse_rollout(rollout())
    after = rollouts.parse_rollout(rollout(status={"abort": True, "phase": "Degraded"}))
    result = rollouts.verify(RolloutAction.ABORT, before, after)
    assert result.ok
    assert [name for name, _ in result.checks] == [
        "status.abort=true",
        "phase=Degraded",
        "canary weight 0",
    ]
    lagging = rollouts.parse_rollout(rollout(status={"abort": True}))  # phase still Paused
    result = rollouts.verify(RolloutAction.ABORT, before, lagging)
    assert not result.ok and ("phase=Degraded", False) in result.checks
    assert "phase=Degraded ✗" in result.describe()


def test_verify_retry_promote_full_pause() -> None:
    aborted = rollouts.parse_rollout(rollout(status={"abort": True, "phase": "Degraded"}))
    retried = rollouts.parse_rollout(rollout(status={"phase": "Progressing"}))
    assert rollouts.verify(RolloutAction.RETRY, aborted, retried).ok
    assert not rollouts.verify(RolloutAction.RETRY, aborted, aborted).ok

    paused = rollouts.parse_rollout(rollout())
    cleared = rollouts.parse_rollout(
        rollout(status={"pauseConditions": None, "controllerPause": False})
    )
    advanced = rollouts.parse_rollout(rollout(status={"currentStepIndex": 2}))
    assert rollouts.verify(RolloutAction.PROMOTE, paused, cleared).ok
    assert rollouts.verify(RolloutAction.PROMOTE, paused, advanced).ok
    assert not rollouts.verify(RolloutAction.PROMOTE, paused, paused).ok
    manual = rollouts.parse_rollout(rollout(spec={"paused": True}))
    result = rollouts.verify(RolloutAction.PROMOTE, manual, manual)
    assert ("spec.paused=false", False) in result.checks

    at_end = rollouts.parse_rollout(rollout(status={"currentStepIndex": 8}))
    assert rollouts.verify(RolloutAction.PROMOTE_FULL, paused, at_end).ok
    assert not rollouts.verify(RolloutAction.PROMOTE_FULL, paused, paused).ok

    manually_paused = rollouts.parse_rollout(rollout(spec={"paused": True}))
    assert rollouts.verify(RolloutAction.PAUSE, paused, manually_paused).checks == (
        ("spec.paused=true", True),
    )
    assert not rollouts.verify(RolloutAction.PAUSE, paused, paused).ok


def test_template_annotations_sorted_pairs() -> None:
    ro = load_fixture("argo-rollouts/argo-cd-health-testdata/suspended_v1.0_pausedRollout.yaml")
    assert rollouts.parse_rollout(ro).template_annotations == ()
    ro = copy.deepcopy(ro)
    ro["spec"]["template"].setdefault("metadata", {})["annotations"] = {
        "rollbot.io/git-sha": "3f9c2d1e8b7a",
        "prometheus.io/scrape": "true",
        "odd": 5,  # not a string: kept as text rather than dropped
    }
    assert rollouts.parse_rollout(ro).template_annotations == (
        ("odd", "5"),
        ("prometheus.io/scrape", "true"),
        ("rollbot.io/git-sha", "3f9c2d1e8b7a"),
    )
    ro["spec"]["template"]["metadata"]["annotations"] = None
    assert rollouts.parse_rollout(ro).template_annotations == ()

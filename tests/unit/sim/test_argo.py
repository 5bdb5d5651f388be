"""The Argo Rollouts controller sim on the payment-router world, on a fake clock.

Aspects under test:

* seeding: stable revision 41 (1.12.4) fully rolled out, revision 42 (1.13.0) starting, with its
  ReplicaSet (labels, revision annotation, owner reference) and the canary weights;
* walking every step: setWeight, timed pauses (``CanaryPauseStep``), analysis runs named
  ``{rollout}-{hash}-{revision}-{step}`` and owned by the Rollout, then fully promoted;
* a Failed analysis aborts exactly like the controller; an Inconclusive one pauses;
* the user's patches: abort, retry, promote (pause conditions cleared, step index moved),
  promote-full, pause / resume; ``stall`` (ProgressDeadlineExceeded);
* idempotent reconcile passes; every stored Rollout / AnalysisRun validates against the real
  CRD schemas; which Argo fixtures (tests/fixtures/argo-rollouts) validate (reported, not
  enforced).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.sim import world
from bot.sim.argo import ArgoController, parse_duration, pod_template_hash
from bot.sim.kube import KubeSim, default_crd_dir, load_crd_schemas, prune, schema_errors
from tests.helpers import FakeClock
from tests.plugins.fixtures import FIXTURES

NS, NAME = world.NAMESPACE, world.ROLLOUT
ANALYSIS_1, ANALYSIS_2 = 2, 5


def rollout(sim: KubeSim) -> dict[str, Any]:
    ro = sim.get("rollouts", NS, NAME)
    assert ro is not None
    return ro


def status(sim: KubeSim) -> dict[str, Any]:
    return rollout(sim)["status"]


def condition(st: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in st["conditions"] if c["type"] == type_)


def tick(argo: ArgoController, clock: FakeClock, seconds: float = 0.0) -> None:
    clock.advance(seconds)
    argo.reconcile()


@pytest.fixture
def seeded(kube_sim: KubeSim, argo: ArgoController) -> KubeSim:
    world.seed_payment_router(kube_sim, argo)
    return kube_sim


def test_durations_and_hash() -> None:
    assert parse_duration("2m") == 120 and parse_duration("30s") == 30
    assert parse_duration("1h30m") == 5400 and parse_duration(10) == 10
    h = pod_template_hash({"spec": {"containers": [{"image": "a"}]}})
    assert h == pod_template_hash({"spec": {"containers": [{"image": "a"}]}})
    assert set(h) <= set("bcdfghjklmnpqrstvwxz2456789") and 8 <= len(h) <= 10


def test_seed_starts_revision_42_over_stable_41(seeded: KubeSim) -> None:
    ro = rollout(seeded)
    st = ro["status"]
    assert ro["metadata"]["annotations"]["rollout.argoproj.io/revision"] == "42"
    rss = {
        rs["metadata"]["annotations"]["rollout.argoproj.io/revision"]: rs
        for rs in seeded.list("replicasets", NS)
    }
    assert set(rss) == {"41", "42"}
    stable, canary = rss["41"], rss["42"]
    assert stable["spec"]["template"]["spec"]["containers"][0]["image"] == world.STABLE_IMAGE
    assert canary["spec"]["template"]["spec"]["containers"][0]["image"] == world.CANARY_IMAGE
    assert st["stableRS"] == stable["metadata"]["labels"]["rollouts-pod-template-hash"]
    assert st["currentPodHash"] == canary["metadata"]["labels"]["rollouts-pod-template-hash"]
    assert canary["metadata"]["name"] == f"{NAME}-{st['currentPodHash']}"
    assert canary["metadata"]["ownerReferences"][0]["uid"] == ro["metadata"]["uid"]
    assert canary["metadata"]["ownerReferences"][0]["controller"] is True
    assert st["phase"] == "Paused" and st["message"] == "CanaryPauseStep"
    assert st["currentStepIndex"] == 1 and st["controllerPause"] is True
    assert [c["reason"] for c in st["pauseConditions"]] == ["CanaryPauseStep"]
    assert st["canary"]["weights"] == {
        "canary": {"podTemplateHash": st["currentPodHash"], "weight": 10},
        "stable": {"podTemplateHash": st["stableRS"], "weight": 90},
    }
    assert st["observedGeneration"] == str(ro["metadata"]["generation"])


def test_walks_all_steps_to_fully_promoted(
    seeded: KubeSim, argo: ArgoController, fake_clock: FakeClock
) -> None:
    tick(argo, fake_clock, 119)
    assert status(seeded)["currentStepIndex"] == 1
    tick(argo, fake_clock, 1)
    st = status(seeded)
    assert st["currentStepIndex"] == ANALYSIS_1 and st["phase"] == "Progressing"
    run_name = f"{NAME}-{st['currentPodHash']}-42-{ANALYSIS_1}"
    assert st["canary"]["currentStepAnalysisRunStatus"] == {"name": run_name, "status": "Running"}
    run = seeded.get("analysisruns", NS, run_name)
    assert run is not None and run["status"]["phase"] == "Running"
    assert run["metadata"]["ownerReferences"][0]["name"] == NAME
    assert [m["name"] for m in run["spec"]["metrics"]] == [
        "error-rate",
        "latency-p95",
        "latency-p99",
    ]
    tick(argo, fake_clock, 300)  # 5 × 1m
    assert seeded.get("analysisruns", NS, run_name)["status"]["phase"] == "Successful"
    st = status(seeded)
    assert st["currentStepIndex"] == 4 and st["canary"]["weights"]["canary"]["weight"] == 25
    tick(argo, fake_clock, 180)
    assert status(seeded)["currentStepIndex"] == ANALYSIS_2
    tick(argo, fake_clock, 300)
    st = status(seeded)
    assert st["currentStepIndex"] == 7 and st["canary"]["weights"]["canary"]["weight"] == 50
    tick(argo, fake_clock, 300)
    st = status(seeded)
    assert st["phase"] == "Healthy" and "message" not in st
    assert st["currentStepIndex"] == 9
    assert st["stableRS"] == st["currentPodHash"]
    assert st["canary"]["weights"]["stable"] == {
        "podTemplateHash": st["currentPodHash"],
        "weight": 100,
    }
    assert condition(st, "Completed")["status"] == "True"
    assert condition(st, "Healthy")["status"] == "True"
    assert condition(st, "Progressing")["reason"] == "NewReplicaSetAvailable"
    assert "pauseConditions" not in st and "controllerPause" not in st


def test_reconcile_is_idempotent(seeded: KubeSim, argo: ArgoController) -> None:
    rv = seeded.resource_version
    argo.reconcile()
    argo.reconcile()
    assert seeded.resource_version == rv


def test_failed_analysis_aborts(
    seeded: KubeSim, argo: ArgoController, fake_clock: FakeClock
) -> None:
    argo.script_analysis(NS, NAME, step_index=ANALYSIS_1, outcome="Failed")
    tick(argo, fake_clock, 120)
    tick(argo, fake_clock, 300)
    st = status(seeded)
    metric_msg = 'Metric "error-rate" assessed Failed due to failed (1) > failureLimit (0)'
    assert st["abort"] is True and st["abortedAt"]
    assert st["phase"] == "Degraded"
    assert st["message"] == f"RolloutAborted: Rollout aborted update to revision 42: {metric_msg}"
    progressing = condition(st, "Progressing")
    assert (progressing["status"], progressing["reason"]) == ("False", "RolloutAborted")
    assert st["canary"]["weights"]["canary"]["weight"] == 0
    assert st["canary"]["weights"]["stable"]["weight"] == 100
    run_status = st["canary"]["currentStepAnalysisRunStatus"]
    assert run_status["status"] == "Failed" and run_status["message"] == metric_msg
    run = seeded.get("analysisruns", NS, run_status["name"])
    assert run["status"]["phase"] == "Failed" and run["status"]["message"] == metric_msg
    assert "pauseConditions" not in st
    tick(argo, fake_clock, 600)  # stays aborted
    assert status(seeded)["phase"] == "Degraded"


def test_world_can_script_the_failure(
    kube_sim: KubeSim, argo: ArgoController, fake_clock: FakeClock
) -> None:
    world.seed_payment_router(kube_sim, argo, fail_analysis_at_weight=10)
    tick(argo, fake_clock, 120)
    tick(argo, fake_clock, 300)
    assert status(kube_sim)["abort"] is True


def test_inconclusive_pauses_then_promote_continues(
    seeded: KubeSim, argo: ArgoController, fake_clock: FakeClock
) -> None:
    argo.script_analysis(NS, NAME, step_index=ANALYSIS_1, outcome="Inconclusive")
    tick(argo, fake_clock, 120)
    tick(argo, fake_clock, 300)
    st = status(seeded)
    assert st["phase"] == "Paused" and st["message"] == "InconclusiveAnalysisRun"
    assert st["controllerPause"] is True
    assert [c["reason"] for c in st["pauseConditions"]] == ["InconclusiveAnalysisRun"]
    assert condition(st, "Paused")["status"] == "True"
    assert st["canary"]["currentStepAnalysisRunStatus"]["status"] == "Inconclusive"
    # kubectl argo rollouts promote: clear pauseConditions, step past the analysis
    seeded.patch(
        "rollouts",
        NS,
        NAME,
        {"status": {"pauseConditions": None, "currentStepIndex": ANALYSIS_1 + 1}},
        subresource="status",
    )
    tick(argo, fake_clock)
    st = status(seeded)
    assert st["currentStepIndex"] == 4 and st["canary"]["weights"]["canary"]["weight"] == 25


def test_user_abort_then_retry(
    seeded: KubeSim, argo: ArgoController, fake_clock: FakeClock
) -> None:
    seeded.patch("rollouts", NS, NAME, {"status": {"abort": True}}, subresource="status")
    tick(argo, fake_clock)
    st = status(seeded)
    assert st["phase"] == "Degraded"
    assert st["message"] == "RolloutAborted: Rollout aborted update to revision 42"
    assert st["abortedAt"] and st["canary"]["weights"]["canary"]["weight"] == 0
    assert "pauseConditions" not in st and st["currentStepIndex"] == 0
    seeded.patch("rollouts", NS, NAME, {"status": {"abort": False}}, subresource="status")
    tick(argo, fake_clock)
    st = status(seeded)
    assert "abortedAt" not in st and not st.get("abort")
    assert st["phase"] == "Paused" and st["currentStepIndex"] == 1
    assert st["canary"]["weights"]["canary"]["weight"] == 10


def test_promote_clears_pause(seeded: KubeSim, argo: ArgoController, fake_clock: FakeClock) -> None:
    seeded.patch("rollouts", NS, NAME, {"status": {"pauseConditions": None}}, subresource="status")
    tick(argo, fake_clock)
    st = status(seeded)
    assert st["currentStepIndex"] == ANALYSIS_1 and st["phase"] == "Progressing"
    assert "controllerPause" not in st


def test_promote_full(seeded: KubeSim, argo: ArgoController, fake_clock: FakeClock) -> None:
    seeded.patch("rollouts", NS, NAME, {"status": {"promoteFull": True}}, subresource="status")
    tick(argo, fake_clock)
    st = status(seeded)
    assert st["phase"] == "Healthy" and st["stableRS"] == st["currentPodHash"]
    assert "promoteFull" not in st and st["currentStepIndex"] == 9


def test_manual_pause_and_resume(
    seeded: KubeSim, argo: ArgoController, fake_clock: FakeClock
) -> None:
    seeded.patch("rollouts", NS, NAME, {"status": {"pauseConditions": None}}, subresource="status")
    seeded.patch("rollouts", NS, NAME, {"spec": {"paused": True}})
    tick(argo, fake_clock, 3600)
    st = status(seeded)
    assert (st["phase"], st["message"]) == ("Paused", "manually paused")
    assert condition(st, "Progressing")["reason"] == "RolloutPaused"
    assert st["currentStepIndex"] == 1
    seeded.patch("rollouts", NS, NAME, {"spec": {"paused": False}})
    tick(argo, fake_clock)
    assert status(seeded)["currentStepIndex"] == ANALYSIS_1


def test_stall(seeded: KubeSim, argo: ArgoController) -> None:
    argo.stall(NS, NAME)
    st = status(seeded)
    rs = f"{NAME}-{st['currentPodHash']}"
    assert st["phase"] == "Degraded"
    assert st["message"] == (
        f'ProgressDeadlineExceeded: ReplicaSet "{rs}" has timed out progressing.'
    )
    progressing = condition(st, "Progressing")
    assert (progressing["status"], progressing["reason"]) == ("False", "ProgressDeadlineExceeded")


def test_every_stored_object_validates_against_the_crds(
    kube_sim: KubeSim, argo: ArgoController, fake_clock: FakeClock
) -> None:
    schemas = load_crd_schemas(str(default_crd_dir().resolve()))
    stored: list[dict[str, Any]] = []
    kube_sim.subscribe(lambda _type, obj: stored.append(obj))
    argo.script_analysis(NS, NAME, step_index=ANALYSIS_2, outcome="Inconclusive")
    world.seed_payment_router(kube_sim, argo)
    for seconds in (120, 300, 180, 300):
        tick(argo, fake_clock, seconds)
    kube_sim.patch(
        "rollouts",
        NS,
        NAME,
        {"status": {"pauseConditions": None, "currentStepIndex": ANALYSIS_2 + 1}},
        subresource="status",
    )
    tick(argo, fake_clock)
    kube_sim.patch("rollouts", NS, NAME, {"status": {"abort": True}}, subresource="status")
    tick(argo, fake_clock)
    kube_sim.patch("rollouts", NS, NAME, {"status": {"abort": False}}, subresource="status")
    for seconds in (120, 300, 180, 300, 300):
        tick(argo, fake_clock, seconds)
    argo.stall(NS, NAME)
    kinds = {o["kind"] for o in stored}
    assert {"Rollout", "AnalysisRun", "AnalysisTemplate"} <= kinds
    phases = {o.get("status", {}).get("phase") for o in stored if o["kind"] == "Rollout"}
    assert {"Paused", "Progressing", "Degraded", "Healthy"} <= phases
    for obj in stored:
        if obj["kind"] not in schemas:
            continue
        assert schema_errors(schemas[obj["kind"]], obj) == [], obj["metadata"]["name"]
        assert prune(copy.deepcopy(obj), schemas[obj["kind"]].raw, root=True) == obj


def test_shared_fixtures_against_the_crds() -> None:
    """Reports which Argo fixtures validate; old fixtures may not (not enforced)."""
    schemas = load_crd_schemas(str(default_crd_dir().resolve()))
    root = FIXTURES / "argo-rollouts"
    report: dict[str, list[str]] = {}
    for path in sorted(
        [*root.glob("testdata/*.yaml"), *root.glob("argo-cd-health-testdata/*.yaml")]
    ):
        doc = yaml.safe_load(Path(path).read_text())
        if not isinstance(doc, dict) or doc.get("kind") not in schemas:
            continue
        pruned = prune(copy.deepcopy(doc), schemas[doc["kind"]].raw, root=True)
        report[str(path.relative_to(root))] = [
            f"{c['field']}: {c['message']}" for c in schema_errors(schemas[doc["kind"]], pruned)
        ]
    print("\nfixture validation against the CRDs:")
    for name, errors in report.items():
        print(f"  {'ok     ' if not errors else 'INVALID'} {name} {'; '.join(errors)[:300]}")
    assert report

"""bot.adapters.kubernetes against the Kubernetes API simulation, over real HTTP.

The real `kubernetes` client talks to `bot.sim.kube.KubeSim`; assertions are on what reached the
wire (`sim.requests`) and on what the adapter delivered.

Aspects under test:
- apply(): exact paths, content types and bodies for every action, in the plugin's order;
- the status subresource answering 404 makes apply() resend the same body to the main resource;
- get_state(): the Rollout plus its stable ReplicaSet;
- errors: 404 → TargetNotFound (namespace, name), 403 → Forbidden with the Status message,
  5xx and a dead server → Unreachable;
- watch(): initial list as ADDED, every transition of a Rollout changed N times exactly once
  and in order, across drop_watches() (resume from the last resourceVersion), across a 410
  after compact() (re-list delivers the last state), through an outage (one report per loop,
  backoff, recovery), resume from a persisted cursor, cancellation within a second with its
  threads gone.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.adapters.kubernetes import KubeRollouts
from bot.core.errors import Forbidden, TargetNotFound, Unreachable
from bot.core.model import Patch, RolloutAction
from bot.core.ports import WatchEvent
from bot.sim.kube import KubeSim
from tests.helpers import eventually
from tests.integration.adapters.kube import make
from tests.plugins.fixtures import load_fixture

NS, NAME = "payments", "payment-router"
BASE = f"/apis/argoproj.io/v1alpha1/namespaces/{NS}/rollouts/{NAME}"
MERGE = "application/merge-patch+json"


def paused_rollout(**status: Any) -> dict[str, Any]:
    obj = copy.deepcopy(
        load_fixture("argo-rollouts/argo-cd-health-testdata/suspended_v1.0_pausedRollout.yaml")
    )
    obj["metadata"] = {
        "name": NAME,
        "namespace": NS,
        "annotations": {"rollout.argoproj.io/revision": "42"},
    }
    obj["status"]["observedGeneration"] = "1"
    obj["status"].update(status)
    return obj


def patches_sent(sim: KubeSim) -> list[tuple[str, str | None, Any]]:
    return [(r.path, r.content_type, r.body) for r in sim.requests_matching("PATCH")]


# ── apply ────────────────────────────────────────────────────────────────────


async def test_abort_sends_the_plugin_patch_to_the_status_subresource(
    sim: KubeSim, kube: KubeRollouts
) -> None:
    sim.create(paused_rollout())
    sent = await kube.apply(RolloutAction.ABORT, NS, NAME)
    assert sent == [Patch(MERGE, {"status": {"abort": True}}, "status", True)]
    assert patches_sent(sim) == [(f"{BASE}/status", MERGE, {"status": {"abort": True}})]
    stored = sim.get("rollouts", NS, NAME)
    assert stored is not None and stored["status"]["abort"] is True
    state = await kube.get_state(NS, NAME)
    assert state.aborted and state.canary_weight == 0


@pytest.mark.parametrize(
    ("action", "spec", "status", "expected"),
    [
        (
            RolloutAction.RETRY,
            {},
            {"abort": True},
            [(f"{BASE}/status", {"status": {"abort": False}})],
        ),
        (
            RolloutAction.PROMOTE,
            {"paused": True},
            {},
            [
                (f"{BASE}/status", {"status": {"pauseConditions": None}}),
                (BASE, {"spec": {"paused": False}}),
            ],
        ),
        (
            RolloutAction.PROMOTE,
            {},
            {"pauseConditions": None, "controllerPause": False, "currentStepIndex": 2},
            [(f"{BASE}/status", {"status": {"pauseConditions": None, "currentStepIndex": 3}})],
        ),
        (
            RolloutAction.PROMOTE_FULL,
            {"paused": True},
            {},
            [
                (f"{BASE}/status", {"status": {"promoteFull": True}}),
                (BASE, {"spec": {"paused": False}}),
            ],
        ),
        (RolloutAction.PAUSE, {}, {}, [(BASE, {"spec": {"paused": True}})]),
    ],
    ids=["retry", "promote-paused", "promote-analysis-step", "promote-full", "pause"],
)
async def test_every_action_sends_exact_merge_patches(
    sim: KubeSim,
    kube: KubeRollouts,
    action: RolloutAction,
    spec: dict[str, Any],
    status: dict[str, Any],
    expected: list[tuple[str, Any]],
) -> None:
    obj = paused_rollout(**status)
    obj["spec"].update(spec)
    sim.create(obj)
    sent = await kube.apply(action, NS, NAME)
    assert patches_sent(sim) == [(path, MERGE, body) for path, body in expected]
    assert [(p.subresource, p.body) for p in sent] == [
        ("status" if path.endswith("/status") else None, body) for path, body in expected
    ]


async def test_status_404_falls_back_to_the_main_resource(sim: KubeSim, kube: KubeRollouts) -> None:
    sim.create(paused_rollout())
    sim.fail_next(1, status=404, path_contains="/status")
    sent = await kube.apply(RolloutAction.ABORT, NS, NAME)
    assert patches_sent(sim) == [
        (f"{BASE}/status", MERGE, {"status": {"abort": True}}),
        (BASE, MERGE, {"status": {"abort": True}}),
    ]
    assert sent == [Patch(MERGE, {"status": {"abort": True}})]


# ── reads and errors ─────────────────────────────────────────────────────────


async def test_get_state_reads_the_stable_replicaset(sim: KubeSim, kube: KubeRollouts) -> None:
    sim.create(paused_rollout())
    sim.create(
        {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": f"{NAME}-77f4f8ff97",
                "namespace": NS,
                "labels": {"app": "rollouts-demo", "rollouts-pod-template-hash": "77f4f8ff97"},
                "annotations": {"rollout.argoproj.io/revision": "41"},
            },
            "spec": {
                "replicas": 5,
                "selector": {"matchLabels": {"app": "rollouts-demo"}},
                "template": {
                    "metadata": {"labels": {"app": "rollouts-demo"}},
                    "spec": {
                        "containers": [{"name": "app", "image": "argoproj/rollouts-demo:blue"}]
                    },
                },
            },
        }
    )
    state = await kube.get_state(NS, NAME)
    assert (state.namespace, state.name, state.revision) == (NS, NAME, 42)
    assert state.phase == "Paused" and state.step_label == "1/8"
    assert state.stable_image == "argoproj/rollouts-demo:blue"
    assert state.stable_revision == 41
    assert state.canary_image == "argoproj/rollouts-demo:yellow"
    selectors = [r.param("labelSelector") for r in sim.requests_matching("GET", "replicasets")]
    assert selectors == ["rollouts-pod-template-hash=77f4f8ff97"]


async def test_missing_rollout_is_target_not_found(kube: KubeRollouts) -> None:
    with pytest.raises(TargetNotFound) as info:
        await kube.get_state(NS, "nope")
    assert (info.value.kind, info.value.namespace, info.value.name) == ("Rollout", NS, "nope")
    with pytest.raises(TargetNotFound):
        await kube.apply(RolloutAction.ABORT, NS, "nope")


async def test_forbidden_carries_the_status_message(sim: KubeSim, kube: KubeRollouts) -> None:
    sim.create(paused_rollout())
    sim.fail_next(1, status=403, path_contains="/status")
    with pytest.raises(Forbidden) as info:
        await kube.apply(RolloutAction.ABORT, NS, NAME)
    assert 'cannot patch resource "rollouts/status"' in info.value.detail


async def test_5xx_and_dead_server_are_unreachable(sim: KubeSim, kube: KubeRollouts) -> None:
    sim.create(paused_rollout())
    sim.fail_next(1, status=503)
    with pytest.raises(Unreachable) as info:
        await kube.get_state(NS, NAME)
    assert "503" in info.value.detail
    sim.set_unreachable(True)
    with pytest.raises(Unreachable):
        await kube.get_state(NS, NAME)
    sim.set_unreachable(False)
    assert (await kube.get_state(NS, NAME)).name == NAME


# ── watch ────────────────────────────────────────────────────────────────────


class Recorder:
    def __init__(self) -> None:
        self.events: list[WatchEvent] = []
        self.errors: list[str] = []

    async def on_event(self, event: WatchEvent) -> None:
        self.events.append(event)

    async def on_error(self, message: str) -> None:
        self.errors.append(message)

    def steps(self) -> list[int]:
        """currentStepIndex of every Rollout event after the first, in delivery order."""
        rollouts = [e for e in self.events if e.kind == "Rollout"]
        return [e.object["status"].get("currentStepIndex") for e in rollouts[1:]]

    def rvs(self) -> list[str]:
        return [e.object["metadata"]["resourceVersion"] for e in self.events if e.kind == "Rollout"]


def step_to(sim: KubeSim, index: int) -> None:
    sim.patch("rollouts", NS, NAME, {"status": {"currentStepIndex": index}}, subresource="status")


@pytest.fixture
async def watching(
    sim: KubeSim, kube: KubeRollouts
) -> AsyncIterator[tuple[Recorder, asyncio.Task[None]]]:
    sim.create(paused_rollout(currentStepIndex=0))
    recorder = Recorder()
    kube.on_watch_error = recorder.on_error
    task = asyncio.create_task(kube.watch([NS], recorder.on_event))
    await eventually(lambda: len(recorder.events) == 1 and sim.open_watches() == 3, what="list")
    yield recorder, task
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_watch_delivers_every_transition_once_in_order(
    sim: KubeSim, watching: tuple[Recorder, asyncio.Task[None]]
) -> None:
    recorder, _ = watching
    first = recorder.events[0]
    assert (first.type, first.kind, first.object["metadata"]["name"]) == ("ADDED", "Rollout", NAME)
    run = load_fixture("argo-rollouts/testdata/rollout-aborted.analysisrun-failed.yaml")
    run["metadata"] = {"name": "payment-router-run", "namespace": NS}
    sim.create(run)
    for i in range(1, 9):
        step_to(sim, i)
    await eventually(lambda: recorder.steps() == list(range(1, 9)), what="8 transitions")
    await eventually(lambda: any(e.kind == "AnalysisRun" for e in recorder.events))
    assert len(set(recorder.rvs())) == len(recorder.rvs())
    assert recorder.errors == []


async def test_watch_resumes_after_dropped_streams_without_repeats(
    sim: KubeSim, watching: tuple[Recorder, asyncio.Task[None]]
) -> None:
    recorder, _ = watching
    for i in range(1, 4):
        step_to(sim, i)
    await eventually(lambda: recorder.steps() == [1, 2, 3])
    assert sim.drop_watches() == 3
    for i in range(4, 7):
        step_to(sim, i)  # some land while the watch reconnects
    await eventually(lambda: recorder.steps() == [1, 2, 3, 4, 5, 6], what="resume")
    await eventually(lambda: sim.open_watches() == 3)
    resumed = [
        r.param("resourceVersion")
        for r in sim.requests_matching("GET", "rollouts")
        if str(r.param("watch")).lower() == "true"
    ]
    assert len(resumed) == 2 and resumed[1] not in ("", "0", None)
    assert len(set(recorder.rvs())) == len(recorder.rvs())
    assert recorder.errors == []


async def test_watch_relists_after_410_and_survives_an_outage(
    sim: KubeSim, watching: tuple[Recorder, asyncio.Task[None]], caplog: pytest.LogCaptureFixture
) -> None:
    recorder, _ = watching
    caplog.set_level(logging.WARNING, logger="bot.adapters.kubernetes")

    def retries() -> int:
        return sum("retrying in" in r.getMessage() for r in caplog.records)

    sim.set_unreachable(True)
    sim.drop_watches()
    await eventually(lambda: len(recorder.errors) == 3, what="one report per watch (3 kinds)")
    step_to(sim, 4)
    step_to(sim, 5)
    sim.compact()  # the watch's resourceVersion is now too old: 410 on reconnect
    await eventually(lambda: retries() >= 8, what="several backoff rounds while down")
    assert len(recorder.errors) == 3
    assert "Kubernetes API is unreachable" in recorder.errors[0]
    sim.set_unreachable(False)
    await eventually(lambda: recorder.steps()[-1:] == [5], what="last state after re-list")
    latest = [e for e in recorder.events if e.kind == "Rollout"][-1]
    assert latest.type == "ADDED"  # delivered by the re-list
    step_to(sim, 6)
    await eventually(lambda: recorder.steps()[-1:] == [6], what="watching again")
    assert len(recorder.errors) == 3


async def test_cancel_stops_every_watch_within_a_second(
    sim: KubeSim, watching: tuple[Recorder, asyncio.Task[None]]
) -> None:
    _, task = watching
    started = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - started < 1.0
    await eventually(lambda: sim.open_watches() == 0, timeout=1.0)


class Cursors:
    def __init__(self) -> None:
        self.saved: dict[tuple[str, str], str] = {}

    async def get_cursor(self, kind: str, namespace: str) -> str | None:
        return self.saved.get((kind, namespace))

    async def set_cursor(self, kind: str, namespace: str, resource_version: str) -> None:
        self.saved[(kind, namespace)] = resource_version


async def test_a_restart_delivers_only_what_changed_since_the_persisted_cursor(
    sim: KubeSim, kubeconfig: Path
) -> None:
    """The cursor survives the process: the next one lists (its cache must hold every
    object) but hands on only the Rollouts changed while nobody watched, once, at their
    latest state; an unchanged one is not delivered again."""
    sim.create(paused_rollout(currentStepIndex=0))
    quiet = paused_rollout(currentStepIndex=0)
    quiet["metadata"]["name"] = "checkout"
    sim.create(quiet)
    cursors = Cursors()
    first, second = Recorder(), Recorder()
    kube = make(kubeconfig, cursor_store=cursors)
    try:
        task = asyncio.create_task(kube.watch([NS], first.on_event))
        await eventually(lambda: len(first.events) == 2 and sim.open_watches() == 3)
        step_to(sim, 1)
        await eventually(lambda: first.steps()[-1:] == [1])
        await eventually(lambda: cursors.saved.get(("Rollout", "")) == first.rvs()[-1])
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await eventually(lambda: sim.open_watches() == 0, what="the first process's watches gone")

        step_to(sim, 2)  # while nobody watches
        step_to(sim, 3)
        task = asyncio.create_task(kube.watch([NS], second.on_event))
        await eventually(lambda: sim.open_watches() == 3, what="watching again")
        step_to(sim, 4)  # a change after the restart: delivered after the catch-up
        await eventually(
            lambda: second.steps()[-1:] == [4],
            what=lambda: f"live again: {[(e.type, e.object.get('status')) for e in second.events]}",
        )
        delivered = [
            (e.type, e.object["metadata"]["name"], e.object["status"]["currentStepIndex"])
            for e in second.events
            if e.kind == "Rollout"
        ]
        assert delivered == [("MODIFIED", NAME, 3), ("MODIFIED", NAME, 4)]
        assert kube.informer is not None and kube.informer.get("Rollout", NS, "checkout")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    finally:
        kube.close()


async def test_an_unexpected_error_in_one_watch_does_not_end_the_watch(
    sim: KubeSim, kubeconfig: Path
) -> None:
    """A surprise (here: a list answered 200 with something that is not a list, as a proxy
    in the way may answer) is reported and retried like an outage; it must not end the
    other kinds' watches or the watch task."""
    sim.create(paused_rollout(currentStepIndex=0))
    recorder = Recorder()
    kube = make(kubeconfig, on_watch_error=recorder.on_error)
    sim.fail_next(1, status=200, path_contains="/rollouts")
    try:
        task = asyncio.create_task(kube.watch([NS], recorder.on_event))
        await eventually(lambda: len(recorder.events) == 1, what="the list after the retry")
        step_to(sim, 1)
        await eventually(lambda: recorder.steps() == [1], what="watching")
        assert not task.done()
        assert len(recorder.errors) == 1 and "rollouts" in recorder.errors[0]
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    finally:
        kube.close()

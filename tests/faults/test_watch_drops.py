"""Fault 2 (issue 15): the Kubernetes API drops every watch every few seconds and now and then
answers 410 Expired, for ten minutes of simulated time while three Rollouts move. rollbot
misses no transition, checked against the Kubernetes sim's own log.

Figure: ``watch_missed_transitions`` (must be 0), printed with the transitions checked, the
ones coalesced, the drops, rollbot's reconnects, the 410s and rollbot's re-lists after them,
and the longest catch-up.

The world: `SimWorld` at 20× (ten simulated minutes take 30 s), the Argo controller sim moving
payment-router through its canary steps, and two more Rollouts with one-minute steps (ledger
in the same namespace, search in another) that a GitOps stand-in keeps
releasing: a new revision a minute after each one settles, every other search revision
failing its analysis (the controller aborts it). rollbot's watch is three streams across
the cluster (Rollouts, AnalysisRuns, Argo's ReplicaSets), whatever the namespaces. The sim
cuts every watch each 5 simulated seconds (`KubeSim.drop_watches_every`), and every fourth
cut answers the reconnects 410 Expired, so rollbot lists again.

What "missed" means, and why:

* The sim's log (`KubeSim.changes`) holds every write to each Rollout with its
  resourceVersion and time. A *transition* is a write after which the Rollout's (revision,
  phase, step index, aborted, analysis status) differs from before it: what the card and
  incident engines act on. Its state holds until the next transition.
* What rollbot saw: each read of a Rollout its watch hands to the engines
  (`bot.rollouts.watch` logs it at DEBUG with the resourceVersion read). A transition is
  *seen* when rollbot read a resourceVersion within its state's lifetime.
* What rollbot promises: on every event the watch reads the Rollout as its cache holds it
  then (reads are coalesced), resumes from its last resourceVersion after a drop, lists
  again after a 410; so it reads the latest state within a reconnect's delay of any
  change, and sees every state that lasts longer than that. It does not promise a state
  overwritten before it could read it: a watch re-listed after a 410 is only owed the
  latest state (the Kubernetes watch contract), and even on an unbroken watch rollbot
  reads the Rollout from its cache as the latest event left it, not each event's copy
  (refreshes are coalesced).
  So a missed transition is one whose state held for ``HOLD`` (2 s, 40 simulated seconds:
  four times the watch's reconnect delay after a drop, at most 0.5 s) or more and was never
  read. There must be none. The shorter ones are the controller's intermediate writes inside
  one reconcile pass (a new Rollout before its first status, a new revision's annotation
  milliseconds before its status); they are counted as coalesced. Every state the Rollouts
  settle in lasts a simulated minute or more (3 s), so nothing sits near the line.
* And: every Rollout's final state is read while the faults go on (eventual delivery, the
  positive evidence that the run is over), rollbot never reads a Rollout going back (its
  resourceVersions per Rollout never decrease), and every resourceVersion it read is in
  the log.

The observable is the watch's DEBUG line, not the Slack thread: it is written where the watch
hands a state to the engines, with the resourceVersion read, so each observation is pinned
to one entry of the sim's log. Thread lines add the card engine's own deliberate filtering
(a card only once something hurts, repeats and rollbot's own action held back), which is
not the watch's doing; a metric counts events, not which states.

Checked to fail when the watch is broken: a re-list that hands on only new objects (not
changed ones), or a 4 s pause before reconnecting after a drop, each missed 3-4 transitions.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from bot.sim.harness import CHANNEL, SimWorld
from bot.sim.kube import KubeSim
from bot.sim.kube.store import Event
from bot.sim.world import NAMESPACE, ROLLOUT, payment_router_analysis_template

SPEED = 20.0  # simulated seconds per real second
RUN = 600.0  # simulated seconds of faults while the Rollouts move
DROP_EVERY = 5.0  # simulated seconds between two cuts of every watch
EXPIRE_EVERY = 4  # every fourth cut answers the reconnects 410 Expired
HOLD = 2.0  # real seconds: a state that held this long must have been read
SETTLE = 60.0  # simulated seconds a release rests, settled, before the next one
FAST_STEP = "60s"  # each pause and analysis of the fast Rollouts
ANALYSIS_STEP = 2  # the fast Rollouts' analysis step

REVISION = "rollout.argoproj.io/revision"
FAST = {"ledger": NAMESPACE, "search": "search"}  # rollout → namespace
FAILING = "search"  # every other revision of it fails its analysis


def fast_template(namespace: str) -> dict[str, Any]:
    """One metric, measured twice 30 s apart: a minute of analysis."""
    template = payment_router_analysis_template(namespace)
    template["metadata"] = {"name": "fast-slo", "namespace": namespace}
    metric = template["spec"]["metrics"][0]
    metric.update(interval="30s", count=2)
    template["spec"]["metrics"] = [metric]
    return template


def fast_rollout(name: str, namespace: str, version: int) -> dict[str, Any]:
    """20 % → pause 1m → analysis 1m → 50 % → pause 1m → 100 %."""
    image = f"registry.example.com/{name}:1.0.{version}"
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": image}]},
            },
            "strategy": {
                "canary": {
                    "steps": [
                        {"setWeight": 20},
                        {"pause": {"duration": FAST_STEP}},
                        {"analysis": {"templates": [{"templateName": "fast-slo"}]}},
                        {"setWeight": 50},
                        {"pause": {"duration": FAST_STEP}},
                        {"setWeight": 100},
                    ]
                }
            },
        },
    }


def state_of(obj: dict[str, Any]) -> tuple[Any, ...]:
    """(revision, phase, step index, aborted, analysis status), from the raw object."""
    status = obj.get("status") or {}
    run = (status.get("canary") or {}).get("currentStepAnalysisRunStatus") or {}
    return (
        (obj["metadata"].get("annotations") or {}).get(REVISION),
        status.get("phase"),
        status.get("currentStepIndex"),
        bool(status.get("abort")),
        run.get("status"),
    )


@dataclass(frozen=True)
class Transition:
    """A write that changed the state, and how long the state held (in rv and in time)."""

    rv: int
    at: float
    state: tuple[Any, ...]
    until_rv: int | None  # the next transition's resourceVersion (None: it still holds)
    until: float | None

    def read_within(self, reads: list[tuple[int, float]]) -> bool:
        return any(
            rv >= self.rv and (self.until_rv is None or rv < self.until_rv) for rv, _ in reads
        )


def transitions(events: list[Event]) -> list[Transition]:
    starts: list[Event] = []
    for event in events:
        if not starts or state_of(event.obj) != state_of(starts[-1].obj):
            starts.append(event)
    nexts: list[Event | None] = [*starts[1:], None]
    return [
        Transition(
            ev.rv,
            ev.at,
            state_of(ev.obj),
            nxt.rv if nxt else None,
            nxt.at if nxt else None,
        )
        for ev, nxt in zip(starts, nexts, strict=True)
    ]


class Reads(logging.Handler):
    """Every read the watch handed to the engines: (rollout, resourceVersion, time)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.reads: list[tuple[str, int, float]] = []

    def emit(self, record: logging.LogRecord) -> None:
        rv = getattr(record, "resource_version", None)
        if rv:
            self.reads.append((str(getattr(record, "rollout", "")), int(rv), record.created))

    def of(self, key: str) -> list[tuple[int, float]]:
        return [(rv, at) for k, rv, at in self.reads if k == key]


@pytest.fixture
def reads() -> Iterator[Reads]:
    logger = logging.getLogger("bot.rollouts.watch")
    handler, level = Reads(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


def settled(obj: dict[str, Any] | None) -> bool:
    """Healthy or aborted, in a status written for the Rollout's current spec."""
    if not obj:
        return False
    status = obj.get("status") or {}
    observed = status.get("observedGeneration") == str(obj["metadata"].get("generation"))
    return observed and status.get("phase") in ("Healthy", "Degraded")


async def release_train(world: SimWorld, name: str, namespace: str, released: list[str]) -> None:
    """A GitOps stand-in: a new revision of `name` a simulated minute after each one settles
    (healthy or aborted), until cancelled; every other revision of FAILING fails its
    analysis. Appends each release to `released`."""
    version = 1
    while True:
        await world.wait_for(
            lambda: settled(world.kube.get("rollouts", namespace, name)),
            timeout=RUN / SPEED,
            what=f"{name} to settle",
        )
        rest_until = world.clock() + SETTLE
        await world.wait_for(
            lambda until=rest_until: world.clock() >= until,
            timeout=SETTLE,
            what="a simulated minute's rest",
        )
        version += 1
        outcome = "Failed" if name == FAILING and version % 2 == 0 else "Successful"
        world.argo.script_analysis(namespace, name, step_index=ANALYSIS_STEP, outcome=outcome)
        template = copy.deepcopy(fast_rollout(name, namespace, version)["spec"]["template"])
        world.kube.patch("rollouts", namespace, name, {"spec": {"template": template}})
        released.append(f"{name}:1.0.{version}")


def lists_and_watches(kube: KubeSim) -> tuple[int, int]:
    """rollbot's collection lists and watch requests, as the sim recorded them."""
    lists = watches = 0
    for r in kube.requests_matching("GET"):
        if not r.path.endswith(("/rollouts", "/analysisruns", "/replicasets")):
            continue
        if str(r.param("watch", "")).lower() == "true":
            watches += 1
        else:
            lists += 1
    return lists, watches


@pytest.mark.timeout(120)
async def test_no_transition_missed_while_watches_drop_and_expire(reads: Reads) -> None:
    """FIGURE watch_missed_transitions: Rollout transitions in the sim's log whose state
    held 2 s (40 simulated) or more and that rollbot never read, over ten simulated
    minutes of every watch cut each 5 simulated seconds and every fourth cut answered 410
    Expired (0). Also printed: the transitions checked and coalesced, the sim's cuts and
    410s, rollbot's reconnects and re-lists, its longest catch-up, the wall time."""
    started = time.monotonic()
    extra = {
        name: {"namespace": namespace, "rollout": name, "channel": CHANNEL}
        for name, namespace in FAST.items()
    }
    released: list[str] = []
    async with SimWorld(speed=SPEED, extra_services=extra) as world:
        kube = world.kube
        for name, namespace in FAST.items():
            if kube.get("analysistemplates", namespace, "fast-slo") is None:
                kube.create(fast_template(namespace))
            kube.create(fast_rollout(name, namespace, 1))
        loops = 3  # Rollouts, AnalysisRuns and ReplicaSets, each across the cluster
        await world.wait_for(
            lambda: kube.open_watches() == loops, timeout=10, what="rollbot's watches"
        )
        lists0, watches0 = lists_and_watches(kube)

        t0, faults_from = world.clock(), time.time()
        kube.drop_watches_every(DROP_EVERY / SPEED, expire_every=EXPIRE_EVERY)
        trains = [
            asyncio.create_task(release_train(world, name, namespace, released))
            for name, namespace in FAST.items()
        ]
        await world.wait_for(
            lambda: world.clock() >= t0 + RUN or any(t.done() for t in trains),
            timeout=RUN / SPEED + 10,
            what="ten simulated minutes",
        )
        for train in trains:
            train.cancel()
        ended = await asyncio.gather(*trains, return_exceptions=True)
        assert all(isinstance(e, asyncio.CancelledError) for e in ended), ended
        world.argo.stop()  # the Rollouts stop moving: the log now holds all there is
        stopped, sim_minutes = time.time(), (world.clock() - t0) / 60

        keys = [f"{NAMESPACE}/{ROLLOUT}"] + [f"{ns}/{name}" for name, ns in FAST.items()]
        logs = {key: kube.changes("rollouts", *key.split("/")) for key in keys}
        # Positive evidence the run is over: rollbot has read every Rollout's final state,
        # the faults still on; then each 410 the sim answered has been followed by a list.
        await world.wait_for(
            lambda: all(logs[k][-1].rv in {rv for rv, _ in reads.of(k)} for k in keys),
            timeout=30,
            what="rollbot to read every Rollout's final state",
        )
        kube.drop_watches_every(None)
        expired = kube.watches_expired
        await world.wait_for(
            lambda: lists_and_watches(kube)[0] - lists0 >= expired,
            timeout=10,
            what="a list after every 410",
        )
        lists, watches = lists_and_watches(kube)

    checked, coalesced, missed = 0, 0, []
    catch_up = longest_coalesced = 0.0
    for key, events in logs.items():
        seen = reads.of(key)
        rvs = [rv for rv, _ in seen]
        assert rvs == sorted(rvs), f"{key}: rollbot read the Rollout going back: {rvs}"
        assert set(rvs) <= {ev.rv for ev in events}, f"{key}: read a state not in the log"
        for t in transitions(events):
            if t.until is not None and t.until < faults_from:
                continue  # the seeded history, over before the faults began
            held = (t.until if t.until is not None else stopped) - t.at
            if held < HOLD:
                if not t.read_within(seen):
                    coalesced += 1
                    longest_coalesced = max(longest_coalesced, held)
                continue
            checked += 1
            if not t.read_within(seen):
                missed.append(f"{key} at rv {t.rv}: {t.state}, held {held:.1f} s")
                continue
            catch_up = max(catch_up, min(at for rv, at in seen if rv >= t.rv) - t.at)

    print(f"FIGURE watch_missed_transitions={len(missed)}")
    print(f"FIGURE watch_transitions_checked={checked}")
    print(f"FIGURE watch_coalesced_transients={coalesced}")
    print(f"FIGURE watch_longest_coalesced_ms={longest_coalesced * 1000:.0f}")
    print(f"FIGURE watch_drops={kube.watches_dropped}")
    print(f"FIGURE watch_reconnects={watches - watches0}")
    print(f"FIGURE watch_410s={expired}")
    print(f"FIGURE relists_after_410={lists - lists0}")
    print(f"FIGURE watch_max_catch_up_s={catch_up:.2f}")
    print(f"FIGURE releases={len(released)} sim_minutes={sim_minutes:.1f}")
    print(f"FIGURE wall_s={time.monotonic() - started:.1f}")
    assert missed == [], missed
    assert checked >= 20, f"too few transitions to say much: {checked}"
    assert kube.watches_dropped >= RUN / DROP_EVERY / 2, "the watches were hardly cut"
    assert expired >= 5, "hardly a 410"

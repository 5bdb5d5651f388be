"""The Rollout watch's event handling (bot.rollouts.watch), with the Rollouts and
incident-engine collaborators faked.

Aspects under test:
- a card refresh that fails unexpectedly does not drop the refresh coalesced behind it
  (an event that arrived meanwhile is still rendered), and does not escape the event's task;
- every read handed to the engines is logged at DEBUG with the Rollout and the
  resourceVersion read as fields (what tests/faults/test_watch_drops.py observes).
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from bot.core.model import RolloutState
from bot.core.rollouts import parse_rollout
from bot.rollouts import RolloutWatch
from bot.runtime.metrics import Metrics

pytestmark = pytest.mark.timeout(10)

KEY = ("payments", "payment-router")


class FlakyIncidents:
    def __init__(self) -> None:
        self.watch: RolloutWatch | None = None
        self.observed: list[str] = []

    async def on_rollout(self, state: RolloutState) -> None:
        self.observed.append(state.resource_version)
        if len(self.observed) == 1:
            assert self.watch is not None
            await self.watch.refresh(*KEY)  # another watch event arrived meanwhile
            raise RuntimeError("database is locked")


class NoCards:
    """No Rollout here belongs to a catalog service: nothing to show a breaker on."""

    def service_for(self, namespace: str, name: str) -> None:
        return None

    def circuit_known(self, service: str) -> bool:
        return True


class Rollouts:
    def __init__(self) -> None:
        self.reads = 0

    async def cached_state(self, namespace: str, name: str) -> RolloutState:
        self.reads += 1
        return parse_rollout(
            {
                "metadata": {
                    "namespace": namespace,
                    "name": name,
                    "resourceVersion": str(self.reads),
                    "annotations": {"rollout.argoproj.io/revision": "42"},
                },
                "spec": {"strategy": {"canary": {"steps": [{"setWeight": 10}, {"pause": {}}]}}},
                "status": {"phase": "Paused", "currentStepIndex": 1, "abort": self.reads > 1},
            }
        )

    async def watch(self, namespaces: list[str], on_event: Any) -> None:
        raise AssertionError("not watched here")


def watch(incidents: FlakyIncidents) -> RolloutWatch:
    none: Any = None
    made = RolloutWatch(
        namespaces=["payments"],
        rollouts=Rollouts(),  # type: ignore[arg-type]
        cards=NoCards(),
        incidents=incidents,  # type: ignore[arg-type]
        releases=none,
        card_store=none,
        circuits=none,
        metrics=Metrics(),
    )
    incidents.watch = made
    return made


async def test_an_unexpected_refresh_failure_keeps_the_coalesced_refresh(caplog):
    incidents = FlakyIncidents()
    w = watch(incidents)
    await w.refresh(*KEY)
    assert incidents.observed == ["1", "2"]
    assert not w.refreshing
    logged = [r for r in caplog.records if "could not refresh the card" in r.getMessage()]
    assert len(logged) == 1 and logged[0].exc_info is not None


async def test_every_read_handed_to_the_engines_is_logged_with_its_resource_version(caplog):
    caplog.set_level(logging.DEBUG, logger="bot.rollouts.watch")
    incidents = FlakyIncidents()
    await watch(incidents).refresh(*KEY)
    reads = [r for r in caplog.records if hasattr(r, "resource_version")]
    assert [(r.rollout, r.resource_version) for r in reads] == [  # type: ignore[attr-defined]
        ("payments/payment-router", "1"),
        ("payments/payment-router", "2"),
    ]
    assert [r.levelno for r in reads] == [logging.DEBUG, logging.DEBUG]
    assert reads[1].getMessage() == (
        "read payments/payment-router at resourceVersion 2: revision 42, Paused, step 1/2, "
        "aborted, analysis none"
    )

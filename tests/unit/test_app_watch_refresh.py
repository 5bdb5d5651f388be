"""Rollbot's watch-event handling (bot.app), with the Rollouts and incident-engine
collaborators faked.

Aspects under test:
- a card refresh that fails unexpectedly does not drop the refresh coalesced behind it
  (an event that arrived meanwhile is still rendered), and does not escape the event's task.
"""

from __future__ import annotations

from typing import Any

import pytest

from bot.runtime.metrics import Metrics
from bot.wiring import Rollbot

pytestmark = pytest.mark.timeout(10)

KEY = ("payments", "payment-router")


class FlakyIncidents:
    def __init__(self, rollbot: Rollbot) -> None:
        self.rollbot = rollbot
        self.observed: list[str] = []

    async def on_rollout(self, state: str) -> None:
        self.observed.append(state)
        if len(self.observed) == 1:
            self.rollbot._pending[KEY] = True  # another watch event arrived meanwhile
            raise RuntimeError("database is locked")


class NoCards:
    """No Rollout here belongs to a catalog service: nothing to show a breaker on."""

    def service_for(self, namespace: str, name: str) -> None:
        return None


class Rollouts:
    def __init__(self) -> None:
        self.reads = 0

    async def get_state(self, namespace: str, name: str) -> str:
        self.reads += 1
        return f"state {self.reads}"


def rollbot() -> Rollbot:
    none: Any = None
    bot = Rollbot(
        settings=none,
        store=none,
        chat=none,
        rollouts=Rollouts(),  # type: ignore[arg-type]
        cards=none,
        responder=none,
        bolt=none,
        metrics=Metrics(),
        web_client=none,
        work=none,
        incidents=none,
        releases=none,
    )
    bot.incidents = FlakyIncidents(bot)  # type: ignore[assignment]
    bot.cards = NoCards()  # type: ignore[assignment]
    return bot


async def test_an_unexpected_refresh_failure_keeps_the_coalesced_refresh(caplog):
    bot = rollbot()
    await bot._refresh(*KEY)
    assert bot.incidents.observed == ["state 1", "state 2"]  # type: ignore[attr-defined]
    assert bot._pending == {}
    logged = [r for r in caplog.records if "could not refresh the card" in r.getMessage()]
    assert len(logged) == 1 and logged[0].exc_info is not None

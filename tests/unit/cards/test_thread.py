"""bot.cards.Cards: one executed action is one thread line (issue 14).

One abort used to add four to seven lines to the card's thread: the watch's transient
state under the patch, the incident recovering, the action, the watch's final state. The
card now holds the watch's lines back from `acting` to `report` and leaves out what the
action explains (`bot.core.timeline.explains`). Aspects, as a table of steps → the lines
the thread got after the card's first:

- a verified abort: the transient aborted state is held and dropped, the action's line is
  the only one, every later aborted state is not news; `explained` says so for the
  incident engine, in flight and after;
- a failed abort: the failure's line, then the held line (what the watch saw is news
  when the action did not do it), and later states as usual;
- a verified promote: the state it read back is not said again; the Rollout's next own
  change is;
- a retry after the abort ends the abort's explanation: the controller aborting again by
  itself is a line;
- a circuit flip's report (not a Rollout action) leaves a Rollout action in flight alone;
- an action ended by an error before its report (`not_acting`) lets the watch's lines go
  on; another action's end does not;
- two replicas on one database (issue 15): an abort executed by a standby is one line too
  (the leader's watch reads the gate from the card's record, in flight and once
  verified), the standby never edits the card's message, and the leader renders it from
  the record once marked (`render_marked`: once, then nothing is left); a breaker a
  standby read back is shown by the leader the same way.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from bot.cards import Cards, summary_line
from bot.core.model import (
    FlagAction,
    FlagState,
    MessageRef,
    Outcome,
    RolloutAction,
)
from bot.settings import ServiceSettings
from bot.store import open_store
from tests.states import NOW
from tests.unit.core.test_timeline import ABORTED, ABORTING, PAUSED

pytestmark = pytest.mark.timeout(30)

SERVICE = "payment-router"

ABORTED_LATER = dataclasses.replace(ABORTED, resource_version="1009", message="RolloutAborted: x")
PROMOTED = dataclasses.replace(
    PAUSED,
    phase="Progressing",
    message="",
    step_index=6,
    canary_weight=50,
    controller_pause=False,
    pause_reasons=(),
    analysis=None,
)
NEXT_PAUSE = dataclasses.replace(PROMOTED, phase="Paused", step_index=7, controller_pause=True)
RETRIED = dataclasses.replace(PROMOTED, step_index=0, canary_weight=10)


class FakeChat:
    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.updates: list[dict[str, Any]] = []

    async def post(
        self,
        channel: str,
        *,
        text: str,
        blocks: list[dict[str, Any]] | None = None,
        thread_ts: str | None = None,
        key: str | None = None,
    ) -> MessageRef:
        self.posts.append({"text": text, "thread_ts": thread_ts})
        return MessageRef("C0PAY", f"1700000000.{len(self.posts):06d}")

    async def update(self, ref: MessageRef, *, text: str, blocks: list[dict[str, Any]]) -> None:
        self.updates.append({"ts": ref.ts, "text": text, "blocks": blocks})


def outcome(action: RolloutAction | FlagAction, verified: bool = True) -> Outcome:
    return Outcome(action, "U0ONCALL", NOW, verified, 0.8)


class ThreadCards(Cards):
    """The real Cards with its fake chat at hand, to read the thread back."""

    def __init__(self, chat: FakeChat, **kw: Any) -> None:
        super().__init__(chat=chat, **kw)
        self.fake_chat = chat


@pytest.fixture
async def cards(tmp_path):
    store = await open_store(f"sqlite:///{tmp_path / 'rollbot.db'}")
    catalog = {
        SERVICE: ServiceSettings(
            namespace="payments", rollout="payment-router", channel="#payments-deploys"
        )
    }
    made = ThreadCards(FakeChat(), store=store, catalog=catalog, update_interval=0.0)
    yield made
    await made.close()
    await store.close()


def thread(cards: ThreadCards) -> list[str]:
    """The thread's lines after the card's first, without their time stamps."""
    posts = cards.fake_chat.posts
    lines = [p["text"].split("` ", 1)[1] for p in posts if p["thread_ts"] is not None]
    return lines[1:]


async def test_a_verified_abort_is_one_line(cards: ThreadCards) -> None:
    await cards.observe(PAUSED)  # the card and its first line
    await cards.acting(SERVICE, PAUSED, RolloutAction.ABORT)
    assert cards.explained(ABORTING) and not cards.explained(PAUSED)
    await cards.observe(ABORTING)  # held
    await cards.report(SERVICE, ABORTED, outcome(RolloutAction.ABORT), "Aborted by <@U0ONCALL>")
    await cards.observe(ABORTED)
    await cards.observe(ABORTED_LATER)
    assert thread(cards) == ["Aborted by <@U0ONCALL>"]
    assert cards.explained(ABORTED_LATER)


async def test_a_failed_abort_tells_what_the_watch_saw(cards: ThreadCards) -> None:
    await cards.observe(PAUSED)
    await cards.acting(SERVICE, PAUSED, RolloutAction.ABORT)
    await cards.observe(ABORTING)
    failed = "abort by <@U0ONCALL> FAILED: the API server said 500"
    await cards.report(SERVICE, PAUSED, outcome(RolloutAction.ABORT, verified=False), failed)
    assert not cards.explained(ABORTED)
    await cards.observe(ABORTED)
    assert thread(cards) == [failed, summary_line(ABORTING), summary_line(ABORTED)]


async def test_a_verified_promote_is_not_said_again_but_what_follows_is(cards: ThreadCards) -> None:
    await cards.observe(PAUSED)
    await cards.acting(SERVICE, PAUSED, RolloutAction.PROMOTE)
    assert not cards.explained(PROMOTED)  # only an abort explains states in flight
    await cards.observe(PROMOTED)  # held
    line = "Promoted by <@U0ONCALL>: now at step 6/9, canary 50%"
    await cards.report(SERVICE, PROMOTED, outcome(RolloutAction.PROMOTE), line)
    await cards.observe(PROMOTED)
    await cards.observe(NEXT_PAUSE)
    assert thread(cards) == [line, summary_line(NEXT_PAUSE)]


async def test_a_retry_ends_the_abort_s_explanation(cards: ThreadCards) -> None:
    await cards.observe(PAUSED)
    await cards.acting(SERVICE, PAUSED, RolloutAction.ABORT)
    await cards.report(SERVICE, ABORTED, outcome(RolloutAction.ABORT), "Aborted")
    await cards.acting(SERVICE, ABORTED, RolloutAction.RETRY)
    await cards.report(SERVICE, RETRIED, outcome(RolloutAction.RETRY), "Retried")
    await cards.observe(RETRIED)
    await cards.observe(ABORTED_LATER)  # the controller aborted it again, by itself
    assert thread(cards) == ["Aborted", "Retried", summary_line(ABORTED_LATER)]


async def test_a_flag_report_leaves_a_rollout_action_in_flight(cards: ThreadCards) -> None:
    await cards.observe(PAUSED)
    await cards.acting(SERVICE, PAUSED, RolloutAction.ABORT)
    await cards.report(SERVICE, PAUSED, outcome(FlagAction.CIRCUIT_OPEN), "Opened the circuit")
    assert cards.explained(ABORTING)  # the abort is still in flight
    await cards.observe(ABORTING)
    await cards.report(SERVICE, ABORTED, outcome(RolloutAction.ABORT), "Aborted")
    assert thread(cards) == ["Opened the circuit", "Aborted"]


async def test_an_action_ended_without_a_report_lets_the_thread_go_on(cards: ThreadCards) -> None:
    await cards.observe(PAUSED)
    await cards.acting(SERVICE, PAUSED, RolloutAction.ABORT)
    await cards.observe(ABORTING)  # held
    await cards.not_acting(PAUSED, RolloutAction.PROMOTE)  # another action's end: still held
    assert cards.explained(ABORTING)
    await cards.not_acting(PAUSED, RolloutAction.ABORT)  # an error ended it before its report
    assert not cards.explained(ABORTED)
    await cards.observe(ABORTED)
    assert thread(cards) == [summary_line(ABORTED)]


@pytest.fixture
async def replicas(tmp_path):
    """A leader's and a standby's cards on one database, and one Slack."""
    store = await open_store(f"sqlite:///{tmp_path / 'rollbot.db'}")
    catalog = {
        SERVICE: ServiceSettings(
            namespace="payments", rollout="payment-router", channel="#payments-deploys"
        )
    }
    chat = FakeChat()
    leader = ThreadCards(chat, store=store, catalog=catalog, update_interval=0.0)
    standby = ThreadCards(
        chat, store=store, catalog=catalog, update_interval=0.0, leads=lambda: False
    )
    yield leader, standby
    await leader.close()
    await standby.close()
    await store.close()


def _blocks(update: dict[str, Any]) -> str:
    return json.dumps(update["blocks"])


async def test_an_abort_on_a_standby_is_one_line_and_the_leader_edits_the_card(
    replicas: tuple[ThreadCards, ThreadCards],
) -> None:
    leader, standby = replicas
    chat = leader.fake_chat
    await leader.observe(PAUSED)  # the leader's watch: the card and its first line
    await standby.acting(SERVICE, PAUSED, RolloutAction.ABORT)
    await leader.observe(ABORTING)  # the standby's abort in flight explains it: no line
    assert leader.explained(ABORTING)
    edits = len(chat.updates)
    await standby.report(SERVICE, ABORTED, outcome(RolloutAction.ABORT), "Aborted by <@U0ONCALL>")
    assert len(chat.updates) == edits  # the standby never edits the message
    assert await leader.render_marked() == 1
    assert "Aborted by <@U0ONCALL>" in _blocks(chat.updates[-1])
    assert await leader.render_marked() == 0  # taken once
    await leader.observe(ABORTED)
    await leader.observe(ABORTED_LATER)
    assert thread(leader) == ["Aborted by <@U0ONCALL>"]
    assert leader.explained(ABORTED_LATER)


async def test_a_breaker_read_back_on_a_standby_is_shown_by_the_leader(
    replicas: tuple[ThreadCards, ThreadCards],
) -> None:
    leader, standby = replicas
    chat = leader.fake_chat
    await leader.observe(PAUSED)
    closed = FlagState("payments.circuit", "default", "production", False, "unleash")
    await leader.set_circuit(SERVICE, closed)
    edits = len(chat.updates)
    await standby.set_circuit(SERVICE, dataclasses.replace(closed, enabled=True))
    assert len(chat.updates) == edits
    assert await leader.render_marked() == 1
    assert len(chat.updates) == edits + 1
    assert '"circuit": null' not in _blocks(chat.updates[-1])
    # The leader reads the breaker closed again (a person closed it): shown, not skipped.
    await leader.set_circuit(SERVICE, closed)
    assert len(chat.updates) == edits + 2

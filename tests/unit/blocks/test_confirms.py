"""Every confirm dialog is plain text without mrkdwn marks (issue 14).

Slack shows a confirm dialog's text as plain text: the circuit breaker's dialog showed its
flag key between literal backticks. Aspects:

- walking every card state (each Rollout fixture of Argo's own test data and the
  simulated ones, with no incident or an incident in each state, with the circuit
  breaker unknown, closed or open) and every button on it, each confirm's title and text
  are `plain_text` and carry no backtick, asterisk, `<…|…>` link or HTML entity;
- so does the confirm of every Rollout action button (promote-full is never on a card,
  but its button has a dialog too) on every one of those states;
- the walk meets all five dialogs (abort, promote, promote-full, open and close the
  circuit), so a dialog added elsewhere is noticed;
- the words stay: the flag's key, its environment, the stable revision.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import yaml

from bot.blocks import card as card_blocks
from bot.blocks import rollout as rollout_blocks
from bot.core import rollouts, tiers
from bot.core.model import FlagState, Incident, IncidentState, RolloutAction, RolloutState
from tests.plugins.fixtures import rollout_fixture_paths

NOW = datetime(2024, 5, 14, 14, 3, 12, tzinfo=UTC)
FLAG = "payments.new-router.circuit-open"
OTHERS = ("payments.new-router.release", "payments.new-router.experiment")
MARKS = ("`", "*", "<", ">", "&lt;", "&gt;", "&amp;")


def states() -> list[RolloutState]:
    return [rollouts.parse_rollout(yaml.safe_load(p.read_text())) for p in rollout_fixture_paths()]


def incident(state: RolloutState, at: IncidentState) -> Incident:
    return Incident(
        service="payment-router",
        namespace=state.namespace,
        rollout=state.name,
        revision=state.revision,
        state=at,
        opened_at=NOW,
        changed_at=NOW,
        firing=frozenset({"rollout"}) if at is IncidentState.OPEN else frozenset(),
        seen=frozenset({"rollout"}),
        first_breach_at=None,
    )


def cards() -> Iterator[list[dict[str, Any]]]:
    for state in states():
        for at in (None, *IncidentState):
            for enabled in (None, False, True):
                circuit = (
                    None
                    if enabled is None
                    else FlagState(FLAG, "default", "production", enabled, "launchdarkly")
                )
                options = tiers.tier_options(
                    service="payment-router",
                    state=state,
                    incident=None if at is None else incident(state, at),
                    circuit_flag=FLAG,
                    circuit_available=True,
                    gitops_repo="git@example.com:platform/configs.git",
                    gitops_path="services/payment-router",
                    sha_annotation="rollbot.io/git-sha",
                    runbook_url="https://rollbot.example.com/runbooks/payment-router",
                    circuit_open=bool(enabled),
                )
                yield card_blocks.rollout_card(
                    service="payment-router",
                    state=state,
                    trouble=rollouts.trouble(state),
                    epoch=3,
                    now=NOW,
                    incident=None if at is None else incident(state, at),
                    tiers=options,
                    circuit_flag=FLAG,
                    circuit=circuit,
                    circuit_environment="production",
                    other_flags=OTHERS,
                )


def buttons(blocks: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for block in blocks:
        for element in block.get("elements") or []:
            if element.get("type") == "button":
                yield element
        accessory = block.get("accessory")
        if isinstance(accessory, dict) and accessory.get("type") == "button":
            yield accessory


def assert_plain(confirm: dict[str, Any]) -> None:
    for part in ("title", "text", "confirm", "deny"):
        assert confirm[part]["type"] == "plain_text", (part, confirm)
        shown = confirm[part]["text"]
        assert not [m for m in MARKS if m in shown], (part, shown)


def test_every_confirm_on_every_card_is_plain() -> None:
    seen: dict[str, str] = {}
    for blocks in cards():
        for button in buttons(blocks):
            if "confirm" in button:
                assert_plain(button["confirm"])
                seen.setdefault(button["action_id"], button["confirm"]["text"]["text"])
    assert set(seen) == {"rollout_abort", "rollout_promote", "circuit_open", "circuit_close"}
    # The words stay when the marks go.
    assert f"Set {FLAG} in production to true" in seen["circuit_open"]
    assert (
        "payments.new-router.release, payments.new-router.experiment are ignored"
        in (seen["circuit_open"])
    )
    assert f"Set {FLAG} to false in production" in seen["circuit_close"]


@pytest.mark.parametrize("action", list(RolloutAction))
def test_every_rollout_action_button_s_confirm_is_plain(action: RolloutAction) -> None:
    dialogs = 0
    for state in states():
        for variant in (state, dataclasses.replace(state, stable_revision=None)):
            button = rollout_blocks.action_button(
                action, service="payment-router", state=variant, epoch=0
            ).to_dict()
            if "confirm" in button:
                assert_plain(button["confirm"])
                dialogs += 1
    has_dialog = action in (RolloutAction.ABORT, RolloutAction.PROMOTE, RolloutAction.PROMOTE_FULL)
    assert (dialogs > 0) is has_dialog


def test_the_dialog_drops_marks_from_outside_words() -> None:
    dialog = rollout_blocks.confirm_dialog(
        title="Abort *x*?", text="Set `a&amp;b` <https://x.example|here>.", confirm="Abort"
    ).to_dict()
    assert dialog["title"] == {"type": "plain_text", "text": "Abort x?"}
    assert dialog["text"] == {"type": "plain_text", "text": "Set a&b here."}

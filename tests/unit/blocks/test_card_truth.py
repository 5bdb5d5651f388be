"""The card tells the truth for the state the service is in (issue 14), as a table over
states: the canary in progress or fully promoted or aborted; the breaker open or shut;
alerts firing or quiet; and what was last done (nothing, a verified abort, a verified
breaker flip, a failed abort).

The rules under test:
- once a mitigation is verified and still in effect, the headline says what was done and
  that it was verified, and the line under it says by whom; the recommendation becomes
  the next step: watch the signals recover, then Tier 3 for the lasting return;
- a mitigation that failed, or one undone since (the Rollout retried, the breaker shut
  again), is never the headline;
- a tier is offered (a button) only when it would change something: no Tier 2 flip once
  an abort put all traffic on stable; no abort on a fully promoted revision;
- Tier 3's words fit the state: "abort alone …" only while a canary can be aborted.
"""

from __future__ import annotations

import dataclasses
import itertools
from datetime import timedelta
from typing import Any

import pytest

from bot.blocks import card as card_blocks
from bot.core import tiers as core_tiers
from bot.core.model import (
    FlagAction,
    FlagState,
    IncidentState,
    Outcome,
    RolloutAction,
    RolloutState,
)
from tests.unit.blocks.test_card import ABORTED, HEALTHY, INCIDENT, NOW, PAUSED, buttons

FLAG = "payments.new-router.circuit-open"

STATES: dict[str, RolloutState] = {"canary": PAUSED, "promoted": HEALTHY, "aborted": ABORTED}
OUTCOMES: dict[str, Outcome | None] = {
    "nothing": None,
    "abort verified": Outcome(RolloutAction.ABORT, "U0ONCALL", NOW, True, 0.8),
    "abort failed": Outcome(RolloutAction.ABORT, "U0ONCALL", NOW, False, 30.0, "timed out"),
    "breaker opened": Outcome(FlagAction.CIRCUIT_OPEN, "U0ONCALL", NOW, True, 0.4),
}
SIGNALS = {
    "firing": INCIDENT,
    "quiet": dataclasses.replace(
        INCIDENT, state=IncidentState.RECOVERING, firing=frozenset(), changed_at=NOW
    ),
}


def circuit(is_open: bool) -> FlagState:
    return FlagState(FLAG, "default", "production", is_open, "unleash", NOW - timedelta(minutes=1))


def render(state: RolloutState, outcome: Outcome | None, is_open: bool, signals: str) -> Any:
    incident = SIGNALS[signals]
    options = core_tiers.tier_options(
        service="payment-router",
        state=state,
        incident=incident,
        circuit_flag=FLAG,
        circuit_available=True,
        gitops_repo="git@example.com:platform/configs.git",
        gitops_path="services/payment-router",
        sha_annotation="rollbot.io/git-sha",
        runbook_url="https://rollbot.example.com/runbooks/payment-router",
        circuit_open=is_open,
    )
    return card_blocks.rollout_card(
        service="payment-router",
        state=state,
        trouble=None,
        epoch=3,
        now=NOW,
        outcome=outcome,
        incident=incident,
        tiers=options,
        circuit_flag=FLAG,
        circuit=circuit(is_open),
        circuit_environment="production",
    )


def text_of(block: dict[str, Any]) -> str:
    text = block.get("text")
    return text["text"] if isinstance(text, dict) else ""


@pytest.mark.parametrize(
    ("state_name", "outcome_name", "is_open", "signals"),
    list(itertools.product(STATES, OUTCOMES, [False, True], SIGNALS)),
)
def test_the_card_fits_the_state(
    state_name: str, outcome_name: str, is_open: bool, signals: str
) -> None:
    state = STATES[state_name]
    outcome = OUTCOMES[outcome_name]
    blocks = render(state, outcome, is_open, signals)
    header = text_of(blocks[0])
    texts = [text_of(b) for b in blocks]
    recommended = next(t for t in texts if t.startswith("👉"))
    offered = set(buttons(blocks))

    # The headline leads with a mitigation exactly when one is verified and in effect.
    in_effect = (outcome_name == "abort verified" and state_name == "aborted") or (
        outcome_name == "breaker opened" and is_open
    )
    if in_effect:
        done = "Aborted" if outcome_name == "abort verified" else "Circuit opened"
        assert header.startswith(f"🛡️ payment-router · {done}, verified · Incident ")
        assert texts[1].startswith(f":white_check_mark: {done} by <@U0ONCALL> at 14:03:12 UTC")
        if state_name == "canary":  # under an open breaker: still best aborted
            assert recommended.startswith("👉 *Recommended: Tier 1 (Abort the rollout)*")
        else:
            assert recommended.startswith(
                "👉 *Next: watch the signals recover, then Tier 3 (Full revert in Git)*"
            )
            assert "the next step once recovered" in recommended
    else:
        assert "verified" not in header and not header.startswith("🛡️")
        assert recommended.startswith("👉 *Recommended: ")
    if outcome_name == "abort failed":
        assert any(t.startswith(":x: Aborted by <@U0ONCALL>") for t in texts)

    # A tier is offered only when it would change something.
    assert ("rollout_abort" in offered) is (state_name == "canary")
    flip = "circuit_close" if is_open else "circuit_open"
    other = "circuit_open" if is_open else "circuit_close"
    assert other not in offered
    if state_name == "aborted" and not is_open:
        assert flip not in offered  # all traffic is on stable: the breaker changes nothing
    else:
        assert flip in offered  # the breaker's own state is always yours to change back
    assert "revert_open" in offered

    # The recommendation follows the state: abort a running canary; flip the breaker of a
    # fully promoted revision; after either mitigation, the lasting return.
    if state_name == "canary":
        assert "Tier 1 (Abort the rollout)" in recommended
    elif state_name == "promoted" and not is_open:
        assert "Tier 2 (Open the circuit breaker)" in recommended
    else:
        assert "Tier 3 (Full revert in Git)" in recommended

    # Tier 3's words fit: "abort alone" only while a canary can be aborted.
    assert ("abort alone" in recommended + "".join(texts)) is (state_name == "canary")


def test_the_notification_text_leads_with_the_verified_mitigation() -> None:
    """What a phone shows: the abort, by whom, verified; then the next step."""
    state, outcome = ABORTED, OUTCOMES["abort verified"]
    text = card_blocks.rollout_card_text(
        service="payment-router",
        state=state,
        trouble=None,
        now=NOW,
        outcome=outcome,
        incident=INCIDENT,
        tiers=core_tiers.tier_options(
            service="payment-router",
            state=state,
            incident=INCIDENT,
            circuit_flag=FLAG,
            circuit_available=True,
            gitops_repo=None,
            gitops_path=None,
            sha_annotation="rollbot.io/git-sha",
            runbook_url=None,
        ),
        circuit=circuit(False),
    )
    assert text.startswith(
        "🛡️ Aborted by <@U0ONCALL> at 14:03:12 UTC, verified in 0.8 s · 🚨 Incident open · "
        "Next: watch recovery, then Tier 3 — Full revert in Git · payment-router revision 42"
    )
    assert text.count("Aborted by") == 1

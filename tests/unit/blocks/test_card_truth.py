"""The card tells the truth for the state the service is in (issue 14), as a table over
states: the canary in progress or fully promoted or aborted; the breaker open or shut;
alerts firing or quiet; what was last done (nothing, a verified abort, a verified
breaker flip, a failed abort); and whether a Tier 3 revert was recorded.

The rules under test:
- once a mitigation is verified and still in effect, the headline says what was done and
  that it was verified, and the line under it says by whom; the recommendation becomes
  the next step: watch the signals recover, then Tier 3 for the lasting return;
- a mitigation that failed, or one undone since (the Rollout retried, the breaker shut
  again), is never the headline;
- a tier is offered (a button) only when it would change something: no Tier 2 flip once
  an abort put all traffic on stable; no abort on a fully promoted revision;
- Tier 3's words fit the state: "abort alone …" only while a canary can be aborted;
- once a Tier 3 revert is recorded: the card says who started it, when, with its link;
  "Record Tier 3 revert…" is gone (the runbook stays); Tier 3 is marked started, never
  recommended; the recommendation is to watch the revert land (after a verified
  mitigation: the signals recover and the revert land), naming Tier 1 until it does while
  a canary can still be aborted; the notification text says so too.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from datetime import timedelta
from typing import Any

import pytest

from bot.blocks import card as card_blocks
from bot.core import tiers as core_tiers
from bot.core.model import (
    FlagAction,
    FlagState,
    Incident,
    IncidentState,
    Outcome,
    RevertStarted,
    RolloutAction,
    RolloutState,
    TierOption,
)
from tests.states import NOW
from tests.unit.blocks.test_card import ABORTED, HEALTHY, INCIDENT, PAUSED, buttons

FLAG = "payments.new-router.circuit-open"
LINK = "https://github.com/acme/gitops/pull/812?a=1&b=2"
REVERTS: dict[str, RevertStarted | None] = {
    "no revert": None,
    "revert recorded": RevertStarted("U0LEAD", LINK, NOW),
}
STARTED = (
    ":rewind: Tier 3 revert started by <@U0LEAD> at 14:03:12 UTC: "
    "<https://github.com/acme/gitops/pull/812?a=1&amp;b=2|"
    "https://github.com/acme/gitops/pull/812?a=1&amp;b=2>"
)

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


def tiers_for(state: RolloutState, incident: Incident, **kw: Any) -> list[TierOption]:
    """The core's tier options for payment-router at `state` (Tier 2 wired to `FLAG`; no
    GitOps repo or runbook unless `kw` names them)."""
    options: dict[str, Any] = {
        "circuit_flag": FLAG,
        "circuit_available": True,
        "gitops_repo": None,
        "gitops_path": None,
        "sha_annotation": "rollbot.io/git-sha",
        "runbook_url": None,
    }
    return core_tiers.tier_options(
        service="payment-router", state=state, incident=incident, **(options | kw)
    )


def render(
    state: RolloutState,
    outcome: Outcome | None,
    is_open: bool,
    signals: str,
    revert: RevertStarted | None = None,
) -> Any:
    incident = SIGNALS[signals]
    options = tiers_for(
        state,
        incident,
        gitops_repo="git@example.com:platform/configs.git",
        gitops_path="services/payment-router",
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
        revert=revert,
    )


def text_of(block: dict[str, Any]) -> str:
    text = block.get("text")
    return text["text"] if isinstance(text, dict) else ""


@pytest.mark.parametrize(
    ("state_name", "outcome_name", "is_open", "signals", "revert_name"),
    list(itertools.product(STATES, OUTCOMES, [False, True], SIGNALS, REVERTS)),
)
def test_the_card_fits_the_state(
    state_name: str, outcome_name: str, is_open: bool, signals: str, revert_name: str
) -> None:
    state = STATES[state_name]
    outcome = OUTCOMES[outcome_name]
    revert = REVERTS[revert_name]
    blocks = render(state, outcome, is_open, signals, revert)
    header = text_of(blocks[0])
    texts = [text_of(b) for b in blocks]
    (recommended,) = [t for t in texts if t.startswith("👉")]
    offered = set(buttons(blocks))

    # The first screen: header, what was done, what is wrong, then the one recommendation
    # right above the buttons; a divider; evidence, facts and the other tiers after it.
    kinds = [b["type"] for b in blocks]
    at = texts.index(recommended)
    divider = kinds.index("divider")
    assert kinds[at + 1 : divider] == ["actions"] * (divider - at - 1) != []
    assert "actions" not in kinds[divider:]
    assert not any(t.startswith(("*Other tiers*", "*Tiers*")) for t in texts[:divider])
    # The recommendation is told once: no star, and its tier is not among the others.
    assert "⭐" not in json.dumps(blocks, ensure_ascii=False)
    others = next((t for t in texts if t.startswith("*Other tiers*")), "")
    for tier in ("Tier 1 (Abort the rollout)", "Tier 2 (Open the circuit breaker)"):
        if f"Recommended: {tier}" in recommended:
            assert tier.replace(" (", " — ").rstrip(")") not in others

    # The headline leads with a mitigation exactly when one is verified and in effect.
    in_effect = (outcome_name == "abort verified" and state_name == "aborted") or (
        outcome_name == "breaker opened" and is_open
    )
    if in_effect:
        done = "Aborted" if outcome_name == "abort verified" else "Circuit opened"
        assert header.startswith(f"🛡️ payment-router · {done}, verified · Incident ")
        assert texts[1].startswith(f":white_check_mark: {done} by <@U0ONCALL> at 14:03:12 UTC")
        # The headline says why the other tiers are not offered: no 🚫 list under it.
        assert "🚫" not in json.dumps(blocks, ensure_ascii=False)
        if revert is not None:
            pass  # the revert's recommendation: below
        elif state_name == "canary":  # under an open breaker: still best aborted
            assert recommended.startswith("👉 *Recommended: Tier 1 (Abort the rollout)*")
        else:
            assert recommended.startswith(
                "👉 *Next: watch the signals recover, then Tier 3 (Full revert in Git)*"
            )
            assert "the next step once recovered" in recommended
    else:
        assert "verified" not in header and not header.startswith("🛡️")
        if revert is None:
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
    assert "runbook_open" in offered
    # One revert per revision: once recorded, nobody is offered to record another.
    assert ("revert_open" in offered) is (revert is None)

    if revert is not None:
        # Who started it, when, with its link (escaped); Tier 3 started, not recommended.
        assert texts.count(STARTED) == 1
        lines = [line for t in texts for line in t.split("\n")]
        # Among the other tiers, Tier 3 is marked started (when it is not the one the
        # 👉 line is about, watching it land).
        for tier3 in [line for line in lines if "*Tier 3 — Full revert in Git*" in line]:
            assert tier3.startswith("⏪ *Tier 3 — Full revert in Git* (started)")
        assert "Recommended: Tier 3" not in recommended and "then Tier 3" not in recommended
        # The recommendation: watch it land (and, after a mitigation, the signals recover);
        # a faster tier that still applies (a canary to abort, the breaker of a fully
        # promoted revision to open) is named for until it lands.
        until = "👉 *Next: watch the Tier 3 revert land; until it does, "
        if state_name == "canary":
            assert recommended.startswith(f"{until}Tier 1 (Abort the rollout)*")
        elif state_name == "promoted" and not is_open:
            assert recommended.startswith(f"{until}Tier 2 (Open the circuit breaker)*")
        elif in_effect:
            assert recommended.startswith(
                "👉 *Next: watch the signals recover and the Tier 3 revert land*"
            )
        else:
            assert recommended.startswith("👉 *Next: watch the Tier 3 revert land* — ")
        assert ("abort alone" in "".join(texts)) is (state_name == "canary")
        return
    assert not any("revert started" in t for t in texts)

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
        tiers=tiers_for(state, INCIDENT),
        circuit=circuit(False),
    )
    assert text.startswith(
        "🛡️ Aborted by <@U0ONCALL> at 14:03:12 UTC, verified in 0.8 s · 🚨 Incident open · "
        "Next: watch recovery, then Tier 3 — Full revert in Git · payment-router revision 42"
    )
    assert text.count("Aborted by") == 1


@pytest.mark.parametrize("state_name", list(STATES))
def test_the_notification_text_says_the_revert_started(state_name: str) -> None:
    """Once recorded, a phone shows who started the revert and to watch it land (a faster
    tier that still applies: that one until it lands), never Tier 3 recommended again."""
    state = STATES[state_name]
    text = card_blocks.rollout_card_text(
        service="payment-router",
        state=state,
        trouble=None,
        now=NOW,
        incident=INCIDENT,
        tiers=tiers_for(state, INCIDENT),
        circuit=circuit(False),
        revert=REVERTS["revert recorded"],
    )
    assert text.startswith("🚨 Incident open · ⏪ Tier 3 revert started by <@U0LEAD>")
    if state_name == "canary":
        assert "until it lands: Tier 1 — Abort the rollout · payment-router" in text
    elif state_name == "promoted":
        assert "until it lands: Tier 2 — Open the circuit breaker · payment-router" in text
    else:
        assert ": watch it land · payment-router revision 42" in text
    assert "Recommended:" not in text

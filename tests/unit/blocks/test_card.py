"""Block Kit builders (bot.blocks), the terminal renderer and available_actions.

Aspects under test:
- available_actions for every kind of Rollout state (table);
- the rollout card for each state: header, the facts (phase, step 3/8, weight, stable and
  canary revision + image, analysis and its message, age, namespace/rollout), trouble,
  outcome line, notice, and which buttons appear;
- buttons: labels, action_ids, danger style, confirm dialog text saying exactly what will
  happen, compact JSON value that round-trips;
- every card is valid Block Kit: the typed models accept it again and Slack's limits hold
  (≤ 50 blocks, text ≤ 3000, header ≤ 150, button text ≤ 75, value ≤ 2000, unique action_id);
- every Rollout fixture in tests/fixtures/argo-rollouts renders through parse_rollout;
- the small texts (timeline, help, error, unknown service, refusal, already done);
- render_text turns a card into readable terminal text;
- the incident card (one card for a Rollout in trouble and an SLO incident): header with
  the incident state, the incident line ("breaching for N min", alerts firing), firing
  alerts (5, then "+N more"), canary-vs-stable evidence against the SLO with breach
  markers and a graph link, "Metrics unavailable" when Prometheus does not answer, the
  three tiers in order with exactly one recommended, no button for an unavailable tier,
  Tier 2's `circuit_open` with a confirm naming the flag, Tier 3's numbered steps and its
  runbook URL button (`runbook_open`);
- the limits hold with hostile input (1,000 alerts, huge reasons and steps, `<>&`), and for
  every combination of incident state × evidence × recommended tier × Rollout state;
- the notification text leads with the incident state and the recommended tier;
- Tier 3's `revert_open` button (no style, no confirm, the card's value) whenever Tier 3 is
  offered, and its modal `revert_record`: title/submit/close, the steps as the card shows
  them, the release SHA, the `revert_url`/`url` and optional `revert_note`/`note` inputs,
  private_metadata that round-trips and stays within 3000 characters; the thread line
  and the reply escape the user's URL and note;
- a recorded Tier 3 revert on the card: who started it, when, with its link (escaped),
  Tier 3 marked started and no `revert_open`, the recommendation to watch it land (valid
  Block Kit for every recommended tier); the answer to a second record names who started
  the first, when, with its link;
- Tier 2 break-glass from the card: a refused circuit click's blocks carry the danger
  "Break glass…" button (`circuit_break_glass`, the card's button value plus its channel
  and ts) only when offered; the `circuit_break_glass` modal: title/submit/close, the flag,
  environment, effect and what makes it loud, the required multiline reason
  `break_glass_reason`/`reason` with min_length 10, private_metadata that round-trips,
  carrying the "Break glass…" click's response_url when it is an http(s) URL and fits in
  3000 characters (left out otherwise); what replaces the refusal once the flip is done:
  who, when (UTC), how it ended (each status, an error escaped and clipped), one section
  and no button.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
from datetime import date, timedelta
from typing import Any

import pytest
import yaml
from slack_sdk.models.blocks import Block

from bot.blocks import card as card_blocks
from bot.blocks import modals, replies
from bot.blocks import rollout as rollout_blocks
from bot.blocks import tiers as tier_blocks
from bot.blocks.terminal import render_text
from bot.core.flags import FLAG_TYPES, FlagInfo, FlagRole, FlagStatus, removal_note
from bot.core.model import (
    AnalysisStatus,
    Evidence,
    FlagState,
    Incident,
    IncidentState,
    MetricPair,
    Outcome,
    RevertStarted,
    RolloutAction,
    RolloutState,
    Tier,
    TierOption,
    Trouble,
    TroubleKind,
)
from bot.core.ports import ActionRecord
from bot.core.tiers import available_actions, is_revert_url
from tests.plugins.fixtures import FIXTURES, analysisrun_fixture_paths, rollout_fixture_paths
from tests.states import NOW, PAUSED_CANARY

PAUSED = PAUSED_CANARY
PROGRESSING = dataclasses.replace(
    PAUSED,
    phase="Progressing",
    message="",
    controller_pause=False,
    pause_reasons=(),
    progressing_reason="ReplicaSetUpdated",
)
ABORTED = dataclasses.replace(
    PAUSED,
    phase="Degraded",
    message="RolloutAborted: Rollout aborted update to revision 42",
    aborted=True,
    aborted_at=NOW,
    canary_weight=0,
    controller_pause=False,
    pause_reasons=(),
    analysis=AnalysisStatus("payment-router-42-3", "Failed", 'metric "error-rate" assessed Failed'),
)
INCONCLUSIVE = dataclasses.replace(
    PAUSED,
    pause_reasons=("InconclusiveAnalysisRun",),
    message="InconclusiveAnalysisRun",
    analysis=AnalysisStatus("payment-router-42-3", "Inconclusive", "p95 between limits"),
)
HEALTHY = dataclasses.replace(
    PAUSED,
    phase="Healthy",
    message="",
    step_index=8,
    canary_weight=100,
    set_weight=100,
    controller_pause=False,
    pause_reasons=(),
    current_pod_hash="6f7c9b8d4",
    analysis=None,
    stable_revision=42,
)
DEGRADED = dataclasses.replace(
    PROGRESSING,
    phase="Degraded",
    message="ProgressDeadlineExceeded: ReplicaSet has timed out",
    progressing_reason="ProgressDeadlineExceeded",
)
BLUE_GREEN = dataclasses.replace(
    PAUSED,
    strategy="blueGreen",
    step_index=None,
    step_count=0,
    set_weight=None,
    pause_reasons=("BlueGreenPause",),
    message="BlueGreenPause",
)
SPEC_PAUSED = dataclasses.replace(PROGRESSING, phase="Paused", paused=True)
NO_STABLE_REVISION = dataclasses.replace(PAUSED, stable_revision=None, stable_image=None)

A, R, P = RolloutAction.ABORT, RolloutAction.RETRY, RolloutAction.PROMOTE


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (ABORTED, [R]),
        (PROGRESSING, [A, P]),
        (PAUSED, [A, P]),
        (SPEC_PAUSED, [A, P]),
        (INCONCLUSIVE, [A, P]),
        (BLUE_GREEN, [A, P]),
        (HEALTHY, []),
        (dataclasses.replace(PAUSED, phase="Healthy", current_pod_hash=None), []),
        (DEGRADED, [A]),
        (dataclasses.replace(INCONCLUSIVE, phase="Degraded"), [A, P]),
    ],
    ids=[
        "aborted",
        "progressing",
        "paused",
        "spec-paused",
        "inconclusive",
        "blue-green",
        "healthy",
        "healthy-phase",
        "degraded",
        "degraded-but-paused-inconclusive",
    ],
)
def test_available_actions(state: RolloutState, expected: list[RolloutAction]) -> None:
    assert available_actions(state) == expected


def assert_valid_block_kit(blocks: list[dict[str, Any]]) -> None:
    """What Slack would check: the typed models accept each block again, plus the limits."""
    assert 0 < len(blocks) <= 50
    action_ids: list[str] = []
    block_ids = [block["block_id"] for block in blocks if "block_id" in block]
    assert len(block_ids) == len(set(block_ids))
    for block in blocks:
        parsed = Block.parse(block)
        assert parsed is not None, block
        assert parsed.to_dict() == block  # validates on the way out
        text = block.get("text") or {}
        assert len(text.get("text", "")) <= (150 if block["type"] == "header" else 3000)
        assert len(block.get("fields") or []) <= 10
        for field in block.get("fields") or []:
            assert len(field["text"]) <= 2000
        if block["type"] == "context":
            assert len(block["elements"]) <= 10
        if block["type"] == "actions":
            assert len(block["elements"]) <= 25
        for el in block.get("elements") or []:
            if el.get("type") in ("mrkdwn", "plain_text"):
                assert len(el["text"]) <= 3000
            if el.get("type") == "button":
                assert len(el["text"]["text"]) <= 75
                assert len(el.get("value", "")) <= 2000
                assert len(el.get("url", "")) <= 3000
                if "confirm" in el:
                    assert len(el["confirm"]["title"]["text"]) <= 100
                    assert len(el["confirm"]["text"]["text"]) <= 300
                action_ids.append(el["action_id"])
    assert len(action_ids) == len(set(action_ids))


def card(state: RolloutState, **kw: Any) -> list[dict[str, Any]]:
    kw.setdefault("trouble", None)
    blocks = card_blocks.rollout_card(service="payment-router", state=state, epoch=3, now=NOW, **kw)
    assert_valid_block_kit(blocks)
    return blocks


def buttons(blocks: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        el["action_id"]: el
        for block in blocks
        if block["type"] == "actions"
        for el in block["elements"]
    }


def all_text(blocks: list[dict[str, Any]]) -> str:
    return json.dumps(blocks, ensure_ascii=False)


def facts(blocks: list[dict[str, Any]]) -> str:
    """The Rollout's facts: the one context line that names the Rollout's phase."""
    (line,) = [t for t in texts(blocks) if t.startswith("*Phase* ")]
    return line


def test_paused_card_shows_the_facts() -> None:
    blocks = card(PAUSED)
    assert blocks[0] == {
        "type": "header",
        "text": {"type": "plain_text", "text": "⏸️ payment-router · Paused", "emoji": True},
    }
    # The buttons first, then, under a divider, the facts on one line.
    # (and the Rollout's own message beside them).
    assert [b["type"] for b in blocks] == ["header", "actions", "divider", "context"]
    assert [e["text"] for e in blocks[-1]["elements"]][1:] == ["CanaryPauseStep"]
    assert facts(blocks) == (
        "*Phase* Paused · *Step* 3/8 · *Canary weight* 25% · "
        "*Stable* revision 41 `registry.example.com/payment-router:1.7.3` · "
        "*Canary* revision 42 `registry.example.com/payment-router:1.8.0` · "
        "*Analysis* Running (payment-router-42-3) · *Started* 13:51:07 UTC · "
        "`payments/payment-router`"
    )
    assert list(buttons(blocks)) == ["rollout_abort", "rollout_promote"]


def test_abort_button_is_danger_with_an_exact_confirm() -> None:
    abort = buttons(card(PAUSED))["rollout_abort"]
    assert abort["text"]["text"] == "Abort (Tier 1)"
    assert abort["style"] == "danger"
    assert abort["confirm"]["text"]["text"] == (
        "Patch status.abort=true on payments/payment-router; traffic returns to stable revision 41."
    )
    assert abort["confirm"]["style"] == "danger"
    assert abort["confirm"]["confirm"]["text"] == "Abort"
    without = buttons(card(NO_STABLE_REVISION))["rollout_abort"]
    assert "traffic returns to stable ReplicaSet 6f7c9b8d4" in without["confirm"]["text"]["text"]


def test_button_value_is_compact_json_that_round_trips() -> None:
    value = buttons(card(PAUSED))["rollout_promote"]["value"]
    assert value == '{"s":"payment-router","ns":"payments","n":"payment-router","r":42,"e":3}'
    assert rollout_blocks.parse_button_value(value) == {
        "s": "payment-router",
        "ns": "payments",
        "n": "payment-router",
        "r": 42,
        "e": 3,
    }
    with pytest.raises(ValueError, match="not a rollbot button value"):
        rollout_blocks.parse_button_value('{"s": "x"}')


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (PAUSED, "clear the pause on payments/payment-router at step 3/8 (canary 25%)"),
        (INCONCLUSIVE, "accept the inconclusive analysis on payments/payment-router"),
        (PROGRESSING, "skip step 3/8 of payments/payment-router (canary 25%)"),
        (BLUE_GREEN, "switch the active service to revision 42"),
    ],
)
def test_promote_confirm_says_what_happens_at_this_step(state: RolloutState, expected: str) -> None:
    promote = buttons(card(state))["rollout_promote"]
    assert expected in promote["confirm"]["text"]["text"].lower()
    assert "style" not in promote


def test_aborted_card_offers_retry_and_shows_trouble() -> None:
    trouble = Trouble(TroubleKind.ANALYSIS_FAILED, "Analysis payment-router-42-3 failed")
    blocks = card(ABORTED, trouble=trouble)
    assert blocks[0]["text"]["text"] == "🛑 payment-router · Aborted"
    assert blocks[1]["text"]["text"] == ":rotating_light: Analysis payment-router-42-3 failed"
    # The facts carry the analysis's message, unless the trouble line already tells it.
    assert '*Analysis* Failed (payment-router-42-3): metric "error-rate" assessed Failed' in (
        facts(blocks)
    )
    assert ABORTED.analysis is not None
    told = Trouble(TroubleKind.ANALYSIS_FAILED, f"Analysis failed: {ABORTED.analysis.message}")
    assert "*Analysis* Failed (payment-router-42-3) · " in facts(card(ABORTED, trouble=told))
    assert list(buttons(blocks)) == ["rollout_retry"]
    assert "confirm" not in buttons(blocks)["rollout_retry"]


def test_an_aborted_canary_weight_says_where_the_traffic_is_not_what_the_step_asked() -> None:
    """Issue 14: "Canary weight 0% (step asks 10%)" after an abort read as a stuck canary."""

    aborted = facts(card(dataclasses.replace(ABORTED, set_weight=10)))
    assert "*Canary weight* 0% (aborted: all traffic on the stable revision 41) · " in aborted
    assert "step asks" not in aborted
    paused = facts(card(dataclasses.replace(PAUSED, set_weight=50)))
    assert "*Canary weight* 25% (step asks 50%) · " in paused


def test_healthy_card_has_no_buttons() -> None:
    blocks = card(HEALTHY)
    assert blocks[0]["text"]["text"].startswith("✅")
    assert buttons(blocks) == {}
    assert not [x for x in blocks if x["type"] == "actions"]


def test_outcome_and_notice_lines() -> None:
    done = Outcome(RolloutAction.ABORT, "U0ONCALL", NOW, True, 0.84, "")
    assert (
        card_blocks.outcome_line(done)
        == "Aborted by <@U0ONCALL> at 14:03:12 UTC, verified in 0.8 s"
    )
    failed = Outcome(RolloutAction.PROMOTE, "U0ONCALL", NOW, False, 5.0, "canary weight 25")
    assert card_blocks.outcome_line(failed) == (
        "Promoted by <@U0ONCALL> at 14:03:12 UTC, not verified: canary weight 25"
    )
    blocks = card(ABORTED, outcome=done, notice="Retry is Tier 1 again; Tier 3 needs Git.")
    text = all_text(blocks)
    assert ":white_check_mark: Aborted by <@U0ONCALL> at 14:03:12 UTC, verified in 0.8 s" in text
    assert "Retry is Tier 1 again; Tier 3 needs Git." in text
    assert "verified in 0.8 s" in card_blocks.rollout_card_text(
        service="payment-router", state=ABORTED, trouble=None, outcome=done
    )


def test_card_text_is_the_notification_summary() -> None:
    trouble = Trouble(TroubleKind.INCONCLUSIVE, "Analysis inconclusive at step 3/8")
    assert card_blocks.rollout_card_text(
        service="payment-router", state=INCONCLUSIVE, trouble=trouble
    ) == (
        "payment-router revision 42: Paused, step 3/8, canary 25% — "
        "Analysis inconclusive at step 3/8"
    )


def test_long_values_are_clipped_to_slack_limits() -> None:
    huge = dataclasses.replace(
        PAUSED,
        name="x" * 200,
        message="m" * 5000,
        analysis=AnalysisStatus("a", "Failed", "e" * 5000),
    )
    blocks = card(huge, trouble=Trouble(TroubleKind.DEGRADED, "t" * 5000), notice="n" * 5000)
    assert blocks[0]["text"]["text"].endswith("Paused")  # service is short; name is in fields


@pytest.mark.parametrize("path", rollout_fixture_paths(), ids=lambda p: p.name)
def test_every_rollout_fixture_renders(path: Any) -> None:
    from bot.core import rollouts

    state = rollouts.parse_rollout(yaml.safe_load(path.read_text()))
    blocks = card_blocks.rollout_card(
        service=state.name, state=state, trouble=rollouts.trouble(state), epoch=0, now=NOW
    )
    assert_valid_block_kit(blocks)
    assert [el["action_id"] for el in buttons(blocks).values()] == [
        rollout_blocks.ACTION_IDS[a] for a in available_actions(state)
    ]
    assert state.name in render_text(blocks)


@pytest.mark.parametrize("path", analysisrun_fixture_paths(), ids=lambda p: p.name)
def test_every_analysisrun_fixture_renders_on_a_card(path: Any) -> None:
    """Each AnalysisRun fixture, joined to a Rollout, shows its phase and message."""
    from bot.core import rollouts

    run = yaml.safe_load(path.read_text())
    base = FIXTURES / "argo-rollouts" / "testdata" / "rollout-aborted.rollout.yaml"
    state = rollouts.parse_rollout(yaml.safe_load(base.read_text()), analysis_run=run)
    assert state.analysis is not None
    assert state.analysis.status == run["status"]["phase"]
    blocks = card_blocks.rollout_card(
        service=state.name, state=state, trouble=rollouts.trouble(state), epoch=0, now=NOW
    )
    assert_valid_block_kit(blocks)
    text = render_text(blocks)
    assert state.analysis.status in text
    message = run["status"].get("message")
    if message:
        assert json.dumps(message)[1:-1][:40] in json.dumps(blocks)


def test_small_texts() -> None:
    assert replies.timeline_line(at=NOW, text="Abort requested") == "`14:03:12 UTC` Abort requested"
    assert replies.unknown_service_text("pay", {"payment-router", "ledger"}) == (
        "Unknown service `pay`. Known services: `ledger`, `payment-router`."
    )
    refusal = replies.refusal_text(
        actor_id="U0OUTSIDER",
        action=RolloutAction.ABORT,
        service="payment-router",
        reason="not on call",
        allowed="<!subteam^S0PAYMENTS>",
    )
    assert refusal == (
        ":no_entry: <@U0OUTSIDER>, you may not abort `payment-router`: not on "
        "call Who may: <!subteam^S0PAYMENTS>."
    )
    record = ActionRecord(
        "k",
        "payment-router",
        "payments/payment-router",
        "abort",
        "U0ONCALL",
        "oncall-engineer",
        "slack",
        "succeeded",
        NOW - timedelta(seconds=1),
        NOW,
        {},
    )
    assert replies.already_done_text(record) == "Already aborted by <@U0ONCALL> at 14:03:12 UTC"
    running = dataclasses.replace(record, status="running", finished_at=None)
    assert replies.already_done_text(running) == (
        "Already aborting: <@U0ONCALL> started at 14:03:11 UTC"
    )
    help_ = replies.help_blocks()
    assert_valid_block_kit(help_)
    text = all_text(help_)
    assert "/rollback SERVICE [status|abort|retry|promote|promote-full|pause|" in text
    for verb in ("circuit open|close", "flags", "runbook", "ack"):
        assert f"`/rollback SERVICE {verb}`" in text
    err = replies.error_blocks("Kubernetes is unreachable", error_id="e-7f3a")
    assert_valid_block_kit(err)
    assert "`e-7f3a`" in err[1]["elements"][0]["text"]
    assert len(replies.error_blocks("x", error_id=None)) == 1


def test_render_text_for_the_terminal() -> None:
    out = render_text(card(PAUSED, notice="watching"))
    lines = out.splitlines()
    assert lines[0] == "⏸️ payment-router · Paused"
    assert lines[1].startswith("═")
    assert "*Step* 3/8" in out
    assert lines[-1] == "│ watching"
    assert lines[2] == "[ Abort (Tier 1) ]  [ Promote ]"  # under the header


# ── the incident card ─────────────────────────────────────────────────────────

CIRCUIT_FLAG = "payments.new-router.circuit-open"
RUNBOOK = "https://rollbot.example.com/runbooks/payment-router#tier-3"
GRAPH = (
    "https://prometheus.example.com/graph?g0.expr=sum(rate(x%7Bv%3D%22c%22%7D%5B5m%5D))&g0.tab=0"
)

INCIDENT = Incident(
    service="payment-router",
    namespace="payments",
    rollout="payment-router",
    revision=42,
    state=IncidentState.OPEN,
    opened_at=NOW - timedelta(seconds=17),  # 14:02:55 UTC
    changed_at=NOW - timedelta(seconds=17),
    firing=frozenset({"fp-1", "fp-2", "fp-3"}),
    seen=frozenset({"fp-1", "fp-2", "fp-3"}),
    first_breach_at=NOW - timedelta(minutes=6, seconds=40),
)
EVIDENCE = Evidence(
    available=True,
    detail="",
    error_rate=MetricPair(0.312, 0.001),
    p95_ms=MetricPair(412.0, 180.0),
    p99_ms=MetricPair(150.0, 120.0),
    slo_error_rate=0.02,
    slo_p95_ms=300,
    slo_p99_ms=200,
    graph_url=GRAPH,
    queried_at=NOW - timedelta(seconds=5),
)
UNAVAILABLE = Evidence(available=False, detail="Prometheus timed out after 2 s")
ALERTS = [
    "PaymentRouterErrorRate: canary 5xx ratio 31 % > 2 % for 5m",
    "PaymentRouterLatencyP95: p95 412 ms > 300 ms",
    "PaymentRouterCanaryErrors: 1,204 errors in 5m",
]
STEPS = (
    "Clone the GitOps repo: git clone git@example.com:platform/configs.git && cd configs",
    "git revert <release SHA>",
    "Open a PR with `revert-payment-router-1.8.0` and get one approval",
    "Wait for CI and Argo CD to sync (30–120 min)",
)


def tier_set(recommend: Tier | None = Tier.ABORT, *, tier2: bool = False) -> list[TierOption]:
    return [
        TierOption(
            Tier.ABORT,
            "Abort the rollout",
            True,
            "canary error rate 31.20 % breaks the 2 % SLO; stable is healthy",
            recommended=recommend is Tier.ABORT,
        ),
        TierOption(
            Tier.CIRCUIT_BREAKER,
            "Open the circuit breaker",
            tier2,
            f"sets {CIRCUIT_FLAG}: all traffic to the legacy path in seconds"
            if tier2
            else "no circuit flag is wired to a flag provider yet",
            recommended=recommend is Tier.CIRCUIT_BREAKER,
        ),
        TierOption(
            Tier.FULL_REVERT,
            "Full revert in Git",
            True,
            "abort leaves spec.template on 1.8.0; only Git brings 1.7.3 back for good",
            recommended=recommend is Tier.FULL_REVERT,
            steps=STEPS,
            link=RUNBOOK,
        ),
    ]


def incident_card(state: RolloutState = PAUSED, **kw: Any) -> list[dict[str, Any]]:
    kw.setdefault("incident", INCIDENT)
    kw.setdefault("evidence", EVIDENCE)
    kw.setdefault("tiers", tier_set())
    kw.setdefault("alerts", ALERTS)
    kw.setdefault("circuit_flag", CIRCUIT_FLAG)
    return card(state, **kw)


def texts(blocks: list[dict[str, Any]]) -> list[str]:
    """Every text of the card, block by block (section text and fields, context elements)."""
    out: list[str] = []
    for block in blocks:
        if isinstance(block.get("text"), dict):
            out.append(block["text"]["text"])
        out.extend(f["text"] for f in block.get("fields") or [])
        if block["type"] == "context":
            out.extend(el["text"] for el in block["elements"])
    return out


def tier_lines(blocks: list[dict[str, Any]]) -> list[str]:
    """The tiers under the fold, one line each (the recommended one is not among them)."""
    for t in texts(blocks):
        head, *lines = t.split("\n")
        if head in ("*Other tiers*", "*Tiers*"):
            return lines
    return []


def recommendation(blocks: list[dict[str, Any]]) -> str | None:
    """The one `👉` line, or None."""
    found = [t for t in texts(blocks) if t.startswith("👉")]
    assert len(found) <= 1, found
    return found[0] if found else None


def test_incident_card_shows_state_evidence_alerts_and_tiers() -> None:
    blocks = incident_card(trouble=Trouble(TroubleKind.ANALYSIS_FAILED, "Analysis failed"))
    # The first screen: what is wrong, what to do now (one recommendation), the buttons.
    assert [b["type"] for b in blocks] == [
        "header",
        "context",  # the incident line
        "section",  # the trouble
        "section",  # the firing alerts
        "section",  # 👉 the recommendation
        "actions",  # the Rollout's buttons
        "actions",  # the tiers' buttons
        "divider",
        "section",  # evidence
        "context",  # the Rollout's facts, and its message beside them
        "section",  # the other tiers
    ]
    assert blocks[0]["text"]["text"] == "🚨 payment-router · Incident open · Rollout Paused"
    assert blocks[1] == {
        "type": "context",
        "elements": [
            {
                "type": "mrkdwn",
                "text": "Incident opened 14:02:55 UTC · breaching for 6 min · 3 alerts firing",
            }
        ],
    }
    assert blocks[2]["text"]["text"] == ":rotating_light: Analysis failed"
    assert blocks[3]["text"]["text"] == "\n".join(
        ["*Firing alerts* (3)", *(f"• {a.replace('>', '&gt;')}" for a in ALERTS)]
    )
    recommended, rollout_actions, tier_actions = blocks[4:7]
    assert recommended["text"]["text"] == (
        "👉 *Recommended: Tier 1 (Abort the rollout)* — "
        "canary error rate 31.20 % breaks the 2 % SLO; stable is healthy"
    )
    assert rollout_actions["block_id"] == rollout_blocks.ACTIONS_BLOCK_ID
    assert [el["action_id"] for el in rollout_actions["elements"]] == [
        "rollout_abort",
        "rollout_promote",
    ]
    assert tier_actions["block_id"] == tier_blocks.TIER_ACTIONS_BLOCK_ID
    assert tier_actions["elements"] == [
        {
            "type": "button",
            "action_id": "runbook_open",
            "text": {"type": "plain_text", "text": "Runbook (Tier 3)", "emoji": True},
            "url": RUNBOOK,
            "value": buttons(blocks)["rollout_abort"]["value"],
        },
        {
            "type": "button",
            "action_id": "revert_open",
            "text": {"type": "plain_text", "text": "Record Tier 3 revert…", "emoji": True},
            "value": buttons(blocks)["rollout_abort"]["value"],
        },
    ]
    # Under the fold: evidence, the facts, the other tiers (not the recommended one again,
    # and Tier 3's steps are where it says: the runbook).
    evidence = blocks[8]
    link = GRAPH.replace("&", "&amp;")  # Slack's escaping, in URLs too
    assert evidence["text"]["text"] == f"*Canary vs stable* · at 14:03:07 UTC · <{link}|graph>"
    assert [f["text"] for f in evidence["fields"]] == [
        "*Error rate*\ncanary 31.20 % ⚠️ · stable 0.10 % · SLO < 2 %",
        "*p95*\ncanary 412 ms ⚠️ · stable 180 ms · SLO < 300 ms",
        "*p99*\ncanary 150 ms · stable 120 ms · SLO < 200 ms",
    ]
    assert facts(blocks).startswith("*Phase* Paused · *Step* 3/8 · ")
    assert blocks[-1]["text"]["text"] == (
        "*Other tiers*\n"
        "🚫 *Tier 2 — Open the circuit breaker* (unavailable): "
        "no circuit flag is wired to a flag provider yet\n"
        "*Tier 3 — Full revert in Git*: "
        "abort leaves spec.template on 1.8.0; only Git brings 1.7.3 back for good"
        " · steps: *Runbook (Tier 3)*"
    )
    assert "git revert" not in all_text(blocks)  # the steps are not on the card


def test_without_incident_arguments_the_card_is_unchanged() -> None:
    for state in (PAUSED, ABORTED, HEALTHY):
        plain = card(state)
        assert card(state, incident=None, evidence=None, tiers=None, alerts=None) == plain
        assert card(state, tiers=[], alerts=[]) == plain
    assert card_blocks.rollout_card_text(
        service="payment-router", state=PAUSED, trouble=None, tiers=[], alerts=[]
    ) == card_blocks.rollout_card_text(service="payment-router", state=PAUSED, trouble=None)


def test_abort_button_keeps_its_value_and_confirm_on_the_incident_card() -> None:
    assert buttons(incident_card())["rollout_abort"] == buttons(card(PAUSED))["rollout_abort"]


@pytest.mark.parametrize("recommend", list(Tier))
def test_the_recommended_tier_is_told_exactly_once(recommend: Tier) -> None:
    """Issue 14: the recommendation appeared twice (⭐ on its tier and 👉 above the buttons)."""
    blocks = incident_card(tiers=tier_set(recommend, tier2=True))
    text = all_text(blocks)
    assert "⭐" not in text and "(recommended)" not in text
    assert text.count("Recommended:") == 1
    assert f"👉 *Recommended: Tier {int(recommend)} (" in text
    # Its tier is not among the others; the others are.
    lines = tier_lines(blocks)
    assert [line.split(" — ")[0] for line in lines] == [
        f"*Tier {int(t)}" for t in Tier if t is not recommend
    ]
    # the line sits right above the buttons
    at = next(i for i, b in enumerate(blocks) if "👉" in all_text([b]))
    assert [x["type"] for x in blocks[at + 1 : at + 3]] == ["actions", "actions"]


def test_only_one_recommendation_even_when_several_are_flagged() -> None:
    tiers = [dataclasses.replace(o, recommended=True) for o in tier_set(tier2=True)]
    blocks = incident_card(tiers=tiers)
    assert all_text(blocks).count("Recommended:") == 1
    assert (recommendation(blocks) or "").startswith("👉 *Recommended: Tier 1 (")


def test_an_unavailable_tier_is_never_recommended() -> None:
    tiers = tier_set(Tier.CIRCUIT_BREAKER, tier2=False)
    blocks = incident_card(tiers=tiers)
    text = all_text(blocks)
    assert recommendation(blocks) is None
    assert "Recommended" not in text
    assert "Recommended" not in card_blocks.rollout_card_text(
        service="payment-router", state=PAUSED, trouble=None, tiers=tiers
    )


def test_unavailable_tiers_have_no_button() -> None:
    tiers = [
        dataclasses.replace(o, available=False, reason=f"not now ({int(o.tier)})")
        for o in tier_set(None, tier2=True)
    ]
    blocks = incident_card(tiers=tiers)
    assert set(buttons(blocks)) == {"rollout_promote"}  # abort gone, promote is not a tier
    lines = tier_lines(blocks)
    assert all(line.startswith("🚫 *Tier ") for line in lines)
    assert [line.split(": ", 1)[1] for line in lines] == [
        "not now (1)",
        "not now (2)",
        "not now (3)",
    ]
    assert "git revert" not in all_text(blocks)  # an unavailable Tier 3 shows no steps
    assert tier_blocks.TIER_ACTIONS_BLOCK_ID not in all_text(blocks)


def test_available_tier_2_has_a_danger_button_whose_confirm_names_the_flag() -> None:
    blocks = incident_card(tiers=tier_set(Tier.CIRCUIT_BREAKER, tier2=True))
    circuit = buttons(blocks)["circuit_open"]
    assert circuit["text"]["text"] == "Open circuit breaker (Tier 2)"
    assert circuit["style"] == "danger"
    assert circuit["confirm"]["style"] == "danger"
    assert f"Set {CIRCUIT_FLAG} to true" in circuit["confirm"]["text"]["text"]  # plain: no `
    assert circuit["confirm"]["title"]["text"] == "Open the circuit breaker of payment-router?"
    assert rollout_blocks.parse_button_value(circuit["value"]) == {
        "s": "payment-router",
        "ns": "payments",
        "n": "payment-router",
        "r": 42,
        "e": 3,
    }
    (tier_actions,) = [b for b in blocks if b.get("block_id") == tier_blocks.TIER_ACTIONS_BLOCK_ID]
    assert [el["action_id"] for el in tier_actions["elements"]] == [
        "circuit_open",
        "runbook_open",
        "revert_open",
    ]
    unnamed = buttons(incident_card(tiers=tier_set(tier2=True), circuit_flag=None))
    assert (
        "the service's circuit-breaker flag" in unnamed["circuit_open"]["confirm"]["text"]["text"]
    )


def test_tier_3_runbook_that_is_not_a_web_url_is_text_not_a_button() -> None:
    tiers = tier_set()
    tiers[2] = dataclasses.replace(tiers[2], link="runbooks/payment-router.md")
    blocks = incident_card(tiers=tiers)
    assert "runbook_open" not in buttons(blocks)
    assert tier_lines(blocks)[1].endswith(" · steps: runbook `runbooks/payment-router.md`")
    # Recommended, Tier 3 says where its steps are on the 👉 line (no button to point to).
    tiers = [dataclasses.replace(o, recommended=o.tier is Tier.FULL_REVERT) for o in tiers]
    line = recommendation(incident_card(tiers=tiers)) or ""
    assert line.endswith(" · steps: runbook `runbooks/payment-router.md`")
    # With a web link, the Runbook (Tier 3) button right below is the pointer.
    tiers[2] = dataclasses.replace(tiers[2], link=RUNBOOK)
    assert "steps" not in (recommendation(incident_card(tiers=tiers)) or "")


@pytest.mark.parametrize(
    ("step", "expected"),
    [
        ("git revert abc123", "`git revert abc123`"),
        ("$ make release", "`make release`"),
        ("Revert the release: git revert abc123", "Revert the release: `git revert abc123`"),
        ("Run `kubectl get rollout`", "Run `kubectl get rollout`"),
        ("Ask for one approval", "Ask for one approval"),
        ("Note: ask first", "Note: ask first"),
        (
            "kubectl argo rollouts get rollout x\n  -n payments",
            "`kubectl argo rollouts get rollout x -n payments`",
        ),
    ],
)
def test_tier_3_steps_put_commands_in_code(step: str, expected: str) -> None:
    assert tier_blocks.format_step(step) == expected


def test_evidence_unavailable_and_absent() -> None:
    blocks = incident_card(evidence=UNAVAILABLE)
    assert (
        "Metrics unavailable: Prometheus timed out after 2 s — will fill in when Prometheus answers"
    ) in texts(blocks)
    assert "Canary vs stable" not in all_text(blocks)
    no_detail = incident_card(evidence=Evidence(available=False, detail=""))
    assert "Metrics unavailable — will fill in when Prometheus answers" in texts(no_detail)
    none = all_text(incident_card(evidence=None))
    assert "Metrics unavailable" not in none
    assert "Canary vs stable" not in none
    assert "Error rate" not in none
    assert "⚠️" not in none


def test_breach_markers() -> None:
    evidence = dataclasses.replace(
        EVIDENCE,
        error_rate=MetricPair(0.02, 0.05),  # exactly at the SLO is a breach; so is stable's
        p95_ms=MetricPair(math.inf, math.nan),
        p99_ms=MetricPair(5.25, 250.0),
        slo_p99_ms=None,
        graph_url="not a url",
        queried_at=None,
    )
    section = next(
        x for x in incident_card(evidence=evidence) if "Canary vs stable" in all_text([x])
    )
    assert section["text"]["text"] == "*Canary vs stable*"
    assert [f["text"] for f in section["fields"]] == [
        "*Error rate*\ncanary 2.00 % ⚠️ · stable 5.00 % ⚠️ · SLO < 2 %",
        "*p95*\ncanary ∞ ⚠️ · stable no data · SLO < 300 ms",
        "*p99*\ncanary 5.2 ms · stable 250 ms · no SLO set",
    ]
    assert all_text(incident_card()).count("⚠️") == 2  # the default evidence: two breaches
    assert card_blocks.breaches(0.019, 0.02) is False
    assert card_blocks.breaches(math.nan, 0.02) is False
    assert card_blocks.breaches(None, 0.02) is False
    assert card_blocks.breaches(0.5, None) is False


@pytest.mark.parametrize(
    ("incident", "expected"),
    [
        (INCIDENT, "Incident opened 14:02:55 UTC · breaching for 6 min · 3 alerts firing"),
        (
            dataclasses.replace(INCIDENT, firing=frozenset({"rollout"}), first_breach_at=None),
            "Incident opened 14:02:55 UTC · Rollout unhealthy",
        ),
        (
            dataclasses.replace(
                INCIDENT,
                firing=frozenset({"fp-1", "rollout"}),
                first_breach_at=NOW - timedelta(seconds=20),
            ),
            "Incident opened 14:02:55 UTC · breaching for under 1 min · 1 alert firing"
            " · Rollout unhealthy",
        ),
        (
            dataclasses.replace(INCIDENT, first_breach_at=NOW - timedelta(hours=2, minutes=5)),
            "Incident opened 14:02:55 UTC · breaching for 2 h 5 min · 3 alerts firing",
        ),
        (
            dataclasses.replace(
                INCIDENT,
                state=IncidentState.RECOVERING,
                changed_at=NOW - timedelta(seconds=12),
                firing=frozenset(),
            ),
            "Incident opened 14:02:55 UTC · breached for 6 min · quiet since 14:03:00 UTC",
        ),
        (
            dataclasses.replace(
                INCIDENT,
                state=IncidentState.RESOLVED,
                changed_at=NOW + timedelta(minutes=10),
                firing=frozenset(),
            ),
            "Incident opened 14:02:55 UTC · resolved 14:13:12 UTC after 10 min",
        ),
    ],
    ids=["open", "rollout-only", "just-now", "hours", "recovering", "resolved"],
)
def test_incident_line(incident: Incident, expected: str) -> None:
    assert card_blocks.incident_line(incident, NOW) == expected


@pytest.mark.parametrize(
    ("state", "header"),
    [
        (IncidentState.OPEN, "🚨 payment-router · Incident open · Rollout Paused"),
        (IncidentState.RECOVERING, "🩹 payment-router · Incident recovering · Rollout Paused"),
        (IncidentState.RESOLVED, "✅ payment-router · Incident resolved · Rollout Paused"),
    ],
)
def test_header_shows_the_incident_state(state: IncidentState, header: str) -> None:
    blocks = incident_card(incident=dataclasses.replace(INCIDENT, state=state))
    assert blocks[0]["text"]["text"] == header


def test_a_thousand_alerts_stay_within_limits() -> None:
    alerts = [f"Alert {i} <{'x' * 5000}> & more" for i in range(1000)]
    blocks = incident_card(alerts=alerts)
    section = next(x for x in blocks if "*Firing alerts*" in all_text([x]))
    lines = section["text"]["text"].split("\n")
    assert lines[0] == "*Firing alerts* (1,000)"
    shown = card_blocks.MAX_ALERTS_SHOWN
    assert [line.split()[:3] for line in lines[1 : 1 + shown]] == [
        ["•", "Alert", str(i)] for i in range(shown)
    ]
    assert all(line.endswith("…") and "&lt;" in line for line in lines[1 : 1 + shown])
    assert lines[1 + shown :] == [f"+{1000 - shown} more"]
    assert len(section["text"]["text"]) <= 3000


def test_huge_tiers_stay_within_limits() -> None:
    huge = [
        TierOption(
            t,
            "T" * 500,
            True,
            "<r> & " * 2000,
            recommended=t is Tier.FULL_REVERT,
            steps=tuple(f"git revert {'a' * 1000} {i}" for i in range(500)),
            link=RUNBOOK,
        )
        for t in Tier
    ] + [TierOption(Tier.ABORT, "duplicate", True, "ignored")]
    blocks = incident_card(tiers=huge, circuit_flag="f" * 5000, alerts=["s" * 10_000] * 7)
    lines = tier_lines(blocks)
    assert len(lines) == 2  # one per tier, the first option given for it, less the 👉 one
    assert "duplicate" not in all_text(blocks)
    assert all(len(t) <= 3000 for t in texts(blocks))
    shown = [*lines, recommendation(blocks) or ""]
    assert not any("&l…" in s or "&am…" in s for s in shown)  # no entity cut in half


@pytest.mark.parametrize("rollout", [PAUSED, ABORTED, HEALTHY, DEGRADED, BLUE_GREEN])
def test_every_combination_renders(rollout: RolloutState) -> None:
    outcome = Outcome(RolloutAction.ABORT, "U0ONCALL", NOW, True, 0.8)
    evidences: list[Evidence | None] = [EVIDENCE, UNAVAILABLE, None]
    recommendations: list[Tier | None] = [*Tier, None]
    for state, evidence, recommend, tier2 in itertools.product(
        IncidentState, evidences, recommendations, [False, True]
    ):
        incident = dataclasses.replace(INCIDENT, state=state)
        tiers = tier_set(recommend, tier2=tier2)
        blocks = incident_card(
            rollout,
            incident=incident,
            evidence=evidence,
            tiers=tiers,
            trouble=Trouble(TroubleKind.DEGRADED, "trouble"),
            outcome=outcome,
            notice="notice",
        )
        assert f"Incident {state.value}" in blocks[0]["text"]["text"]
        text = all_text(blocks)
        expected_marks = (
            0 if recommend is None or (recommend is Tier.CIRCUIT_BREAKER and not tier2) else 1
        )
        assert text.count("👉") == expected_marks
        assert ("circuit_open" in buttons(blocks)) is tier2
        out = render_text(blocks)
        for option in tiers:  # each tier is named: as 👉, or among the others
            if not option.available and card_blocks.mitigation(rollout, outcome, None):
                # After a mitigation the headline says why a tier is not offered.
                assert tier_blocks.tier_label(option) not in out
                continue
            assert f"Tier {int(option.tier)} (" in out or tier_blocks.tier_label(option) in out
            assert option.title in out
        summary = card_blocks.rollout_card_text(
            service="payment-router", state=rollout, trouble=None, incident=incident, tiers=tiers
        )
        assert summary.startswith(f"{card_blocks.incident_emoji(incident)} Incident {state.value}")


def test_card_text_leads_with_incident_and_recommended_tier() -> None:
    text = card_blocks.rollout_card_text(
        service="payment-router",
        state=PAUSED,
        trouble=Trouble(TroubleKind.ANALYSIS_FAILED, "Analysis failed"),
        incident=INCIDENT,
        evidence=EVIDENCE,
        tiers=tier_set(),
        alerts=ALERTS,
    )
    assert text == (
        "🚨 Incident open · Recommended: Tier 1 — Abort the rollout · "
        "payment-router revision 42: Paused, step 3/8, canary 25% — Analysis failed"
    )
    only_tiers = card_blocks.rollout_card_text(
        service="payment-router", state=PAUSED, trouble=None, tiers=tier_set(Tier.FULL_REVERT)
    )
    assert only_tiers.startswith("Recommended: Tier 3 — Full revert in Git · payment-router")


def test_render_text_shows_the_incident_and_the_tiers() -> None:
    out = render_text(incident_card(tiers=tier_set(Tier.ABORT, tier2=True)))
    lines = out.splitlines()
    assert lines[0] == "🚨 payment-router · Incident open · Rollout Paused"
    assert "│ Incident opened 14:02:55 UTC · breaching for 6 min · 3 alerts firing" in lines
    assert "*Canary vs stable* · at 14:03:07 UTC · graph ↗" in lines
    assert "canary 31.20 % ⚠️ · stable 0.10 % · SLO < 2 %" in lines
    assert "• PaymentRouterErrorRate: canary 5xx ratio 31 % > 2 % for 5m" in lines
    at = lines.index(
        "👉 *Recommended: Tier 1 (Abort the rollout)* — "
        "canary error rate 31.20 % breaks the 2 % SLO; stable is healthy"
    )
    assert lines[at + 1] == "[ Abort (Tier 1) ]  [ Promote ]"
    assert lines[at + 2] == (
        "[ Open circuit breaker (Tier 2) ]  [ Runbook (Tier 3) ↗ ]  [ Record Tier 3 revert… ]"
    )
    assert lines[at + 3] == "─" * 72
    assert lines.index("*Canary vs stable* · at 14:03:07 UTC · graph ↗") > at
    assert lines[-3:] == [
        "*Other tiers*",
        "*Tier 2 — Open the circuit breaker*: "
        f"sets {CIRCUIT_FLAG}: all traffic to the legacy path in seconds",
        "*Tier 3 — Full revert in Git*: abort leaves spec.template on 1.8.0; "
        "only Git brings 1.7.3 back for good · steps: *Runbook (Tier 3)*",
    ]
    unavailable = render_text(incident_card(evidence=UNAVAILABLE))
    assert "│ Metrics unavailable: Prometheus timed out after 2 s" in unavailable
    assert "🚫 *Tier 2 — Open the circuit breaker* (unavailable)" in unavailable


def test_cards_from_the_core_tier_options() -> None:
    """What bot.core.tiers.tier_options really produces: mrkdwn reasons, `<sha>` placeholders."""
    tiers_mod = pytest.importorskip("bot.core.tiers")
    for state, flag, runbook in itertools.product(
        [PAUSED, ABORTED, HEALTHY, None],
        [CIRCUIT_FLAG, None],
        [RUNBOOK, "runbooks/payment-router.md", None],
    ):
        options = tiers_mod.tier_options(
            service="payment-router",
            state=state,
            incident=INCIDENT,
            circuit_flag=flag,
            circuit_available=False,
            gitops_repo="git@example.com:platform/configs.git",
            gitops_path="services/payment-router",
            sha_annotation="rollbot.io/git-sha",
            runbook_url=runbook,
            state_error=None if state is not None else "the Kubernetes API is unreachable",
        )
        blocks = incident_card(state or PAUSED, tiers=options, circuit_flag=flag)
        text = all_text(blocks)
        assert text.count("👉") == 1
        assert "<sha>" not in text
        assert ("runbook_open" in buttons(blocks)) is (runbook == RUNBOOK)
        assert text.count("steps: runbook `runbooks/payment-router.md`") == (
            1 if runbook == "runbooks/payment-router.md" else 0
        )
        if runbook is None:  # no runbook: the revert modal shows the steps
            assert text.count("steps: *Record Tier 3 revert…*") == 1


# ----------------------------------------------------------------------------- flags listing


def _flag(role: FlagRole, key: str, **meta: Any) -> FlagInfo:
    return FlagInfo(role=role, key=key, type=FLAG_TYPES[role], **meta)


def test_flags_text_shows_type_state_owner_age_and_removal() -> None:
    today = date(2026, 11, 22)
    release = _flag(
        "release",
        "payments.new-router.enabled",
        owner="payments team",
        description="traffic through the new <routing> engine",
        created=date(2026, 10, 1),
        remove_after=date(2026, 12, 21),
    )
    experiment = _flag("experiment", "payments.dynamic-currency.enabled")
    circuit = _flag("circuit", "payments.new-router.circuit-open", owner="payments on-call")
    on = FlagState(
        key=release.key,
        project="default",
        environment="production",
        enabled=True,
        provider="launchdarkly",
    )
    off = dataclasses.replace(on, key=circuit.key, enabled=False)
    text = replies.flags_text(
        "payment-router",
        [
            FlagStatus(release, on, removal_note(release, today)),
            FlagStatus(
                experiment,
                "flag `payments.dynamic-currency.enabled` not found in project default",
                removal_note(experiment, today),
            ),
            FlagStatus(circuit, off, removal_note(circuit, today)),
        ],
    )
    assert text.splitlines() == [
        "*Flags of `payment-router`*",
        "• *release toggle* `payments.new-router.enabled` is *on* in production (launchdarkly)",
        "    owner payments team · created 2026-10-01 · remove by 2026-12-21 (in 29 days)",
        "    _traffic through the new &lt;routing&gt; engine_",
        "• *experiment toggle* `payments.dynamic-currency.enabled` — flag "
        "`payments.dynamic-currency.enabled` not found in project default",
        "    no owner set · no removal date set",
        "• *ops toggle (circuit breaker)* `payments.new-router.circuit-open` is *off* in "
        "production (launchdarkly)",
        "    owner payments on-call · long-lived (ops toggle)",
    ]


def test_flags_text_without_flags_says_where_to_set_them() -> None:
    assert replies.flags_text("fx-rates", []) == (
        "`fx-rates` lists no flags in the catalog (services.fx-rates.flags)."
    )


# ── Tier 3: the revert modal ─────────────────────────────────────────────────


def test_card_offers_revert_open_whenever_tier_3_is_offered() -> None:
    for recommend in [*Tier, None]:
        for state in (PAUSED, ABORTED, HEALTHY):
            blocks = incident_card(state, tiers=tier_set(recommend))
            revert = buttons(blocks)["revert_open"]
            assert revert["text"]["text"] == "Record Tier 3 revert…"
            assert "style" not in revert and "confirm" not in revert and "url" not in revert
            assert rollout_blocks.parse_button_value(revert["value"])["r"] == state.revision
            (tier_actions,) = [
                b for b in blocks if b.get("block_id") == tier_blocks.TIER_ACTIONS_BLOCK_ID
            ]
            assert revert in tier_actions["elements"]
    assert "revert_open" not in buttons(card(PAUSED))  # no tiers, no Tier 3 button
    tiers = tier_set()
    tiers[2] = dataclasses.replace(tiers[2], available=False)
    assert "revert_open" not in buttons(incident_card(tiers=tiers))


def modal_view(**kw: Any) -> dict[str, Any]:
    kw.setdefault("service", "payment-router")
    kw.setdefault("state", PAUSED)
    kw.setdefault("steps", tier_set()[2].steps)
    kw.setdefault(
        "metadata",
        modals.revert_metadata(
            service="payment-router",
            revision=42,
            epoch=3,
            channel="C0PAYDEPLOY",
            message_ts="1715695392.000100",
        ),
    )
    return modals.revert_modal(**kw)


def test_revert_modal_shape() -> None:
    view = modal_view(sha="0a1b2c3d")
    assert view["type"] == "modal" and view["callback_id"] == modals.REVERT_CALLBACK_ID
    assert view["callback_id"] == "revert_record"
    assert view["title"] == {"type": "plain_text", "text": "Tier 3: revert in Git"}
    assert view["submit"] == {"type": "plain_text", "text": "Record"}
    assert view["close"] == {"type": "plain_text", "text": "Cancel"}
    head = view["blocks"][0]["text"]["text"]
    assert "payment-router revision 42" in head and "`0a1b2c3d`" in head
    steps = [
        f"{i}. {tier_blocks.format_step(s)}" for i, s in enumerate(tier_set()[2].steps, start=1)
    ]
    assert all(step in head.splitlines() for step in steps)
    inputs = {blk["block_id"]: blk for blk in view["blocks"] if blk["type"] == "input"}
    assert set(inputs) == {"revert_url", "revert_note"}
    url = inputs["revert_url"]
    assert url["element"]["type"] == "plain_text_input"
    assert url["element"]["action_id"] == "url"
    assert url["label"]["text"] == "Revert commit or pull request URL"
    assert "placeholder" in url["element"] and not url.get("optional", False)
    note = inputs["revert_note"]
    assert note["element"] == {
        "type": "plain_text_input",
        "action_id": "note",
        "multiline": True,
        "max_length": 2000,
    }
    assert note["optional"] is True
    assert note["label"]["text"] == "Note for the thread and the audit log"
    assert modals.parse_revert_metadata(view["private_metadata"]) == {
        "s": "payment-router",
        "r": 42,
        "e": 3,
        "c": "C0PAYDEPLOY",
        "ts": "1715695392.000100",
    }
    unknown = modal_view(state=None)["blocks"][0]["text"]["text"]
    assert "Release commit unknown" in unknown


def test_revert_metadata_limits_and_hostile_text() -> None:
    with pytest.raises(ValueError, match="3000"):
        modals.revert_metadata(
            service="x" * 3000, revision=1, epoch=0, channel="C", message_ts="1.0"
        )
    with pytest.raises(ValueError, match="3000"):
        modal_view(metadata="m" * 3001)
    with pytest.raises(ValueError):
        modals.parse_revert_metadata('{"no": "service"}')
    huge = modal_view(service="<evil>&", steps=[f"git revert <{i}> " * 40 for i in range(200)])
    assert len(huge["blocks"][0]["text"]["text"]) <= 3000
    assert "<evil>" not in json.dumps(huge)
    assert len(huge["private_metadata"]) <= 3000


def test_revert_line_and_reply_escape_user_text() -> None:
    line = replies.revert_line(
        actor_id="U0ONCALL", url="https://git.example.com/pr/1?a=1&b=<2>", note="<!channel> *x*"
    )
    assert line.startswith(":rewind: Tier 3: <@U0ONCALL> started a revert in Git: <https://")
    assert "<!channel>" not in line and "&lt;!channel&gt;" in line
    assert "%3C2%3E" in line  # the link's target cannot end early
    reply = replies.revert_recorded_text(
        service="payment-router", revision=42, url="https://x.example/1", sha="abc", note="n>"
    )
    assert "revision 42" in reply and "`abc`" in reply and "n&gt;" in reply
    assert is_revert_url("https://github.com/acme/gitops/pull/123")
    for bad in ("", "github.com/x", "ftp://x/y", "https://", "https://x/ y", "javascript:x"):
        assert not is_revert_url(bad), bad


REVERT_URL = "https://github.com/acme/gitops/pull/812"
REVERT = RevertStarted("U0LEAD", REVERT_URL, NOW - timedelta(minutes=2))


@pytest.mark.parametrize("recommend", [*Tier, None])
def test_a_recorded_revert_on_the_card(recommend: Tier | None) -> None:
    blocks = incident_card(PAUSED, tiers=tier_set(recommend, tier2=True), revert=REVERT)
    line = (
        f":rewind: Tier 3 revert started by <@U0LEAD> at 14:01:12 UTC: <{REVERT_URL}|{REVERT_URL}>"
    )
    assert texts(blocks).count(line) == 1
    offered = buttons(blocks)
    assert "revert_open" not in offered and "runbook_open" in offered
    tier3 = [line for line in tier_lines(blocks) if "*Tier 3 — " in line]
    if recommend is Tier.FULL_REVERT:
        assert tier3 == []  # the 👉 line is about it: watch it land
    else:  # among the others, started, pointing at its steps for whoever follows it
        assert tier3[0].startswith("⏪ *Tier 3 — Full revert in Git* (started): ")
        assert tier3[0].endswith(" · steps: *Runbook (Tier 3)*")
    next_step = recommendation(blocks) or ""
    if recommend in (Tier.ABORT, Tier.CIRCUIT_BREAKER):
        label = {Tier.ABORT: "Abort the rollout", Tier.CIRCUIT_BREAKER: "Open the circuit breaker"}
        assert next_step.startswith(
            f"👉 *Next: watch the Tier 3 revert land; until it does, Tier {int(recommend)} "
            f"({label[recommend]})* — "
        )
    else:
        assert next_step.startswith("👉 *Next: watch the Tier 3 revert land* — once merged")
    assert "⭐" not in all_text(blocks)
    assert "👉 *Recommended" not in all_text(blocks)
    assert "Tier 3 revert started by <@U0LEAD>" in render_text(blocks)


def test_a_recorded_revert_without_tiers_and_with_a_hostile_url() -> None:
    hostile = RevertStarted("U0LEAD", "not a link <!channel> & *x*", NOW)
    blocks = card(PAUSED, revert=hostile)
    text = all_text(blocks)
    shown = "`not a link &lt;!channel&gt; &amp; *x*`"
    assert f"Tier 3 revert started by <@U0LEAD> at 14:03:12 UTC: {shown}" in text
    assert "<!channel>" not in text and "👉" not in text and "revert_open" not in buttons(blocks)
    with pytest.raises(ValueError):
        tier_blocks.recommended_line(None)


def test_the_answer_to_a_second_revert_names_the_first() -> None:
    kw: dict[str, Any] = {"service": "payment-router", "revision": 42, "actor_id": "U0ONCALL"}
    done = replies.revert_already_text(**kw, at=NOW, url=REVERT_URL + "?a=<1>")
    assert done == (
        "A Tier 3 revert of `payment-router` revision 42 was already started by <@U0ONCALL> "
        "at 14:03:12 UTC: <https://github.com/acme/gitops/pull/812?a=%3C1%3E|"
        "https://github.com/acme/gitops/pull/812?a=&lt;1&gt;>. Nothing more was recorded; "
        "follow that one on the card."
    )
    running = replies.revert_already_text(**kw, at=NOW, url=None)
    assert running == (
        "<@U0ONCALL> is recording a Tier 3 revert of `payment-router` revision 42 (since "
        "14:03:12 UTC); nothing more was recorded."
    )
    no_card = replies.revert_already_text(**{**kw, "revision": None}, at=NOW, url="x <y>")
    assert "revert of `payment-router` was already" in no_card and ": `x &lt;y&gt;`." in no_card


def test_fully_promoted_card_shows_no_canary() -> None:
    """A fully promoted Rollout has no canary: its fields say so instead of 100 %."""
    promoted = facts(card(HEALTHY))
    assert "*Canary weight* none: fully promoted · " in promoted
    assert f"*Canary* none (revision {HEALTHY.revision} is stable) · " in promoted
    assert HEALTHY.fully_promoted and not HEALTHY.aborted
    assert "*Canary* revision 42 `" in facts(card(PAUSED))


CARD_VALUE = rollout_blocks.button_value(service="payment-router", state=PAUSED, epoch=3)


def break_glass_view(**kw: Any) -> dict[str, Any]:
    kw.setdefault("service", "payment-router")
    kw.setdefault("flag", "payments.new-router.circuit-open")
    kw.setdefault("environment", "production")
    kw.setdefault("channel", "C0PAYDEPLOY")
    kw.setdefault("owners_group", "S0PAYMENTS")
    kw.setdefault(
        "metadata",
        modals.break_glass_metadata(
            service="payment-router",
            revision=42,
            epoch=3,
            channel="C0PAYDEPLOY",
            message_ts="1715695392.000100",
        ),
    )
    return modals.break_glass_modal(**kw)


def test_circuit_refusal_offers_break_glass_only_when_asked() -> None:
    value = replies.break_glass_value(
        value=CARD_VALUE, channel="C0PAYDEPLOY", message_ts="1715695392.000100"
    )
    assert json.loads(value) == {
        **json.loads(CARD_VALUE),
        "c": "C0PAYDEPLOY",
        "ts": "1715695392.000100",
    }
    assert (
        rollout_blocks.parse_button_value(value)["s"] == "payment-router"
    )  # still a card button value
    offered = replies.circuit_refusal_blocks(
        ":no_entry: may not without break-glass", break_glass=value
    )
    assert offered[0]["text"]["text"] == ":no_entry: may not without break-glass"
    (button,) = offered[1]["elements"]
    assert button["action_id"] == "circuit_break_glass" == replies.BREAK_GLASS_ACTION_ID
    assert button["text"]["text"] == "Break glass…" and button["style"] == "danger"
    assert button["value"] == value
    plain = replies.circuit_refusal_blocks(":no_entry: may not")
    assert len(plain) == 1 and "circuit_break_glass" not in json.dumps(plain)


def test_break_glass_modal_shape() -> None:
    view = break_glass_view()
    assert view["type"] == "modal" and view["callback_id"] == "circuit_break_glass"
    assert view["title"] == {"type": "plain_text", "text": "Break glass"}
    assert len(view["title"]["text"]) <= 24
    assert view["submit"] == {"type": "plain_text", "text": "Open circuit"}
    assert view["close"] == {"type": "plain_text", "text": "Cancel"}
    said = " ".join(blk["text"]["text"] for blk in view["blocks"] if blk["type"] == "section")
    assert "`payments.new-router.circuit-open` in production" in said
    assert "legacy path" in said and "other flags are ignored" in said  # as the confirm
    # (without the service's other flags named: see test_opening_the_breaker_names_…)
    assert "<#C0PAYDEPLOY>" in said and "<!subteam^S0PAYMENTS>" in said  # where it is loud
    assert "audit log" in said and "PagerDuty" in said
    (reason,) = [blk for blk in view["blocks"] if blk["type"] == "input"]
    assert reason["block_id"] == "break_glass_reason" and not reason.get("optional", False)
    assert reason["label"]["text"] == "Why (goes to the channel and the audit log)"
    element = reason["element"]
    assert element["type"] == "plain_text_input" and element["action_id"] == "reason"
    assert element["multiline"] is True and element["min_length"] == 10
    assert modals.parse_break_glass_metadata(view["private_metadata"]) == {
        "s": "payment-router",
        "r": 42,
        "e": 3,
        "c": "C0PAYDEPLOY",
        "ts": "1715695392.000100",
    }
    no_group = json.dumps(break_glass_view(owners_group=None, environment=None))
    assert "subteam" not in no_group and "in production" not in no_group


def test_break_glass_modal_limits_and_hostile_text() -> None:
    with pytest.raises(ValueError, match="3000"):
        break_glass_view(metadata="m" * 3001)
    with pytest.raises(ValueError):
        modals.parse_break_glass_metadata('{"no": "service"}')
    hostile = json.dumps(break_glass_view(service="<evil>&", flag="<!channel>"))
    assert "<evil>" not in hostile and "<!channel>" not in hostile


def test_break_glass_names_a_channel_written_by_name_once() -> None:
    """Issue 14: the catalog's `#payments-deploys` showed as "##payments-deploys"."""
    said = " ".join(
        blk["text"]["text"]
        for blk in break_glass_view(channel="#payments-deploys")["blocks"]
        if blk["type"] == "section"
    )
    assert "top-level message in #payments-deploys mentioning" in said
    assert "##" not in said and "<#" not in said


RESPONSE_URL = "https://hooks.slack.com/actions/T0PAYMENTS/1234567890123/AbCdEfGhIjKlMnOpQrStUvWx"


def test_break_glass_metadata_carries_the_click_s_response_url_within_3000() -> None:
    base = {"revision": 42, "epoch": 3, "channel": "C0PAYDEPLOY", "message_ts": "1715695392.000100"}
    raw = modals.break_glass_metadata(service="payment-router", **base, response_url=RESPONSE_URL)
    assert modals.parse_break_glass_metadata(raw)["u"] == RESPONSE_URL
    assert len(raw) <= modals.MAX_PRIVATE_METADATA
    # The longest service a card button can carry (its value ≤ 2000) still fits with it.
    long = modals.break_glass_metadata(service="s" * 1900, **base, response_url=RESPONSE_URL)
    assert len(long) <= 3000 and json.loads(long)["u"] == RESPONSE_URL
    # A URL that would not fit, or is not http(s), is left out: the modal still opens.
    for url in ("https://hooks.slack.com/" + "x" * 2990, "javascript:alert(1)", "", None):
        left_out = modals.break_glass_metadata(service="s" * 1900, **base, response_url=url)
        assert len(left_out) <= 3000 and "u" not in modals.parse_break_glass_metadata(left_out)
        assert break_glass_view(metadata=left_out)["private_metadata"] == left_out
    # A submitted `u` is checked like every other key.
    for bad in (5, "javascript:alert(1)", "https://x.example/a b"):
        with pytest.raises(ValueError):
            modals.parse_break_glass_metadata(json.dumps({"s": "payment-router", "u": bad}))


@pytest.mark.parametrize(
    ("status", "icon", "outcome"),
    [
        ("succeeded", ":white_check_mark:", "circuit opened, verified — see the card's thread."),
        ("failed", ":x:", "circuit NOT opened: the flag did not read back on — see the card's "),
        ("duplicate", ":information_source:", "nothing more flipped: "),
        ("refused", ":no_entry:", "refused, nothing flipped — see the reply below."),
        ("error", ":warning:", "the circuit was not confirmed open — see the reply below."),
        ("something new", ":warning:", "the circuit was not confirmed open — see the reply"),
    ],
)
def test_break_glass_used_message_says_how_it_ended_with_no_button(
    status: str, icon: str, outcome: str
) -> None:
    text, blocks = replies.break_glass_used_message(at=NOW, status=status)
    assert text.startswith(f"{icon} Break glass used by you at 14:03:12 UTC: {outcome}"), text
    assert_valid_block_kit(blocks)
    assert [b["type"] for b in blocks] == ["section"] and blocks[0]["text"]["text"] == text
    assert "button" not in json.dumps(blocks) and replies.BREAK_GLASS_ACTION_ID not in text


def test_break_glass_used_message_escapes_what_failed() -> None:
    error = "LaunchDarkly said <!channel> & <@U0OUTSIDER> " + "x" * 5000 + "."
    text, blocks = replies.break_glass_used_message(at=NOW, status="error", error=error)
    assert text.startswith(
        ":warning: Break glass used by you at 14:03:12 UTC: the circuit was not confirmed "
        "open: LaunchDarkly said &lt;!channel&gt; &amp; &lt;@U0OUTSIDER&gt; xxx"
    )
    assert "<!channel>" not in text and "<@" not in text and text.endswith("….")
    assert_valid_block_kit(blocks)
    # Only an error says what failed: a refusal's reason is the reply below, in mrkdwn.
    refused, _ = replies.break_glass_used_message(at=NOW, status="refused", error="<x>")
    assert "<x>" not in refused and "&lt;x&gt;" not in refused


def test_opening_the_breaker_names_the_flags_it_overrides() -> None:
    """Issue 14: "the other flags are ignored" did not say which flags."""
    both = tier_blocks.circuit_open_text(
        service="payment-router",
        flag="payments.new-router.circuit-open",
        environment="production",
        others=["payments.new-router.enabled", "payments.dynamic-currency.enabled"],
    )
    assert "`payments.new-router.enabled`, `payments.dynamic-currency.enabled` are ignored" in both
    one = tier_blocks.circuit_open_text(
        service="x", flag="x.open", environment=None, others=["x.enabled"]
    )
    assert "`x.enabled` is ignored" in one
    view = break_glass_view(others=["payments.new-router.enabled"])
    said = " ".join(b["text"]["text"] for b in view["blocks"] if b["type"] == "section")
    assert "`payments.new-router.enabled` is ignored" in said

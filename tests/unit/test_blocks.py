"""Block Kit builders (bot.slack.blocks), the terminal renderer and available_actions.

Aspects under test:
- available_actions for every kind of Rollout state (table);
- the rollout card for each state: header, the facts (phase, step 3/8, weight, stable and
  canary revision + image, analysis and its message, age, namespace/rollout), trouble,
  outcome line, notice, and which buttons appear;
- buttons: labels, action_ids, danger style, confirm dialog text saying exactly what will
  happen, compact JSON value that round-trips;
- every card is valid Block Kit: the typed models accept it again and Slack's limits hold
  (≤ 50 blocks, text ≤ 3000, header ≤ 150, button text ≤ 75, value ≤ 2000, unique action_id);
- every Rollout fixture in ../shared/fixtures/argo-rollouts renders through parse_rollout;
- the small texts (timeline, help, error, unknown service, refusal, already done);
- render_text turns a card into readable terminal text.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml
from slack_sdk.models.blocks import Block

from bot.core.model import AnalysisStatus, RolloutAction, RolloutState, Trouble, TroubleKind
from bot.core.ports import ActionRecord
from bot.core.tiers import available_actions
from bot.slack import blocks as b
from bot.slack.render import render_text
from tests.plugins.fixtures import FIXTURES, analysisrun_fixture_paths, rollout_fixture_paths

NOW = datetime(2024, 5, 14, 14, 3, 12, tzinfo=UTC)

PAUSED = RolloutState(
    namespace="payments",
    name="payment-router",
    uid="u-1",
    revision=42,
    phase="Paused",
    message="CanaryPauseStep",
    step_index=3,
    step_count=8,
    canary_weight=25,
    set_weight=25,
    aborted=False,
    aborted_at=None,
    paused=False,
    controller_pause=True,
    pause_reasons=("CanaryPauseStep",),
    progressing_reason="RolloutPaused",
    stable_rs="6f7c9b8d4",
    current_pod_hash="58c4d7f9b",
    canary_image="registry.example.com/payment-router:1.8.0",
    stable_image="registry.example.com/payment-router:1.7.3",
    stable_revision=41,
    analysis=AnalysisStatus("payment-router-42-3", "Running", ""),
    created_at=NOW - timedelta(minutes=12, seconds=5),
    resource_version="1001",
    generation=7,
    strategy="canary",
)
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
    for block in blocks:
        parsed = Block.parse(block)
        assert parsed is not None, block
        assert parsed.to_dict() == block  # validates on the way out
        text = block.get("text") or {}
        assert len(text.get("text", "")) <= (150 if block["type"] == "header" else 3000)
        for field in block.get("fields") or []:
            assert len(field["text"]) <= 2000
        for el in block.get("elements") or []:
            if el.get("type") == "button":
                assert len(el["text"]["text"]) <= 75
                assert len(el["value"]) <= 2000
                action_ids.append(el["action_id"])
    assert len(action_ids) == len(set(action_ids))


def card(state: RolloutState, **kw: Any) -> list[dict[str, Any]]:
    kw.setdefault("trouble", None)
    blocks = b.rollout_card(service="payment-router", state=state, epoch=3, now=NOW, **kw)
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


def test_paused_card_shows_the_facts() -> None:
    blocks = card(PAUSED)
    assert blocks[0] == {
        "type": "header",
        "text": {"type": "plain_text", "text": "⏸️ payment-router · Paused", "emoji": True},
    }
    fields = [f["text"] for f in blocks[1]["fields"]]
    assert fields == [
        "*Phase*\nPaused",
        "*Step*\n3/8",
        "*Canary weight*\n25%",
        "*Stable*\nrevision 41\n`registry.example.com/payment-router:1.7.3`",
        "*Canary*\nrevision 42\n`registry.example.com/payment-router:1.8.0`",
        "*Analysis*\nRunning (payment-router-42-3)",
        "*Age*\n12m 5s",
        "*Rollout*\n`payments/payment-router`",
    ]
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
    assert b.parse_button_value(value) == {
        "s": "payment-router",
        "ns": "payments",
        "n": "payment-router",
        "r": 42,
        "e": 3,
    }
    with pytest.raises(ValueError, match="not a rollbot button value"):
        b.parse_button_value('{"s": "x"}')


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
    fields = [f["text"] for f in blocks[2]["fields"]]
    assert 'Failed (payment-router-42-3)\nmetric "error-rate" assessed Failed' in fields[5]
    assert list(buttons(blocks)) == ["rollout_retry"]
    assert "confirm" not in buttons(blocks)["rollout_retry"]


def test_healthy_card_has_no_buttons() -> None:
    blocks = card(HEALTHY)
    assert blocks[0]["text"]["text"].startswith("✅")
    assert buttons(blocks) == {}
    assert not [x for x in blocks if x["type"] in ("actions", "divider")]


def test_outcome_and_notice_lines() -> None:
    done = b.Outcome(RolloutAction.ABORT, "U0ONCALL", NOW, True, 0.84, "")
    assert b.outcome_line(done) == "Aborted by <@U0ONCALL> at 14:03:12 UTC, verified in 0.8 s"
    failed = b.Outcome(RolloutAction.PROMOTE, "U0ONCALL", NOW, False, 5.0, "canary weight 25")
    assert b.outcome_line(failed) == (
        "Promoted by <@U0ONCALL> at 14:03:12 UTC, not verified: canary weight 25"
    )
    blocks = card(ABORTED, outcome=done, notice="Retry is Tier 1 again; Tier 3 needs Git.")
    text = all_text(blocks)
    assert ":white_check_mark: Aborted by <@U0ONCALL> at 14:03:12 UTC, verified in 0.8 s" in text
    assert "Retry is Tier 1 again; Tier 3 needs Git." in text
    assert "verified in 0.8 s" in b.rollout_card_text(
        service="payment-router", state=ABORTED, trouble=None, outcome=done
    )


def test_card_text_is_the_notification_summary() -> None:
    trouble = Trouble(TroubleKind.INCONCLUSIVE, "Analysis inconclusive at step 3/8")
    assert b.rollout_card_text(service="payment-router", state=INCONCLUSIVE, trouble=trouble) == (
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
    rollouts = pytest.importorskip("bot.core.rollouts")
    state = rollouts.parse_rollout(yaml.safe_load(path.read_text()))
    blocks = b.rollout_card(
        service=state.name, state=state, trouble=rollouts.trouble(state), epoch=0, now=NOW
    )
    assert_valid_block_kit(blocks)
    assert [el["action_id"] for el in buttons(blocks).values()] == [
        b.ACTION_IDS[a] for a in available_actions(state)
    ]
    assert state.name in render_text(blocks)


@pytest.mark.parametrize("path", analysisrun_fixture_paths(), ids=lambda p: p.name)
def test_every_analysisrun_fixture_renders_on_a_card(path: Any) -> None:
    """Each AnalysisRun fixture, joined to a Rollout, shows its phase and message."""
    rollouts = pytest.importorskip("bot.core.rollouts")
    run = yaml.safe_load(path.read_text())
    base = FIXTURES / "argo-rollouts" / "testdata" / "rollout-aborted.rollout.yaml"
    state = rollouts.parse_rollout(yaml.safe_load(base.read_text()), analysis_run=run)
    assert state.analysis is not None
    assert state.analysis.status == run["status"]["phase"]
    blocks = b.rollout_card(
        service=state.name, state=state, trouble=rollouts.trouble(state), epoch=0, now=NOW
    )
    assert_valid_block_kit(blocks)
    text = render_text(blocks)
    assert state.analysis.status in text
    message = run["status"].get("message")
    if message:
        assert json.dumps(message)[1:41] in json.dumps(blocks)


def test_small_texts() -> None:
    assert b.timeline_line(at=NOW, text="Abort requested") == "`14:03:12 UTC` Abort requested"
    assert b.unknown_service_text("pay", {"payment-router", "ledger"}) == (
        "Unknown service `pay`. Known services: `ledger`, `payment-router`."
    )
    refusal = b.refusal_text(
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
    assert b.already_done_text(record) == "Already aborted by <@U0ONCALL> at 14:03:12 UTC"
    running = dataclasses.replace(record, status="running", finished_at=None)
    assert b.already_done_text(running) == ("Already aborting: <@U0ONCALL> started at 14:03:11 UTC")
    help_ = b.help_blocks()
    assert_valid_block_kit(help_)
    assert "/rollback SERVICE [status|abort|retry|promote|promote-full|pause|help]" in (
        all_text(help_)
    )
    err = b.error_blocks("Kubernetes is unreachable", error_id="e-7f3a")
    assert_valid_block_kit(err)
    assert "`e-7f3a`" in err[1]["elements"][0]["text"]
    assert len(b.error_blocks("x", error_id=None)) == 1


def test_render_text_for_the_terminal() -> None:
    out = render_text(card(PAUSED, notice="watching"))
    lines = out.splitlines()
    assert lines[0] == "⏸️ payment-router · Paused"
    assert lines[1].startswith("═")
    assert "*Step*" in out and "3/8" in out
    assert "│ watching" in out
    assert lines[-1] == "[ Abort (Tier 1) ]  [ Promote ]"

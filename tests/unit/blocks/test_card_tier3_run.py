"""The card while rollbot runs Tier 3 (issue 18): a table over the revert's stages.

Aspects under test, for each stage of a revert rollbot runs (none, confirmed, opened,
approved, merge-queued, merged, verified, failed), with and without rollbot running
Tier 3 for the service:
- which Tier 3 buttons the card offers: "Start Tier 3 revert…" (rollbot runs it, nothing
  started), "Record Tier 3 revert…" (by hand: beside Start, or alone where rollbot does not
  run it, or once it stopped),
  "Approve Tier 3 revert" only while the request waits for a second person;
- the revert's line says where it stands (waiting for approval, merging, branch
  protection, waiting for Argo CD, done and verified, stopped and why), links the request
  (its URL escaped), names the requester and the approver (break glass said);
- the `👉` line: watch the revert land while it runs; once verified, watch the signals
  recover; stopped, the tiers are recommended as before;
- the notification text leads with the stage's words;
- outside text (the host's URL, the error) is escaped.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from bot.blocks import card as card_blocks
from bot.core.model import RevertStarted, Tier
from tests.unit.blocks import test_card as tb

PR = "https://github.com/platform/configs/pull/12"
STAGES = (None, "confirmed", "opened", "approved", "merge-queued", "merged", "verified", "failed")


def revert(stage: str | None, **kw: Any) -> RevertStarted | None:
    if stage is None:
        return None
    fields: dict[str, Any] = {
        "stage": stage,
        "change": "pull request #12",
        "approver_id": "U0LEAD" if stage not in ("confirmed", "opened") else None,
        "error": "merged, but not verified after 30 min: a new revision (now 8)"
        if stage == "failed"
        else None,
    }
    url = kw.pop("url", "" if stage == "confirmed" else PR)
    fields.update(kw)
    return RevertStarted("U0ONCALL", url, tb.NOW, **fields)


def render(stage: str | None, *, executable: bool = True, **kw: Any) -> list[dict[str, Any]]:
    return tb.incident_card(
        tb.PAUSED,
        tiers=tb.tier_set(Tier.FULL_REVERT),
        revert=revert(stage, **kw),
        tier3_executable=executable,
    )


# stage → (start, record, approve) buttons, when rollbot runs Tier 3
BUTTONS = {
    None: (True, True, False),
    "confirmed": (False, False, False),
    "opened": (False, False, True),
    "approved": (False, False, False),
    "merge-queued": (False, False, False),
    "merged": (False, False, False),
    "verified": (False, False, False),
    "failed": (False, True, False),
}

LINE = {
    "confirmed": "pushing the branch and opening pull request #12",
    "opened": "*waiting for a second person's approval*",
    "approved": "approved by <@U0LEAD> · merging",
    "merge-queued": "branch protection merges it",
    "merged": "waiting for Argo CD's sync",
    "verified": "*Tier 3 done, verified*",
    "failed": "stopped: merged, but not verified after 30 min",
}

NEXT = {
    None: "Recommended: Tier 3",
    "confirmed": "Next: watch the Tier 3 revert land",
    "opened": "Next: watch the Tier 3 revert land",
    "approved": "Next: watch the Tier 3 revert land",
    "merge-queued": "Next: watch the Tier 3 revert land",
    "merged": "Next: watch the Tier 3 revert land",
    "verified": "Next: watch the signals recover",
    "failed": "Recommended: Tier 3",
}


@pytest.mark.parametrize("stage", STAGES)
def test_tier3_buttons_by_stage(stage: str | None) -> None:
    shown = tb.buttons(render(stage))
    start, record, approve = BUTTONS[stage]
    assert ("tier3_start" in shown) is start
    assert ("revert_open" in shown) is record
    assert ("tier3_approve" in shown) is approve
    if approve:
        confirm = json.dumps(shown["tier3_approve"]["confirm"])
        assert "pull request #12" in confirm and "not the one who started it" in confirm


@pytest.mark.parametrize("stage", STAGES)
def test_by_hand_the_record_button_stays(stage: str | None) -> None:
    shown = tb.buttons(render(stage, executable=False))
    assert "tier3_start" not in shown
    assert ("revert_open" in shown) is (stage in (None, "failed"))


@pytest.mark.parametrize("stage", [s for s in STAGES if s is not None])
def test_the_revert_line_says_where_it_stands(stage: str) -> None:
    texts = tb.texts(render(stage))
    line = next(t for t in texts if "Tier 3 revert by" in t or "Tier 3 done" in t)
    assert LINE[stage] in line
    assert "<@U0ONCALL>" in line
    if stage != "confirmed":
        assert f"<{PR}|pull request #12>" in line


@pytest.mark.parametrize("stage", STAGES)
def test_the_next_step_by_stage(stage: str | None) -> None:
    assert NEXT[stage] in (tb.recommendation(render(stage)) or "")


@pytest.mark.parametrize(
    ("stage", "lead"),
    [
        ("opened", "⏪ Tier 3 revert started by <@U0ONCALL>"),
        ("verified", "✅ Tier 3 done, verified"),
        ("failed", "❌ Tier 3 revert stopped"),
    ],
)
def test_the_notification_text_leads_with_the_stage(stage: str, lead: str) -> None:
    text = card_blocks.rollout_card_text(
        service="payment-router",
        state=tb.PAUSED,
        trouble=None,
        incident=tb.INCIDENT,
        tiers=tb.tier_set(Tier.FULL_REVERT),
        revert=revert(stage),
    )
    assert lead in text


def test_break_glass_is_said() -> None:
    texts = tb.texts(render("approved", approver_id="U0ONCALL", break_glass=True))
    assert any("approved by <@U0ONCALL> (break glass)" in t for t in texts)


def test_outside_text_is_escaped() -> None:
    blocks = render("failed", error="<!channel> & *bold*", url="https://h/pr/1?a=<b>&c")
    text = "\n".join(tb.texts(blocks))
    assert "<!channel>" not in text and "&lt;!channel&gt; &amp;" in text
    assert "<https://h/pr/1?a=%3Cb%3E&amp;c|pull request #12>" in text

"""Issue 12, finding 5 (unit): outside text never becomes Slack markup in a builder.

Aspects under test:
- `bot.core.mrkdwn.escape` is Slack's "Escaping text", exactly: `&`, `<`, `>` and nothing
  else; a property test: no `<` or `>` survives, `unescape` gives the text back, and the
  escaped text holds no entity that would decode into markup;
- a table of hostile strings (`<!channel>`, `<!here>`, `<@U0ONCALL>`, `<!subteam^S123>`,
  `<https://evil.example|click>`, a pre-escaped `&lt;!here&gt;`, `a & b`) fed through
  every builder that puts an outside string into mrkdwn: the Rollout card and its
  notification text (trouble, phase, images, stable ReplicaSet, the analysis and its
  message, the Rollout's message, firing alerts, evidence, outcome, tiers), the thread's
  summary line, flags, Tier 3's modal, line and reply, the revert recorded on the card
  and the answer to a second record, the circuit line, the unknown
  service text, the Slack error handler's messages, policy refusals quoting PagerDuty's
  error or a break-glass reason, and every release message. Each must show the string as
  written (its escaped form is there) and never raw, in any mrkdwn text object or
  `text`; plain_text objects are not parsed by Slack and are left as written;
- rollbot's own markup still works around escaped pieces: mentions of the actor, the
  owners group, `<url|label>` links it builds (with `|`, `<`, `>` in a URL encoded).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.blocks import card as card_blocks
from bot.blocks import modals, replies
from bot.blocks import release as rb
from bot.blocks import tiers as tier_blocks
from bot.cards import summary_line
from bot.core import mrkdwn, policy
from bot.core import rollouts as core_rollouts
from bot.core.errors import InvalidRequest, OutcomeUnknown, TargetNotFound, Unreachable
from bot.core.flags import FlagInfo, FlagStatus
from bot.core.model import (
    Actor,
    AnalysisStatus,
    ChecklistItem,
    Evidence,
    FlagState,
    Outcome,
    Release,
    ReleasePhase,
    ReleaseView,
    RevertStarted,
    RolloutAction,
    RolloutState,
    TicketKind,
    TicketView,
    Tier,
    TierOption,
    Trouble,
    TroubleKind,
)
from bot.slack import errors
from tests.states import NOW, PAUSED_CANARY

HOSTILE = [
    "<!channel>",
    "<!here>",
    "<@U0ONCALL>",
    "<!subteam^S123>",
    "<https://evil.example|click>",
    "&lt;!here&gt;",
    "a & b",
]

STATE = dataclasses.replace(PAUSED_CANARY, created_at=NOW - timedelta(minutes=12))


# ── what Slack parses ────────────────────────────────────────────────────────────────────


def mrkdwn_texts(obj: Any) -> Iterator[str]:
    """Every string Slack reads as mrkdwn in a message, blocks or a view: `text` objects of
    type mrkdwn (sections, fields, context, confirm dialogs). plain_text is shown as is."""
    if isinstance(obj, dict):
        if obj.get("type") == "plain_text":
            return
        if obj.get("type") == "mrkdwn":
            yield str(obj.get("text", ""))
            return
        for key, value in obj.items():
            if key in ("private_metadata", "value", "action_id", "block_id", "url"):
                continue
            yield from mrkdwn_texts(value)
    elif isinstance(obj, list):
        for item in obj:
            yield from mrkdwn_texts(item)


def shown(output: Any) -> str:
    """A builder's output as the mrkdwn Slack would parse: a string is message text."""
    if isinstance(output, str):
        return output
    if isinstance(output, tuple):  # (text, blocks)
        return "\n".join(shown(part) for part in output)
    return "\n".join(mrkdwn_texts(output))


def assert_shown_as_written(output: Any, hostile: str) -> None:
    text = shown(output)
    assert hostile not in text, f"raw {hostile!r} reached mrkdwn: {text!r}"
    assert mrkdwn.escape(hostile) in text, f"{hostile!r} not shown as written: {text!r}"


# ── the escaping function ────────────────────────────────────────────────────────────────


def test_escape_is_exactly_slacks_three_entities() -> None:
    assert mrkdwn.escape("<!channel> & <@U1|x> *bold* `c` _i_ ~s~") == (
        "&lt;!channel&gt; &amp; &lt;@U1|x&gt; *bold* `c` _i_ ~s~"
    )
    assert mrkdwn.escape("&lt;") == "&amp;lt;"  # shows as typed, never decodes to "<"
    assert mrkdwn.unescape("&amp;lt;!here&amp;gt; &lt;b&gt;") == "&lt;!here&gt; <b>"


@given(st.text())
def test_escape_property(text: str) -> None:
    escaped = mrkdwn.escape(text)
    assert "<" not in escaped and ">" not in escaped
    assert mrkdwn.unescape(escaped) == text
    # Every & starts one of the three entities, and decoding once yields `text` itself:
    # no sequence in it decodes into a control character that `text` did not have.
    rest = escaped
    while "&" in rest:
        rest = rest[rest.index("&") :]
        assert rest.startswith(("&amp;", "&lt;", "&gt;"))
        rest = rest[1:]
    assert mrkdwn.escape(mrkdwn.unescape(escaped)) == escaped


@given(st.text(), st.integers(min_value=2, max_value=80))
def test_safe_never_cuts_an_entity_or_lets_markup_through(text: str, limit: int) -> None:
    out = mrkdwn.safe(text, limit)
    assert "<" not in out and ">" not in out and "\n" not in out
    assert len(out) <= limit
    body = out.removesuffix("…")
    tail = body[body.rfind("&") :] if "&" in body else ""
    assert not tail or ";" in tail


def test_link_encodes_what_would_end_it() -> None:
    assert mrkdwn.link("https://x.example/a|b<c>d", "graph") == (
        "<https://x.example/a%7Cb%3Cc%3Ed|graph>"
    )
    assert not mrkdwn.is_web_url("javascript:alert(1)")
    assert not mrkdwn.is_web_url("https://x.example/a b")


def test_plain_reads_rollbot_mrkdwn_for_pagerduty() -> None:
    text = "*Aborted* `x` by <@U1|alice>: <https://g.example|graph> &lt;!here&gt; a &amp; b"
    assert mrkdwn.plain(text) == "Aborted x by alice: graph <!here> a & b"


# ── every builder, every hostile string ──────────────────────────────────────────────────


def _card(**kw: Any) -> tuple[str, list[dict[str, Any]]]:
    kw.setdefault("state", STATE)
    kw.setdefault("trouble", None)
    args = {"service": "payment-router", "epoch": 1, "now": NOW, **kw}
    return card_blocks.rollout_card_text(**args), card_blocks.rollout_card(**args)


def _failed_analysis(h: str) -> RolloutState:
    return dataclasses.replace(STATE, analysis=AnalysisStatus("run-42", "Failed", h))


def _release(h: str, **kw: Any) -> Release:
    base: dict[str, Any] = {
        "id": f"payment-router@{h}",
        "service": "payment-router",
        "version": h,
        "phase": ReleasePhase.PROGRESSING,
        "started_at": NOW,
        "clock_started_at": NOW,
        "source": "slack",
        "started_by": "U0STARTER",
        # `x…`: an owner given exactly as `<@U…>` is a deliberate mention (/release start)
        "owner": f"x{h}",
        "owner_slack": "U0LEAD",
        "revision": 42,
        "previous_version": h,
        "winner": h,
        "winner_at": NOW,
    }
    base.update(kw)
    return Release(**base)


def _view(h: str) -> ReleaseView:
    tickets = (
        TicketView(
            kind=TicketKind.REMOVE_RELEASE_FLAG,
            summary=h,
            state="filed",
            key=h,
            url=f"https://jira.example.com/browse/{h}",
            due=date(2024, 6, 12),
            provisional=True,
            status=h,
        ),
        TicketView(
            kind=TicketKind.REMOVE_EXPERIMENT_FLAG,
            summary="Remove the experiment flag",
            state="failed",
            key=None,
            url=None,
            due=date(2024, 6, 12),
            provisional=False,
            error=h,
        ),
    )
    return ReleaseView(
        release=_release(h),
        tickets=tickets,
        checklist=(ChecklistItem(h, False, h),),
        thread_link="https://slack.example.com/archives/C0/p1",
    )


def _policy(h: str) -> str:
    down = policy.authorise(
        actor=Actor("U0ACTOR", "someone"),
        service="payment-router",
        action=RolloutAction.ABORT,
        owners_usergroup="S0PAYMENTS",
        usergroup_members=frozenset(),
        escalation_policy="PESC",
        on_call=None,
        on_call_error=h,
    )
    glass = policy.authorise(
        actor=Actor("U0ACTOR", "someone"),
        service="payment-router",
        action="circuit-open",
        owners_usergroup="S0PAYMENTS",
        usergroup_members=frozenset({"U0ACTOR"}),
        escalation_policy="PESC",
        on_call=frozenset({"U0PAGED"}),
        break_glass=True,
        break_glass_reason=h,
    )
    return f"{down.reason}\n{glass.reason}"


BUILDERS: dict[str, Callable[[str], Any]] = {
    "card: trouble summary": lambda h: _card(trouble=Trouble(TroubleKind.DEGRADED, h)),
    "card: analysis message (as core words it)": lambda h: _card(
        state=_failed_analysis(h), trouble=core_rollouts.trouble(_failed_analysis(h))
    ),
    "card: analysis name and status": lambda h: _card(
        state=dataclasses.replace(STATE, analysis=AnalysisStatus(h, h, ""))
    ),
    "card: Rollout message": lambda h: _card(state=dataclasses.replace(STATE, message=h)),
    "card: phase": lambda h: _card(state=dataclasses.replace(STATE, phase=h)),
    "card: images": lambda h: _card(
        state=dataclasses.replace(STATE, canary_image=h, stable_image=h)
    ),
    "card: stable ReplicaSet": lambda h: _card(
        state=dataclasses.replace(STATE, stable_revision=None, stable_rs=h)
    ),
    "card: firing alerts": lambda h: _card(alerts=[h]),
    "card: evidence unavailable": lambda h: _card(evidence=Evidence(available=False, detail=h)),
    "card: outcome detail": lambda h: _card(
        outcome=Outcome(RolloutAction.ABORT, "U0ACTOR", NOW, False, 0.0, detail=h)
    ),
    "card: tiers": lambda h: _card(
        tiers=[
            TierOption(Tier.ABORT, h, True, h, recommended=True),
            TierOption(Tier.FULL_REVERT, "Revert in Git", True, h, steps=(h,), link=h),
        ]
    ),
    "thread: summary line": lambda h: summary_line(
        dataclasses.replace(STATE, phase=h, message=h, pause_reasons=(h,))
    ),
    "flags": lambda h: replies.flags_text(
        "payment-router",
        [FlagStatus(FlagInfo("circuit", "k", "ops toggle", owner=h, description=h), h, "x")],
    ),
    "circuit line": lambda h: tier_blocks.circuit_line(FlagState("k", "p", h, True, "unleash")),
    "unknown service": lambda h: replies.unknown_service_text(h, ["payment-router"]),
    "Tier 3 modal": lambda h: modals.revert_modal(
        service="payment-router", state=STATE, steps=[h], metadata="{}", sha=h
    ),
    "Tier 3 thread line": lambda h: replies.revert_line(actor_id="U0ACTOR", url=h, note=h),
    "Tier 3 reply": lambda h: replies.revert_recorded_text(
        service="payment-router", revision=42, url="https://git.example/pr/1", sha=h, note=h
    ),
    "card: Tier 3 revert started": lambda h: _card(
        revert=RevertStarted("U0ACTOR", h, NOW), tiers=[TierOption(Tier.FULL_REVERT, "R", True, "")]
    ),
    "card: Tier 3 revert started (a link)": lambda h: _card(
        revert=RevertStarted("U0ACTOR", f"https://git.example/pr/1?q={h}", NOW)
    ),
    "Tier 3 already started": lambda h: replies.revert_already_text(
        service=h, revision=42, actor_id="U0ACTOR", at=NOW, url=h
    ),
    "error: invalid request": lambda h: errors.message_for(InvalidRequest(h))[0],
    "error: outside service unreachable": lambda h: errors.message_for(
        Unreachable("Kubernetes", h)
    )[0],
    "error: outcome unknown": lambda h: errors.message_for(OutcomeUnknown(h))[0],
    "error: target not found": lambda h: errors.message_for(TargetNotFound("Rollout", h, h))[0],
    "error blocks": lambda h: replies.error_blocks(errors.message_for(InvalidRequest(h))[0]),
    "policy: PagerDuty error and break-glass reason": _policy,
    "release: thread root": lambda h: rb.release_started(_view(h)),
    "release: checklist": lambda h: rb.release_checklist(_view(h)),
    "release: status": lambda h: rb.release_status([_view(h)], NOW),
    "release: list": lambda h: rb.release_list([_view(h)], NOW),
    "release: home": lambda h: rb.home_view([_view(h)], NOW, note=h),
    "release: start reply": lambda h: rb.start_reply(False, _view(h)),
    "release: winner reply": lambda h: rb.winner_reply(_view(h), NOW, h),
}


@pytest.mark.parametrize("hostile", HOSTILE)
@pytest.mark.parametrize("builder", list(BUILDERS))
def test_every_builder_shows_outside_text_as_written(builder: str, hostile: str) -> None:
    assert_shown_as_written(BUILDERS[builder](hostile), hostile)


def test_rollbots_own_markup_survives_around_escaped_pieces() -> None:
    text, blocks = _card(
        outcome=Outcome(RolloutAction.ABORT, "U0ACTOR", NOW, False, 0.0, detail="<!here>"),
        evidence=Evidence(available=True, detail="", graph_url="https://grafana.example/d?a=1"),
    )
    card = shown(blocks)
    assert "Aborted by <@U0ACTOR>" in card and "<!here>" not in card
    assert "Aborted by <@U0ACTOR>" in text and "<!here>" not in text
    assert "<https://grafana.example/d?a=1|graph>" in card
    reason = _policy("<!channel>")
    assert "<!subteam^S0PAYMENTS>" in reason and "<@U0ACTOR>" in reason
    assert "<!channel>" not in reason
    line = replies.revert_line(actor_id="U0ACTOR", url="https://git.example/pr/1", note="<!here>")
    assert "<@U0ACTOR>" in line and "<https://git.example/pr/1|" in line
    assert "<!here>" not in line


def test_the_link_message_escapes_the_persons_chosen_name() -> None:
    """A Slack display name is the person's own text: `<!channel>` as a name must not ping
    the channel when the link message names them (DM or ephemeral)."""
    from datetime import timedelta

    from bot.core import links

    issued = links.IssuedLink(
        url="https://rollbot.example.com/runbooks/payment-router?token=abc&x=1",
        service="payment-router",
        user_id="U0ONCALL",
        user_name="<!channel> <https://evil.example|click>",
        expires_at=datetime(2026, 12, 6, 2, 15, tzinfo=UTC),
        ttl=timedelta(minutes=15),
    )
    text = links.message(issued)
    assert "<!channel>" not in text and "<https://evil" not in text
    assert "&lt;!channel&gt;" in text
    assert "<https://rollbot.example.com/runbooks/payment-router?token=abc&amp;x=1|" in text

"""Release messages (bot.blocks.release).

Aspects under test:
- the release card (the thread root): header "<phase emoji> payment-router 1.13.0", phase,
  who started it and from where, owner (mention and Jira assignee), revision, start time in
  the service's time zone; a table over every phase (and a retry) pins the card's words:
  started, rolling out, retried, fully rolled out, aborted, reverted, never another phase's;
- the checklist: ✅ / ❌ / ❔ with each check's evidence, the counts, escaping; rollbot's
  own links (the tickets in Jira) render as links, a hostile label or URL does not;
- the answer to a start says first what state the revision is in, for every phase;
- `/release status`: phase, full rollout time or "not yet (due dates provisional)" (or the
  clocks stopped), every ticket: key linked to Jira, or pending / creating… / failed with
  Jira's error; summary; due date with "(provisional)", relative to today and overdue;
  the contract migration's not-before moment in the service's time zone; Jira status;
  done ✓; the empty state;
- `/release list`: one section per release with its phase and next due ticket;
- the App Home view: type home, releases with tickets and due dates, a friendly empty
  state, a note;
- help and the listener's one-line answers (started, already started, winner);
- time zones: Europe/Berlin (CEST/CET), America/Los_Angeles, Asia/Kolkata, an unknown
  name falls back to UTC;
- every builder's output, for every phase × ticket state × provisional/real dates × time
  zone, and with hostile input (hundreds of tickets, releases and checks, 10 kB texts,
  `<>&`), passes SlackSim's validator and Slack's limits (≤ 50 blocks per message, ≤ 100
  for the Home tab, section text ≤ 3000, ≤ 10 fields of ≤ 2000, header plain_text ≤ 150,
  ≤ 10 context elements) and parses back into slack_sdk's typed blocks; what does not fit
  ends in "…and N more".
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from slack_sdk.models.blocks import Block

from bot.blocks import release as rb
from bot.core.model import (
    ChecklistItem,
    Release,
    ReleasePhase,
    ReleaseView,
    TicketKind,
    TicketView,
)
from bot.sim.slack import block_errors

NOW = datetime(2024, 5, 20, 12, 0, tzinfo=UTC)
STARTED = datetime(2024, 5, 10, 9, 30, tzinfo=UTC)
FULL = datetime(2024, 5, 13, 12, 0, tzinfo=UTC)
ZONES = ["UTC", "Europe/Berlin", "America/Los_Angeles", "Asia/Kolkata"]
JIRA = "https://jira.example.com/browse/"
STATES = ["pending", "creating", "filed", "failed"]


def make_release(phase: ReleasePhase = ReleasePhase.PROGRESSING, **kw: Any) -> Release:
    base: dict[str, Any] = {
        "id": "payment-router@1.13.0",
        "service": "payment-router",
        "version": "1.13.0",
        "phase": phase,
        "started_at": STARTED,
        "clock_started_at": STARTED,
        "source": "slack",
        "started_by": "U0ONCALL",
        "owner": "lead@example.com",
        "owner_slack": "U0LEAD",
        "revision": 42 if phase is not ReleasePhase.STARTED else None,
        "previous_version": "1.12.3" if phase is not ReleasePhase.STARTED else None,
        "full_rollout_at": FULL if phase is ReleasePhase.FULLY_ROLLED_OUT else None,
        "stopped_at": (FULL if phase in (ReleasePhase.ABORTED, ReleasePhase.REVERTED) else None),
        "channel": "C0PAYDEPLOY",
        "thread_ts": "1715333400.000100",
    }
    base.update(kw)
    return Release(**base)


def make_tickets(*, provisional: bool = True, state: str | None = None) -> tuple[TicketView, ...]:
    """The four cleanup tickets; `state` forces one state on all, else one of each."""

    def ticket(i: int, kind: TicketKind, summary: str, due: date | None, **kw: Any) -> TicketView:
        st = state or STATES[i]
        filed = st == "filed"
        return TicketView(
            kind=kind,
            summary=summary,
            state=st,
            key=f"PAY-{i + 1}" if filed else None,
            url=f"{JIRA}PAY-{i + 1}" if filed else None,
            due=due,
            provisional=provisional,
            error="Field 'duedate' cannot be set" if st == "failed" else None,
            **kw,
        )

    return (
        ticket(
            0,
            TicketKind.REMOVE_RELEASE_FLAG,
            "Remove release flag payments.new-router.enabled",
            date(2024, 6, 12),
            status="To Do",
        ),
        ticket(
            1,
            TicketKind.CONTRACT_MIGRATION,
            "Contract migration: payment_route NOT NULL",
            date(2024, 5, 16),
            not_before=FULL + timedelta(hours=72),
            status="In Progress",
        ),
        ticket(
            2,
            TicketKind.DELETE_LEGACY_CODE,
            "Delete the legacy router",
            date(2024, 6, 12),
            status="Done",
            done=True,
        ),
        ticket(
            3,
            TicketKind.REMOVE_EXPERIMENT_FLAG,
            "Remove experiment flag payments.dynamic-currency.enabled",
            None,
        ),
    )


CHECKLIST = (
    ChecklistItem("Runbook present", True, "runbooks/payment-router.md (4.1 kB)"),
    ChecklistItem("Circuit breaker flag exists", False, "payments.new-router.circuit-open: 404"),
    ChecklistItem("PagerDuty service", None, "PagerDuty unreachable: timed out after 3 s"),
)


def make_view(
    phase: ReleasePhase = ReleasePhase.PROGRESSING,
    *,
    tz: str = "Europe/Berlin",
    provisional: bool | None = None,
    state: str | None = None,
    **release_kw: Any,
) -> ReleaseView:
    if provisional is None:
        provisional = phase is not ReleasePhase.FULLY_ROLLED_OUT
    return ReleaseView(
        release=make_release(phase, **release_kw),
        tickets=make_tickets(provisional=provisional, state=state),
        checklist=CHECKLIST,
        timezone=tz,
        rollout_link="https://argo.example.com/rollouts/payments/payment-router",
        thread_link="https://payments.slack.com/archives/C0PAYDEPLOY/p1715333400000100",
    )


# ── the limits ───────────────────────────────────────────────────────────────


def limit_errors(blocks: list[dict[str, Any]], *, max_blocks: int = 50) -> list[str]:
    """Slack's limits, beyond what the sim's validator checks."""
    errors = list(block_errors(blocks, max_blocks=max_blocks))
    for i, block in enumerate(blocks):
        kind = block["type"]
        if kind == "header":
            text = block["text"]
            if text["type"] != "plain_text" or len(text["text"]) > 150:
                errors.append(f"{i}: header")
        if kind == "section":
            if "text" not in block and "fields" not in block:
                errors.append(f"{i}: section without text or fields")
            if len(block.get("text", {}).get("text", "")) > 3000:
                errors.append(f"{i}: section text")
            fields = block.get("fields", [])
            if len(fields) > 10 or any(len(f["text"]) > 2000 for f in fields):
                errors.append(f"{i}: fields")
        if kind == "context":
            elements = block["elements"]
            if not 1 <= len(elements) <= 10 or any(len(e["text"]) > 3000 for e in elements):
                errors.append(f"{i}: context")
        if Block.parse(block) is None:
            errors.append(f"{i}: not a block slack_sdk knows")
    return errors


def text_of(blocks: list[dict[str, Any]]) -> str:
    return json.dumps(blocks, ensure_ascii=False)


def assert_valid(text: str, blocks: list[dict[str, Any]], *, max_blocks: int = 50) -> None:
    assert text and len(text) <= 3000
    assert blocks
    assert limit_errors(blocks, max_blocks=max_blocks) == []


# ── the release thread ───────────────────────────────────────────────────────


def test_release_started() -> None:
    text, blocks = rb.release_started(make_view())
    assert_valid(text, blocks)
    assert blocks[0] == {
        "type": "header",
        "text": {"type": "plain_text", "text": "🔄 payment-router 1.13.0", "emoji": True},
    }
    shown = text_of(blocks)
    assert "*Phase*\\n🔄 Rolling out" in shown
    assert "*Started by*\\n<@U0ONCALL> via Slack" in shown
    assert "*Owner*\\n<@U0LEAD> · lead@example.com" in shown
    assert "*Revision*\\nrevision 42 (replaces 1.12.3)" in shown
    assert "Started 2024-05-10 11:30 CEST" in shown  # 09:30 UTC in Berlin
    assert "`payment-router@1.13.0`" in shown
    assert text == (
        "🔄 Release payment-router 1.13.0: Rolling out (started by <@U0ONCALL> via Slack)"
    )


RETRIED = FULL + timedelta(hours=1)  # 2024-05-13 15:00 CEST

# The card follows the release: (phase, retried) → header emoji, the Phase field's words.
CARD_WORDS = [
    (
        ReleasePhase.STARTED,
        False,
        "🚀",
        "Started · waiting for the Rollout to run 1.13.0",
    ),
    (ReleasePhase.PROGRESSING, False, "🔄", "Rolling out"),
    (ReleasePhase.PROGRESSING, True, "🔁", "Retried 2024-05-13 15:00 CEST · rolling out again"),
    (ReleasePhase.FULLY_ROLLED_OUT, False, "✅", "Fully rolled out 2024-05-13 14:00 CEST"),
    (ReleasePhase.FULLY_ROLLED_OUT, True, "✅", "Fully rolled out 2024-05-13 14:00 CEST"),
    (
        ReleasePhase.ABORTED,
        False,
        "🛑",
        "Aborted 2024-05-13 14:00 CEST · clocks stopped until a retry",
    ),
    (
        ReleasePhase.REVERTED,
        False,
        "↩️",
        "Reverted to 1.12.3 2024-05-13 14:00 CEST · clocks stopped",
    ),
]


@pytest.mark.parametrize(("phase", "retried", "emoji", "words"), CARD_WORDS)
def test_the_card_says_where_the_release_is(
    phase: ReleasePhase, retried: bool, emoji: str, words: str
) -> None:
    kw: dict[str, Any] = {"clock_started_at": RETRIED} if retried else {}
    text, blocks = rb.release_started(make_view(phase, **kw))
    assert_valid(text, blocks)
    assert blocks[0]["text"]["text"] == f"{emoji} payment-router 1.13.0"
    assert blocks[1]["fields"][0]["text"] == f"*Phase*\n{emoji} {words}"
    assert text == (
        f"{emoji} Release payment-router 1.13.0: {words} (started by <@U0ONCALL> via Slack)"
    )
    # Never the words of another phase: an aborted card does not say "started".
    others = {w for p, r, _, w in CARD_WORDS if (p, r) != (phase, retried) and w != words}
    assert not any(other in text_of(blocks) for other in others)
    # The card depends on the release alone: the same release renders the same card.
    assert rb.release_started(make_view(phase, **kw)) == (text, blocks)


def test_every_phase_has_card_words() -> None:
    assert {p for p, *_ in CARD_WORDS} == set(ReleasePhase)


@pytest.mark.parametrize(
    ("kw", "who", "owner", "revision"),
    [
        ({"source": "cli", "started_by": "ci"}, "ci via the CLI", "<@U0LEAD>", "revision 42"),
        (
            {"source": "watch", "started_by": "watch", "owner": None, "owner_slack": None},
            "watch via the Rollout watch",
            "not set",
            "revision 42",
        ),
        (
            {"source": "slash-command", "owner": "<@U0LEAD>", "revision": None},
            "<@U0ONCALL> via Slack",
            "<@U0LEAD>",
            "not seen yet",
        ),
        ({"source": "drill", "started_by": ""}, "a drill", "<@U0LEAD>", "revision 42"),
    ],
)
def test_release_started_sources_and_owners(
    kw: dict[str, Any], who: str, owner: str, revision: str
) -> None:
    text, blocks = rb.release_started(make_view(**kw))
    assert_valid(text, blocks)
    shown = text_of(blocks)
    assert f"*Started by*\\n{who}" in shown
    assert f"*Owner*\\n{owner}" in shown
    assert f"*Revision*\\n{revision}" in shown


def test_release_checklist() -> None:
    text, blocks = rb.release_checklist(make_view())
    assert_valid(text, blocks)
    shown = text_of(blocks)
    assert "✅ *Runbook present* — runbooks/payment-router.md (4.1 kB)" in shown
    assert "❌ *Circuit breaker flag exists* — payments.new-router.circuit-open: 404" in shown
    assert "❔ *PagerDuty service* — PagerDuty unreachable" in shown
    assert text == "Release checklist for payment-router 1.13.0: 1 ✅ · 1 ❌ · 1 ❔"


def test_checklist_links_are_links_and_outside_text_stays_escaped() -> None:
    item = ChecklistItem(
        "Cleanup tickets filed",
        False,
        "2 of 3 filed; contract-migration: failed (<!channel> & <https://evil|x>)",
        links=(("PAY-1", f"{JIRA}PAY-1"), ("PAY-3", f"{JIRA}PAY-3?a=1&b=<2>|3")),
    )
    text, blocks = rb.release_checklist(dataclasses.replace(make_view(), checklist=(item,)))
    assert_valid(text, blocks)
    line = blocks[1]["text"]["text"]
    assert line == (
        "❌ *Cleanup tickets filed* — 2 of 3 filed; contract-migration: failed "
        "(&lt;!channel&gt; &amp; &lt;https://evil|x&gt;) · "
        f"<{JIRA}PAY-1|PAY-1>, <{JIRA}PAY-3?a=1&amp;b=%3C2%3E%7C3|PAY-3>"
    )
    assert "&lt;http" not in line.split(" · ", 1)[1]  # rollbot's own links: not escaped


def test_checklist_links_hostile_labels_and_urls() -> None:
    links = (
        ("<!here>", f"{JIRA}PAY-1"),  # a label is escaped inside the link
        ("PAY-2", "javascript:alert(1)"),  # not a web URL: the label alone
        ("PAY-3", ""),  # no URL: the label alone
        *((f"PAY-{n}", f"{JIRA}PAY-{n}") for n in range(4, 400)),  # more than fit
    )
    item = ChecklistItem("Cleanup tickets filed", True, "", links=links)
    text, blocks = rb.release_checklist(dataclasses.replace(make_view(), checklist=(item,)))
    assert_valid(text, blocks)
    line = blocks[1]["text"]["text"]
    assert line.startswith(
        f"✅ *Cleanup tickets filed* — <{JIRA}PAY-1|&lt;!here&gt;>, PAY-2, PAY-3, <{JIRA}PAY-4|"
    )
    assert "javascript:" not in line and "<!here>" not in line
    assert line.endswith(" more") and "…and " in line
    head = line.rsplit(" …and ", 1)[0]
    assert head.endswith(">")  # no link cut in half


def test_checklist_empty_and_escaped() -> None:
    view = dataclasses.replace(make_view(), checklist=())
    text, blocks = rb.release_checklist(view)
    assert_valid(text, blocks)
    assert "Nothing to check" in text_of(blocks)
    hostile = (ChecklistItem("<!channel> & co", None, "<https://evil|click>"),)
    _, blocks = rb.release_checklist(dataclasses.replace(view, checklist=hostile))
    shown = text_of(blocks)
    assert "&lt;!channel&gt; &amp; co" in shown and "<https://evil" not in shown


# ── /release status ──────────────────────────────────────────────────────────


def test_status_progressing_provisional() -> None:
    text, blocks = rb.release_status([make_view()], NOW, service="payment-router")
    assert_valid(text, blocks)
    shown = text_of(blocks)
    assert "*payment-router 1.13.0* · 🔄 Progressing" in shown
    assert "*Full rollout*\\nnot yet (due dates provisional)" in shown
    assert "<https://payments.slack.com/archives/C0PAYDEPLOY/p1715333400000100|release thread>" in (
        shown
    )
    # pending / creating / filed / failed, one each
    assert "⏳ pending · Remove release flag payments.new-router.enabled" in shown
    assert "due 2024-06-12 (Wed) (provisional), in 23 days · Jira: To Do" in shown
    assert "⏳ creating… · Contract migration" in shown
    assert "not before 2024-05-16 14:00 CEST" in shown  # FULL + 72 h, in Berlin
    assert f"<{JIRA}PAY-3|PAY-3> · Delete the legacy router" in shown
    assert "Jira: Done · done ✓" in shown
    assert "❌ not filed · Remove experiment flag" in shown
    assert "failed: Field 'duedate' cannot be set" in shown
    assert "no due date yet" in shown
    assert "Checklist: 1 ✅ · 1 ❌ · 1 ❔" in shown
    assert text.startswith("payment-router 1.13.0: Progressing; full rollout not yet")
    assert "4 tickets: 1 filed (1 done) · 2 pending · 1 failed" in text


def test_status_fully_rolled_out_real_dates() -> None:
    view = make_view(ReleasePhase.FULLY_ROLLED_OUT, state="filed")
    text, blocks = rb.release_status([view], NOW)
    assert_valid(text, blocks)
    shown = text_of(blocks)
    assert "✅ Fully rolled out" in shown
    assert "*Full rollout*\\n2024-05-13 14:00 CEST" in shown
    assert "(provisional)" not in shown
    for n in range(1, 5):
        assert f"<{JIRA}PAY-{n}|PAY-{n}>" in shown
    # due 2024-05-16, today 2024-05-20 in Berlin, not done: overdue
    assert "due 2024-05-16 (Thu), ⚠️ overdue by 4 days" in shown
    assert "4 tickets: 4 filed (1 done)" in text


@pytest.mark.parametrize("phase", [ReleasePhase.ABORTED, ReleasePhase.REVERTED])
def test_status_clocks_stopped(phase: ReleasePhase) -> None:
    text, blocks = rb.release_status([make_view(phase)], NOW)
    assert_valid(text, blocks)
    shown = text_of(blocks)
    assert rb.PHASE_LABELS[phase] in shown
    assert "never: clocks stopped 2024-05-13 14:00 CEST" in shown
    assert "overdue" not in shown and "in 23 days" not in shown  # no countdown


def test_status_of_several_releases_newest_first() -> None:
    older = make_view(ReleasePhase.FULLY_ROLLED_OUT, id="payment-router@1.12.3", version="1.12.3")
    text, blocks = rb.release_status([make_view(), older], NOW)
    assert_valid(text, blocks)
    shown = text_of(blocks)
    assert shown.index("1.13.0* ·") < shown.index("1.12.3* ·")
    assert {"type": "divider"} in blocks
    assert text.startswith("payment-router 1.13.0")


def test_status_empty() -> None:
    text, blocks = rb.release_status([], NOW, service="payment-router")
    assert_valid(text, blocks)
    assert text == "No release of `payment-router` recorded yet."
    assert "/release start payment-router VERSION" in text_of(blocks)


def test_winner_shown_in_status() -> None:
    view = make_view(winner="treatment-b", winner_at=NOW)
    _, blocks = rb.release_status([view], NOW)
    assert "*Experiment winner*\\n`treatment-b` on 2024-05-20 14:00 CEST" in text_of(blocks)


@pytest.mark.parametrize(
    ("tz", "not_before", "started"),
    [
        ("UTC", "2024-05-16 12:00 UTC", "2024-05-10 09:30 UTC"),
        ("Europe/Berlin", "2024-05-16 14:00 CEST", "2024-05-10 11:30 CEST"),
        ("America/Los_Angeles", "2024-05-16 05:00 PDT", "2024-05-10 02:30 PDT"),
        ("Asia/Kolkata", "2024-05-16 17:30 IST", "2024-05-10 15:00 IST"),
        ("Mars/Olympus_Mons", "2024-05-16 12:00 UTC", "2024-05-10 09:30 UTC"),
    ],
)
def test_time_zones(tz: str, not_before: str, started: str) -> None:
    view = make_view(tz=tz)
    _, blocks = rb.release_status([view], NOW)
    shown = text_of(blocks)
    assert f"not before {not_before}" in shown
    assert f"*Started*\\n{started}" in shown


def test_winter_time_and_today_in_the_service_zone() -> None:
    # 23:30 UTC on 31 Jan is already 1 Feb in Berlin (CET): a ticket due 1 Feb is due today.
    late = datetime(2024, 1, 31, 23, 30, tzinfo=UTC)
    ticket = dataclasses.replace(make_tickets(state="filed")[0], due=date(2024, 2, 1))
    view = dataclasses.replace(make_view(), tickets=(ticket,))
    _, blocks = rb.release_status([view], late)
    assert "due 2024-02-01 (Thu) (provisional), today" in text_of(blocks)
    assert rb.when(late, "Europe/Berlin") == "2024-02-01 00:30 CET"
    _, blocks = rb.release_status([dataclasses.replace(view, timezone="UTC")], late)
    assert "tomorrow" in text_of(blocks)


# ── /release list and the App Home ───────────────────────────────────────────


def test_release_list() -> None:
    views = [
        make_view(),
        make_view(
            ReleasePhase.FULLY_ROLLED_OUT,
            state="filed",
            id="checkout-api@2.0.0",
            service="checkout-api",
            version="2.0.0",
        ),
    ]
    text, blocks = rb.release_list(views, NOW)
    assert_valid(text, blocks)
    assert len(blocks) == 3  # a heading and one section per release
    shown = text_of(blocks)
    assert "*Releases in flight* (2)" in shown
    assert "🔄 *payment-router 1.13.0* · Progressing" in shown
    # next due among the open dated tickets: the contract migration (16 May)
    assert "Next due: Contract migration due 2024-05-16 (Thu) (provisional)" in shown
    assert "✅ *checkout-api 2.0.0* · Fully rolled out" in shown
    assert "full rollout 2024-05-13 14:00 CEST" in shown
    assert text == "2 releases in flight: payment-router 1.13.0, checkout-api 2.0.0"


def test_release_list_empty_and_nothing_due() -> None:
    text, blocks = rb.release_list([], NOW)
    assert_valid(text, blocks)
    assert text == "No releases in flight."
    done = tuple(dataclasses.replace(t, done=True) for t in make_tickets(state="filed"))
    _, blocks = rb.release_list([dataclasses.replace(make_view(), tickets=done)], NOW)
    assert "Next due: nothing due" in text_of(blocks)
    _, blocks = rb.release_list([dataclasses.replace(make_view(), tickets=())], NOW)
    assert "Next due: no tickets yet" in text_of(blocks)


def test_home_view() -> None:
    view = rb.home_view([make_view(), make_view(ReleasePhase.STARTED)], NOW)
    assert view["type"] == "home"
    assert limit_errors(view["blocks"], max_blocks=100) == []
    shown = text_of(view["blocks"])
    assert view["blocks"][0]["type"] == "header"
    assert "Releases in flight" in shown
    assert "🚀 Started (revision not seen yet)" in shown
    assert f"<{JIRA}PAY-3|PAY-3>" in shown
    assert "due 2024-06-12 (Wed) (provisional)" in shown
    assert "Updated 12:00:00 UTC" in shown


def test_home_view_empty_and_note() -> None:
    view = rb.home_view([], NOW)
    assert view["type"] == "home"
    assert limit_errors(view["blocks"], max_blocks=100) == []
    assert "Nothing in flight right now" in text_of(view["blocks"])
    noted = rb.home_view([], NOW, note="Release tracking is not enabled here.")
    assert ":warning: Release tracking is not enabled here." in text_of(noted["blocks"])


# ── help and answers ─────────────────────────────────────────────────────────


def test_help() -> None:
    text, blocks = rb.release_help("/release")
    assert_valid(text, blocks)
    shown = text_of(blocks)
    for shape in ("start SERVICE VERSION", "status SERVICE", "list", "winner SERVICE VARIANT"):
        assert f"`/release {shape}" in shown
    assert text.startswith("Usage: `/release start")
    assert "`/rel list`" in rb.release_help("/rel")[0]


def test_start_replies() -> None:
    view = make_view()
    created = rb.start_reply(True, view)
    assert created.startswith(
        ":rocket: Release payment-router 1.13.0 started: revision 42 is rolling out. Its "
        "cleanup tickets and checklist are in the release thread"
    )
    assert "|open the thread>" in created
    again = rb.start_reply(False, view)
    assert (
        "payment-router 1.13.0 was already started 2024-05-10 11:30 CEST by <@U0ONCALL> via "
        "Slack (phase Progressing); nothing done." in again
    )
    assert "Retry the rollout" not in again
    no_link = rb.start_reply(True, dataclasses.replace(view, thread_link=None))
    assert no_link.endswith("release thread.")


@pytest.mark.parametrize(
    ("phase", "retried", "state"),
    [
        (
            ReleasePhase.STARTED,
            False,
            "the Rollout does not run 1.13.0 yet; rollbot follows it from the moment it does",
        ),
        (ReleasePhase.PROGRESSING, False, "revision 42 is rolling out"),
        (ReleasePhase.PROGRESSING, True, "revision 42 is rolling out again after a retry"),
        (
            ReleasePhase.FULLY_ROLLED_OUT,
            False,
            "revision 42 is already fully rolled out (2024-05-13 14:00 CEST): the due dates "
            "count from then",
        ),
        (
            ReleasePhase.ABORTED,
            False,
            "revision 42 was aborted: the cleanup clocks are stopped until a retry",
        ),
        (ReleasePhase.REVERTED, False, "revision 42 was reverted: the cleanup clocks are stopped"),
    ],
)
def test_the_start_reply_says_first_what_state_the_revision_is_in(
    phase: ReleasePhase, retried: bool, state: str
) -> None:
    kw: dict[str, Any] = {"clock_started_at": RETRIED} if retried else {}
    reply = rb.start_reply(True, make_view(phase, **kw))
    assert reply.startswith(f":rocket: Release payment-router 1.13.0 started: {state}. ")


def test_already_started_and_aborted_says_how_to_go_on() -> None:
    again = rb.start_reply(False, make_view(ReleasePhase.ABORTED))
    assert "(phase Aborted (clocks stopped)); nothing done." in again
    assert "Retry the rollout to restart its clocks, or start the next version." in again


def test_winner_reply() -> None:
    ticket = dataclasses.replace(
        make_tickets(state="filed")[3], due=date(2024, 6, 3), provisional=False
    )
    view = dataclasses.replace(
        make_view(winner="treatment-b", winner_at=NOW),
        tickets=(*make_tickets()[:3], ticket),
    )
    reply = rb.winner_reply(view, NOW, "treatment-b")
    assert "`treatment-b` is the winner of payment-router 1.13.0's experiment" in reply
    assert f"<{JIRA}PAY-4|PAY-4> is now due 2024-06-03 (Mon), in 14 days." in reply
    bare = rb.winner_reply(dataclasses.replace(view, tickets=()), NOW, "b")
    assert "no experiment flag" in bare
    assert "Release tracking is not enabled" in rb.unavailable_text()


# ── every combination, and hostile input ─────────────────────────────────────


@pytest.mark.parametrize(
    ("phase", "state", "provisional", "tz"),
    list(itertools.product(ReleasePhase, [*STATES, None], [True, False], ZONES)),
)
def test_every_builder_is_valid(
    phase: ReleasePhase, state: str | None, provisional: bool, tz: str
) -> None:
    view = make_view(phase, tz=tz, provisional=provisional, state=state)
    for text, blocks in (
        rb.release_started(view),
        rb.release_checklist(view),
        rb.release_status([view], NOW),
        rb.release_list([view], NOW),
        rb.release_help(),
    ):
        assert_valid(text, blocks)
    home = rb.home_view([view], NOW)
    assert limit_errors(home["blocks"], max_blocks=100) == []
    shown = text_of(rb.release_status([view], NOW)[1])
    assert rb.PHASE_LABELS[phase] in shown
    assert ("(provisional)" in shown) is provisional
    assert rb.start_reply(True, view) and rb.start_reply(False, view)
    assert rb.winner_reply(view, NOW, "b")


def hostile_view(n_tickets: int = 400, n_checks: int = 300) -> ReleaseView:
    big = "<!here> & <https://evil|x> " * 400  # ~10 kB
    tickets = tuple(
        TicketView(
            kind=list(TicketKind)[i % 4],
            summary=big,
            state=STATES[i % 4],
            key=f"PAY-{i}" if i % 4 == 2 else None,
            url=f"{JIRA}PAY-{i}" if i % 4 == 2 else None,
            due=date(2024, 6, 1) + timedelta(days=i),
            provisional=bool(i % 2),
            not_before=FULL,
            status=big,
            error=big,
        )
        for i in range(n_tickets)
    )
    checks = tuple(ChecklistItem(big, (True, False, None)[i % 3], big) for i in range(n_checks))
    return ReleaseView(
        release=make_release(
            service="s" * 63,
            version="v" * 128,
            started_by=big,
            owner=big,
            previous_version="p" * 128,
            winner="w" * 64,
            winner_at=NOW,
        ),
        tickets=tickets,
        checklist=checks,
        timezone="Asia/Kolkata",
        rollout_link="https://argo.example.com/" + "r" * 5000,  # too long: not linked
        thread_link="javascript:alert(1)",  # not a web URL: not linked
    )


def test_hostile_input_stays_within_limits() -> None:
    view = hostile_view()
    for text, blocks in (
        rb.release_started(view),
        rb.release_checklist(view),
        rb.release_status([view] * 30, NOW),
        rb.release_list([view] * 300, NOW),
    ):
        assert_valid(text, blocks)
        shown = text_of(blocks)
        assert "<!here>" not in shown and "<https://evil" not in shown
        assert "javascript:" not in shown
    home = rb.home_view([view] * 300, NOW)
    assert limit_errors(home["blocks"], max_blocks=100) == []
    assert len(home["blocks"]) <= 100
    assert "…and" in text_of(home["blocks"])


def test_truncation_says_how_many_more() -> None:
    _, blocks = rb.release_list([make_view()] * 120, NOW)
    assert len(blocks) == 50
    assert blocks[-1]["elements"][0]["text"] == "…and 72 more releases"  # 1 heading + 48 shown
    _, blocks = rb.release_status([make_view()] * 40, NOW)
    assert len(blocks) <= 50
    assert blocks[-1]["type"] == "context"
    assert blocks[-1]["elements"][0]["text"].startswith("…and ")
    assert blocks[-1]["elements"][0]["text"].endswith(" more releases")
    text, blocks = rb.release_checklist(hostile_view(n_tickets=0, n_checks=300))
    assert len(blocks) <= 50
    assert "more checks" in text_of(blocks)
    assert "100 ✅ · 100 ❌ · 100 ❔" in text


def test_no_sim_validator_errors_for_the_home_limit() -> None:
    """The sim's validator takes 100 blocks for a view and still 50 for a message."""
    blocks = [{"type": "divider"}] * 100
    assert block_errors(blocks, max_blocks=100) == []
    assert block_errors(blocks) == ["must provide no more than 50 items [json-pointer:/blocks]"]

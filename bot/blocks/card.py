"""The incident card: the card of one Rollout revision and of the incident around it
(`rollout_card`) and its notification text (`rollout_card_text`), with its pieces: the
incident line, firing alerts, canary-vs-stable evidence against the SLOs, the Rollout's
facts and the outcome line. The tiers and their buttons come from `bot.blocks.tiers`, the
Rollout's buttons from `bot.blocks.rollout`.

The card is laid out for a tired reader on a laptop screen: what has been done, what is
wrong and what to do now (one recommendation, with its button) come first; evidence, the
Rollout's facts and the other tiers come after a divider (see `rollout_card`).

Built with the typed `slack_sdk.models.blocks` classes, which raise
`SlackObjectFormationError` when a limit is broken (button text > 75, value > 2000, …);
each builder returns plain dicts (`.to_dict()`) ready for `chat.postMessage`.

Once a Tier 3 revert is recorded for the revision (`revert`, read from the store by the
card engine), the card says who started it with its link, no longer offers "Record Tier 3
revert…", and recommends watching it land.

Text that rollbot did not write (the Rollout's status, Argo's messages, alert summaries,
the revert's URL) is escaped with `bot.core.mrkdwn` where it is put into mrkdwn; `notice`
is mrkdwn, rollbot's own, and already carries escaped outside pieces.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)

from bot.blocks.rollout import (
    ACTIONS_BLOCK_ID,
    action_button,
    stable_label,
    status_emoji,
    status_label,
)
from bot.blocks.text import PAST_TENSE, clock, duration_minutes
from bot.blocks.tiers import (
    TIER_ACTIONS_BLOCK_ID,
    approve_revert_button,
    circuit_button,
    circuit_close_button,
    circuit_line,
    other_tiers_block,
    recommended_line,
    recommended_option,
    revert_button,
    revert_started_line,
    runbook_button,
    start_revert_button,
    tier3_steps_where,
    tier_label,
    tier_options,
)
from bot.core.model import (
    Evidence,
    FlagAction,
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
from bot.core.mrkdwn import clip as _clip
from bot.core.mrkdwn import escape as _escape
from bot.core.mrkdwn import is_web_url as _is_web_url
from bot.core.mrkdwn import link as _link
from bot.core.mrkdwn import safe as _safe
from bot.core.tiers import available_actions

__all__ = [
    "MAX_ALERTS_SHOWN",
    "breaches",
    "incident_emoji",
    "incident_label",
    "incident_line",
    "mitigation",
    "outcome_line",
    "rollout_card",
    "rollout_card_text",
    "unavailable_text",
]

MAX_ALERTS_SHOWN = 3  # more would push the buttons off the first screen
_TROUBLE_EMOJI: dict[TroubleKind, str] = {
    TroubleKind.ANALYSIS_FAILED: ":rotating_light:",
    TroubleKind.ABORTED: ":octagonal_sign:",
    TroubleKind.INCONCLUSIVE: ":grey_question:",
    TroubleKind.PROGRESS_DEADLINE: ":hourglass:",
    TroubleKind.DEGRADED: ":red_circle:",
    TroubleKind.INVALID_SPEC: ":warning:",
}
_INCIDENT_EMOJI: dict[IncidentState, str] = {
    IncidentState.OPEN: "🚨",
    IncidentState.RECOVERING: "🩹",
    IncidentState.RESOLVED: "✅",
}
# The key of the watch's own verdict among an incident's signals (see model.Signal):
# it is not an alert, so "N alerts firing" does not count it.
_ROLLOUT_SIGNAL_KEY = "rollout"


# ── incident, evidence and alerts ────────────────────────────────────────────


def incident_emoji(incident: Incident) -> str:
    return _INCIDENT_EMOJI.get(incident.state, "🚨")


def incident_label(incident: Incident) -> str:
    """`Incident open`, `Incident recovering`, `Incident resolved`."""
    return f"Incident {incident.state.value}"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n:,} {word}s"


def incident_line(incident: Incident, now: datetime) -> str:
    """`Incident opened 14:02:55 UTC · breaching for 6 min · 3 alerts firing`.

    Recovering: how long it breached and since when it is quiet; resolved: when, and
    after how long. The watch's own verdict on the Rollout is a signal, not an alert.
    """
    parts = [f"Incident opened {clock(incident.opened_at)}"]
    first = incident.first_breach_at
    if incident.state is IncidentState.OPEN:
        if first is not None:
            parts.append(f"breaching for {duration_minutes(first, now)}")
        alerts = len(incident.firing - {_ROLLOUT_SIGNAL_KEY})
        if alerts:
            parts.append(f"{_plural(alerts, 'alert')} firing")
        if _ROLLOUT_SIGNAL_KEY in incident.firing:
            parts.append("Rollout unhealthy")
    elif incident.state is IncidentState.RECOVERING:
        if first is not None:
            parts.append(f"breached for {duration_minutes(first, incident.changed_at)}")
        parts.append(f"quiet since {clock(incident.changed_at)}")
    else:
        parts.append(
            f"resolved {clock(incident.changed_at)} "
            f"after {duration_minutes(incident.opened_at, incident.changed_at)}"
        )
    return " · ".join(parts)


def _fraction_pct(value: float) -> str:
    return f"{value * 100:.2f} %"


def _slo_pct(value: float) -> str:
    return f"{round(value * 100, 4):g} %"


def _ms(value: float) -> str:
    return f"{value:.0f} ms" if value >= 10 else f"{value:.1f} ms"


def _slo_ms(value: float) -> str:
    return f"{value:g} ms"


def breaches(value: float | None, slo: float | None) -> bool:
    """Whether a measured value is at or over its SLO (the SLO reads `value < slo`).

    The same rule as `bot.core.evidence.breaches`; NaN (no traffic) never breaches.
    """
    return value is not None and slo is not None and not math.isnan(value) and value >= slo


def _metric_field(
    title: str,
    pair: MetricPair,
    slo: float | None,
    fmt: Callable[[float], str],
    slo_fmt: Callable[[float], str],
) -> MarkdownTextObject:
    def show(value: float | None) -> str:
        if value is None or math.isnan(value) or value == -math.inf:
            return "no data"
        # +Inf: histogram_quantile says the quantile is beyond the highest bucket
        shown = "∞" if value == math.inf else fmt(value)
        return shown + (" ⚠️" if breaches(value, slo) else "")

    line = f"canary {show(pair.canary)} · stable {show(pair.stable)}"
    line += f" · SLO < {slo_fmt(slo)}" if slo is not None else " · no SLO set"
    return MarkdownTextObject(text=_clip(f"*{title}*\n{line}", 2000))


def unavailable_text(evidence: Evidence) -> str:
    detail = _safe(evidence.detail, 2500)
    head = f"Metrics unavailable: {detail}" if detail else "Metrics unavailable"
    return f"{head} — will fill in when Prometheus answers"


def _evidence_block(evidence: Evidence) -> Block:
    """Canary against stable next to the SLO, or why the numbers are not there yet."""
    if not evidence.available:
        return ContextBlock(elements=[MarkdownTextObject(text=unavailable_text(evidence))])
    head = "*Canary vs stable*"
    if evidence.queried_at is not None:
        head += f" · at {clock(evidence.queried_at)}"
    if evidence.graph_url and _is_web_url(evidence.graph_url):
        head += f" · {_link(evidence.graph_url, 'graph')}"
    fields = [
        _metric_field(
            "Error rate", evidence.error_rate, evidence.slo_error_rate, _fraction_pct, _slo_pct
        ),
        _metric_field("p95", evidence.p95_ms, evidence.slo_p95_ms, _ms, _slo_ms),
        _metric_field("p99", evidence.p99_ms, evidence.slo_p99_ms, _ms, _slo_ms),
    ]
    return SectionBlock(text=MarkdownTextObject(text=head), fields=fields)


def _alerts_block(alerts: Sequence[str], incident: Incident | None = None) -> Block | None:
    """The first MAX_ALERTS_SHOWN firing alert lines, then `+N more`.

    Lines may group identical alerts ("… ×1,000"), so the heading counts the incident's
    firing alerts when there is an incident, else the lines.
    """
    if not alerts:
        return None
    total = len(alerts)
    if incident is not None:
        total = max(total, len(incident.firing - {_ROLLOUT_SIGNAL_KEY}))
    shown = [f"• {_safe(summary, 400)}" for summary in list(alerts[:MAX_ALERTS_SHOWN])]
    lines = [f"*Firing alerts* ({total:,})", *shown]
    if len(alerts) > len(shown):
        lines.append(f"+{len(alerts) - len(shown):,} more")
    return SectionBlock(text=MarkdownTextObject(text="\n".join(lines)))


# ── the card ─────────────────────────────────────────────────────────────────


def outcome_line(outcome: Outcome) -> str:
    """`Aborted by <@U0ONCALL> at 14:03:12 UTC, verified in 0.8 s` (or `… not verified: …`)."""
    verb = PAST_TENSE[outcome.action.value]
    verb = verb[:1].upper() + verb[1:]
    head = f"{verb} by <@{outcome.actor_id}> at {clock(outcome.at)}"
    if outcome.verified:
        return f"{head}, verified in {outcome.seconds:.1f} s"
    return f"{head}, not verified: {_escape(outcome.detail or 'the change was not observed')}"


def _facts(state: RolloutState, *, told: str = "") -> str:
    """The Rollout's facts on one line, after the fold: `*Phase* Paused · *Step* 5/9 ·
    *Canary weight* 25% · *Stable* revision 41 `image` · *Canary* revision 42 `image` ·
    *Analysis* Inconclusive (name) · *Started* 14:02:55 UTC · `ns/name``.

    Its status strings (phase, images, the analysis and its message) are the cluster's
    words, escaped. The analysis message is left out when the trouble line above already
    tells it (`told`: that line's text)."""
    weight = f"{state.canary_weight}%"
    if state.aborted:
        # The step's weight no longer applies: the abort set the canary to 0.
        weight = (
            f"{state.canary_weight}% (aborted: all traffic on the stable {stable_label(state)})"
        )
    elif state.set_weight is not None and state.set_weight != state.canary_weight:
        weight += f" (step asks {state.set_weight}%)"
    stable = stable_label(state)
    if state.stable_image:
        stable += f" `{_escape(state.stable_image)}`"
    canary = f"revision {state.revision}"
    if state.canary_image:
        canary += f" `{_escape(state.canary_image)}`"
    if state.fully_promoted and not state.aborted:
        # No update in progress: the Rollout's revision is the stable one.
        weight = "none: fully promoted"
        canary = f"none (revision {state.revision} is stable)"
    pairs = [
        ("Phase", _escape(status_label(state))),
        ("Step", state.step_label),
        ("Canary weight", weight),
        ("Stable", stable),
        ("Canary", canary),
    ]
    if state.analysis is not None:
        analysis = f"{_escape(state.analysis.status)} ({_escape(state.analysis.name)})"
        if state.analysis.message and state.analysis.message not in told:
            # Clipped: the whole message is in the thread line that reported the analysis.
            analysis += f": {_safe(state.analysis.message, 160)}"
        pairs.append(("Analysis", analysis))
    if state.created_at is not None:
        # A clock time, not an age: the card is not re-rendered every second, and "15s"
        # would stay on it for hours.
        pairs.append(("Started", clock(state.created_at)))
    line = " · ".join(f"*{k}* {v}" for k, v in pairs)
    return _clip(f"{line} · `{_escape(state.key)}`", 3000)


def mitigation(
    state: RolloutState, outcome: Outcome | None, circuit: FlagState | None
) -> Outcome | None:
    """The verified mitigation still in effect, or None: an abort while the Rollout is
    aborted, or opening the breaker while it is open. (A failed or unverified attempt, or
    one undone since, is not a mitigation the card may lead with.)"""
    if outcome is None or not outcome.verified:
        return None
    if outcome.action is RolloutAction.ABORT and state.aborted:
        return outcome
    if outcome.action is FlagAction.CIRCUIT_OPEN and circuit is not None and circuit.enabled:
        return outcome
    return None


def _header_text(
    service: str, state: RolloutState, incident: Incident | None, mitigated: Outcome | None
) -> str:
    if mitigated is not None:
        done = PAST_TENSE[mitigated.action.value]
        head = f"🛡️ {service} · {done[:1].upper()}{done[1:]}, verified"
        return f"{head} · {incident_label(incident)}" if incident is not None else head
    if incident is None:
        return f"{status_emoji(state)} {service} · {status_label(state)}"
    return (
        f"{incident_emoji(incident)} {service} · {incident_label(incident)}"
        f" · Rollout {status_label(state)}"
    )


def rollout_card(
    *,
    service: str,
    state: RolloutState,
    trouble: Trouble | None,
    epoch: int,
    now: datetime,
    outcome: Outcome | None = None,
    notice: str | None = None,
    incident: Incident | None = None,
    evidence: Evidence | None = None,
    tiers: Sequence[TierOption] | None = None,
    alerts: Sequence[str] | None = None,
    circuit_flag: str | None = None,
    circuit: FlagState | None = None,
    circuit_environment: str | None = None,
    other_flags: Sequence[str] = (),
    revert: RevertStarted | None = None,
    tier3_executable: bool = False,
) -> list[dict[str, Any]]:
    """The card of one Rollout revision and of the incident around it.

    The first screen answers what has been done, what is wrong and what to do now; the
    rest is below a divider (issue 14: at 1366×768 the card was 1.5 screens tall and its
    header and buttons were never visible together):

    1. header (a verified mitigation, else the incident's state, else the Rollout's);
    2. the mitigation still in effect, who did it and that it was verified;
    3. the incident line, the trouble, the firing alerts (first 3, then `+N more`);
    4. any other outcome (failed, unverified, promote…) and the Tier 3 revert recorded
       (`revert`: who started it, its link);
    5. the one `👉` line: the recommended tier and why, or the next step after a
       mitigation or a recorded revert;
    6. the buttons: the Rollout's (`available_actions`, less an unavailable Tier 1) and the
       tiers' (Tier 2 `circuit_open`/`circuit_close`, Tier 3 `runbook_open` and
       `revert_open`, which opens the revert modal, gone once a revert is recorded; where
       rollbot runs Tier 3 (`tier3_executable`), `tier3_start` beside it (recording stays
       for a revert made by hand), `tier3_approve` while its request waits for a second
       person, and `revert_open` again once rollbot's revert stopped);
    7. a divider, then canary-vs-stable evidence, the Rollout's facts on one line with its
       message, `notice` with the breaker's state, and the other tiers one line each (Tier 3
       names where its steps are: the runbook or the revert modal; after a mitigation, the
       tiers not offered are left out: the headline says why).

    `circuit_flag` names the ops flag in Tier 2's confirm dialog. `notice` is mrkdwn (its
    outside pieces escaped by whoever wrote it); `alerts` are plain summaries, escaped here.
    """
    options = tier_options(tiers or ())
    by_tier = {o.tier: o for o in options}
    recommended = recommended_option(options)
    mitigated = mitigation(state, outcome, circuit)
    blocks: list[Block] = [
        HeaderBlock(
            text=PlainTextObject(
                text=_clip(_header_text(service, state, incident, mitigated), 150), emoji=True
            )
        )
    ]
    # ── the first screen: what has been done, what is wrong, what to do now ──
    if mitigated is not None:
        # What was done, by whom, verified: right under the headline that says so.
        line = f":white_check_mark: {outcome_line(mitigated)}"
        blocks.append(SectionBlock(text=MarkdownTextObject(text=line)))
    if incident is not None:
        blocks.append(
            ContextBlock(elements=[MarkdownTextObject(text=incident_line(incident, now))])
        )
    if trouble is not None:
        emoji = _TROUBLE_EMOJI.get(trouble.kind, ":warning:")
        summary = _clip(f"{emoji} {_escape(trouble.summary)}", 3000)
        blocks.append(SectionBlock(text=MarkdownTextObject(text=summary)))
    alerts_block = _alerts_block(alerts or (), incident)
    if alerts_block is not None:
        blocks.append(alerts_block)
    if outcome is not None and mitigated is None:
        mark = ":white_check_mark:" if outcome.verified else ":x:"
        blocks.append(SectionBlock(text=MarkdownTextObject(text=f"{mark} {outcome_line(outcome)}")))
    if revert is not None:
        line = _clip(revert_started_line(revert), 3000)
        blocks.append(SectionBlock(text=MarkdownTextObject(text=line)))
    # A revert rollbot stopped is shown (why), but is not under way: the tiers are offered
    # as before, and a revert made by hand can be recorded.
    started = revert is not None and revert.stage != "failed"
    if revert is not None and revert.stage == "verified":
        line = recommended_line(None, revert_verified=True)
        blocks.append(SectionBlock(text=MarkdownTextObject(text=line)))
    elif started and options:
        # The revert is underway: watch it land (a canary still running is still best
        # aborted until it does).
        after = mitigated is not None and (
            recommended is None or recommended.tier is Tier.FULL_REVERT
        )
        line = recommended_line(recommended, after_mitigation=after, revert_started=True)
        blocks.append(SectionBlock(text=MarkdownTextObject(text=line)))
    elif recommended is not None:
        # After a mitigation the next step is to watch it work, then the lasting return;
        # a canary still running under an open breaker is still best aborted.
        after = mitigated is not None and recommended.tier is Tier.FULL_REVERT
        line = recommended_line(recommended, after_mitigation=after)
        if not (recommended.link and _is_web_url(recommended.link)):  # else: the button
            where = tier3_steps_where(recommended, revert_open=True)
            line += f" · {where}" if where else ""
        blocks.append(SectionBlock(text=MarkdownTextObject(text=_clip(line, 3000))))
    blocks.extend(
        _buttons(
            service=service,
            state=state,
            epoch=epoch,
            by_tier=by_tier,
            circuit=circuit,
            circuit_flag=circuit_flag,
            circuit_environment=circuit_environment,
            other_flags=other_flags,
            revert=revert,
            tier3_executable=tier3_executable,
        )
    )

    # ── under the fold: evidence, the Rollout's facts, the other tiers ──
    below: list[Block] = []
    if evidence is not None:
        below.append(_evidence_block(evidence))
    # The facts and the Rollout's own message; then rollbot's notes (PagerDuty, the
    # breaker): one context block each, their elements side by side as Slack lays them out.
    facts = _facts(state, told=trouble.summary if trouble is not None else "")
    lines = [facts] + ([_clip(_escape(state.message), 3000)] if state.message else [])
    below.append(ContextBlock(elements=[MarkdownTextObject(text=t) for t in lines]))
    notes = ([_clip(notice, 3000)] if notice else []) + (
        [circuit_line(circuit)] if circuit is not None else []
    )
    if notes:
        below.append(ContextBlock(elements=[MarkdownTextObject(text=t) for t in notes]))
    # After a mitigation the headline says why the other tiers are not offered.
    shown = [o for o in options if o.available or mitigated is None]
    others = other_tiers_block(shown, recommended, started=started, revert_open=not started)
    if others is not None:
        below.append(others)
    if len(blocks) > 1:
        blocks.append(DividerBlock())
    blocks.extend(below)
    return [b.to_dict() for b in blocks]


def _buttons(
    *,
    service: str,
    state: RolloutState,
    epoch: int,
    by_tier: dict[Tier, TierOption],
    circuit: FlagState | None,
    circuit_flag: str | None,
    circuit_environment: str | None,
    other_flags: Sequence[str],
    revert: RevertStarted | None,
    tier3_executable: bool = False,
) -> list[Block]:
    """The Rollout's buttons (`available_actions`, less an unavailable Tier 1), then the
    tier buttons: Tier 2 opens (or, open, closes) the breaker, Tier 3 links the runbook and
    opens the revert modal (one revert per revision)."""
    actions = available_actions(state)
    tier1 = by_tier.get(Tier.ABORT)
    if tier1 is not None and not tier1.available:  # the card never offers what it says is not
        actions = [a for a in actions if a is not RolloutAction.ABORT]
    tier_buttons: list[ButtonElement] = []
    tier2 = by_tier.get(Tier.CIRCUIT_BREAKER)
    if tier2 is not None and tier2.available:
        if circuit is not None and circuit.enabled:
            tier_buttons.append(
                circuit_close_button(service=service, state=state, epoch=epoch, circuit=circuit)
            )
        else:
            tier_buttons.append(
                circuit_button(
                    service=service,
                    state=state,
                    epoch=epoch,
                    flag=circuit_flag,
                    environment=circuit_environment,
                    others=other_flags,
                )
            )
    tier3 = by_tier.get(Tier.FULL_REVERT)
    if tier3 is not None and tier3.available and tier3.link and _is_web_url(tier3.link):
        tier_buttons.append(
            runbook_button(service=service, state=state, epoch=epoch, url=tier3.link)
        )
    if tier3 is not None and tier3.available:
        if revert is None and tier3_executable:
            tier_buttons.append(start_revert_button(service=service, state=state, epoch=epoch))
        if revert is None or revert.stage == "failed":
            # Recording stays for a revert made by hand (next to Start where rollbot runs it).
            tier_buttons.append(revert_button(service=service, state=state, epoch=epoch))
    if revert is not None and revert.stage == "opened":
        tier_buttons.append(
            approve_revert_button(service=service, state=state, epoch=epoch, started=revert)
        )
    blocks: list[Block] = []
    if actions:
        blocks.append(
            ActionsBlock(
                block_id=ACTIONS_BLOCK_ID,
                elements=[
                    action_button(a, service=service, state=state, epoch=epoch) for a in actions
                ],
            )
        )
    if tier_buttons:
        blocks.append(ActionsBlock(block_id=TIER_ACTIONS_BLOCK_ID, elements=tier_buttons))
    return blocks


def rollout_card_text(
    *,
    service: str,
    state: RolloutState,
    trouble: Trouble | None,
    epoch: int = 0,
    now: datetime | None = None,
    outcome: Outcome | None = None,
    notice: str | None = None,
    incident: Incident | None = None,
    evidence: Evidence | None = None,
    tiers: Sequence[TierOption] | None = None,
    alerts: Sequence[str] | None = None,
    circuit_flag: str | None = None,
    circuit: FlagState | None = None,
    circuit_environment: str | None = None,
    other_flags: Sequence[str] = (),
    revert: RevertStarted | None = None,
    tier3_executable: bool = False,
) -> str:
    """The notification/fallback text of the card (what a phone shows).

    With an incident or tiers it leads with them:
    `🚨 Incident open · Recommended: Tier 1 — Abort the rollout · payment-router revision 42: …`;
    once a Tier 3 revert is recorded (`revert`), with it instead of the recommendation:
    `⏪ Tier 3 revert started by <@U…>: watch it land`.
    """
    del other_flags, circuit_environment, tier3_executable  # the buttons', not the text's
    lead: list[str] = []
    mitigated = mitigation(state, outcome, circuit)
    if mitigated is not None:
        lead.append(f"🛡️ {outcome_line(mitigated)}")
    if incident is not None:
        lead.append(f"{incident_emoji(incident)} {incident_label(incident)}")
    recommended = recommended_option(tiers or ())
    if revert is not None and revert.stage == "verified":
        lead.append("✅ Tier 3 done, verified: watch the signals recover")
    elif revert is not None and revert.stage == "failed":
        lead.append("❌ Tier 3 revert stopped: finish by hand")
    elif revert is not None:
        started = f"⏪ Tier 3 revert started by <@{revert.actor_id}>"
        if recommended is not None and recommended.tier is not Tier.FULL_REVERT:
            lead.append(f"{started}; until it lands: {_escape(tier_label(recommended))}")
        else:
            lead.append(f"{started}: watch it land")
    elif recommended is not None:
        if mitigated is not None and recommended.tier is Tier.FULL_REVERT:
            lead.append(f"Next: watch recovery, then {_escape(tier_label(recommended))}")
        else:
            lead.append(f"Recommended: {_escape(tier_label(recommended))}")
    text = (
        f"{service} revision {state.revision}: {_escape(status_label(state))}, "
        f"step {state.step_label}, canary {state.canary_weight}%"
    )
    if lead:
        text = " · ".join([*lead, text])
    if trouble is not None:
        text += f" — {_escape(trouble.summary)}"
    if outcome is not None and mitigated is None:
        text += f". {outcome_line(outcome)}"
    if circuit is not None and circuit.enabled:
        text += f". Circuit breaker `{circuit.key}` OPEN"
    return _clip(text, 3000)

"""Every Slack message rollbot sends, as pure Block Kit builders (no I/O).

Built with the typed `slack_sdk.models.blocks` classes, which raise
`SlackObjectFormationError` when a limit is broken (button text > 75, value > 2000, …);
each builder returns plain dicts (`.to_dict()`) ready for `chat.postMessage`.

    rollout_card(...) / rollout_card_text(...)   the card of one Rollout revision, and of the
                                                 incident around it (state, evidence, firing
                                                 alerts, the three rollback tiers)
    button_value(...) / parse_button_value(...)  what a card button carries
    revert_modal(...) / revert_metadata(...)     Tier 3: the modal recording a revert in Git
    revert_line(...)                             …and its line in the card's thread
    timeline_line, help_blocks, error_blocks, unknown_service_text, refusal_text,
    already_done_text                            the smaller messages

Text that rollbot did not write (the Rollout's status, Argo's messages, alert summaries,
error details, what people typed) is escaped with `bot.core.mrkdwn` where it is put into
mrkdwn; arguments documented as mrkdwn (`notice`, thread lines, refusal reasons) are
rollbot's own and already carry escaped outside pieces.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ConfirmObject,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    InputBlock,
    MarkdownTextObject,
    PlainTextInputElement,
    PlainTextObject,
    SectionBlock,
)
from slack_sdk.models.views import View

from bot.core.flags import FlagStatus
from bot.core.model import (
    Evidence,
    FlagState,
    Incident,
    IncidentState,
    MetricPair,
    Outcome,
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
from bot.core.ports import ActionRecord
from bot.core.tiers import available_actions, is_paused

ACTION_IDS: dict[RolloutAction, str] = {
    RolloutAction.ABORT: "rollout_abort",
    RolloutAction.RETRY: "rollout_retry",
    RolloutAction.PROMOTE: "rollout_promote",
    RolloutAction.PROMOTE_FULL: "rollout_promote_full",
    RolloutAction.PAUSE: "rollout_pause",
}
ACTIONS_BLOCK_ID = "rollout_actions"
# Buttons of Tier 2 and 3, in their own actions block below the Rollout's buttons.
CIRCUIT_ACTION_ID = "circuit_open"  # Tier 2: flip the ops flag …circuit-open to true
RUNBOOK_ACTION_ID = "runbook_open"  # Tier 3: a URL button; Slack still sends block_actions
REVERT_OPEN_ACTION_ID = "revert_open"  # Tier 3: opens the modal recording a revert in Git
# The modal recording a Tier 3 revert: its callback id, input blocks and their elements.
REVERT_CALLBACK_ID = "revert_record"
REVERT_URL_BLOCK_ID = "revert_url"
REVERT_URL_ACTION_ID = "url"
REVERT_NOTE_BLOCK_ID = "revert_note"
REVERT_NOTE_ACTION_ID = "note"
MAX_PRIVATE_METADATA = 3000  # Slack's limit for a view's private_metadata
# Tier 2 break-glass from the card: the button on a refusal (owner, not on call) and the
# modal it opens, asking for the reason.
BREAK_GLASS_ACTION_ID = "circuit_break_glass"
BREAK_GLASS_CALLBACK_ID = "circuit_break_glass"
BREAK_GLASS_REASON_BLOCK_ID = "break_glass_reason"
BREAK_GLASS_REASON_ACTION_ID = "reason"
BREAK_GLASS_MIN_REASON = 10  # characters, as the modal's min_length and the submission check
BREAK_GLASS_MAX_REASON = 1000
TIER_ACTIONS_BLOCK_ID = "tier_actions"
MAX_ALERTS_SHOWN = 5

_LABELS: dict[RolloutAction, str] = {
    RolloutAction.ABORT: "Abort (Tier 1)",
    RolloutAction.RETRY: "Retry",
    RolloutAction.PROMOTE: "Promote",
    RolloutAction.PROMOTE_FULL: "Promote full",
    RolloutAction.PAUSE: "Pause",
}
_PAST: dict[str, str] = {
    "abort": "aborted",
    "retry": "retried",
    "promote": "promoted",
    "promote-full": "fully promoted",
    "pause": "paused",
    "circuit-open": "circuit opened",
    "circuit-close": "circuit closed",
    "revert-started": "revert recorded",
}
_PRESENT: dict[str, str] = {
    "abort": "aborting",
    "retry": "retrying",
    "promote": "promoting",
    "promote-full": "fully promoting",
    "pause": "pausing",
}
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


# ── small helpers ────────────────────────────────────────────────────────────


def clock(at: datetime) -> str:
    """`14:03:12 UTC` (naive datetimes are taken as UTC)."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(UTC).strftime("%H:%M:%S UTC")


def humanise_age(start: datetime | None, now: datetime) -> str:
    """`45s`, `12m 3s`, `5h 2m`, `3d 4h`; `-` when unknown."""
    if start is None:
        return "-"
    if start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    seconds = max(0, int((now - start).total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


def _sentence(text: str) -> str:
    """First letter up, a full stop at the end (unlike str.capitalize, keeps the rest)."""
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


def status_emoji(state: RolloutState) -> str:
    if state.aborted:
        return "🛑"
    if state.phase == "Degraded":
        return "🔴"
    if state.fully_promoted or state.phase == "Healthy":
        return "✅"
    if is_paused(state) or state.phase == "Paused":
        return "⏸️"
    return "🔄"


def status_label(state: RolloutState) -> str:
    return "Aborted" if state.aborted else state.phase


def stable_label(state: RolloutState) -> str:
    """`revision 41`, else the stable ReplicaSet hash, else `unknown` (mrkdwn)."""
    if state.stable_revision is not None:
        return f"revision {state.stable_revision}"
    if state.stable_rs:
        return f"ReplicaSet {_escape(state.stable_rs)}"
    return "the stable ReplicaSet"


def button_value(*, service: str, state: RolloutState, epoch: int) -> str:
    """Compact JSON a card button carries: service, namespace, name, revision, epoch."""
    value = json.dumps(
        {"s": service, "ns": state.namespace, "n": state.name, "r": state.revision, "e": epoch},
        separators=(",", ":"),
    )
    if len(value) > 2000:  # Slack's limit for a button value
        raise ValueError("button value over 2000 characters")
    return value


def parse_button_value(value: str) -> dict[str, Any]:
    """The inverse of `button_value`; ValueError when it is not one of ours."""
    data = json.loads(value)
    if not isinstance(data, dict) or not {"s", "ns", "n", "r", "e"} <= data.keys():
        raise ValueError(f"not a rollbot button value: {value!r}")
    return data


# ── confirm dialogs ──────────────────────────────────────────────────────────


def abort_effect(state: RolloutState) -> str:
    return (
        f"patch status.abort=true on {state.key}; traffic returns to stable {stable_label(state)}"
    )


def promote_effect(state: RolloutState) -> str:
    """What `kubectl argo rollouts promote` does at the current step, in one sentence."""
    if state.strategy == "blueGreen":
        return (
            f"clear the pause on {state.key} and switch the active service "
            f"to revision {state.revision}"
        )
    step = f"step {state.step_label}" if state.step_index is not None else "the current step"
    if "InconclusiveAnalysisRun" in state.pause_reasons or (
        state.analysis is not None and state.analysis.status == "Inconclusive"
    ):
        return (
            f"accept the inconclusive analysis on {state.key} and move past {step}; "
            "the remaining steps still run"
        )
    if is_paused(state):
        return (
            f"clear the pause on {state.key} at {step} (canary {state.canary_weight}%) "
            "and continue to the next step; the remaining steps still run"
        )
    return f"skip {step} of {state.key} (canary {state.canary_weight}%) and go on to the next step"


def _confirm(action: RolloutAction, state: RolloutState) -> ConfirmObject | None:
    if action is RolloutAction.ABORT:
        return ConfirmObject(
            title=f"Abort {_clip(state.name, 80)}?",
            text=_clip(_sentence(abort_effect(state)), 300),
            confirm="Abort",
            deny="Cancel",
            style="danger",
        )
    if action is RolloutAction.PROMOTE:
        return ConfirmObject(
            title=f"Promote {_clip(state.name, 80)}?",
            text=_clip(_sentence(promote_effect(state)), 300),
            confirm="Promote",
            deny="Cancel",
        )
    if action is RolloutAction.PROMOTE_FULL:
        return ConfirmObject(
            title=f"Fully promote {_clip(state.name, 70)}?",
            text=_clip(
                f"Patch status.promoteFull=true on {state.key}: skip every remaining step "
                "and analysis and send all traffic to the canary.",
                300,
            ),
            confirm="Promote full",
            deny="Cancel",
            style="danger",
        )
    return None


def action_button(
    action: RolloutAction, *, service: str, state: RolloutState, epoch: int
) -> ButtonElement:
    return ButtonElement(
        text=PlainTextObject(text=_LABELS[action], emoji=True),
        action_id=ACTION_IDS[action],
        value=button_value(service=service, state=state, epoch=epoch),
        style="danger" if action is RolloutAction.ABORT else None,
        confirm=_confirm(action, state),
    )


# ── incident, evidence, alerts and tiers ─────────────────────────────────────


def _utc(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at


def duration_minutes(start: datetime, end: datetime) -> str:
    """`under 1 min`, `6 min`, `2 h 5 min` (whole minutes, rounded down)."""
    minutes = max(0, int((_utc(end) - _utc(start)).total_seconds()) // 60)
    if minutes < 1:
        return "under 1 min"
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


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


def tier_options(tiers: Sequence[TierOption]) -> list[TierOption]:
    """One option per tier (the first given for it), in tier order."""
    by_tier: dict[Tier, TierOption] = {}
    for option in tiers:
        by_tier.setdefault(option.tier, option)
    return [by_tier[t] for t in sorted(by_tier)]


def recommended_option(tiers: Sequence[TierOption]) -> TierOption | None:
    """The one option the card marks: the lowest available tier flagged `recommended`.

    An unavailable option is never marked, even when flagged: the card must not advise
    something nobody can do.
    """
    return next((o for o in tier_options(tiers) if o.recommended and o.available), None)


def tier_label(option: TierOption) -> str:
    """`Tier 1 — Abort the rollout`."""
    return f"Tier {int(option.tier)} — {option.title}"


_COMMANDS = frozenset(
    {"argocd", "cd", "curl", "docker", "gh", "git", "helm", "kubectl", "kustomize", "make"}
    | {"rollbot"}
)


def _looks_like_command(text: str) -> bool:
    words = text.split(maxsplit=1)
    return bool(words) and (words[0] in _COMMANDS or words[0].startswith("./"))


def format_step(step: str) -> str:
    """One Tier 3 step as mrkdwn: commands in code, `Do this: git …` as text plus code.

    Steps that already carry backticks keep their own formatting; everything is escaped,
    so placeholders such as `<release SHA>` show as written.
    """
    one = " ".join(step.split())
    if "`" in one:
        return _safe(one, 400)
    if one.startswith("$ "):
        return f"`{_safe(one[2:], 400)}`"
    head, sep, tail = one.partition(": ")
    if sep and _looks_like_command(tail):
        return f"{_safe(head, 150)}: `{_safe(tail, 350)}`"
    if _looks_like_command(one):
        return f"`{_safe(one, 400)}`"
    return _safe(one, 400)


_TIER_TEXT_BUDGET = 2900  # of Slack's 3000 per section, with room for the last line


def _tier_block(option: TierOption, *, recommended: bool) -> SectionBlock:
    """`⭐ *Tier 1 — Abort the rollout* (recommended)`, the reason, and Tier 3's steps."""
    title = _safe(tier_label(option), 200)
    if not option.available:
        head = f"🚫 *{title}* (unavailable)"
    elif recommended:
        head = f"⭐ *{title}* (recommended)"
    else:
        head = f"*{title}*"
    lines = [head]
    if option.reason:
        lines.append(_safe(option.reason, 500))
    if option.available and option.tier is Tier.FULL_REVERT:
        if option.link and not _is_web_url(option.link):
            lines.append(f"Runbook: `{_safe(option.link, 300)}`")
        used = sum(len(line) + 1 for line in lines)
        for i, step in enumerate(option.steps, start=1):
            line = f"{i}. {format_step(step)}"
            if used + len(line) + 1 > _TIER_TEXT_BUDGET:
                rest = len(option.steps) - i + 1
                lines.append(f"_+{rest} more {'step' if rest == 1 else 'steps'} in the runbook_")
                break
            lines.append(line)
            used += len(line) + 1
    return SectionBlock(text=MarkdownTextObject(text=_clip("\n".join(lines), 3000)))


def recommended_line(option: TierOption) -> str:
    """`👉 *Recommended: Tier 1 (Abort the rollout)* — <reason>`, right above the buttons."""
    line = f"👉 *Recommended: Tier {int(option.tier)} ({_safe(option.title, 200)})*"
    if option.reason:
        line += f" — {_safe(option.reason, 500)}"
    return line


def circuit_button(
    *,
    service: str,
    state: RolloutState,
    epoch: int,
    flag: str | None,
    environment: str | None = None,
) -> ButtonElement:
    """Tier 2: set the service's ops flag `…circuit-open` to true, after a confirm naming the
    flag, the environment and the effect."""
    return ButtonElement(
        text=PlainTextObject(text="Open circuit breaker (Tier 2)", emoji=True),
        action_id=CIRCUIT_ACTION_ID,
        value=button_value(service=service, state=state, epoch=epoch),
        style="danger",
        confirm=ConfirmObject(
            title=f"Open the circuit breaker of {_clip(service, 60)}?",
            text=_clip(circuit_open_text(service=service, flag=flag, environment=environment), 300),
            confirm="Open circuit",
            deny="Cancel",
            style="danger",
        ),
    )


def circuit_open_text(*, service: str, flag: str | None, environment: str | None) -> str:
    """What opening the circuit does, naming the flag and its environment (the circuit
    button's confirm and the break-glass modal say the same)."""
    name = f"`{_safe(flag, 150)}`" if flag else "the service's circuit-breaker flag"
    if environment:
        name += f" in {_safe(environment, 40)}"
    return (
        f"Set {name} to true: all traffic of {_safe(service, 60)} takes the legacy "
        "path; the other flags are ignored. No pod restart; SDKs see it within "
        "their refresh interval."
    )


CIRCUIT_CLOSE_ACTION_ID = "circuit_close"


def circuit_close_button(
    *, service: str, state: RolloutState, epoch: int, circuit: FlagState
) -> ButtonElement:
    """Tier 2, once open: back to the new path (the flag off), after a confirm naming it."""
    return ButtonElement(
        text=PlainTextObject(text="Close circuit breaker", emoji=True),
        action_id=CIRCUIT_CLOSE_ACTION_ID,
        value=button_value(service=service, state=state, epoch=epoch),
        confirm=ConfirmObject(
            title=f"Close the circuit breaker of {_clip(service, 60)}?",
            text=_clip(
                f"Set `{_safe(circuit.key, 150)}` to false in {_safe(circuit.environment, 40)}:"
                " traffic follows the release and experiment flags again.",
                300,
            ),
            confirm="Close circuit",
            deny="Cancel",
        ),
    )


def circuit_line(circuit: FlagState) -> str:
    """The breaker's live state, for the card."""
    if circuit.enabled:
        return (
            f":electric_plug: Circuit breaker `{_safe(circuit.key, 150)}` is *OPEN* in "
            f"{_safe(circuit.environment, 40)}: all traffic takes the legacy path"
        )
    return (
        f":electric_plug: Circuit breaker `{_safe(circuit.key, 150)}` is closed in "
        f"{_safe(circuit.environment, 40)} ({_safe(circuit.provider, 20)})"
    )


def revert_button(*, service: str, state: RolloutState, epoch: int) -> ButtonElement:
    """Tier 3: open the modal where the responder records the revert they started in Git."""
    return ButtonElement(
        text=PlainTextObject(text="Record Tier 3 revert…", emoji=True),
        action_id=REVERT_OPEN_ACTION_ID,
        value=button_value(service=service, state=state, epoch=epoch),
    )


def runbook_button(*, service: str, state: RolloutState, epoch: int, url: str) -> ButtonElement:
    """Tier 3: a link to the runbook (Slack still sends block_actions: ack `runbook_open`)."""
    return ButtonElement(
        text=PlainTextObject(text="Runbook (Tier 3)", emoji=True),
        action_id=RUNBOOK_ACTION_ID,
        url=url,
        value=button_value(service=service, state=state, epoch=epoch),
    )


# ── the card ─────────────────────────────────────────────────────────────────


def outcome_line(outcome: Outcome) -> str:
    """`Aborted by <@U0ONCALL> at 14:03:12 UTC, verified in 0.8 s` (or `… not verified: …`)."""
    verb = _PAST[outcome.action.value]
    verb = verb[:1].upper() + verb[1:]
    head = f"{verb} by <@{outcome.actor_id}> at {clock(outcome.at)}"
    if outcome.verified:
        return f"{head}, verified in {outcome.seconds:.1f} s"
    return f"{head}, not verified: {_escape(outcome.detail or 'the change was not observed')}"


def _fields(state: RolloutState, now: datetime) -> list[MarkdownTextObject]:
    """The Rollout's facts; its status strings (phase, images, the analysis and its
    message) are the cluster's words, escaped."""
    weight = f"{state.canary_weight}%"
    if state.set_weight is not None and state.set_weight != state.canary_weight:
        weight += f" (step asks {state.set_weight}%)"
    stable = stable_label(state)
    if state.stable_image:
        stable += f"\n`{_escape(state.stable_image)}`"
    canary = f"revision {state.revision}"
    if state.canary_image:
        canary += f"\n`{_escape(state.canary_image)}`"
    if state.fully_promoted and not state.aborted:
        # No update in progress: the Rollout's revision is the stable one.
        weight = "none: fully promoted"
        canary = f"none (revision {state.revision} is stable)"
    if state.analysis is not None:
        analysis = f"{_escape(state.analysis.status)} ({_escape(state.analysis.name)})"
        if state.analysis.message:
            analysis += f"\n{_escape(state.analysis.message)}"
    else:
        analysis = "-"
    pairs = [
        ("Phase", _escape(status_label(state))),
        ("Step", state.step_label),
        ("Canary weight", weight),
        ("Stable", stable),
        ("Canary", canary),
        ("Analysis", analysis),
        ("Age", humanise_age(state.created_at, now)),
        ("Rollout", f"`{_escape(state.key)}`"),
    ]
    return [MarkdownTextObject(text=_clip(f"*{k}*\n{v}", 2000)) for k, v in pairs]


def _header_text(service: str, state: RolloutState, incident: Incident | None) -> str:
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
) -> list[dict[str, Any]]:
    """The card of one Rollout revision and of the incident around it.

    Top to bottom: header (incident state when there is one, else the Rollout's status),
    the incident line, trouble, firing alerts (first 5, then `+N more`), canary-vs-stable
    evidence, the Rollout's facts, its message, outcome, notice; then the tiers in order
    with the recommended one starred, a `Recommended:` line, the Rollout's buttons
    (`available_actions`, unchanged) and the tier buttons (Tier 2 `circuit_open`, Tier 3
    runbook link `runbook_open` and `revert_open`, which opens the revert modal). Without
    the incident arguments the card is what it always was. `circuit_flag` names the ops
    flag in Tier 2's confirm dialog. `notice` is mrkdwn (its outside pieces escaped by
    whoever wrote it); `alerts` are plain summaries, escaped here.
    """
    options = tier_options(tiers or ())
    by_tier = {o.tier: o for o in options}
    recommended = recommended_option(options)
    blocks: list[Block] = [
        HeaderBlock(
            text=PlainTextObject(
                text=_clip(_header_text(service, state, incident), 150), emoji=True
            )
        )
    ]
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
    if evidence is not None:
        blocks.append(_evidence_block(evidence))
    blocks.append(SectionBlock(fields=_fields(state, now)))
    if state.message:
        message = _clip(_escape(state.message), 3000)
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=message)]))
    if outcome is not None:
        mark = ":white_check_mark:" if outcome.verified else ":x:"
        blocks.append(SectionBlock(text=MarkdownTextObject(text=f"{mark} {outcome_line(outcome)}")))
    if notice:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=_clip(notice, 3000))]))
    if circuit is not None:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=circuit_line(circuit))]))

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
                )
            )
    tier3 = by_tier.get(Tier.FULL_REVERT)
    if tier3 is not None and tier3.available and tier3.link and _is_web_url(tier3.link):
        tier_buttons.append(
            runbook_button(service=service, state=state, epoch=epoch, url=tier3.link)
        )
    if tier3 is not None and tier3.available:
        tier_buttons.append(revert_button(service=service, state=state, epoch=epoch))

    if actions or options or tier_buttons:
        blocks.append(DividerBlock())
    blocks.extend(_tier_block(o, recommended=o is recommended) for o in options)
    if recommended is not None:
        blocks.append(SectionBlock(text=MarkdownTextObject(text=recommended_line(recommended))))
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
    return [b.to_dict() for b in blocks]


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
) -> str:
    """The notification/fallback text of the card (what a phone shows).

    With an incident or tiers it leads with them:
    `🚨 Incident open · Recommended: Tier 1 — Abort the rollout · payment-router revision 42: …`.
    """
    lead: list[str] = []
    if incident is not None:
        lead.append(f"{incident_emoji(incident)} {incident_label(incident)}")
    recommended = recommended_option(tiers or ())
    if recommended is not None:
        lead.append(f"Recommended: {_escape(tier_label(recommended))}")
    text = (
        f"{service} revision {state.revision}: {_escape(status_label(state))}, "
        f"step {state.step_label}, canary {state.canary_weight}%"
    )
    if lead:
        text = " · ".join([*lead, text])
    if trouble is not None:
        text += f" — {_escape(trouble.summary)}"
    if outcome is not None:
        text += f". {outcome_line(outcome)}"
    if circuit is not None and circuit.enabled:
        text += f". Circuit breaker `{circuit.key}` OPEN"
    return _clip(text, 3000)


# ── smaller messages ─────────────────────────────────────────────────────────


def timeline_line(*, at: datetime, text: str) -> str:
    """One line of a card's thread: `` `14:03:12 UTC` text `` (`text` is mrkdwn: escape the
    outside pieces in it with `bot.core.mrkdwn.escape`)."""
    return f"`{clock(at)}` {text}"


_HELP = [
    ("status", "show the card of SERVICE's Rollout now (anyone)"),
    ("abort", "Tier 1: stop the canary, traffic back to the stable revision"),
    ("retry", "restart an aborted Rollout from its first step"),
    ("promote", "clear the current pause or analysis gate and go to the next step"),
    ("promote-full", "skip every remaining step and analysis: 100% to the new revision"),
    ("pause", "pause the Rollout at its current step"),
    ("circuit open|close", "Tier 2: flip the circuit-breaker flag (on call)"),
    ("flags", "the release, experiment and circuit flags and their live state"),
    ("runbook", "a signed, single-use link to the runbook page, for you"),
    ("ack", "acknowledge the service's PagerDuty incident"),
    ("help", "this message"),
]


def help_blocks(command: str = "/rollback") -> list[dict[str, Any]]:
    usage = (
        f"*Usage:* `{command} SERVICE [status|abort|retry|promote|promote-full|pause|"
        f"flags|runbook|ack|help]` or `{command} SERVICE circuit open|close`"
    )
    lines = "\n".join(f"• `{command} SERVICE {verb}`: {what}" for verb, what in _HELP)
    blocks: list[Block] = [
        SectionBlock(text=MarkdownTextObject(text=usage)),
        SectionBlock(text=MarkdownTextObject(text=lines)),
        ContextBlock(
            elements=[
                MarkdownTextObject(
                    text=(
                        "Without a verb, `status` is assumed. Actions other than status need "
                        "the service's on-call group. Tier 3 (Git revert) is in the "
                        "service's runbook."
                    )
                )
            ]
        ),
    ]
    return [b.to_dict() for b in blocks]


def help_text(command: str = "/rollback") -> str:
    return f"Usage: {command} SERVICE [status|abort|retry|promote|promote-full|pause|help]"


def error_blocks(message: str, *, error_id: str | None = None) -> list[dict[str, Any]]:
    blocks: list[Block] = [
        SectionBlock(text=MarkdownTextObject(text=_clip(f":warning: {message}", 3000)))
    ]
    if error_id:
        blocks.append(
            ContextBlock(
                elements=[
                    MarkdownTextObject(
                        text=f"Error id `{error_id}`: quote it when you ask the platform team."
                    )
                ]
            )
        )
    return [b.to_dict() for b in blocks]


def unknown_service_text(name: str, known: list[str] | tuple[str, ...] | set[str]) -> str:
    listed = ", ".join(f"`{k}`" for k in sorted(known)) or "(none configured)"
    return f"Unknown service `{_safe(name, 200)}`. Known services: {listed}."


def refusal_text(
    *, actor_id: str, action: RolloutAction | str, service: str, reason: str, allowed: str = ""
) -> str:
    """Why <@actor> may not do this, and who may."""
    verb = action.value if isinstance(action, RolloutAction) else action
    text = f":no_entry: <@{actor_id}>, you may not {verb} `{service}`: {reason}"
    if allowed:
        text += f" Who may: {allowed}."
    return text


def already_done_text(record: ActionRecord) -> str:
    """For the loser of a double click: `Already aborted by <@U…> at 14:03:12 UTC`."""
    if record.status == "running" or record.finished_at is None:
        verb = _PRESENT.get(record.action, record.action)
        return f"Already {verb}: <@{record.actor_id}> started at {clock(record.requested_at)}"
    verb = _PAST.get(record.action, record.action)
    text = f"Already {verb} by <@{record.actor_id}> at {clock(record.finished_at)}"
    if record.status == "failed":
        text += " (it failed; see the thread)"
    return text


def flags_text(service: str, states: Sequence[FlagStatus]) -> str:
    """`/rollback SERVICE flags`: each flag of the hierarchy with its live state, owner,
    creation date and when it should be removed."""
    if not states:
        return f"`{service}` lists no flags in the catalog (services.{service}.flags)."
    lines = [f"*Flags of `{service}`*"]
    for status in states:
        info, state = status.info, status.state
        head = f"• *{info.type}* `{info.key}`"
        if isinstance(state, FlagState):
            shown = "on" if state.enabled else "off"
            lines.append(f"{head} is *{shown}* in {state.environment} ({state.provider})")
        else:
            lines.append(f"{head} — {_safe(state, 300)}")
        details = [f"owner {_safe(info.owner, 80)}" if info.owner else "no owner set"]
        if info.created is not None:
            details.append(f"created {info.created.isoformat()}")
        details.append(status.removal)
        lines.append("    " + " · ".join(details))
        if info.description:
            lines.append(f"    _{_safe(info.description, 200)}_")
    return "\n".join(lines)


# ── Tier 3: recording a revert in Git ────────────────────────────────────────


def revert_metadata(
    *,
    service: str,
    revision: int | None,
    epoch: int | None,
    channel: str | None,
    message_ts: str | None,
) -> str:
    """The revert modal's `private_metadata`: which card it was opened from (compact JSON)."""
    value = json.dumps(
        {"s": service, "r": revision, "e": epoch, "c": channel, "ts": message_ts},
        separators=(",", ":"),
    )
    if len(value) > MAX_PRIVATE_METADATA:
        raise ValueError(f"private_metadata over {MAX_PRIVATE_METADATA} characters")
    return value


def parse_revert_metadata(raw: str) -> dict[str, Any]:
    """The inverse of `revert_metadata`; ValueError when it is not one of ours (each key
    of the type `revert_metadata` writes: a signed submission could hold anything)."""
    data = json.loads(raw)
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("s"), str)
        or not all(_int_or_none(data.get(k)) for k in ("r", "e"))
        or not all(data.get(k) is None or isinstance(data[k], str) for k in ("c", "ts"))
    ):
        raise ValueError(f"not a rollbot revert modal: {raw[:100]!r}")
    return data


def _int_or_none(value: Any) -> bool:
    return value is None or (isinstance(value, int) and not isinstance(value, bool))


def revert_modal(
    *,
    service: str,
    state: RolloutState | None,
    steps: Sequence[str],
    metadata: str,
    sha: str | None = None,
) -> dict[str, Any]:
    """The modal `revert_open` opens: what to revert (service, revision, release SHA), the
    exact Tier 3 steps as the card shows them, the revert's URL and an optional note.

    Submitted as `revert_record`; the values are under `revert_url`/`url` and
    `revert_note`/`note`. `metadata` comes from `revert_metadata` (at most 3000 characters).
    """
    if len(metadata) > MAX_PRIVATE_METADATA:
        raise ValueError(f"private_metadata over {MAX_PRIVATE_METADATA} characters")
    what = _safe(service, 200)
    if state is not None:
        what += f" revision {state.revision}"
    lines = [f"*Revert {what} in Git* (Tier 3, 30–120 min)"]
    if state is not None:
        lines.append(f"Rollout `{_safe(state.key, 300)}`")
    lines.append(
        f"Release commit `{_safe(sha, 100)}`" if sha else "Release commit unknown: see step 1"
    )
    used = sum(len(line) + 1 for line in lines)
    for i, step in enumerate(steps, start=1):
        line = f"{i}. {format_step(step)}"
        if used + len(line) + 1 > _TIER_TEXT_BUDGET:
            lines.append("_+ more steps in the runbook_")
            break
        lines.append(line)
        used += len(line) + 1
    blocks: list[Block] = [
        SectionBlock(text=MarkdownTextObject(text=_clip("\n".join(lines), 3000))),
        ContextBlock(
            elements=[
                MarkdownTextObject(
                    text="Record it once the revert commit or pull request exists: rollbot "
                    "writes it to the card's thread, the audit log and the PagerDuty incident."
                )
            ]
        ),
        InputBlock(
            block_id=REVERT_URL_BLOCK_ID,
            label=PlainTextObject(text="Revert commit or pull request URL"),
            element=PlainTextInputElement(
                action_id=REVERT_URL_ACTION_ID,
                placeholder=PlainTextObject(text="https://github.com/acme/gitops/pull/123"),
                max_length=3000,
            ),
        ),
        InputBlock(
            block_id=REVERT_NOTE_BLOCK_ID,
            label=PlainTextObject(text="Note for the thread and the audit log"),
            element=PlainTextInputElement(
                action_id=REVERT_NOTE_ACTION_ID, multiline=True, max_length=2000
            ),
            optional=True,
        ),
    ]
    view = View(
        type="modal",
        callback_id=REVERT_CALLBACK_ID,
        title=PlainTextObject(text="Tier 3: revert in Git"),
        submit=PlainTextObject(text="Record"),
        close=PlainTextObject(text="Cancel"),
        private_metadata=metadata,
        blocks=blocks,
    )
    return view.to_dict()


def revert_line(*, actor_id: str, url: str, note: str = "") -> str:
    """`:rewind: Tier 3: <@U…> started a revert in Git: <url|url>`, then the note quoted;
    the URL and the note are the user's text, escaped."""
    shown = _safe(url, 300)
    link = _link(url, shown) if _is_web_url(url) else f"`{shown}`"
    line = f":rewind: Tier 3: <@{actor_id}> started a revert in Git: {link}"
    if note.strip():
        line += f"\n>{_safe(note, 2000)}"
    return line


def is_revert_url(url: str) -> bool:
    """A revert commit or pull request URL rollbot accepts: http(s) with a host, no spaces,
    at most 3000 characters."""
    return _is_web_url(url) and bool(url.split("://", 1)[-1].split("/", 1)[0])


def revert_recorded_text(
    *, service: str, revision: int | None, url: str, sha: str | None, note: str = ""
) -> str:
    """What the person who recorded a revert is told (and the PagerDuty note says)."""
    where = f"`{_safe(service, 200)}`"
    if revision is not None:
        where += f" revision {revision}"
    text = f"Recorded the Tier 3 revert of {where}: {_link(url, _safe(url, 300))}"
    if sha:
        text += f" (release commit `{_safe(sha, 100)}`)"
    text += "."
    if note.strip():
        text += f" Note: {_safe(note, 2000)}"
    return text


# ── Tier 2: break-glass from the card ────────────────────────────────────────


def break_glass_value(*, value: str, channel: str | None, message_ts: str | None) -> str:
    """The "Break glass…" button's value: the card's circuit button value (service,
    namespace, name, revision, epoch) plus the card's channel and message ts (`c`, `ts`),
    so that the result can be told in the card's channel later."""
    data = parse_button_value(value)
    data.update({"c": channel, "ts": message_ts})
    out = json.dumps(data, separators=(",", ":"))
    if len(out) > 2000:  # Slack's limit for a button value
        raise ValueError("button value over 2000 characters")
    return out


def circuit_refusal_blocks(text: str, *, break_glass: str | None = None) -> list[dict[str, Any]]:
    """A refused circuit click, told to the clicker alone. `break_glass` (a
    `break_glass_value`): the refusal is only for want of break-glass, so it offers the
    "Break glass…" button opening the modal that asks for the reason."""
    blocks: list[Block] = [SectionBlock(text=MarkdownTextObject(text=_clip(text, 3000)))]
    if break_glass is not None:
        blocks.append(
            ActionsBlock(
                elements=[
                    ButtonElement(
                        text=PlainTextObject(text="Break glass…", emoji=True),
                        action_id=BREAK_GLASS_ACTION_ID,
                        value=break_glass,
                        style="danger",
                    )
                ]
            )
        )
    return [b.to_dict() for b in blocks]


def break_glass_metadata(
    *,
    service: str,
    revision: int | None,
    epoch: int | None,
    channel: str | None,
    message_ts: str | None,
) -> str:
    """The break-glass modal's `private_metadata` (compact JSON, as `revert_metadata`)."""
    return revert_metadata(
        service=service, revision=revision, epoch=epoch, channel=channel, message_ts=message_ts
    )


def parse_break_glass_metadata(raw: str) -> dict[str, Any]:
    """The inverse of `break_glass_metadata`; ValueError when it is not one of ours."""
    return parse_revert_metadata(raw)


def break_glass_modal(
    *,
    service: str,
    flag: str,
    environment: str | None,
    channel: str,
    owners_group: str | None,
    metadata: str,
) -> dict[str, Any]:
    """The modal the "Break glass…" button opens: which flag, environment and effect (as the
    circuit button's confirm), what makes break-glass loud, and the required reason.

    Submitted as `circuit_break_glass`; the reason is under `break_glass_reason`/`reason`
    (at least `BREAK_GLASS_MIN_REASON` characters). `metadata` comes from
    `break_glass_metadata` (at most 3000 characters).
    """
    if len(metadata) > MAX_PRIVATE_METADATA:
        raise ValueError(f"private_metadata over {MAX_PRIVATE_METADATA} characters")
    head = (
        f"*Open the circuit breaker of {_safe(service, 200)}* (Tier 2) without the on-call\n"
        + circuit_open_text(service=service, flag=flag, environment=environment)
    )
    group = f" mentioning <!subteam^{_safe(owners_group, 40)}>" if owners_group else ""
    loud = (
        f":rotating_light: Break-glass is loud: the flip and your reason are posted as a "
        f"top-level message in <#{_safe(channel, 40)}>{group}, written to the card's thread, "
        f"the audit log and the flag's change comment. If the service has an open PagerDuty "
        f"incident, its on-call sees a note with the result there."
    )
    blocks: list[Block] = [
        SectionBlock(text=MarkdownTextObject(text=_clip(head, 3000))),
        SectionBlock(text=MarkdownTextObject(text=_clip(loud, 3000))),
        InputBlock(
            block_id=BREAK_GLASS_REASON_BLOCK_ID,
            label=PlainTextObject(text="Why (goes to the channel and the audit log)"),
            element=PlainTextInputElement(
                action_id=BREAK_GLASS_REASON_ACTION_ID,
                multiline=True,
                min_length=BREAK_GLASS_MIN_REASON,
                max_length=BREAK_GLASS_MAX_REASON,
                placeholder=PlainTextObject(
                    text="e.g. on-call unreachable for 10 min, checkout 5xx at 40 %"
                ),
            ),
        ),
    ]
    view = View(
        type="modal",
        callback_id=BREAK_GLASS_CALLBACK_ID,
        title=PlainTextObject(text="Break glass"),
        submit=PlainTextObject(text="Open circuit"),
        close=PlainTextObject(text="Cancel"),
        private_metadata=metadata,
        blocks=blocks,
    )
    return view.to_dict()

"""The rollback tiers on the card: one section per tier option (the recommended one
starred, Tier 3's steps formatted), the `Recommended:` line, and the tier buttons (Tier 2
opens or closes the circuit breaker, Tier 3 links the runbook and opens the revert modal),
in their own actions block below the Rollout's buttons.

Once a Tier 3 revert is recorded (`RevertStarted`), Tier 3 is marked started instead of
recommended, the card says who started it with its link (`revert_started_line`) and the
recommendation becomes watching it land.

Reasons, titles, steps, flag names and the revert's URL are escaped where they go into
mrkdwn.
"""

from __future__ import annotations

from collections.abc import Sequence

from slack_sdk.models.blocks import (
    ButtonElement,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)

from bot.blocks.rollout import button_value, confirm_dialog
from bot.blocks.text import clock
from bot.core.model import FlagState, RevertStarted, RolloutState, Tier, TierOption
from bot.core.mrkdwn import clip as _clip
from bot.core.mrkdwn import is_web_url as _is_web_url
from bot.core.mrkdwn import link as _link
from bot.core.mrkdwn import safe as _safe

__all__ = [
    "CIRCUIT_ACTION_ID",
    "CIRCUIT_CLOSE_ACTION_ID",
    "REVERT_OPEN_ACTION_ID",
    "RUNBOOK_ACTION_ID",
    "TIER_ACTIONS_BLOCK_ID",
    "TIER_TEXT_BUDGET",
    "circuit_button",
    "circuit_close_button",
    "circuit_line",
    "circuit_open_text",
    "format_step",
    "recommended_line",
    "recommended_option",
    "revert_button",
    "revert_link",
    "revert_started_line",
    "runbook_button",
    "tier_block",
    "tier_label",
    "tier_options",
]

# Buttons of Tier 2 and 3, in their own actions block below the Rollout's buttons.
TIER_ACTIONS_BLOCK_ID = "tier_actions"
CIRCUIT_ACTION_ID = "circuit_open"  # Tier 2: flip the ops flag …circuit-open to true
CIRCUIT_CLOSE_ACTION_ID = "circuit_close"  # Tier 2, once open: the flag back to false
RUNBOOK_ACTION_ID = "runbook_open"  # Tier 3: a URL button; Slack still sends block_actions
REVERT_OPEN_ACTION_ID = "revert_open"  # Tier 3: opens the modal recording a revert in Git


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


TIER_TEXT_BUDGET = 2900  # of Slack's 3000 per section, with room for the last line


def tier_block(option: TierOption, *, recommended: bool, started: bool = False) -> SectionBlock:
    """`⭐ *Tier 1 — Abort the rollout* (recommended)`, the reason, and Tier 3's steps.

    `started`: a Tier 3 revert is recorded; Tier 3 is marked `⏪ … (started)` instead."""
    title = _safe(tier_label(option), 200)
    if not option.available:
        head = f"🚫 *{title}* (unavailable)"
    elif started and option.tier is Tier.FULL_REVERT:
        head = f"⏪ *{title}* (started)"
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
            if used + len(line) + 1 > TIER_TEXT_BUDGET:
                rest = len(option.steps) - i + 1
                lines.append(f"_+{rest} more {'step' if rest == 1 else 'steps'} in the runbook_")
                break
            lines.append(line)
            used += len(line) + 1
    return SectionBlock(text=MarkdownTextObject(text=_clip("\n".join(lines), 3000)))


_REVERT_LANDS = (
    "once merged and synced, the Rollout runs the previous release again; "
    "the incident resolves when the signals are quiet"
)


def recommended_line(
    option: TierOption | None, *, after_mitigation: bool = False, revert_started: bool = False
) -> str:
    """`👉 *Recommended: Tier 1 (Abort the rollout)* — <reason>`, right above the buttons.

    After a verified mitigation the next step comes first: `👉 *Next: watch the signals
    recover, then Tier 3 (Full revert in Git)* — <reason>`.

    Once a Tier 3 revert is recorded (`revert_started`) the next step is to watch it land:
    `👉 *Next: watch the Tier 3 revert land*` (after a mitigation: `watch the signals
    recover and the Tier 3 revert land`); a faster tier still recommended (a canary still
    running) is named as what to do until then. `option` None: only with `revert_started`."""
    if revert_started:
        watch = "the Tier 3 revert land"
        if after_mitigation:
            watch = f"the signals recover and {watch}"
        if option is None or option.tier is Tier.FULL_REVERT:
            return f"👉 *Next: watch {watch}* — {_REVERT_LANDS}"
        title = f"Tier {int(option.tier)} ({_safe(option.title, 200)})"
        line = f"👉 *Next: watch {watch}; until it does, {title}*"
        return line + (f" — {_safe(option.reason, 500)}" if option.reason else "")
    if option is None:
        raise ValueError("recommended_line: no option and no revert started")
    title = f"Tier {int(option.tier)} ({_safe(option.title, 200)})"
    if after_mitigation:
        line = f"👉 *Next: watch the signals recover, then {title}*"
    else:
        line = f"👉 *Recommended: {title}*"
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
    others: Sequence[str] = (),
) -> ButtonElement:
    """Tier 2: set the service's ops flag `…circuit-open` to true, after a confirm naming the
    flag, the environment and the effect (`others`: the flags it overrides)."""
    return ButtonElement(
        text=PlainTextObject(text="Open circuit breaker (Tier 2)", emoji=True),
        action_id=CIRCUIT_ACTION_ID,
        value=button_value(service=service, state=state, epoch=epoch),
        style="danger",
        confirm=confirm_dialog(
            title=f"Open the circuit breaker of {_clip(service, 60)}?",
            text=circuit_open_text(
                service=service, flag=flag, environment=environment, others=others
            ),
            confirm="Open circuit",
            danger=True,
        ),
    )


def circuit_open_text(
    *, service: str, flag: str | None, environment: str | None, others: Sequence[str] = ()
) -> str:
    """What opening the circuit does, naming the flag, its environment and the flags it
    overrides (the circuit button's confirm and the break-glass modal say the same)."""
    name = f"`{_safe(flag, 150)}`" if flag else "the service's circuit-breaker flag"
    if environment:
        name += f" in {_safe(environment, 40)}"
    named = [f"`{_safe(key, 80)}`" for key in others if key]
    if not named:
        ignored = "the other flags are ignored"
    elif len(named) == 1:
        ignored = f"{named[0]} is ignored"
    else:
        ignored = f"{', '.join(named)} are ignored"
    return (
        f"Set {name} to true: all traffic of {_safe(service, 60)} takes the legacy "
        f"path; {ignored}. No pod restart; SDKs see it within their refresh interval."
    )


def circuit_close_button(
    *, service: str, state: RolloutState, epoch: int, circuit: FlagState
) -> ButtonElement:
    """Tier 2, once open: back to the new path (the flag off), after a confirm naming it."""
    return ButtonElement(
        text=PlainTextObject(text="Close circuit breaker", emoji=True),
        action_id=CIRCUIT_CLOSE_ACTION_ID,
        value=button_value(service=service, state=state, epoch=epoch),
        confirm=confirm_dialog(
            title=f"Close the circuit breaker of {_clip(service, 60)}?",
            text=f"Set `{_safe(circuit.key, 150)}` to false in {_safe(circuit.environment, 40)}:"
            " traffic follows the release and experiment flags again.",
            confirm="Close circuit",
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


def revert_link(url: str) -> str:
    """The revert's URL as mrkdwn: `<url|url>` for an http(s) URL, else the text in code;
    escaped either way (the person typed it)."""
    shown = _safe(url, 300)
    return _link(url, shown) if _is_web_url(url) else f"`{shown}`"


def revert_started_line(started: RevertStarted) -> str:
    """`:rewind: Tier 3 revert started by <@U…> at 14:03:12 UTC: <url|url>`, for the card."""
    return (
        f":rewind: Tier 3 revert started by <@{started.actor_id}> at {clock(started.at)}: "
        f"{revert_link(started.url)}"
    )


def runbook_button(*, service: str, state: RolloutState, epoch: int, url: str) -> ButtonElement:
    """Tier 3: a link to the runbook (Slack still sends block_actions: ack `runbook_open`)."""
    return ButtonElement(
        text=PlainTextObject(text="Runbook (Tier 3)", emoji=True),
        action_id=RUNBOOK_ACTION_ID,
        url=url,
        value=button_value(service=service, state=state, epoch=epoch),
    )

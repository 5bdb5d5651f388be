"""The rollback tiers on the card: the `👉 Recommended:` line right above the buttons (the
one place the recommended tier and its reason are told), the other tiers one line each under
the fold (`other_tiers_block`), and the tier buttons (Tier 2 opens or closes the circuit
breaker, Tier 3 links the runbook and opens the revert modal), in their own actions block
below the Rollout's buttons.

Tier 3's steps are not on the card (at 1366×768 they pushed the card past one screen):
the Tier 3 line says where they are, the runbook or the revert modal, which shows them
(`bot.blocks.modals.revert_modal`, with `format_step`).

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
    "TIER3_APPROVE_ACTION_ID",
    "TIER3_START_ACTION_ID",
    "TIER_ACTIONS_BLOCK_ID",
    "TIER_TEXT_BUDGET",
    "circuit_button",
    "circuit_close_button",
    "circuit_line",
    "circuit_open_text",
    "format_step",
    "other_tiers_block",
    "recommended_line",
    "recommended_option",
    "revert_button",
    "revert_link",
    "revert_started_line",
    "runbook_button",
    "tier3_steps_where",
    "tier_label",
    "tier_line",
    "tier_options",
]

# Buttons of Tier 2 and 3, in their own actions block below the Rollout's buttons.
TIER_ACTIONS_BLOCK_ID = "tier_actions"
CIRCUIT_ACTION_ID = "circuit_open"  # Tier 2: flip the ops flag …circuit-open to true
CIRCUIT_CLOSE_ACTION_ID = "circuit_close"  # Tier 2, once open: the flag back to false
RUNBOOK_ACTION_ID = "runbook_open"  # Tier 3: a URL button; Slack still sends block_actions
REVERT_OPEN_ACTION_ID = "revert_open"  # Tier 3: opens the modal recording a revert in Git
TIER3_START_ACTION_ID = "tier3_start"  # Tier 3 run by rollbot: prepare the revert, show it
TIER3_APPROVE_ACTION_ID = "tier3_approve"  # Tier 3 run by rollbot: a second person approves


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


def tier3_steps_where(option: TierOption, *, revert_open: bool) -> str | None:
    """Where Tier 3's steps are, for the card (they are not on it: they made it taller than
    a screen): `steps: *Runbook (Tier 3)*` (a web link is a button), `steps: runbook
    `runbooks/x.md`` (a path is text), else `steps: *Record Tier 3 revert…*` while that
    modal, which shows them, is offered; None when there is nowhere to point."""
    if not option.available or option.tier is not Tier.FULL_REVERT:
        return None
    if option.link and _is_web_url(option.link):
        return "steps: *Runbook (Tier 3)*"
    if option.link:
        return f"steps: runbook `{_safe(option.link, 300)}`"
    if option.steps and revert_open:
        return "steps: *Record Tier 3 revert…*"
    return None


def tier_line(option: TierOption, *, started: bool = False, revert_open: bool = True) -> str:
    """One tier under the card's fold: `*Tier 2 — Open the circuit breaker*: <reason>`;
    `🚫 … (unavailable): <why>`; `⏪ … (started)` once a Tier 3 revert is recorded; Tier 3
    says where its steps are."""
    title = _safe(tier_label(option), 200)
    if not option.available:
        head = f"🚫 *{title}* (unavailable)"
    elif started and option.tier is Tier.FULL_REVERT:
        head = f"⏪ *{title}* (started)"
    else:
        head = f"*{title}*"
    line = f"{head}: {_safe(option.reason, 500)}" if option.reason else head
    where = tier3_steps_where(option, revert_open=revert_open and not started)
    return f"{line} · {where}" if where else line


def other_tiers_block(
    options: Sequence[TierOption],
    recommended: TierOption | None,
    *,
    started: bool = False,
    revert_open: bool = True,
) -> SectionBlock | None:
    """The tiers other than the recommended one (which the `👉` line above the buttons
    already tells, with its reason), one line each; None when there are none."""
    rest = [o for o in options if o is not recommended]
    if not rest:
        return None
    head = "*Other tiers*" if recommended is not None else "*Tiers*"
    lines = [head, *(tier_line(o, started=started, revert_open=revert_open) for o in rest)]
    return SectionBlock(text=MarkdownTextObject(text=_clip("\n".join(lines), 3000)))


_REVERT_LANDS = (
    "once merged and synced, the Rollout runs the previous release again; "
    "the incident resolves when the signals are quiet"
)


def recommended_line(
    option: TierOption | None,
    *,
    after_mitigation: bool = False,
    revert_started: bool = False,
    revert_verified: bool = False,
) -> str:
    """`👉 *Recommended: Tier 1 (Abort the rollout)* — <reason>`, right above the buttons.

    After a verified mitigation the next step comes first: `👉 *Next: watch the signals
    recover, then Tier 3 (Full revert in Git)* — <reason>`.

    Once a Tier 3 revert is recorded (`revert_started`) the next step is to watch it land:
    `👉 *Next: watch the Tier 3 revert land*` (after a mitigation: `watch the signals
    recover and the Tier 3 revert land`); a faster tier still recommended (a canary still
    running) is named as what to do until then. Once rollbot verified its revert
    (`revert_verified`): `👉 *Next: watch the signals recover*`. `option` None: only with
    `revert_started` or `revert_verified`."""
    if revert_verified:
        return (
            "👉 *Next: watch the signals recover* — the Rollout runs the previous release "
            "again (Tier 3 verified); the incident resolves when the signals are quiet"
        )
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


def start_revert_button(*, service: str, state: RolloutState, epoch: int) -> ButtonElement:
    """Tier 3 run by rollbot: prepare the revert in the GitOps repository and show it (a
    modal; nothing is pushed before the requester confirms there)."""
    return ButtonElement(
        text=PlainTextObject(text="Start Tier 3 revert…", emoji=True),
        action_id=TIER3_START_ACTION_ID,
        value=button_value(service=service, state=state, epoch=epoch),
    )


def approve_revert_button(
    *, service: str, state: RolloutState, epoch: int, started: RevertStarted
) -> ButtonElement:
    """Tier 3 run by rollbot: a second person approves the open request; the confirm
    says what follows (rollbot merges, or branch protection does)."""
    change = _safe(started.change or "the request", 60)
    return ButtonElement(
        text=PlainTextObject(text="Approve Tier 3 revert", emoji=True),
        action_id=TIER3_APPROVE_ACTION_ID,
        value=button_value(service=service, state=state, epoch=epoch),
        style="primary",
        confirm=confirm_dialog(
            title="Approve the Tier 3 revert?",
            text=(
                f"Approve {change} reverting the release of {_clip(service, 60)}. It is "
                "merged once approved, and Argo CD rolls the previous release out. You "
                "approve as the second person: not the one who started it."
            ),
            confirm="Approve",
            danger=False,
        ),
    )


def revert_started_line(started: RevertStarted) -> str:
    """The revert on the card. Recorded by hand: `:rewind: Tier 3 revert started by <@U…> at
    14:03:12 UTC: <url|url>`. Run by rollbot: where it stands, e.g. `:rewind: Tier 3 revert
    by <@U…> at 14:03:12 UTC: <url|pull request #12> open · waiting for a second person's
    approval`, up to `:white_check_mark: *Tier 3 done, verified*`."""
    if started.stage is None:
        return (
            f":rewind: Tier 3 revert started by <@{started.actor_id}> at {clock(started.at)}: "
            f"{revert_link(started.url)}"
        )
    change = _safe(started.change or "the request", 60)
    ref = _link(started.url, change) if _is_web_url(started.url) else change
    by = f"<@{started.actor_id}> at {clock(started.at)}"
    approved = ""
    if started.approver_id:
        glass = " (break glass)" if started.break_glass else ""
        approved = f", approved by <@{started.approver_id}>{glass}"
    stage = started.stage
    if stage == "confirmed":
        return f":rewind: Tier 3 revert by {by}: pushing the branch and opening {change}"
    if stage == "opened":
        return (
            f":rewind: Tier 3 revert by {by}: {ref} open · *waiting for a second person's "
            "approval* (on call or owners; not the one who started it)"
        )
    if stage == "approved":
        return f":rewind: Tier 3 revert by {by}: {ref}{approved} · merging"
    if stage == "merge-queued":
        return (
            f":rewind: Tier 3 revert by {by}: {ref}{approved} · branch protection merges it "
            "once its required reviews and checks pass"
        )
    if stage == "merged":
        return (
            f":rewind: Tier 3 revert by {by}: {ref} merged{approved} · waiting for Argo CD's "
            "sync and the Rollout's new revision"
        )
    if stage == "verified":
        return (
            f":white_check_mark: *Tier 3 done, verified*: {ref} merged and synced, the "
            f"Rollout runs the previous release (started by {by}{approved})"
        )
    why = _safe((started.error or "unknown").rstrip(". "), 300)
    left = f"{ref} is left as it is; " if started.url else ""
    return (
        f":x: Tier 3 revert by {by} stopped: {why}. {left}finish by hand (the runbook's "
        "steps), then record it"
    )


def runbook_button(*, service: str, state: RolloutState, epoch: int, url: str) -> ButtonElement:
    """Tier 3: a link to the runbook (Slack still sends block_actions: ack `runbook_open`)."""
    return ButtonElement(
        text=PlainTextObject(text="Runbook (Tier 3)", emoji=True),
        action_id=RUNBOOK_ACTION_ID,
        url=url,
        value=button_value(service=service, state=state, epoch=epoch),
    )

"""The modals a card button opens: Tier 3's revert modal (`revert_open`, recording a revert
started in Git) and Tier 2's break-glass modal (the "Break glass…" button of a refused
circuit click, asking for the reason), with their ids and the `private_metadata` naming the
card they were opened from (and, for break-glass, the response_url of the click that opened
it, to retire the button afterwards).

Service names, SHAs, Rollout keys and channel ids are escaped where they go into mrkdwn; a
submitted `private_metadata` is checked key by key before use.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from slack_sdk.models.blocks import (
    Block,
    ContextBlock,
    InputBlock,
    MarkdownTextObject,
    PlainTextInputElement,
    PlainTextObject,
    SectionBlock,
)
from slack_sdk.models.views import View

from bot.blocks.tiers import TIER_TEXT_BUDGET, circuit_open_text, format_step
from bot.core import mrkdwn
from bot.core.gitops import RevertCase, trim_diff
from bot.core.model import RolloutState
from bot.core.mrkdwn import clip as _clip
from bot.core.mrkdwn import safe as _safe

__all__ = [
    "BREAK_GLASS_CALLBACK_ID",
    "BREAK_GLASS_MAX_REASON",
    "BREAK_GLASS_MIN_REASON",
    "BREAK_GLASS_REASON_ACTION_ID",
    "BREAK_GLASS_REASON_BLOCK_ID",
    "MAX_PRIVATE_METADATA",
    "REVERT_CALLBACK_ID",
    "REVERT_NOTE_ACTION_ID",
    "REVERT_NOTE_BLOCK_ID",
    "REVERT_URL_ACTION_ID",
    "REVERT_URL_BLOCK_ID",
    "TIER3_BREAK_GLASS_CALLBACK_ID",
    "TIER3_CONFIRM_CALLBACK_ID",
    "break_glass_metadata",
    "break_glass_modal",
    "parse_break_glass_metadata",
    "parse_revert_metadata",
    "parse_tier3_confirm_metadata",
    "revert_metadata",
    "revert_modal",
    "tier3_break_glass_modal",
    "tier3_confirm_metadata",
    "tier3_message_modal",
    "tier3_prepared_modal",
]

# The modal recording a Tier 3 revert: its callback id, input blocks and their elements.
REVERT_CALLBACK_ID = "revert_record"
REVERT_URL_BLOCK_ID = "revert_url"
REVERT_URL_ACTION_ID = "url"
REVERT_NOTE_BLOCK_ID = "revert_note"
REVERT_NOTE_ACTION_ID = "note"
MAX_PRIVATE_METADATA = 3000  # Slack's limit for a view's private_metadata
# The break-glass modal (Tier 2 from the card), asking for the reason.
BREAK_GLASS_CALLBACK_ID = "circuit_break_glass"
BREAK_GLASS_REASON_BLOCK_ID = "break_glass_reason"
BREAK_GLASS_REASON_ACTION_ID = "reason"
BREAK_GLASS_MIN_REASON = 10  # characters, as the modal's min_length and the submission check
BREAK_GLASS_MAX_REASON = 1000

TIER3_CONFIRM_CALLBACK_ID = "tier3_confirm"  # the prepared revert, confirmed: push and open
TIER3_BREAK_GLASS_CALLBACK_ID = "tier3_break_glass"  # the requester approving alone


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
        if used + len(line) + 1 > TIER_TEXT_BUDGET:
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


# ── Tier 2: break-glass from the card ────────────────────────────────────────


def break_glass_metadata(
    *,
    service: str,
    revision: int | None,
    epoch: int | None,
    channel: str | None,
    message_ts: str | None,
    response_url: str | None = None,
) -> str:
    """The break-glass modal's `private_metadata` (compact JSON, as `revert_metadata`), and
    `u`: the response_url of the "Break glass…" click, so that the refusal carrying the
    button can be rewritten without it once the flip is done.

    Slack keeps the metadata with the view and hands it back on submission: nothing is
    stored by rollbot, and a restart (or another replica) between the click and the
    submission still finds it. A `response_url` that is not an http(s) URL, or that would
    take the metadata over 3000 characters, is left out: opening the modal matters more
    than retiring the button.
    """
    plain = revert_metadata(
        service=service, revision=revision, epoch=epoch, channel=channel, message_ts=message_ts
    )
    if not mrkdwn.is_web_url(response_url):
        return plain
    with_url = json.dumps({**json.loads(plain), "u": response_url}, separators=(",", ":"))
    return with_url if len(with_url) <= MAX_PRIVATE_METADATA else plain


def parse_break_glass_metadata(raw: str) -> dict[str, Any]:
    """The inverse of `break_glass_metadata`; ValueError when it is not one of ours (`u`,
    when there, an http(s) URL)."""
    data = parse_revert_metadata(raw)
    url = data.get("u")
    if url is not None and not (isinstance(url, str) and mrkdwn.is_web_url(url)):
        raise ValueError(f"not a rollbot break-glass modal: {raw[:100]!r}")
    return data


def _reason_input(example: str) -> InputBlock:
    """Break-glass's required reason (Tier 2's flip, Tier 3's approval alone)."""
    return InputBlock(
        block_id=BREAK_GLASS_REASON_BLOCK_ID,
        label=PlainTextObject(text="Why (goes to the channel and the audit log)"),
        element=PlainTextInputElement(
            action_id=BREAK_GLASS_REASON_ACTION_ID,
            multiline=True,
            min_length=BREAK_GLASS_MIN_REASON,
            max_length=BREAK_GLASS_MAX_REASON,
            placeholder=PlainTextObject(text=example),
        ),
    )


def break_glass_modal(
    *,
    service: str,
    flag: str,
    environment: str | None,
    channel: str,
    owners_group: str | None,
    metadata: str,
    others: Sequence[str] = (),
) -> dict[str, Any]:
    """The modal the "Break glass…" button opens: which flag, environment and effect (as the
    circuit button's confirm), what makes break-glass loud, and the required reason.

    Submitted as `circuit_break_glass`; the reason is under `break_glass_reason`/`reason`
    (at least `BREAK_GLASS_MIN_REASON` characters). `metadata` comes from
    `break_glass_metadata` (at most 3000 characters). No `notify_on_close`: Slack tells
    rollbot nothing when the modal is cancelled, so the refusal keeps its button.
    """
    if len(metadata) > MAX_PRIVATE_METADATA:
        raise ValueError(f"private_metadata over {MAX_PRIVATE_METADATA} characters")
    head = (
        f"*Open the circuit breaker of {_safe(service, 200)}* (Tier 2) without the on-call\n"
        + circuit_open_text(service=service, flag=flag, environment=environment, others=others)
    )
    group = f" mentioning <!subteam^{_safe(owners_group, 40)}>" if owners_group else ""
    loud = (
        f":rotating_light: Break-glass is loud: the flip and your reason are posted as a "
        f"top-level message in {mrkdwn.channel(channel)}{group}, written to the card's thread, "
        f"the audit log and the flag's change comment. If the service has an open PagerDuty "
        f"incident, its on-call sees a note with the result there."
    )
    blocks: list[Block] = [
        SectionBlock(text=MarkdownTextObject(text=_clip(head, 3000))),
        SectionBlock(text=MarkdownTextObject(text=_clip(loud, 3000))),
        _reason_input("e.g. on-call unreachable for 10 min, checkout 5xx at 40 %"),
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


# ── Tier 3 run by rollbot: the prepared revert, the self-approval ────────────


def tier3_message_modal(*, title: str, text: str) -> dict[str, Any]:
    """A modal that only tells (`text`, rollbot's mrkdwn, its outside pieces escaped): the
    revert being prepared, why it cannot be, or who started it already. `title` at most 24
    characters."""
    view = View(
        type="modal",
        title=PlainTextObject(text=_clip(title, 24)),
        close=PlainTextObject(text="Close"),
        blocks=[SectionBlock(text=MarkdownTextObject(text=_clip(text, 3000)))],
    )
    return view.to_dict()


def _diff_block(diff: str, limit: int) -> str:
    """The diff in a code block, escaped (the repository's text), trimmed at a line end
    so that the escaped text holds in `limit` (escaping `<` or `&` lengthens it); a ```
    inside would end the block early, so it is broken."""
    budget = limit
    while True:
        shown, cut = trim_diff(diff, budget)
        body = mrkdwn.escape(shown).replace("```", "`\u200b``")
        if len(body) <= limit:
            break
        budget = max(0, min(budget - 1, budget * limit // len(body)))
    return f"```{body}```" + (
        "\n_…trimmed: the whole diff is in the request once pushed_" if cut else ""
    )


def tier3_prepared_modal(case: RevertCase, *, commit_url: str | None = None) -> dict[str, Any]:
    """What the requester confirms before anything is pushed: the service and revision,
    the release commit reverted (linked on the host when `commit_url`), what was done (a
    `git revert`, or the stable image set back because it conflicted, and why), the
    branch, the changed files and the diff (trimmed). Submitted as `TIER3_CONFIRM_CALLBACK_ID`;
    `private_metadata` is the case's key and the revert commit shown, `parse_tier3_confirm_metadata`
    reads them back (a confirmation pushes only the commit its modal showed)."""
    metadata = tier3_confirm_metadata(case.key, case.head_sha or "")
    if len(metadata) > MAX_PRIVATE_METADATA:
        raise ValueError(f"private_metadata over {MAX_PRIVATE_METADATA} characters")
    request = "merge request" if case.provider == "gitlab" else "pull request"
    sha = _safe(case.release_sha[:12], 40)
    release = (
        mrkdwn.link(commit_url, f"`{sha}`")
        if commit_url and mrkdwn.is_web_url(commit_url)
        else f"`{sha}`"
    )
    revision = f" revision {case.revision}" if case.revision is not None else ""
    if case.kind == "image":
        how = (
            f":warning: `git revert` of {release} conflicted "
            f"({_safe(case.note, 400)}): the stable image "
            f"`{_safe(case.image or '?', 200)}` is set back instead."
        )
    else:
        how = f"`git revert` of the release commit {release} applied cleanly."
    files = ", ".join(f"`{_safe(f, 200)}`" for f in case.files[:10])
    more = f" and {len(case.files) - 10} more" if len(case.files) > 10 else ""
    head = (
        f"*Revert {_safe(case.service, 200)}{revision} in Git* (Tier 3)\n{how}\n"
        f"Branch `{_safe(case.branch, 200)}` onto `{_safe(case.base, 100)}` of "
        f"`{_safe(case.project, 200)}` · {len(case.files)} file(s): {files}{more}"
    )
    after = (
        f"Nothing is pushed yet. *Push and open* pushes the branch and opens a {request}; "
        "a second person (on call or an owner) approves it on the card, then it is merged "
        "and Argo CD's sync is verified on the Rollout."
    )
    blocks: list[Block] = [
        SectionBlock(text=MarkdownTextObject(text=_clip(head, 3000))),
        SectionBlock(text=MarkdownTextObject(text=_diff_block(case.diff, 2700))),
        ContextBlock(elements=[MarkdownTextObject(text=after)]),
    ]
    view = View(
        type="modal",
        callback_id=TIER3_CONFIRM_CALLBACK_ID,
        title=PlainTextObject(text="Tier 3: revert in Git"),
        submit=PlainTextObject(text="Push and open"),
        close=PlainTextObject(text="Cancel"),
        private_metadata=metadata,
        blocks=blocks,
    )
    return view.to_dict()


def tier3_confirm_metadata(key: str, head_sha: str) -> str:
    """The prepared modal's `private_metadata`: the case's key, a space, the commit shown."""
    return f"{key} {head_sha}"


def parse_tier3_confirm_metadata(metadata: str) -> tuple[str, str | None]:
    """(the case's key, the commit the modal showed or None) from a `tier3_confirm` view's
    `private_metadata` (keys hold no spaces)."""
    key, _, sha = metadata.strip().partition(" ")
    return key, sha or None


def tier3_break_glass_modal(
    case: RevertCase, *, channel: str, owners_group: str | None
) -> dict[str, Any]:
    """The requester approving their own revert: loud, audited, with a reason. Submitted
    as `TIER3_BREAK_GLASS_CALLBACK_ID`; the reason under `break_glass_reason`/`reason`;
    `private_metadata` is the case's key."""
    group = f" mentioning <!subteam^{_safe(owners_group, 40)}>" if owners_group else ""
    text = (
        f"*Approve your own Tier 3 revert of {_safe(case.service, 200)}* without a second "
        f"person.\n:rotating_light: Break-glass is loud: your approval and your reason are "
        f"posted as a top-level message in {mrkdwn.channel(channel)}{group}, written to the "
        "card's thread, the audit log, the merge commit and the PagerDuty incident."
    )
    view = View(
        type="modal",
        callback_id=TIER3_BREAK_GLASS_CALLBACK_ID,
        title=PlainTextObject(text="Break glass"),
        submit=PlainTextObject(text="Approve"),
        close=PlainTextObject(text="Cancel"),
        private_metadata=case.key,
        blocks=[
            SectionBlock(text=MarkdownTextObject(text=_clip(text, 3000))),
            _reason_input("e.g. on-call unreachable for 20 min, payments failing at 12 %"),
        ],
    )
    return view.to_dict()

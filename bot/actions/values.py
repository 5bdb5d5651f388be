"""What is asked of the action pipeline and what it answers: plain values, no behaviour.

One request type per tier (`ActionRequest`: a Rollout command, Tier 1; `FlagRequest`: the
circuit breaker, Tier 2; `RevertRequest`: a revert recorded, Tier 3) plus `GuardedRequest`
for what takes Tier 1's guard but changes nothing here; every one of them ends in an
`ActionResult`. Kept apart from the pipeline so the Slack listeners, the runbook pages and
the paging engine can build and read them without the machinery behind them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bot.core.model import (
    Actor,
    FlagAction,
    FlagState,
    Patch,
    RolloutAction,
    RolloutState,
    Verification,
)
from bot.core.ports import ActionRecord

PAST_TENSE: dict[str, str] = {
    FlagAction.CIRCUIT_OPEN: "Opened the circuit",
    FlagAction.CIRCUIT_CLOSE: "Closed the circuit",
    RolloutAction.ABORT: "Aborted",
    RolloutAction.RETRY: "Retried",
    RolloutAction.PROMOTE: "Promoted",
    RolloutAction.PROMOTE_FULL: "Fully promoted",
    RolloutAction.PAUSE: "Paused",
    "revert-started": "Recorded the revert",
}


@dataclass(frozen=True, slots=True)
class ActionRequest:
    service: str
    action: RolloutAction
    actor: Actor
    revision: int | None = None  # the revision the button was rendered for (None: a command)
    epoch: int | None = None  # the card epoch the button was rendered with
    retry_num: int = 0  # X-Slack-Retry-Num


@dataclass(frozen=True, slots=True)
class FlagRequest:
    """Tier 2: open or close the service's circuit-breaker flag."""

    service: str
    action: FlagAction
    actor: Actor
    break_glass_reason: str | None = None
    retry_num: int = 0
    # What makes Slack's retries of one modal submission the same (view id + hash): such a
    # request flips once per submission, even after the first has finished. "" otherwise.
    submission: str = ""


REVERT_ACTION = "revert-started"  # the audit log's action for a recorded Tier 3 revert


@dataclass(frozen=True, slots=True)
class RevertRequest:
    """Tier 3: `actor` says they started reverting the release of `service` in Git."""

    service: str
    actor: Actor
    url: str  # the revert commit or pull request (http/https)
    note: str = ""
    revision: int | None = None  # the card's revision (None: not from a card)
    epoch: int | None = None
    channel: str | None = None  # the card's message, for the thread line
    message_ts: str | None = None
    submission: str = ""  # what makes Slack's retries of one submission the same: view id+hash
    retry_num: int = 0
    action: str = REVERT_ACTION


@dataclass(frozen=True, slots=True)
class GuardedRequest:
    """An action that changes no Rollout but takes Tier 1's guard (`policy.TIER1_GUARDED`:
    acknowledging the page, starting a release, declaring a winner)."""

    service: str
    action: str  # a policy.TIER1_GUARDED verb
    actor: Actor


Request = ActionRequest | FlagRequest | RevertRequest | GuardedRequest
ActionListener = Callable[[str, str, Actor, "ActionResult", str | None], Awaitable[None]]
# Told an executed action's result as soon as it is settled (verified, audited, its claim
# finished), while the card is being told: the person who asked hears first. Must not
# raise: what it cannot do is its caller's to keep and raise once the action returned.
Told = Callable[["ActionResult"], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class ActionResult:
    status: str  # succeeded | failed | duplicate | refused
    message: str  # what to tell the person who asked (mrkdwn)
    record: ActionRecord | None = None
    verification: Verification | None = None
    before: RolloutState | None = None
    after: RolloutState | None = None
    patches: tuple[Patch, ...] = ()
    flag: FlagState | None = None

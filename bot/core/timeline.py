"""The card's thread in plain words: what a tired person reads, top to bottom.

One abort used to post seven thread lines, some garbled ("aborted: InconclusiveAnalysisRun",
"Degraded · step 0/9 · canary 0% · … · RolloutAborted: Rollout aborted update to revision
42"). The rules here say it once:

- Argo's reasons read as words: `InconclusiveAnalysisRun` is "an inconclusive analysis run"
  (`reason_words`), and a status message is its words without the reason in front of it
  and without what the line says already (`message_words`);
- the Rollout's state is one line (`state_line`): its phase, where it is, why;
- an executed action is one line with its verified result (`action_line`): "Aborted by
  <@U…>: all traffic back on stable revision 41, verified in 0.8 s"; an action whose
  process ended before it could check, read back by the replica that took over, says so
  (`recovered_line`), and when the Rollout does not show it, that it may never have been
  sent;
- what rollbot's own action did is not said again (`explains`): while an abort is in
  flight and as long as it holds, the watch's lines about the aborted Rollout and the
  incident "recovering" because of it repeat the action's line; after any other verified
  action, a watch line that says what the action's line said (the same state line as
  the state read back) repeats it too.

Pure: states in, rollbot's mrkdwn out (Argo's words in it escaped).

    reason_words(reason)                       -> str
    message_words(state)                       -> str
    state_line(state)                          -> str   (mrkdwn)
    action_line(action, actor_id, verification, before, after) -> str   (mrkdwn)
    recovered_line(action, actor_id, verification, after) -> str        (mrkdwn)
    explains(action, before=, after=, state=)  -> bool
"""

from __future__ import annotations

import re
from types import MappingProxyType

from bot.core import mrkdwn
from bot.core.model import RolloutAction, RolloutState, Verification

__all__ = [
    "REASONS",
    "action_line",
    "explains",
    "message_words",
    "reason_words",
    "recovered_line",
    "stable_words",
    "state_line",
]

# Argo Rollouts' pause and condition reasons (v1alpha1 PauseReason, conditions.*Reason).
REASONS = MappingProxyType(
    {
        "InconclusiveAnalysisRun": "an inconclusive analysis run",
        "InconclusiveExperiment": "an inconclusive experiment",
        "CanaryPauseStep": "a pause step",
        "BlueGreenPause": "the pause before the blue-green switch",
        "RolloutAborted": "aborted",
        "RolloutPaused": "paused",
        "ProgressDeadlineExceeded": "the progress deadline passed",
        "ReplicaSetUpdated": "the new ReplicaSet is rolling out",
        "NewReplicaSetAvailable": "the new ReplicaSet is available",
        "RolloutCompleted": "the update completed",
        "InvalidSpec": "the spec is invalid",
    }
)
_CAMEL = re.compile(r"^[A-Z][a-z0-9]+(?:[A-Z][a-z0-9]*)+$")
_CAMEL_WORD = re.compile(r"[A-Z][a-z0-9]*")
_PREFIX = re.compile(r"^([A-Z][A-Za-z0-9]+): ")
# The controller's own sentence after `RolloutAborted: ` (the line says "aborted" already).
_ABORTED_SENTENCE = re.compile(
    r"^Rollout (?:is aborted|aborted update to revision \d+)\.?(?::\s*)?"
)

_DONE = {
    RolloutAction.ABORT: "Aborted",
    RolloutAction.RETRY: "Retried",
    RolloutAction.PROMOTE: "Promoted",
    RolloutAction.PROMOTE_FULL: "Fully promoted",
    RolloutAction.PAUSE: "Paused",
}


def reason_words(reason: str) -> str:
    """An Argo reason in words: a known one as `REASONS` says, another CamelCase one split
    into lower-case words (`SomeNewReason` → "some new reason"); anything else as it is."""
    reason = reason.strip()
    if reason in REASONS:
        return REASONS[reason]
    if _CAMEL.match(reason):
        return " ".join(word.lower() for word in _CAMEL_WORD.findall(reason))
    return reason


def message_words(state: RolloutState) -> str:
    """The Rollout's status message as words, "" when it adds nothing: a bare reason in
    words; `Reason: text` as its text; the controller's "Rollout aborted update to revision
    N" dropped (an aborted Rollout's line says so); a pause reason said already dropped."""
    message = " ".join(state.message.split())
    if not message or message in state.pause_reasons:
        return ""
    prefix = _PREFIX.match(message)
    if prefix:
        message = message[prefix.end() :]
    if state.aborted:
        message = _ABORTED_SENTENCE.sub("", message)
    return reason_words(message) if message else ""


def stable_words(state: RolloutState) -> str:
    """`stable revision 41`, else `the stable ReplicaSet` (the revision unknown)."""
    if state.stable_revision is not None:
        return f"stable revision {state.stable_revision}"
    return "the stable ReplicaSet"


def state_line(state: RolloutState) -> str:
    """One thread line saying where the Rollout is and why, each thing once (mrkdwn: Argo's
    words escaped): `Paused at step 5/9, canary 25%: an inconclusive analysis run`,
    `Degraded: aborted, all traffic on stable revision 41 · analysis failed`."""
    phase = mrkdwn.escape(state.phase)
    if state.aborted:
        head = f"{phase}: aborted, all traffic on {stable_words(state)}"
    elif state.step_index is not None:
        head = f"{phase} at step {state.step_label}, canary {state.canary_weight}%"
    else:
        head = f"{phase}, canary {state.canary_weight}%"
    why: list[str] = []
    for reason in (*state.pause_reasons, message_words(state)):
        words = reason_words(reason)
        if words and words not in why and not (state.aborted and words == "aborted"):
            why.append(words)
    sep = "; " if state.aborted else ": "  # an aborted head has its colon already
    line = head + (sep + "; ".join(mrkdwn.escape(w) for w in why) if why else "")
    if state.analysis is not None:
        status = state.analysis.status.lower()
        if status not in " ".join(why):
            line += f" · analysis {mrkdwn.escape(status)}"
    return line


def _effect(action: RolloutAction, before: RolloutState, after: RolloutState) -> str:
    """What the action did, in words, from the state read back."""
    if action is RolloutAction.ABORT:
        return f"all traffic back on {stable_words(after)}"
    if action is RolloutAction.RETRY:
        return f"the update to revision {after.revision} starts again from the first step"
    if action is RolloutAction.PAUSE:
        where = f" at step {after.step_label}" if after.step_index is not None else ""
        return f"held{where}, canary {after.canary_weight}%"
    if after.fully_promoted and not before.fully_promoted:
        return f"revision {after.revision} is fully rolled out"
    if action is RolloutAction.PROMOTE_FULL:
        return f"every remaining step skipped, all traffic going to revision {after.revision}"
    if after.step_index is not None:
        return f"now at step {after.step_label}, canary {after.canary_weight}%"
    return f"canary {after.canary_weight}%"


def action_line(
    action: RolloutAction,
    *,
    actor_id: str,
    verification: Verification,
    before: RolloutState,
    after: RolloutState,
    waited: float | None = None,
) -> str:
    """The thread line of one executed action (mrkdwn): its verified result in words, or,
    when reading back did not show it within `waited` seconds, what is still missing."""
    who = f"<@{actor_id}>"
    if verification.ok:
        return (
            f"{_DONE[action]} by {who}: {mrkdwn.escape(_effect(action, before, after))}, "
            f"verified in {verification.seconds:.1f} s"
        )
    missing = ", ".join(name for name, ok in verification.checks if not ok)
    seconds = verification.seconds if waited is None else waited
    return (
        f"{action.value.capitalize()} by {who} sent, but NOT verified after {seconds:.1f} s: "
        f"still missing {mrkdwn.escape(missing or 'its effect')}"
    )


def recovered_line(
    action: RolloutAction, *, actor_id: str, verification: Verification, after: RolloutState
) -> str:
    """The thread line of an action whose process ended before it could check (its claim
    left running), read back later (`verification.seconds`: since it was asked): what the
    Rollout shows, or that it may never have been sent."""
    who = f"<@{actor_id}>"
    late = f"{verification.seconds:.1f} s after it was asked"
    if verification.ok:
        return (
            f"{_DONE[action]} by {who}: {mrkdwn.escape(_effect(action, after, after))}, "
            f"verified {late} (rollbot restarted before it could check)"
        )
    missing = ", ".join(name for name, ok in verification.checks if not ok)
    return (
        f"{action.value.capitalize()} by {who} NOT verified: rollbot restarted before it "
        f"could check, and {late} the Rollout still misses "
        f"{mrkdwn.escape(missing or 'its effect')}. It may never have been sent: ask again "
        f"if it is still needed"
    )


def explains(
    action: RolloutAction,
    *,
    before: RolloutState,
    after: RolloutState | None,
    state: RolloutState,
) -> bool:
    """Whether `state`, seen by the watch, is what rollbot's `action` from `before` did, so
    that a line about it would repeat the action's line. `after`: the state the action's
    verification read back (None while the action is in flight).

    An abort explains every aborted state, in flight or once verified (until the Rollout
    is no longer aborted). Any other action explains a state only once verified, and only
    the state its line described: the same `state_line` as `after`."""
    if action is RolloutAction.ABORT:
        return state.aborted
    if after is None:
        return False
    return state.revision == before.revision and state_line(state) == state_line(after)

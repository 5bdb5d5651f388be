"""Which Rollout actions fit the moment.

Pure: reads a RolloutState, returns actions in the order the card shows them.

    aborted (status.abort)                       → retry
    fully promoted (currentPodHash == stableRS)
            or phase Healthy                     → nothing to do
    paused (spec.paused, controllerPause, or
            a pause condition such as an
            inconclusive analysis), even when
            the phase says Degraded              → abort, promote
    progressing canary / blue-green              → abort, promote
    degraded without abort (progress deadline,
            invalid spec, failed update)         → abort
"""

from __future__ import annotations

from bot.core.model import RolloutAction, RolloutState


def is_paused(state: RolloutState) -> bool:
    return (
        state.paused
        or state.controller_pause
        or bool(state.pause_reasons)
        or (state.phase == "Paused")
    )


def available_actions(state: RolloutState) -> list[RolloutAction]:
    """The buttons a Rollout card offers now, Tier 1 abort first."""
    if state.aborted:
        return [RolloutAction.RETRY]
    if state.fully_promoted or state.phase == "Healthy":
        return []
    if state.phase == "Degraded" and not is_paused(state):
        return [RolloutAction.ABORT]
    return [RolloutAction.ABORT, RolloutAction.PROMOTE]

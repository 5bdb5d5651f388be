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

And the three rollback tiers of the playbook (`tier_options`), always all three in tier
order, each with a one-line reason and exactly one recommended:

    Tier 1 abort            available while a canary is in progress (not aborted, not
                            fully promoted); recommended then
    Tier 2 circuit breaker  needs the service's circuit flag and the flags integration;
                            recommended when Tier 1 is not available; not offered once an
                            abort has put all traffic on stable (it would change nothing)
    Tier 3 full revert      always available, with the exact Git steps; recommended when
                            nothing faster applies. Its reason fits the Rollout: after a
                            mitigation (abort, open breaker) it is the next step once
                            recovered; on a fully rolled-out revision nothing was aborted

Recording that a Tier 3 revert was started takes the revert's commit or pull request URL:
`is_revert_url` is the rule for which URLs are accepted.
"""

from __future__ import annotations

from dataclasses import replace

from bot.core.model import Incident, RolloutAction, RolloutState, Tier, TierOption
from bot.core.mrkdwn import is_web_url


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


# ── the three rollback tiers, as they fit the moment ─────────────────────────

TIER_TITLES = {
    Tier.ABORT: "Abort the rollout",
    Tier.CIRCUIT_BREAKER: "Open the circuit breaker",
    Tier.FULL_REVERT: "Full revert in Git",
}


def canary_in_progress(state: RolloutState | None) -> bool:
    """A new revision takes some traffic and can still be aborted (Tier 1 applies)."""
    return state is not None and RolloutAction.ABORT in available_actions(state)


def _stable_phrase(state: RolloutState) -> str:
    if state.stable_revision is not None:
        return f"stable revision {state.stable_revision}"
    return "the stable version"


def _abort_option(state: RolloutState | None, state_error: str | None) -> TierOption:
    title = TIER_TITLES[Tier.ABORT]
    if state is None:
        why = state_error or "it has not been read yet"
        return TierOption(Tier.ABORT, title, False, f"Rollout state unknown: {why}")
    if state.aborted:
        return TierOption(
            Tier.ABORT,
            title,
            False,
            f"already aborted: traffic is back on {_stable_phrase(state)}",
        )
    if not canary_in_progress(state):
        return TierOption(Tier.ABORT, title, False, "fully promoted: nothing to abort")
    if state.strategy == "blueGreen":
        where = f"revision {state.revision} not yet promoted"
    else:
        where = f"canary at {state.canary_weight} %"
        if is_paused(state):
            where = f"canary paused at {state.canary_weight} %"
    return TierOption(
        Tier.ABORT,
        title,
        True,
        f"{where}: abort returns all traffic to {_stable_phrase(state)} in under a minute",
    )


def _circuit_option(flag: str | None, available: bool, *, is_open: bool = False) -> TierOption:
    title = TIER_TITLES[Tier.CIRCUIT_BREAKER]
    if flag is None:
        return TierOption(Tier.CIRCUIT_BREAKER, title, False, "no circuit flag configured")
    if is_open:
        return TierOption(
            Tier.CIRCUIT_BREAKER,
            title,
            available,
            f"`{flag}` is already open: every request takes the legacy path; close it once "
            "the fix or the revert is out",
        )
    if not available:
        return TierOption(
            Tier.CIRCUIT_BREAKER,
            title,
            False,
            f"flip `{flag}` (arrives with the flags integration)",
        )
    return TierOption(
        Tier.CIRCUIT_BREAKER,
        title,
        True,
        f"flip `{flag}` to true: every request takes the legacy path within seconds, "
        "no pod restart",
    )


def release_sha(state: RolloutState | None, sha_annotation: str) -> str | None:
    """The release's Git SHA, from the pod template's annotation; None when not set."""
    if state is None:
        return None
    return dict(state.template_annotations).get(sha_annotation) or None


def is_revert_url(url: str) -> bool:
    """A revert commit or pull request URL rollbot accepts: http(s) with a host, no spaces,
    at most 3000 characters."""
    return is_web_url(url) and bool(url.split("://", 1)[-1].split("/", 1)[0])


def revert_steps(
    *,
    service: str,
    state: RolloutState | None,
    gitops_repo: str | None,
    gitops_path: str | None,
    sha_annotation: str,
) -> tuple[str, ...]:
    """The exact Tier 3 steps: revert the release's commit in the GitOps repo, let it sync."""
    sha = release_sha(state, sha_annotation)
    sha_ref = sha or "<sha>"
    if sha:
        first = f"Release commit: `{sha}` (annotation `{sha_annotation}` on the pod template)"
    else:
        first = (
            f"Find the release commit (annotation `{sha_annotation}` not set on the Rollout's "
            "pod template)"
        )
    checkout = f"<checkout of {gitops_repo}>" if gitops_repo else "<checkout of the GitOps repo>"
    where = f"`{gitops_path}`" if gitops_path else "the service's directory"
    namespace = state.namespace if state is not None else "<namespace>"
    rollout = state.name if state is not None else service
    revision = f"revision {state.revision}" if state is not None else "the bad revision"
    return (
        first,
        f"`git -C {checkout} revert --no-edit {sha_ref}` — the change is in {where}",
        f"`git -C {checkout} push` (or open a pull request, as the repository requires)",
        "Let CI build and Argo CD sync: the Rollout gets a new revision with the previous "
        "pod template",
        f"Verify: `kubectl argo rollouts get rollout {rollout} -n {namespace}` shows the new "
        f"revision Healthy on the previous image and {revision} gone from `spec.template`",
    )


def _revert_reason(state: RolloutState | None, *, circuit_open: bool) -> str:
    """Tier 3's reason, fitted to the Rollout: after a mitigation (an abort, an open
    breaker) it is the next step once the service has recovered, else the lasting return."""
    mitigated = circuit_open or (state is not None and state.aborted)
    head = "the next step once recovered" if mitigated else "the lasting return"
    reason = f"{head}: revert the release in Git and redeploy (30–120 min)"
    if state is None:
        return reason
    if state.aborted:
        return (
            f"{reason}; traffic is on {_stable_phrase(state)}, but spec.template still names "
            f"revision {state.revision}, which the next sync would bring back"
        )
    if canary_in_progress(state):
        return f"{reason}; abort alone leaves spec.template on the new version"
    return (
        f"{reason}; revision {state.revision} is fully rolled out: the revert brings back "
        "the previous version"
    )


def tier_options(
    *,
    service: str,
    state: RolloutState | None,
    incident: Incident | None,
    circuit_flag: str | None,
    circuit_available: bool,
    gitops_repo: str | None,
    gitops_path: str | None,
    sha_annotation: str,
    runbook_url: str | None,
    state_error: str | None = None,
    circuit_open: bool = False,
) -> list[TierOption]:
    """The three tiers in tier order, each with a one-line reason; exactly one recommended.

    Recommended: Tier 1 while a canary is in progress (fastest, fully reversible); else
    Tier 2 when its flip is available and the breaker is not open already (`circuit_open`:
    its live state); else Tier 3, which is always available. The
    recommendation follows the Rollout and flag state alone: whether the incident is open,
    recovering or absent does not change which tier is fastest. `state_error` says why
    `state` is None ("the Kubernetes API is unreachable").
    """
    del incident  # accepted for the cards' sake; the advice depends on the Rollout alone
    abort = _abort_option(state, state_error)
    circuit = _circuit_option(circuit_flag, circuit_available, is_open=circuit_open)
    steps = revert_steps(
        service=service,
        state=state,
        gitops_repo=gitops_repo,
        gitops_path=gitops_path,
        sha_annotation=sha_annotation,
    )
    revert = TierOption(
        Tier.FULL_REVERT,
        TIER_TITLES[Tier.FULL_REVERT],
        True,
        _revert_reason(state, circuit_open=circuit_open),
        steps=steps,
    )
    if state is not None and state.aborted and circuit_flag is not None and not circuit_open:
        # The new revision takes no traffic: flipping its breaker would change nothing.
        circuit = TierOption(
            Tier.CIRCUIT_BREAKER,
            circuit.title,
            False,
            f"not needed: the abort put all traffic on {_stable_phrase(state)}",
        )
    options = [abort, circuit, revert]
    if abort.available:
        pick = abort
    elif circuit.available and not circuit_open:
        pick = circuit
    else:  # nothing faster left to do (or already done): the lasting return
        pick = revert
    return [replace(option, recommended=option is pick, link=runbook_url) for option in options]

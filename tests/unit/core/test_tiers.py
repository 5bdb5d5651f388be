"""bot.core.tiers: the Rollout actions a card offers, and the three rollback tiers.

Aspects under test:
- available_actions: aborted → retry; fully promoted → nothing; paused (even Degraded by an
  inconclusive analysis) → abort + promote; degraded without abort → abort;
- tier_options over every combination of Rollout state (canary in progress, paused,
  aborted, fully promoted, unknown) × circuit flag yes/no × flags integration available
  yes/no × incident open/recovering/none: always three options in tier order, exactly one
  recommended (Tier 1 while a canary is in progress, else Tier 2 when available, else
  Tier 3), Tier 3 always available, and the exact one-line reasons;
- Tier 3 steps: the release SHA from the pod template annotation (or what to do without
  it), the exact `git revert` command in the GitOps checkout and path, push, CI and Argo CD
  sync, and how to verify; the runbook link on every option;
- is_revert_url: the URL a recorded Tier 3 revert must carry (http(s), a host, no spaces).
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from bot.core import tiers
from bot.core.model import (
    Incident,
    IncidentState,
    RolloutAction,
    RolloutState,
    Tier,
    TierOption,
)

T0 = datetime(2025, 3, 1, 3, 0, tzinfo=UTC)
FLAG = "payments.new-router.circuit-open"
SHA_KEY = "rollbot.io/git-sha"
REPO = "git@example.com:platform/configs.git"
RUNBOOK = "https://rollbot.example.com/runbooks/payment-router"

CANARY = RolloutState(
    namespace="payments",
    name="payment-router",
    uid="u-1",
    revision=42,
    phase="Progressing",
    message="",
    step_index=3,
    step_count=9,
    canary_weight=25,
    set_weight=25,
    aborted=False,
    aborted_at=None,
    paused=False,
    controller_pause=False,
    pause_reasons=(),
    progressing_reason="ReplicaSetUpdated",
    stable_rs="6d9c8b7f5",
    current_pod_hash="7f8e9d6c4",
    canary_image="registry.example.com/payment-router:1.13.0",
    stable_image="registry.example.com/payment-router:1.12.4",
    stable_revision=41,
    analysis=None,
    created_at=T0,
    resource_version="1001",
    generation=2,
    strategy="canary",
    template_annotations=(("prometheus.io/scrape", "true"), (SHA_KEY, "3f9c2d1e8b7a")),
)
PAUSED = replace(
    CANARY,
    phase="Degraded",
    message="InconclusiveAnalysisRun",
    controller_pause=True,
    pause_reasons=("InconclusiveAnalysisRun",),
)
ABORTED = replace(CANARY, phase="Degraded", aborted=True, aborted_at=T0, canary_weight=0)
PROMOTED = replace(
    CANARY, phase="Healthy", canary_weight=100, current_pod_hash="6d9c8b7f5", step_index=9
)

STATES: dict[str, RolloutState | None] = {
    "in-progress": CANARY,
    "paused": PAUSED,
    "aborted": ABORTED,
    "promoted": PROMOTED,
    "unknown": None,
}


def incident(state: IncidentState) -> Incident:
    return Incident(
        service="payment-router",
        namespace="payments",
        rollout="payment-router",
        revision=42,
        state=state,
        opened_at=T0,
        changed_at=T0,
        firing=frozenset({"rollout"}) if state is IncidentState.OPEN else frozenset(),
        seen=frozenset({"rollout"}),
        first_breach_at=None,
    )


INCIDENTS: dict[str, Incident | None] = {
    "open": incident(IncidentState.OPEN),
    "recovering": incident(IncidentState.RECOVERING),
    "none": None,
}


def options(
    state: RolloutState | None,
    *,
    flag: str | None = FLAG,
    circuit_available: bool = False,
    the_incident: Incident | None = None,
    gitops_repo: str | None = REPO,
    gitops_path: str | None = "services/payment-router",
    runbook_url: str | None = RUNBOOK,
    state_error: str | None = None,
    circuit_open: bool = False,
) -> list[TierOption]:
    return tiers.tier_options(
        service="payment-router",
        state=state,
        incident=the_incident,
        circuit_flag=flag,
        circuit_available=circuit_available,
        gitops_repo=gitops_repo,
        gitops_path=gitops_path,
        sha_annotation=SHA_KEY,
        runbook_url=runbook_url,
        state_error=state_error,
        circuit_open=circuit_open,
    )


# ── available_actions (unchanged behaviour, used by the cards) ────────────────


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (CANARY, [RolloutAction.ABORT, RolloutAction.PROMOTE]),
        (PAUSED, [RolloutAction.ABORT, RolloutAction.PROMOTE]),
        (ABORTED, [RolloutAction.RETRY]),
        (PROMOTED, []),
        (
            replace(CANARY, phase="Degraded", progressing_reason="ProgressDeadlineExceeded"),
            [RolloutAction.ABORT],
        ),
    ],
)
def test_available_actions(state: RolloutState, expected: list[RolloutAction]) -> None:
    assert tiers.available_actions(state) == expected


# ── tier_options: every combination ───────────────────────────────────────────

TIER1_REASON = {
    "in-progress": (
        True,
        "canary at 25 %: abort returns all traffic to stable revision 41 in under a minute",
    ),
    "paused": (
        True,
        "canary paused at 25 %: abort returns all traffic to stable revision 41 in under a minute",
    ),
    "aborted": (False, "already aborted: traffic is back on stable revision 41"),
    "promoted": (False, "fully promoted: nothing to abort"),
    "unknown": (False, "Rollout state unknown: it has not been read yet"),
}
REVERT = "revert the release in Git and redeploy (30–120 min)"
# Tier 3's reason fits the Rollout, and says "next step once recovered" after a mitigation
TIER3_REASON = {
    "in-progress": f"{REVERT}; abort alone leaves spec.template on the new version",
    "paused": f"{REVERT}; abort alone leaves spec.template on the new version",
    "aborted": (
        f"{REVERT}; traffic is on stable revision 41, but spec.template still names "
        "revision 42, which the next sync would bring back"
    ),
    "promoted": (
        f"{REVERT}; revision 42 is fully rolled out: the revert brings back the previous version"
    ),
    "unknown": REVERT,
}


@pytest.mark.parametrize(
    ("state_name", "has_flag", "circuit_available", "incident_name", "circuit_open"),
    list(itertools.product(STATES, [True, False], [True, False], INCIDENTS, [False, True])),
)
def test_every_combination(
    state_name: str, has_flag: bool, circuit_available: bool, incident_name: str, circuit_open: bool
) -> None:
    state = STATES[state_name]
    result = options(
        state,
        flag=FLAG if has_flag else None,
        circuit_available=circuit_available,
        the_incident=INCIDENTS[incident_name],
        circuit_open=circuit_open,
    )
    assert [o.tier for o in result] == [Tier.ABORT, Tier.CIRCUIT_BREAKER, Tier.FULL_REVERT]
    assert [o.title for o in result] == [
        "Abort the rollout",
        "Open the circuit breaker",
        "Full revert in Git",
    ]
    assert sum(o.recommended for o in result) == 1
    assert all(o.reason and "\n" not in o.reason for o in result)
    assert all(o.link == RUNBOOK for o in result)
    abort, circuit, revert = result

    assert (abort.available, abort.reason) == TIER1_REASON[state_name]

    if not has_flag:
        assert (circuit.available, circuit.reason) == (False, "no circuit flag configured")
    elif state_name == "aborted" and not circuit_open:
        # all traffic is on stable: flipping the new revision's breaker changes nothing
        assert (circuit.available, circuit.reason) == (
            False,
            "not needed: the abort put all traffic on stable revision 41",
        )
    elif circuit_open:  # already done: say so, whatever the provider's availability
        assert circuit.available is circuit_available
        assert circuit.reason == (
            "`payments.new-router.circuit-open` is already open: every request takes the "
            "legacy path; close it once the fix or the revert is out"
        )
    elif not circuit_available:
        assert (circuit.available, circuit.reason) == (
            False,
            "flip `payments.new-router.circuit-open` (arrives with the flags integration)",
        )
    else:
        assert circuit.available
        assert circuit.reason == (
            "flip `payments.new-router.circuit-open` to true: every request takes the legacy "
            "path within seconds, no pod restart"
        )

    assert revert.available
    mitigated = circuit_open or state_name == "aborted"
    head = "the next step once recovered" if mitigated else "the lasting return"
    assert revert.reason == f"{head}: {TIER3_REASON[state_name]}"
    if state_name not in ("in-progress", "paused"):  # no canary to abort: never "abort alone"
        assert "abort alone" not in revert.reason
    assert len(revert.steps) == 5
    assert not abort.steps and not circuit.steps

    if state_name in ("in-progress", "paused"):
        expected = Tier.ABORT
    elif has_flag and circuit_available and not circuit_open and state_name != "aborted":
        expected = Tier.CIRCUIT_BREAKER
    else:  # with the breaker already open, the lasting return is what is left
        expected = Tier.FULL_REVERT
    assert [o.tier for o in result if o.recommended] == [expected]
    recommended = next(o for o in result if o.recommended)
    assert recommended.available


def test_unknown_state_says_why() -> None:
    abort = options(None, state_error="the Kubernetes API is unreachable: timed out")[0]
    assert abort.reason == "Rollout state unknown: the Kubernetes API is unreachable: timed out"


def test_progress_deadline_and_blue_green_and_unknown_stable_revision() -> None:
    stuck = replace(CANARY, phase="Degraded", progressing_reason="ProgressDeadlineExceeded")
    assert options(stuck)[0].available and options(stuck)[0].recommended
    blue_green = replace(CANARY, strategy="blueGreen", step_index=None, stable_revision=None)
    abort = options(blue_green)[0]
    assert abort.reason == (
        "revision 42 not yet promoted: abort returns all traffic to the stable version in "
        "under a minute"
    )


# ── Tier 3 steps ─────────────────────────────────────────────────────────────


def test_revert_steps_with_the_release_sha() -> None:
    revert = options(CANARY)[2]
    assert revert.steps == (
        "Release commit: `3f9c2d1e8b7a` (annotation `rollbot.io/git-sha` on the pod template)",
        "`git -C <checkout of git@example.com:platform/configs.git> revert --no-edit "
        "3f9c2d1e8b7a` — the change is in `services/payment-router`",
        "`git -C <checkout of git@example.com:platform/configs.git> push` (or open a pull "
        "request, as the repository requires)",
        "Let CI build and Argo CD sync: the Rollout gets a new revision with the previous pod "
        "template",
        "Verify: `kubectl argo rollouts get rollout payment-router -n payments` shows the new "
        "revision Healthy on the previous image and revision 42 gone from `spec.template`",
    )


def test_revert_steps_without_the_annotation_or_gitops_settings() -> None:
    bare = replace(CANARY, template_annotations=())
    revert = options(bare, gitops_repo=None, gitops_path=None, runbook_url=None)[2]
    assert revert.steps[0] == (
        "Find the release commit (annotation `rollbot.io/git-sha` not set on the Rollout's "
        "pod template)"
    )
    assert revert.steps[1] == (
        "`git -C <checkout of the GitOps repo> revert --no-edit <sha>` — the change is in "
        "the service's directory"
    )
    assert revert.link is None


def test_revert_steps_without_a_state() -> None:
    revert = options(None)[2]
    assert revert.available and revert.recommended  # nothing faster is available
    assert "<sha>" in revert.steps[1]
    assert revert.steps[4].startswith(
        "Verify: `kubectl argo rollouts get rollout payment-router -n <namespace>`"
    )


def test_revert_reads_the_configured_annotation_key() -> None:
    custom = replace(CANARY, template_annotations=(("ci.example.com/commit", "abcdef123456"),))
    steps = tiers.revert_steps(
        service="payment-router",
        state=custom,
        gitops_repo=REPO,
        gitops_path="x",
        sha_annotation="ci.example.com/commit",
    )
    assert "revert --no-edit abcdef123456" in steps[1]


def test_revert_url_is_http_with_a_host() -> None:
    """Recording a Tier 3 revert takes the revert's commit or pull request URL."""
    assert tiers.is_revert_url("https://github.com/acme/gitops/pull/123")
    assert tiers.is_revert_url("http://git.example.com/acme/gitops/commit/abc")
    bad = (
        "",
        "github.com/x",
        "ftp://x/y",
        "https://",
        "https:///x",
        "https://x/ y",
        "javascript:x",
    )
    for url in (*bad, "https://x/" + "a" * 3000):
        assert not tiers.is_revert_url(url), url

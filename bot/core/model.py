"""The domain, as plain data.

Everything here is pure: no I/O, no SDK types, no clocks read implicitly. Adapters turn
the outside world's objects into these; the Slack blocks, the responder and the audit log
read only these.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any


class RolloutAction(enum.StrEnum):
    """The Rollout commands rollbot executes, with `kubectl argo rollouts` semantics."""

    ABORT = "abort"
    RETRY = "retry"
    PROMOTE = "promote"
    PROMOTE_FULL = "promote-full"
    PAUSE = "pause"


class FlagAction(enum.StrEnum):
    """Tier 2: the circuit breaker (the service's ops flag `…circuit-open`)."""

    CIRCUIT_OPEN = "circuit-open"  # flag on: everything takes the legacy path
    CIRCUIT_CLOSE = "circuit-close"  # flag off: the new path again


class Tier(enum.IntEnum):
    """The three rollback tiers of the playbook."""

    ABORT = 1
    CIRCUIT_BREAKER = 2
    FULL_REVERT = 3


class TroubleKind(enum.StrEnum):
    """Why a Rollout deserves a card without anyone asking."""

    ANALYSIS_FAILED = "analysis-failed"  # an AnalysisRun Failed or Error
    ABORTED = "aborted"  # status.abort, by the controller or a person
    INCONCLUSIVE = "inconclusive"  # paused on an Inconclusive AnalysisRun
    PROGRESS_DEADLINE = "progress-deadline"  # Progressing=False ProgressDeadlineExceeded
    DEGRADED = "degraded"  # phase Degraded for another reason
    INVALID_SPEC = "invalid-spec"  # InvalidSpec condition


@dataclass(frozen=True, slots=True)
class AnalysisStatus:
    """The analysis the Rollout is running or last ran (step or background)."""

    name: str
    status: str  # Pending | Running | Successful | Failed | Error | Inconclusive
    message: str = ""


@dataclass(frozen=True, slots=True)
class RolloutState:
    """What a responder needs to know about one Rollout, read from its object.

    `revision` is the `rollout.argoproj.io/revision` annotation; `step_index` and
    `step_count` render as `3/8` like `kubectl argo rollouts get`; `canary_weight` is the
    weight the canary has now (0 once aborted, 100 once fully promoted).
    """

    namespace: str
    name: str
    uid: str
    revision: int
    phase: str  # Healthy | Progressing | Paused | Degraded | …, derived when status.phase is absent
    message: str
    step_index: int | None
    step_count: int
    canary_weight: int
    set_weight: int | None  # the weight the current step asks for
    aborted: bool
    aborted_at: datetime | None
    paused: bool  # spec.paused
    controller_pause: bool
    pause_reasons: tuple[str, ...]
    progressing_reason: str | None
    stable_rs: str | None
    current_pod_hash: str | None
    canary_image: str | None
    stable_image: str | None  # from the stable ReplicaSet, when known
    stable_revision: int | None  # from the stable ReplicaSet, when known
    analysis: AnalysisStatus | None
    created_at: datetime | None
    resource_version: str
    generation: int
    strategy: str  # canary | blueGreen
    # spec.template.metadata.annotations, sorted; Tier 3 reads the release's Git SHA here
    template_annotations: tuple[tuple[str, str], ...] = ()

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def fully_promoted(self) -> bool:
        return bool(self.stable_rs) and self.current_pod_hash == self.stable_rs

    @property
    def step_label(self) -> str:
        if self.step_index is None:
            return "-"
        return f"{self.step_index}/{self.step_count}"


@dataclass(frozen=True, slots=True)
class Trouble:
    """A Rollout that went bad by itself, and how to say so."""

    kind: TroubleKind
    summary: str


@dataclass(frozen=True, slots=True)
class Patch:
    """One Kubernetes patch request, exactly as `kubectl argo rollouts` would send it.

    `subresource` is "status" or None (the main resource). `fallback_to_main` means: when
    the status subresource answers 404 (older CRDs without it), send `body` to the main
    resource instead, as the plugin does.
    """

    content_type: str  # application/merge-patch+json | application/json-patch+json
    body: dict[str, Any] | list[dict[str, Any]]
    subresource: str | None = None
    fallback_to_main: bool = False


@dataclass(frozen=True, slots=True)
class Actor:
    """Who asked: a Slack user (or later a PagerDuty user), with a display name."""

    id: str
    name: str
    source: str = "slack"  # slack | slash-command | pagerduty | runbook | cli | drill


@dataclass(frozen=True, slots=True)
class Verification:
    """Whether an action's effect was observed when reading the object back."""

    ok: bool
    checks: tuple[tuple[str, bool], ...]  # ("status.abort=true", True), …
    seconds: float = 0.0

    def describe(self) -> str:
        return ", ".join(f"{name} {'✓' if ok else '✗'}" for name, ok in self.checks)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the last executed action did, for the card's outcome line and the runbook page
    (`detail` is plain text: an error's message may quote an
    outside service, so the card escapes it)."""

    action: RolloutAction | FlagAction
    actor_id: str
    at: datetime
    verified: bool
    seconds: float
    detail: str = ""


@dataclass(frozen=True, slots=True)
class RevertStarted:
    """A Tier 3 revert started for a card's revision: who started it, when, and its
    commit or pull request URL (`url` is what the person typed, or the code host's: the
    card escapes it). Read from the store (the revert's action record, or the revert
    rollbot runs: `bot.core.gitops.RevertCase`), so every render of the card shows it.

    For a revert rollbot runs, `stage` is where it stands (a `RevertState` value:
    confirmed, opened, approved, merge-queued, merged, verified, failed), `change` names
    its request (`pull request #12`), `approver_id` who approved it, `error` why it
    stopped. None for a revert recorded by hand."""

    actor_id: str
    url: str
    at: datetime
    stage: str | None = None
    change: str | None = None
    approver_id: str | None = None
    error: str | None = None
    break_glass: bool = False


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One line of the append-only audit log (before hashing)."""

    at: datetime
    actor: str
    action: str
    target: str
    result: str  # succeeded | failed | refused | duplicate | error
    before: dict[str, Any] = field(default_factory=dict)
    after: dict[str, Any] = field(default_factory=dict)
    duration_ms: int | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class MessageRef:
    """Where a Slack message lives."""

    channel: str
    ts: str


# ── SLO alerts, incidents, evidence and tier options (issue 3) ─────────────────────────


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert of an Alertmanager webhook (version 4), as rollbot reads it."""

    fingerprint: str  # Alertmanager's, or a stable hash of the labels when absent
    name: str  # labels.alertname
    status: str  # firing | resolved
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: datetime | None
    ends_at: datetime | None
    generator_url: str = ""

    @property
    def firing(self) -> bool:
        return self.status == "firing"


class IncidentState(enum.StrEnum):
    OPEN = "open"  # something is firing
    RECOVERING = "recovering"  # nothing fires any more; waiting out the quiet period
    RESOLVED = "resolved"


@dataclass(frozen=True, slots=True)
class Signal:
    """Something that says a service is (or is no longer) hurting.

    `key` identifies the signal within its incident: an alert's fingerprint, or
    "rollout" for the watch's own verdict on the Rollout.
    """

    service: str
    source: str  # watch | alertmanager
    key: str
    firing: bool
    summary: str
    at: datetime
    alert: Alert | None = None


@dataclass(frozen=True, slots=True)
class Incident:
    """One incident per service and Rollout revision: every signal about it lands here."""

    service: str
    namespace: str
    rollout: str
    revision: int
    state: IncidentState
    opened_at: datetime
    changed_at: datetime  # when `state` last changed
    firing: frozenset[str]  # keys of the signals firing now
    seen: frozenset[str]  # keys of every signal ever seen
    first_breach_at: datetime | None  # earliest startsAt of its alerts
    summaries: tuple[tuple[str, str], ...] = ()  # (key, summary) of the firing signals
    # (key, startsAt) of the latest occurrence of each alert seen, by key: an older (or
    # ended) occurrence's message arriving late is stale (`bot.core.incidents`).
    alert_starts: tuple[tuple[str, datetime], ...] = ()

    @property
    def card_key(self) -> str:
        return f"{self.namespace}/{self.rollout}@{self.revision}"


@dataclass(frozen=True, slots=True)
class MetricPair:
    """A metric for the canary and the stable version (None: no data)."""

    canary: float | None
    stable: float | None


@dataclass(frozen=True, slots=True)
class Evidence:
    """What Prometheus says about the canary against stable, and the SLO it is held to."""

    available: bool
    detail: str  # "" when available, else why not ("Prometheus timed out after 2 s")
    error_rate: MetricPair = MetricPair(None, None)  # fraction of requests, 0..1
    p95_ms: MetricPair = MetricPair(None, None)
    p99_ms: MetricPair = MetricPair(None, None)
    slo_error_rate: float | None = None
    slo_p95_ms: float | None = None
    slo_p99_ms: float | None = None
    graph_url: str | None = None
    queried_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class TierOption:
    """One rollback tier as it fits the moment: can it be used now, why, and is it advised."""

    tier: Tier
    title: str  # "Abort the rollout"
    available: bool
    reason: str  # one line: why this tier fits now, or why it cannot be used
    recommended: bool = False
    steps: tuple[str, ...] = ()  # Tier 3: the exact revert steps
    link: str | None = None  # runbook link


# ── feature flags and on-call (issue 4) ─────────────────────────────────────────────────


@dataclass(frozen=True, slots=True)
class FlagState:
    """A flag in one environment of a flag provider, as read back from its admin API."""

    key: str  # payments.new-router.circuit-open
    project: str
    environment: str
    enabled: bool
    provider: str  # unleash | launchdarkly
    updated_at: datetime | None = None


# ── releases and their cleanup tickets (issue 5) ────────────────────────────────────────


class ReleasePhase(enum.StrEnum):
    """Where a release is. Clocks run in STARTED, PROGRESSING and FULLY_ROLLED_OUT."""

    STARTED = "started"  # recorded; its Rollout revision not seen yet
    PROGRESSING = "progressing"  # its revision is rolling out (or was retried)
    FULLY_ROLLED_OUT = "fully-rolled-out"  # currentPodHash == stableRS, phase Healthy
    ABORTED = "aborted"  # the Rollout was aborted: clocks stop
    REVERTED = "reverted"  # a later revision replaced it (Git revert): clocks stop

    @property
    def clock_running(self) -> bool:
        return self not in (ReleasePhase.ABORTED, ReleasePhase.REVERTED)


class TicketKind(enum.StrEnum):
    """The cleanup tickets every release leaves behind (the checkout case study's three,
    plus the experiment flag when the service has one)."""

    REMOVE_RELEASE_FLAG = "remove-release-flag"  # due 30 days after full rollout
    CONTRACT_MIGRATION = "contract-migration"  # NOT NULL: not before 72 h after full rollout
    DELETE_LEGACY_CODE = "delete-legacy-code"  # due with the flag removal
    REMOVE_EXPERIMENT_FLAG = "remove-experiment-flag"  # due 14 days after a winner


@dataclass(frozen=True, slots=True)
class Release:
    """One release of a service: the facts its cleanup dates are computed from.

    `clock_started_at` is `started_at`, or the moment the last retry restarted the clocks.
    `full_rollout_at` is None until the Rollout is seen fully promoted on `revision`.
    All datetimes are timezone-aware (UTC in the store).
    """

    id: str  # "payment-router@1.13.0"
    service: str
    version: str
    phase: ReleasePhase
    started_at: datetime
    clock_started_at: datetime
    source: str = "slack"  # slack | cli | watch | drill
    started_by: str = ""  # Slack user id, "ci", "watch"
    owner: str | None = None  # Jira assignee: email or account id
    owner_slack: str | None = None  # Slack user id reminders go to
    revision: int | None = None  # the Rollout revision it is bound to
    previous_version: str | None = None  # the stable version when it was bound (revert target)
    full_rollout_at: datetime | None = None
    winner: str | None = None
    winner_at: datetime | None = None
    stopped_at: datetime | None = None  # when an abort or revert stopped the clocks
    channel: str | None = None  # the release thread
    thread_ts: str | None = None
    checklist_ts: str | None = None  # the checklist message in that thread


@dataclass(frozen=True, slots=True)
class TicketRef:
    """A Jira issue as rollbot reads it back."""

    key: str  # PAY-123
    url: str  # browse link
    status: str  # "To Do", "Done", …
    status_category: str  # new | indeterminate | done (Jira's statusCategory.key)
    due: date | None = None
    labels: tuple[str, ...] = ()
    resolved_at: datetime | None = None

    @property
    def done(self) -> bool:
        return self.status_category == "done"


@dataclass(frozen=True, slots=True)
class TicketSpec:
    """A Jira issue to create."""

    project: str  # key, "PAY"
    summary: str
    description: str  # Jira wiki markup (REST v2)
    labels: tuple[str, ...]
    due: date | None
    assignee: str | None = None  # email (looked up) or account id / user name
    issue_type: str = "Task"
    extra_fields: tuple[tuple[str, Any], ...] = ()  # e.g. (("priority", {"name": "Medium"}),)


@dataclass(frozen=True, slots=True)
class ChecklistItem:
    """One line of the release checklist: ✅ (ok), ❌ (not ok) or ❔ (could not be checked)."""

    name: str  # "Runbook present"
    ok: bool | None
    evidence: str  # what was looked at: "runbooks/payment-router.md (4.1 kB)", the error…
    # rollbot's own links to what the item names, (label, url): the cleanup tickets in
    # Jira. Plain text, like `evidence`; Slack shows each as a link after the evidence.
    links: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class TicketView:
    """A cleanup ticket as people see it: planned dates plus what Jira has."""

    kind: TicketKind
    summary: str
    state: str  # pending | creating | filed | failed
    key: str | None
    url: str | None
    due: date | None
    provisional: bool
    not_before: datetime | None = None
    status: str | None = None  # Jira status name, as last polled
    done: bool = False
    error: str | None = None  # why Jira refused it (state failed)


@dataclass(frozen=True, slots=True)
class ReleaseView:
    """Everything `/release status`, `/release list` and the App Home show of a release."""

    release: Release
    tickets: tuple[TicketView, ...]
    checklist: tuple[ChecklistItem, ...]
    timezone: str = "UTC"  # the service's, for showing dates
    rollout_link: str | None = None
    thread_link: str | None = None

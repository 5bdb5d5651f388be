"""Protocols for the outside world, shaped like rollbot's jobs rather than like any SDK.

Adapters in `bot.adapters` implement these; `bot.core` and `bot.actions` depend only on
them. Every method raises the typed errors of `bot.core.errors`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol

from bot.core.gitops import RevertCase
from bot.core.model import (
    AuditEntry,
    Evidence,
    FlagState,
    Incident,
    MessageRef,
    Outcome,
    Patch,
    RolloutAction,
    RolloutState,
    TicketRef,
    TicketSpec,
)


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """One change seen by a watch: ADDED | MODIFIED | DELETED, of a Rollout or AnalysisRun."""

    type: str
    kind: str  # Rollout | AnalysisRun
    object: dict[str, Any]


class Rollouts(Protocol):
    """Argo Rollouts in the cluster."""

    async def get_state(self, namespace: str, name: str) -> RolloutState:
        """Read the Rollout (and its stable ReplicaSet) now. TargetNotFound when absent."""
        ...

    async def cached_state(self, namespace: str, name: str) -> RolloutState:
        """The Rollout as the watch's cache holds it, with no request; read now (as
        `get_state`) when the watch does not hold it."""
        ...

    async def apply(self, action: RolloutAction, namespace: str, name: str) -> list[Patch]:
        """Send the action's patches, as `kubectl argo rollouts` does; return what was sent."""
        ...

    async def watch(
        self, namespaces: Sequence[str], on_event: Callable[[WatchEvent], Awaitable[None]]
    ) -> None:
        """List, then watch Rollouts and AnalysisRuns until cancelled; never returns otherwise."""
        ...


class Chat(Protocol):
    """Slack, as rollbot uses it."""

    async def post(
        self,
        channel: str,
        *,
        text: str,
        blocks: list[dict[str, Any]] | None = None,
        thread_ts: str | None = None,
        key: str | None = None,
    ) -> MessageRef:
        """Post a message (in the thread of `thread_ts`). With `key`, rollbot's id for it,
        the message is findable by `find_post`, and a failure (TemporaryError) may hide a
        post that was in fact delivered: the caller looks before posting it again."""
        ...

    async def find_post(
        self, channel: str, key: str, *, thread_ts: str | None = None, since: float
    ) -> MessageRef | None:
        """The message posted with `key` in `channel` (in the thread of `thread_ts`) since
        `since` (epoch seconds), or None when it is not there."""
        ...

    async def update(self, ref: MessageRef, *, text: str, blocks: list[dict[str, Any]]) -> None: ...

    async def post_ephemeral(
        self, channel: str, user: str, *, text: str, blocks: list[dict[str, Any]] | None = None
    ) -> None: ...

    async def usergroup_members(self, usergroup: str) -> frozenset[str]: ...

    async def open_view(self, trigger_id: str, view: dict[str, Any]) -> str:
        """views.open: show `view` (a modal) to whoever the trigger was given for; returns
        the view id. The trigger expires 3 s after the click that gave it."""
        ...

    async def update_view(self, view_id: str, view: dict[str, Any]) -> None:
        """Replace an open modal (a long step tells its result where it was asked)."""
        ...

    async def user_id_by_email(self, email: str) -> str | None:
        """users.lookupByEmail: the Slack user id, or None when no user has that email."""
        ...

    async def user_name(self, user_id: str) -> str: ...

    async def user_email(self, user_id: str) -> str | None:
        """users.info: the user's profile email, or None when it is not visible."""
        ...


@dataclass(frozen=True, slots=True)
class ActionRecord:
    """A claimed action, as stored under its idempotency key."""

    key: str
    service: str
    target: str
    action: str
    actor_id: str
    actor_name: str
    source: str
    status: str  # running | succeeded | failed
    requested_at: datetime
    finished_at: datetime | None
    result: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Claim:
    won: bool
    record: ActionRecord  # ours when won, else the winner's


@dataclass(frozen=True, slots=True)
class AuditRecord:
    seq: int
    entry: AuditEntry
    prev_hash: str
    hash: str


@dataclass(frozen=True, slots=True)
class AuditVerification:
    ok: bool
    count: int
    first_bad_seq: int | None = None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class CardRecord:
    """The one Slack card of a Rollout revision, and what its lines show that the Rollout
    and the incident cannot tell again after a restart."""

    card_key: str  # "{namespace}/{name}@{revision}"
    service: str
    channel: str
    ts: str | None  # None while its first post is in flight
    digest: str  # of the last rendered content, to skip no-op chat.update
    epoch: int  # bumps on every executed action; buttons carry it
    outcome: Outcome | None = None  # the last executed action's, for the outcome line
    pager: str | None = None  # the PagerDuty incident, as the card's notice line
    # rollbot's own action on the Rollout, as `bot.cards.thread.ActionGate.to_json` wrote it
    gate: Mapping[str, Any] | None = None
    circuit: FlagState | None = None  # the service's breaker as last read by any replica


@dataclass(frozen=True, slots=True)
class CardLine:
    """A thread line of a card not yet in Slack, as kept (`Store.add_card_line`)."""

    key: str  # its post key: the message carries it, so it is found if it was posted
    card_key: str
    text: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class IncidentRecord:
    """An incident as stored: the incident, the alerts firing for it now (fingerprint →
    summary, the card's alert lines) and how many times it was paged again (`…#2`).

    `alerts` is a read-only view (`types.MappingProxyType`) over a dict of its own, so the
    record stays frozen all the way down; it compares equal to a plain dict of the same
    items. Like every record with a mapping in it, it is not hashable.
    """

    incident: Incident
    alerts: Mapping[str, str]
    pages: int


@dataclass(frozen=True, slots=True)
class TicketRecord:
    """rollbot's own record of one cleanup ticket (Jira search is eventually consistent:
    this row, not a search, says whether a ticket was filed).

    state: pending (not tried) | creating (a create was sent; its answer may be lost) |
    filed (key known) | failed (Jira refused it: `error` says why; a person must act).
    """

    release_id: str
    kind: str  # TicketKind value
    label: str
    state: str
    key: str | None = None
    url: str | None = None
    due: date | None = None  # the due date Jira has (as last set by rollbot)
    provisional: bool = True
    status: str | None = None  # Jira status name, as last polled
    status_category: str | None = None  # new | indeterminate | done
    error: str | None = None
    attempted_at: datetime | None = None
    filed_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class EpochBump:
    """A card's epoch to move on with a finished action (`Store.finish_action`): the
    card's key, and the service and channel its record is made with when it has none."""

    card_key: str
    service: str
    channel: str


class Store(Protocol):
    """rollbot's own database."""

    async def claim_action(
        self,
        key: str,
        *,
        service: str,
        target: str,
        action: str,
        actor_id: str,
        actor_name: str,
        source: str,
        duplicate: Callable[[ActionRecord], AuditEntry] | None = None,
    ) -> Claim:
        """Exactly once: won, or the winner's record; a lost claim's `duplicate` audit
        entry (built from the winner's record) is appended in the same transaction."""
        ...

    async def get_action(self, key: str) -> ActionRecord | None: ...

    async def finish_action(
        self,
        key: str,
        *,
        status: str,
        result: dict[str, Any],
        audit_entry: AuditEntry | None = None,
        bump_epoch: EpochBump | None = None,
    ) -> ActionRecord:
        """Settle the claim; `audit_entry` appended and `bump_epoch` moved on in the same
        transaction (all of it or nothing)."""
        ...

    async def running_actions(self, *, before: datetime) -> list[ActionRecord]:
        """Claims still `running` that were made before `before`, oldest first."""
        ...

    async def finish_running_action(
        self, key: str, *, status: str, result: dict[str, Any]
    ) -> ActionRecord | None:
        """Finish a claim only if it is still `running`; None when it was not."""
        ...

    async def append_audit(self, entry: AuditEntry) -> AuditRecord: ...

    async def audit_entries(self, *, since_seq: int = 0) -> list[AuditRecord]: ...

    async def verify_audit(self) -> AuditVerification: ...

    async def claim_card(
        self, card_key: str, *, service: str, channel: str
    ) -> tuple[bool, CardRecord]: ...

    async def get_card(self, card_key: str) -> CardRecord | None: ...

    async def set_card_message(
        self, card_key: str, *, ts: str, digest: str, channel: str | None = None
    ) -> CardRecord:
        """Record the posted message; `channel` is the id Slack answered with."""
        ...

    async def set_card_digest(self, card_key: str, digest: str) -> None: ...

    async def bump_card_epoch(self, card_key: str) -> int: ...

    async def set_card_outcome(self, card_key: str, outcome: Outcome | None) -> None:
        """Record the last executed action's outcome (None: clear it); the card must exist."""
        ...

    async def set_card_pager(self, card_key: str, text: str | None) -> None:
        """Record the card's PagerDuty line (None: clear it); the card must exist."""
        ...

    async def record_card_action(
        self,
        card_key: str,
        *,
        outcome: Outcome,
        gate: Mapping[str, Any] | None,
        mark_dirty: bool = False,
    ) -> CardRecord:
        """An action finished: outcome, gate, epoch + 1 (and the leader's mark) at once;
        the card as written."""
        ...

    async def set_card_gate(self, card_key: str, gate: Mapping[str, Any] | None) -> None:
        """Record rollbot's own action on the card's Rollout (None: none)."""
        ...

    async def set_service_circuit(
        self, service: str, circuit: FlagState, *, mark_dirty: bool = False
    ) -> list[str]:
        """Record the service's breaker on its cards (`mark_dirty`: for the leader to
        render them again); the keys of those cards."""
        ...

    async def mark_card_dirty(self, card_key: str) -> None:
        """Ask the leader to render the card again."""
        ...

    async def take_dirty_cards(self) -> list[str]:
        """The cards marked since the last call, unmarked at once."""
        ...

    async def add_card_line(
        self, key: str, *, card_key: str, text: str, owner: str, lease: float
    ) -> None:
        """Keep a thread line of the card until Slack has it, `owner`'s for `lease` s."""
        ...

    async def renew_card_line(self, key: str, *, owner: str, lease: float) -> bool:
        """`owner` keeps the line `lease` s more; False when it is no longer its own (taken
        over, or posted and dropped by whoever took it)."""
        ...

    async def drop_card_line(self, key: str) -> None:
        """Slack has the line: forget it."""
        ...

    async def take_card_lines(self, *, owner: str, lease: float) -> list[CardLine]:
        """The lines whose lease ran out, now `owner`'s for `lease` s; oldest first."""
        ...

    async def release_card_lines(self, owner: str) -> None:
        """`owner` stops: its lines' leases end now, for the leader to take."""
        ...

    async def save_incident(self, incident: Incident, alerts: Mapping[str, str]) -> None:
        """Write the incident and the alerts firing for it, inserting or replacing its row
        (by `card_key`); its re-page count is kept."""
        ...

    async def save_incidents(self, rows: Sequence[tuple[Incident, Mapping[str, str]]]) -> None:
        """`save_incident` for each row, in one transaction."""
        ...

    async def load_incidents(self, *, since: datetime) -> list[IncidentRecord]:
        """Every incident not resolved, and those resolved at or after `since`; oldest
        `opened_at` first."""
        ...

    async def get_incident(self, card_key: str) -> IncidentRecord | None: ...

    async def bump_incident_pages(self, card_key: str) -> int:
        """Count one more re-page, atomically; the new count. Raises a `PermanentError`
        (`LookupError`) when the incident was never saved."""
        ...

    async def get_revert(self, key: str) -> RevertCase | None:
        """The Tier 3 revert rollbot runs for a card (`bot.core.gitops.gitops_key`)."""
        ...

    async def get_cursor(self, kind: str, namespace: str) -> str | None: ...

    async def set_cursor(self, kind: str, namespace: str, resource_version: str) -> None: ...


class Flags(Protocol):
    """A feature-flag provider's admin API (Unleash, LaunchDarkly), for one environment."""

    provider: str

    async def get(self, flag: str) -> FlagState:
        """The flag's state now. TargetNotFound("flag", "<project>/<env>", flag) when absent."""
        ...

    async def set(self, flag: str, enabled: bool, *, comment: str) -> FlagState:
        """Turn the flag on or off, then read it back; returns what was read back."""
        ...

    async def sdk_sees(self, flag: str) -> bool | None:
        """The state the provider serves to SDKs now (client/streaming API), or None when
        it cannot be told; used to report when SDKs actually see a flip."""
        ...


class EvidenceSource(Protocol):
    """Canary-against-stable metrics for the card (Prometheus). Never raises for an outage:
    `Evidence.available` is False and `detail` says why."""

    async def evidence(
        self,
        *,
        job: str,
        templates: Mapping[str, str | None] | None = None,
        slo_error_rate: float | None,
        slo_p95_ms: float | None,
        slo_p99_ms: float | None,
        now: datetime,
    ) -> Evidence: ...


class OnCall(Protocol):
    """Who is on call (PagerDuty)."""

    async def on_call_emails(self, escalation_policy_id: str) -> frozenset[str]:
        """Emails of the users on call now for the escalation policy (any level)."""
        ...


class Tickets(Protocol):
    """Jira, for the release cleanup tickets.

    Errors: `Unreachable` (down, timeout, 5xx, 429 with `delay`), `Forbidden` (401/403),
    `TargetNotFound` (no such issue), `InvalidRequest` naming the field Jira refused (400).
    """

    async def check(self) -> str:
        """serverInfo: "Jira Cloud 1001.0.0" or "Jira Server 9.12.0"; raises when down."""
        ...

    async def find_by_label(self, project: str, label: str) -> list[TicketRef]:
        """Issues of `project` carrying `label` (JQL search; eventually consistent)."""
        ...

    async def create(self, spec: TicketSpec) -> TicketRef:
        """Create the issue (assignee looked up by email when it is one)."""
        ...

    async def get(self, key: str) -> TicketRef: ...

    async def set_due(self, key: str, due: date | None) -> None: ...

    async def comment(self, key: str, body: str) -> None: ...

    async def reopen(self, key: str) -> str | None:
        """Move a done issue back to a not-done status; the status name, or None when the
        workflow offers no such transition."""
        ...

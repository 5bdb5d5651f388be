"""The service catalog: one `ServiceSettings` per service, keyed by the name people type.

A service is the Argo Rollout it stands for and everything about it: its channel and
runbook, owners, PagerDuty service and escalation, Jira project, release schedule, flag
hierarchy (with the flag inventory's metadata), SLO gates, GitOps location, alert matchers
and Prometheus queries.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, time
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    Field,
    ModelWrapValidatorHandler,
    PrivateAttr,
    SecretStr,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from bot.core.alerts import AlertMatcher, default_matchers
from bot.core.flags import FLAG_TYPES, ROLES, FlagInfo
from bot.settings.sections import DNS_LABEL, Section, check_channel, check_http_url

_DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"

ServiceName = Annotated[str, StringConstraints(pattern=DNS_LABEL, max_length=63)]
"""A catalog key: what people type after ``/rollback``."""


class OwnersSettings(Section):
    """Who owns the service."""

    slack_usergroup: str | None = None
    """Slack user group ID (``S…``) mentioned on cards and allowed to act."""

    jira_assignee: str | None = None
    """Email (or account id) that cleanup tickets are assigned to."""


class ServicePagerDuty(Section):
    """The service in PagerDuty."""

    service_id: str | None = None
    """PagerDuty service ID (``P…``) incidents are opened on."""

    escalation_policy_id: str | None = None
    """Escalation policy ID (``P…``) whose on-call may act."""

    routing_key: SecretStr | None = None
    """Events API v2 integration key of the service. Secret (set
    ``ROLLBOT_SERVICES__<NAME>__PAGERDUTY__ROUTING_KEY``). None: rollbot opens no
    PagerDuty incidents for it."""

    severity: Literal["critical", "error", "warning", "info"] = "critical"
    """Severity of the incidents rollbot triggers (Events API v2 ``payload.severity``)."""


class ServiceJira(Section):
    """The service in Jira."""

    project: str | None = None
    """Project key (``PAY``) cleanup tickets are filed in. None: no tickets are filed for
    it (the release checklist says so)."""

    issue_type: str | None = None
    """Issue type by name; None: ``jira.issue_type``."""

    fields: dict[str, Any] = Field(default_factory=dict)
    """Extra fields the project requires, as Jira's REST v2 takes them, e.g.
    ``{priority: {name: Medium}, components: [{name: payments}]}``."""


class ServiceRelease(Section):
    """How the service's releases are started and their cleanup scheduled."""

    auto_start: bool = False
    """Start a release automatically when the watch sees a new Rollout revision rolling
    out (the version is the image tag). Off: releases start by `/release start` or
    `rollbot release start` from CI."""

    timezone: str = "UTC"
    """IANA time zone of the owning team: due dates are its calendar dates, reminders and
    escalations are sent at ``notify_at`` its local time (DST included)."""

    notify_at: time = time(9, 30)
    """Local time of day for reminders and escalations."""

    expected_rollout_hours: float = Field(default=24.0, gt=0, le=24 * 90)
    """How long a rollout usually takes; until rollbot sees the full rollout, due dates are
    provisional and counted from start + this."""

    flag_removal_days: int = Field(default=30, ge=1, le=365)
    """Release flag removal (and the legacy code deletion): days after full rollout."""

    contract_not_before_hours: float = Field(default=72.0, ge=0, le=24 * 90)
    """The contract migration (NOT NULL) may not be applied sooner than this after full
    rollout, so that an emergency rollback does not break the column contract."""

    contract_due_days: int = Field(default=14, ge=1, le=365)
    """The contract migration is due this many days after full rollout."""

    experiment_removal_days: int = Field(default=14, ge=1, le=365)
    """Experiment flag removal: days after the winner is declared (and full rollout)."""

    reminder_days_before: int = Field(default=2, ge=0, le=30)
    """The owner is reminded in Slack this many days before a due date."""

    escalate_every_days: int = Field(default=7, ge=1, le=90)
    """An overdue ticket is escalated to the channel the day after its due date, then again
    every this many days while it stays open."""

    risk_surface: str | None = None
    """Link to the release's risk surface document (the checklist looks for it)."""

    legacy_code: str = "legacy code path"
    """What the legacy-deletion ticket deletes (``legacy routing code``)."""

    contract_step: str = "NOT NULL constraint"
    """What the contract-migration ticket applies."""

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as err:
            raise ValueError(f"unknown IANA time zone {value!r}") from err
        return value


class FlagSpec(Section):
    """A flag written as a mapping under ``services.X.flags.<role>``: its key and the
    metadata of the flag inventory. Its type is implied by the role."""

    key: str
    """The flag's key in the provider (``payments.new-router.enabled``)."""

    owner: str | None = None
    """Who owns the flag and removes it (``payments team``, ``payments on-call``)."""

    description: str | None = None
    """What the flag does, in a sentence."""

    created: date | None = None
    """When the flag was created (``2026-10-01``)."""

    remove_after: date | None = None
    """Planned removal date. None: not planned (an ops toggle is long-lived)."""


class ServiceFlags(Section):
    """The release's three-flag hierarchy. Each role is a flag key, or a mapping with
    ``key``, ``owner``, ``description``, ``created`` and ``remove_after``."""

    release: str | None = None
    """Release toggle (``payments.new-router.enabled``); removed 30 days after 100 %."""

    experiment: str | None = None
    """Experiment toggle (``payments.dynamic-currency.enabled``); removed 14 days after a
    winner."""

    circuit: str | None = None
    """Ops toggle / circuit breaker (``payments.new-router.circuit-open``): true sends
    everything to the legacy path. Tier 2 flips it."""

    _meta: dict[str, FlagSpec] = PrivateAttr(default_factory=dict)
    """The metadata of the roles written as mappings, by role."""

    @model_validator(mode="wrap")
    @classmethod
    def _mappings(cls, data: Any, handler: ModelWrapValidatorHandler[ServiceFlags]) -> Any:
        """Take the metadata out of the roles written as mappings; leave their keys."""
        specs: dict[str, FlagSpec] = {}
        errors: list[InitErrorDetails] = []
        if isinstance(data, Mapping):
            data = dict(data)
            for role in ROLES:
                raw = data.get(role)
                if not isinstance(raw, Mapping):
                    continue
                key = raw.get("key")
                data[role] = key if isinstance(key, str) else "-"  # errors come from spec
                try:
                    spec = FlagSpec.model_validate(raw)
                except ValidationError as exc:
                    errors.extend(_spec_errors(role, exc))
                    continue
                if spec.created and spec.remove_after and spec.remove_after < spec.created:
                    errors.append(
                        InitErrorDetails(
                            type=PydanticCustomError(
                                "flag_dates",
                                "{remove_after} is before created ({created})",
                                {
                                    "remove_after": spec.remove_after.isoformat(),
                                    "created": spec.created.isoformat(),
                                },
                            ),
                            loc=(role, "remove_after"),
                            input=raw.get("remove_after"),
                        )
                    )
                    continue
                specs[role] = spec
        try:
            flags = handler(data)
        except ValidationError as exc:
            errors.extend(_reraised(exc))
            flags = None
        if errors or flags is None:
            raise ValidationError.from_exception_data(cls.__name__, errors)
        flags._meta = {**flags._meta, **specs}
        return flags

    def entries(self) -> list[FlagInfo]:
        """The flags set, in hierarchy order, with their type and metadata."""
        out = []
        for role in ROLES:
            key = getattr(self, role)
            if not key:
                continue
            spec = self._meta.get(role)
            if spec is not None and spec.key != key:  # the key was reassigned since
                spec = None
            out.append(
                FlagInfo(
                    role=role,
                    key=key,
                    type=FLAG_TYPES[role],
                    owner=spec.owner if spec else None,
                    description=spec.description if spec else None,
                    created=spec.created if spec else None,
                    remove_after=spec.remove_after if spec else None,
                )
            )
        return out


def _reraised(exc: ValidationError) -> list[InitErrorDetails]:
    out = []
    for err in exc.errors(include_url=False):
        details = InitErrorDetails(type=err["type"], loc=err["loc"], input=err["input"])
        if "ctx" in err:
            details["ctx"] = err["ctx"]
        out.append(details)
    return out


def _spec_errors(role: str, exc: ValidationError) -> list[InitErrorDetails]:
    """FlagSpec's errors, located under the role; unknown keys list the known ones."""
    known = ", ".join(sorted(FlagSpec.model_fields))
    out = []
    for details in _reraised(exc):
        details["loc"] = (role, *details["loc"])
        if details["type"] == "extra_forbidden":
            details["type"] = PydanticCustomError(
                "flag_key_unknown",
                "unknown key (a typo?); known keys: {known} (the type is implied by the role)",
                {"known": known},
            )
        out.append(details)
    return out


class ServiceSlo(Section):
    """The SLO gates the canary is judged by. None: not declared, not judged."""

    error_rate: float | None = None
    """Maximum error ratio, a fraction: 0.02 means 2 %."""

    latency_p95_ms: float | None = None
    """Maximum p95 latency, milliseconds."""

    latency_p99_ms: float | None = None
    """Maximum p99 latency, milliseconds."""

    @field_validator("error_rate")
    @classmethod
    def _error_rate(cls, value: float | None) -> float | None:
        if value is not None and not 0 < value <= 1:
            raise ValueError(f"is a fraction in (0, 1] (0.02 means 2 %), got {value}")
        return value

    @field_validator("latency_p95_ms", "latency_p99_ms")
    @classmethod
    def _latency(cls, value: float | None) -> float | None:
        if value is not None and not 1 <= value <= 60_000:
            raise ValueError(
                f"is in milliseconds, between 1 and 60000, got {value} (seconds by mistake?)"
            )
        return value


_GIT_REF = re.compile(r"^[A-Za-z0-9._/-]{1,200}$")
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


class ServiceArgoApp(Section):
    """The Argo CD Application that syncs the service from Git."""

    namespace: str = "argocd"
    """Where the Application object lives (Argo CD's own namespace by default)."""

    name: str
    """The Application's name."""


class ServiceGitOps(Section):
    """Where the service's desired state lives (Tier 3: full revert).

    With `repo` alone, Tier 3 is the revert's steps and a record of it. With `provider` and
    an HTTPS `repo` too (and the provider's token in `gitops`), rollbot prepares the revert
    itself: a branch, a pull or merge request, a second person's approval, the merge, and
    Argo CD's sync verified on the Rollout."""

    repo: str | None = None
    """GitOps repository: its HTTPS clone URL (``https://github.com/platform/configs.git``),
    or, for the steps alone, any URL git accepts (``git@example.com:platform/configs.git``)."""

    path: str | None = None
    """Directory of the service inside that repository."""

    sha_annotation: str = "rollbot.io/git-sha"
    """Pod template annotation (``spec.template.metadata.annotations``) that names the Git
    SHA of the release; Tier 3 reverts that commit. CI sets it when it renders the
    manifests; rollbot's own key by default."""

    branch: str = "main"
    """The branch Argo CD syncs from, which the revert's pull request targets."""

    provider: Literal["github", "gitlab"] | None = None
    """Who hosts `repo`: rollbot opens a pull request (GitHub) or a merge request (GitLab).
    None: Tier 3 stays the steps and a record."""

    api_url: str | None = None
    """The provider's API. None: derived from `repo`'s host (``https://api.github.com`` for
    github.com, ``https://<host>/api/v3`` for GitHub Enterprise, ``https://<host>`` for
    GitLab)."""

    merge: Literal["rollbot", "humans"] = "rollbot"
    """Who merges once a second person approved on the card: rollbot, or the code host's
    branch protection (GitHub auto-merge, GitLab merge when the pipeline succeeds)."""

    labels: list[str] = Field(default_factory=lambda: ["rollbot", "tier3-revert"])
    """Labels on the pull or merge request."""

    application: ServiceArgoApp | None = None
    """The Argo CD Application that syncs the service; its synced revision is part of the
    verification. None: the Rollout's new revision alone is checked."""

    @field_validator("branch")
    @classmethod
    def _branch(cls, value: str) -> str:
        if not _GIT_REF.match(value) or ".." in value or value.endswith((".lock", "/")):
            raise ValueError(f"{value!r} is not a branch name")
        return value

    @field_validator("api_url")
    @classmethod
    def _api_url(cls, value: str | None) -> str | None:
        return check_http_url(value)

    @model_validator(mode="after")
    def _executable(self) -> ServiceGitOps:
        if self.provider is None:
            return self
        parts = urlsplit(self.repo or "")
        loopback = parts.scheme == "http" and parts.hostname in _LOOPBACK
        if self.repo is None or not (parts.scheme == "https" or loopback) or not self.path:
            raise ValueError(
                "gitops.provider needs gitops.repo as an https:// clone URL and gitops.path: "
                "rollbot pushes over HTTPS with the provider's token (plain http only to "
                "a loopback host, for local tests)"
            )
        return self

    @property
    def executable(self) -> bool:
        """Whether rollbot runs the revert itself (else: steps and a record)."""
        return self.provider is not None

    @property
    def project(self) -> str:
        """`owner/name` (GitHub) or `group/…/name` (GitLab), from `repo`'s path."""
        path = urlsplit(self.repo or "").path.strip("/")
        return path[: -len(".git")] if path.endswith(".git") else path

    @property
    def host_api(self) -> str:
        """`api_url`, else derived from `repo` (see `api_url`)."""
        if self.api_url:
            return self.api_url.rstrip("/")
        parts = urlsplit(self.repo or "")
        base = f"{parts.scheme}://{parts.netloc}"
        if self.provider == "github":
            return "https://api.github.com" if parts.netloc == "github.com" else f"{base}/api/v3"
        return base


class ServiceAlerts(Section):
    """Which Alertmanager alerts belong to the service."""

    match: dict[str, str] | None = None
    """Label matchers, all of which must equal (``{team: payments, app: router}``). None:
    label ``service``, ``app`` or ``rollout`` equals the service's name or its Rollout's
    name, and ``namespace``, when the alert has one, equals the service's namespace."""

    @field_validator("match")
    @classmethod
    def _match(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value is not None and not value:
            raise ValueError("is empty: it would match every alert; leave it out for the default")
        return value


class ServiceMetrics(Section):
    """How to read the service's canary and stable metrics from Prometheus.

    The queries are PromQL templates in which the placeholders ``{job}`` and ``{version}``
    are replaced literally (``version`` is ``canary`` or ``stable``); every other brace is
    PromQL's own and is written as usual, e.g.
    ``sum(rate(http_requests_total{job="{job}",version="{version}",code=~"5.."}[1m]))
    / sum(rate(http_requests_total{job="{job}",version="{version}"}[1m]))``.
    None: the Prometheus adapter's defaults. `bot.adapters.prometheus.render` fills them in.
    """

    job: str | None = None
    """Value of the ``job`` label of the service's metrics. None: the Rollout's name."""

    error_rate: str | None = None
    """PromQL template for the error ratio (a fraction, 0..1)."""

    latency_p95_ms: str | None = None
    """PromQL template for the p95 latency, in milliseconds."""

    latency_p99_ms: str | None = None
    """PromQL template for the p99 latency, in milliseconds."""

    @field_validator("error_rate", "latency_p95_ms", "latency_p99_ms")
    @classmethod
    def _template(cls, value: str | None) -> str | None:
        if value is not None and "{version}" not in value:
            raise ValueError(
                "has no {version} placeholder, so canary and stable would read the same "
                'series (select with version="{version}")'
            )
        return value


class ServiceSettings(Section):
    """One service in the catalog: the Rollout it is and everything about it."""

    namespace: Annotated[str, StringConstraints(pattern=DNS_LABEL, max_length=63)]
    """Kubernetes namespace of the Rollout."""

    rollout: Annotated[str, StringConstraints(pattern=_DNS_SUBDOMAIN, max_length=253)]
    """Name of the Argo Rollout."""

    channel: str
    """Slack channel for its cards: ``#name`` (quote it in YAML) or a channel ID."""

    runbook: str | None = None
    """Path of its runbook (Markdown), relative to the config file or the working
    directory. None: cards carry no runbook link."""

    owners: OwnersSettings = Field(default_factory=OwnersSettings)
    """Who owns it."""

    pagerduty: ServicePagerDuty = Field(default_factory=ServicePagerDuty)
    """Its PagerDuty service and escalation policy."""

    jira: ServiceJira = Field(default_factory=ServiceJira)
    """Its Jira project."""

    release: ServiceRelease = Field(default_factory=ServiceRelease)
    """How its releases start and their cleanup schedule."""

    flags: ServiceFlags = Field(default_factory=ServiceFlags)
    """Its flag hierarchy."""

    slo: ServiceSlo = Field(default_factory=ServiceSlo)
    """Its SLO gates."""

    gitops: ServiceGitOps = Field(default_factory=ServiceGitOps)
    """Its GitOps location."""

    alerts: ServiceAlerts = Field(default_factory=ServiceAlerts)
    """Which Alertmanager alerts are about it."""

    metrics: ServiceMetrics = Field(default_factory=ServiceMetrics)
    """Its Prometheus queries for the canary-vs-stable evidence."""

    def alert_matchers(self, name: str) -> list[AlertMatcher]:
        """Matchers for its alerts, as plain data for `bot.core.alerts.route_alerts`:
        ``alerts.match`` when set, else `bot.core.alerts.default_matchers`."""
        if self.alerts.match is not None:
            return [AlertMatcher(equal=dict(self.alerts.match))]
        return default_matchers(name, rollout=self.rollout, namespace=self.namespace)

    @field_validator("channel")
    @classmethod
    def _channel(cls, value: str) -> str:
        checked = check_channel(value)
        assert checked is not None
        return checked

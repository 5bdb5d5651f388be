"""Typed settings (one YAML file + the environment) and the service catalog.

Where values come from, later wins:

1. the defaults below (each field says why it has its default);
2. one YAML file: the ``path`` argument, else ``$ROLLBOT_CONFIG``, else ``./rollbot.yaml``
   if it exists, else nothing. An explicit setting beats the implicit default, so in a
   container ``ROLLBOT_CONFIG=/etc/rollbot/rollbot.yaml`` is never shadowed by a stray file
   in the working directory;
3. environment variables ``ROLLBOT_<SECTION>__<KEY>[__<KEY>…]``.

How environment variable names map to keys:

- ``__`` separates levels, a single ``_`` belongs to the key, names are case-insensitive:
  ``ROLLBOT_SLACK__BOT_TOKEN`` → ``slack.bot_token``;
  ``ROLLBOT_SERVICES__PAYMENT_ROUTER__OWNERS__SLACK_USERGROUP`` →
  ``services.payment-router.owners.slack_usergroup``.
- Service names are lowercase letters, digits and dashes (like the Kubernetes names they
  stand for), so the ``_`` of a variable maps back to ``-`` without ambiguity:
  ``PAYMENT_ROUTER`` → ``payment-router``. A name not yet in the catalog adds a service.
- ``ROLLBOT_<…>_FILE`` reads the value from a file (a mounted Kubernetes Secret), trailing
  newline stripped: ``ROLLBOT_SLACK__BOT_TOKEN_FILE=/var/run/secrets/rollbot/bot-token``.
  Setting both ``X`` and ``X_FILE`` is an error.
- Lists: JSON (``["payments","fx"]``) or comma-separated (``payments,fx``). A whole
  mapping: JSON (``ROLLBOT_SERVICES__FX_RATES__SLO='{"error_rate": 0.01}'``).
- An empty value means null (unsets an optional key).
- ``ROLLBOT_CONFIG`` and variables without ``__`` after the prefix (``ROLLBOT_REQUIRE_PEERS``)
  are not settings. An unknown key is an error, in the environment as in the YAML.

Secrets (every ``SecretStr`` field) come only from the environment or files: a secret in
the YAML is an error, and so is a database URL with a password in it. ``SecretStr`` keeps
them out of ``repr``/``str``/logs; the database URL is left out of ``repr`` too.

``load_settings`` raises `ConfigError` listing every problem that makes the settings
unusable; ``check_config`` (``rollbot check-config``) returns every problem at once,
including those that only matter to ``rollbot serve`` (missing Slack secrets, missing
runbook files, nothing to watch). The sources are merged here rather than with
pydantic-settings' sources because those read ``os.environ`` directly, cannot map dashed
service names, and stop at the first failing source instead of listing every problem.
"""

from __future__ import annotations

import json
import os
import re
import types
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, time
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
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
from bot.core.errors import PermanentError, UnknownService
from bot.core.flags import FLAG_TYPES, ROLES, FlagInfo
from bot.core.signatures import split_secrets

ENV_PREFIX = "ROLLBOT_"
CONFIG_ENV = "ROLLBOT_CONFIG"
DEFAULT_CONFIG_FILE = "rollbot.yaml"
FILE_SUFFIX = "_file"

#: Database URL schemes the store supports (SQLAlchemy 2 with the drivers we ship).
DATABASE_SCHEMES = frozenset({"sqlite", "sqlite+aiosqlite", "postgresql", "postgresql+psycopg"})

_DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
_CHANNEL_ID = re.compile(r"^[CG][A-Z0-9]{6,}$")

ServiceName = Annotated[str, StringConstraints(pattern=_DNS_LABEL, max_length=63)]
"""A catalog key: what people type after ``/rollback``."""


# --------------------------------------------------------------------------- problems


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One thing wrong with the configuration, at a dotted key path.

    ``key_path`` is like ``services.payment-router.channel``; for problems with the file
    itself it is the file's path, for an environment variable its name.
    """

    key_path: str
    message: str

    def __str__(self) -> str:
        return f"{self.key_path}: {self.message}"


class ConfigError(PermanentError):
    """The settings cannot be used; ``problems`` lists every reason."""

    def __init__(self, problems: Iterable[ConfigProblem]) -> None:
        self.problems = list(problems)
        listed = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(
            f"{len(self.problems)} configuration problem(s) "
            f"(run `rollbot check-config` for all of them):\n{listed}"
        )


def _check_channel(value: str | None) -> str | None:
    if value is None:
        return value
    if (value.startswith("#") and len(value) > 1 and not any(c.isspace() for c in value)) or (
        _CHANNEL_ID.match(value)
    ):
        return value
    raise ValueError(
        f"{value!r} is not a Slack channel: use a name starting with '#' (quoted in YAML, "
        "e.g. \"#payments-deploys\") or a channel ID starting with 'C'"
    )


def _check_http_url(value: str | None) -> str | None:
    if value is None:
        return value
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{value!r} is not an http(s) URL")
    return value


# --------------------------------------------------------------------------- sections


class _Section(BaseModel):
    model_config = ConfigDict(
        extra="forbid", use_attribute_docstrings=True, validate_assignment=True
    )


class SlackSettings(_Section):
    """The Slack app rollbot speaks as (see deploy/slack/manifest.yaml)."""

    bot_token: SecretStr | None = None
    """Bot user OAuth token (``xoxb-…``). Secret. Required by ``rollbot serve``; None by
    default so ``demo`` and tests run against bot/sim without one."""

    signing_secret: SecretStr | None = None
    """Verifies that requests to ``/slack/events`` come from Slack (v0 HMAC-SHA256
    signature). Secret. Required by ``rollbot serve``."""

    api_url: str = "https://slack.com/api/"
    """Base URL of the Slack Web API, ending in ``/`` (slack_sdk's ``base_url``). Slack's
    own by default; tests and the demo point it at bot/sim."""

    command: str = "/rollback"
    """The slash command, exactly as registered in the app manifest."""

    release_command: str = "/release"
    """The release slash command (``/release start SERVICE VERSION``), as in the manifest."""

    team_url: str | None = None
    """Workspace URL (``https://acme.slack.com``), to link release threads from Jira
    tickets. None: tickets carry no thread link."""

    fallback_channel: str | None = None
    """Channel (``#name`` or ID) for cards that cannot go to the service's channel. None:
    no fallback, such a failure is logged and audited instead."""

    request_timeout_seconds: float = Field(default=10.0, gt=0)
    """Seconds per Web API call. Below slack_sdk's 30 s default: a stuck call should not
    hold an incident update; the outbox retries it."""

    @field_validator("api_url")
    @classmethod
    def _api_url(cls, value: str) -> str:
        _check_http_url(value)
        return value if value.endswith("/") else value + "/"

    @field_validator("team_url")
    @classmethod
    def _team_url(cls, value: str | None) -> str | None:
        value = _check_http_url(value)
        return value.rstrip("/") if value else value

    @field_validator("command", "release_command")
    @classmethod
    def _command(cls, value: str) -> str:
        if not re.fullmatch(r"/[a-z0-9_-]{1,31}", value):
            raise ValueError(f"{value!r} is not a slash command (like '/rollback')")
        return value

    @field_validator("fallback_channel")
    @classmethod
    def _fallback_channel(cls, value: str | None) -> str | None:
        return _check_channel(value)


class KubernetesSettings(_Section):
    """How rollbot reaches the Argo Rollouts it watches and patches."""

    kubeconfig: str | None = None
    """Path to a kubeconfig file. None: ``$KUBECONFIG``, then ``~/.kube/config``, then the
    in-cluster service account, like every Kubernetes tool."""

    context: str | None = None
    """kubeconfig context to use. None: the file's current context."""

    namespaces: list[str] = Field(default_factory=list)
    """Namespaces to watch. Default: the namespaces of the services in the catalog, so the
    common case needs no list and a namespace is never watched by accident."""

    request_timeout_seconds: float = Field(default=10.0, gt=0)
    """Seconds per API request (get, patch). A healthy API server answers in milliseconds;
    10 s leaves room for a loaded one and still reports back in the Slack thread quickly."""

    watch_timeout_seconds: float = Field(default=300.0, gt=0)
    """Seconds per watch request before it is re-established (server-side
    ``timeoutSeconds``). Five minutes stays well below the API server's own limit and keeps
    a silently dropped connection from going unnoticed for long."""

    verify_timeout_seconds: float = Field(default=30.0, gt=0)
    """Seconds the responder reads the Rollout back after an action before declaring it
    unverified. The controller usually reflects an abort within a few seconds; 30 s is
    half of Tier 1's 60 s budget, leaving the rest for a human to react."""

    verify_interval_seconds: float = Field(default=0.25, gt=0)
    """Seconds between read-backs while verifying. 0.25: four GETs a second for the few
    seconds an action takes is negligible load, and the card's "verified in 0.8 s" is then
    accurate to a quarter second (an abort takes effect in well under a second)."""

    backoff_initial_seconds: float = Field(default=0.5, gt=0)
    """First delay before retrying a failed request or a dropped watch; doubled each time."""

    backoff_max_seconds: float = Field(default=30.0, gt=0)
    """Cap on that delay. 30 s: an API server outage is not hammered, and a recovered one is
    noticed within half a minute."""

    lease_name: str = "rollbot"
    """Name of the ``coordination.k8s.io`` Lease that elects the one replica that watches,
    schedules and posts."""

    lease_namespace: str | None = None
    """Namespace of that Lease. None: rollbot's own namespace (from the service account),
    which is where its RBAC Role allows Leases."""

    lease_duration_seconds: float = Field(default=15.0, gt=0)
    """Seconds a leader's Lease is valid without renewal. 15 s is client-go's default: a
    dead leader is replaced within 15 s, well inside Tier 1's 60 s."""

    @field_validator("namespaces")
    @classmethod
    def _namespaces(cls, value: list[str]) -> list[str]:
        bad = [n for n in value if not re.match(_DNS_LABEL, n)]
        if bad:
            raise ValueError(f"not Kubernetes namespace names: {', '.join(map(repr, bad))}")
        return value


class DatabaseSettings(_Section):
    """Where the audit log, incidents, outbox and scheduler jobs are kept."""

    url: str = Field(default="sqlite:///rollbot.db", repr=False)
    """SQLAlchemy URL: ``sqlite:///path`` or ``postgresql+psycopg://…``. SQLite in the working
    directory by default, enough for one replica; use PostgreSQL for several. A URL with a
    password must come from ``ROLLBOT_DATABASE__URL`` or ``ROLLBOT_DATABASE__URL_FILE``."""

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        scheme = value.split("://", 1)[0] if "://" in value else ""
        if scheme not in DATABASE_SCHEMES:
            hint = " (SQLAlchemy 2 needs 'postgresql://')" if scheme == "postgres" else ""
            raise ValueError(
                f"unknown database URL scheme {scheme!r}{hint}; "
                f"use one of {', '.join(sorted(DATABASE_SCHEMES))}"
            )
        return value


class PrometheusSettings(_Section):
    """Prometheus, read for canary vs. stable metrics on the cards."""

    url: str | None = None
    """Base URL, e.g. ``http://prometheus.monitoring.svc:9090``. None: cards show no
    metrics; rollbot still works from Rollout and alert state alone."""

    query_timeout_seconds: float = Field(default=5.0, gt=0)
    """Seconds per query. Metrics decorate a card; they must never delay it."""

    graph_url: str | None = None
    """External base URL for the graph links on cards (``https://prometheus.example.com``),
    for when people reach Prometheus at another address than rollbot does. None: ``url``."""

    @field_validator("url", "graph_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return _check_http_url(value)

    @property
    def graph_base_url(self) -> str | None:
        """Where graph links point: ``graph_url``, else ``url``."""
        return self.graph_url or self.url


class AlertmanagerSettings(_Section):
    """The Alertmanager webhook receiver (``POST /webhooks/alertmanager``)."""

    bearer_token: SecretStr | None = None
    """Token Alertmanager sends as ``Authorization: Bearer``. Secret. None: the endpoint
    refuses every request (no unauthenticated webhooks)."""

    unknown_notice_interval_seconds: int = Field(default=3600, ge=0)
    """Seconds between two notices about the same alert name that matches no service in
    the catalog. An hour: a misrouted alert is reported, not repeated at every group
    interval. 0: every time."""


class IncidentsSettings(_Section):
    """How signals become incidents and when an incident is over."""

    quiet_period_seconds: int = Field(default=300, ge=0)
    """Seconds an incident stays RECOVERING (nothing firing) before it is RESOLVED. Five
    minutes: Alertmanager's default ``group_interval`` is 5 m and a flapping alert usually
    fires again within it, so it reopens the same incident instead of starting a new one."""


class PagerDutySettings(_Section):
    """PagerDuty REST and Events APIs and its v3 webhooks."""

    api_url: str = "https://api.pagerduty.com"
    """REST API base URL. PagerDuty's own by default; tests point it at bot/sim."""

    events_url: str = "https://events.pagerduty.com"
    """Events API v2 base URL. PagerDuty's own by default; tests point it at bot/sim."""

    api_token: SecretStr | None = None
    """REST API token. Secret. None: no incident notes from rollbot, and no on-call lookup
    (services with an escalation policy then fall back to their owners group)."""

    ca_file: str | None = None
    """PEM file of extra certificate authorities to trust for ``api_url`` (a corporate proxy,
    or bot/sim's PagerDuty). None: the system's."""

    on_call_timeout_seconds: float = Field(default=3.0, gt=0)
    """How long an authorisation waits for PagerDuty's on-call answer before falling back
    to the owners group. 3 s: a responder at 2 a.m. must not wait on a slow PagerDuty."""

    webhook_secret: SecretStr | None = None
    """Signing secret of the v3 webhook subscription (``X-PagerDuty-Signature``). Secret.
    Several, comma-separated, while a secret is rotated (any one verifying is enough).
    None: ``/webhooks/pagerduty`` refuses every request."""

    workflow_secret: SecretStr | None = None
    """Shared secret of the Incident Workflow "Send a Webhook POST" actions, sent as
    ``Authorization: Bearer <secret>`` (a workflow step cannot sign its body). Secret.
    None: the workflow path is off; the signing ``webhook_secret`` never doubles as it,
    since the two protect different things (an event rollbot only shows, an action it
    runs)."""

    max_retries: int = Field(default=2, ge=0, le=10)
    """Retries of a PagerDuty call (429, 5xx, network) before rollbot's own outbox takes
    over. Bounded: a page must not be held for minutes inside the client."""

    from_email: str | None = None
    """Email of the PagerDuty user rollbot acts as (the REST API's ``From`` header, required
    for writes such as notes)."""

    @field_validator("api_url", "events_url")
    @classmethod
    def _urls(cls, value: str | None) -> str | None:
        value = _check_http_url(value)
        if value is not None and not value.startswith("https://"):
            raise ValueError("must be https:// (the pagerduty client refuses plain http)")
        return value


class JiraSettings(_Section):
    """Jira, for the release cleanup tickets."""

    url: str | None = None
    """Site URL, e.g. ``https://example.atlassian.net``. None: no tickets are filed."""

    email: str | None = None
    """Account email for basic auth with ``api_token`` (Jira Cloud)."""

    api_token: SecretStr | None = None
    """API token (Cloud, with ``email``) or personal access token (Server/Data Center,
    without ``email``: sent as a Bearer token). Secret."""

    issue_type: str = "Task"
    """Issue type of the cleanup tickets, by name (``services.X.jira.issue_type`` overrides)."""

    timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    """Per-request timeout. 10 s: a Jira outage fails the attempt quickly; the tickets are
    retried from rollbot's own schedule, never lost."""

    search_settle_seconds: float = Field(default=60.0, ge=0, le=3600)
    """After a create whose answer was lost (crash, timeout), how long rollbot keeps
    searching for the ticket by its label before filing it again. Jira Cloud's search is
    eventually consistent: a ticket created a moment ago may not be found yet."""

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return _check_http_url(value)


class ReleasesSettings(_Section):
    """Release cleanup: the schedule that files tickets and keeps their dates."""

    scheduler: bool = True
    """Run the job scheduler (reminders, escalations, due-date moves) in this process. Only
    the replica holding the ``scheduler`` lease in the database runs jobs, so several
    replicas never run two schedulers on one job store."""

    lease_ttl_seconds: float = Field(default=30.0, ge=1, le=600)
    """How long the scheduler lease lasts without renewal; a crashed holder is replaced
    after at most this long."""

    reconcile_seconds: float = Field(default=60.0, ge=0.1, le=3600)
    """How often the schedule is rebuilt from the releases in the database (it is also
    rebuilt on every release change this process sees). Catches releases started by
    `rollbot release start` from CI, which writes only the database."""

    retry_seconds: float = Field(default=30.0, ge=0.1, le=3600)
    """First retry delay when Jira is down; doubles per attempt up to 15 minutes."""

    jira_poll_seconds: float = Field(default=900.0, ge=1, le=30 * 86400)
    """How often the status of open cleanup tickets is read from Jira (a NOT NULL ticket
    marked done before its 72 hours is refused). `/release status` also reads it."""


class FlagsSettings(_Section):
    """The feature flag provider, for Tier 2 (circuit breaker)."""

    provider: Literal["unleash", "launchdarkly"] | None = None
    """Which admin API to speak. None: Tier 2 is offered only as manual steps."""

    url: str | None = None
    """Admin API base URL (Unleash server, or ``https://app.launchdarkly.com``)."""

    api_token: SecretStr | None = None
    """Admin API token. Secret."""

    client_token: SecretStr | None = None
    """Unleash client (backend SDK) token, to read what SDKs are served and report when a
    flip is effective for them. Secret. None: the card says only that the flag reads back."""

    project: str = "default"
    """Flag project (Unleash project id / LaunchDarkly project key). Unleash's default
    project name."""

    environment: str = "production"
    """Environment whose flag state is flipped. The one incidents happen in."""

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return _check_http_url(value)


class ServerSettings(_Section):
    """The HTTP server (Slack events, webhooks, runbook pages, health, metrics)."""

    host: str = "0.0.0.0"
    """Interface to bind. All interfaces: inside a pod, the Service is the boundary."""

    port: int = Field(default=8080, ge=1, le=65535)
    """TCP port. 8080: unprivileged, so the container runs as non-root."""

    workers: int = Field(default=4, ge=1, le=64)
    """How many actions and status reads run at once after Slack has been answered. 4: a
    burst of commands queues instead of flooding the Kubernetes API or delaying the acks of
    later requests (see tests/bench); a handful of responders at 2 a.m. never wait."""

    public_url: str | None = None
    """URL at which people reach rollbot (``https://rollbot.example.com``), for runbook
    links on cards and the base of every signed link. None: cards link to the runbook path
    in the repository instead, and no signed link is issued (never one built from a
    request's Host header); check-config reports it when ``link_secret`` is set."""

    link_secret: SecretStr | None = None
    """Key that signs runbook-page links issued to a named responder; several,
    comma-separated, while the key is rotated: the first signs new links, and a link (or a
    page's CSRF token) signed with any of them is accepted. To rotate: put the new key
    first (``new,old``), wait at least ``link_ttl_seconds`` (the old key's last links
    expire), then remove the old key; a link signed only with a removed key is refused as
    altered. Secret. None: the runbook pages are read-only (no buttons)."""

    leader_lease_seconds: float = Field(default=15.0, gt=0, le=300)
    """Active/standby between replicas: the one holding the database lease ``leader`` acts
    (watch, cards, scheduler, outbox) and answers requests; the others answer 503 and are
    not ready. The lease lasts this long unless renewed (every third of it), so a standby
    takes over at most this long after the leader died; a graceful stop hands it over at
    once. 15 s: a dead leader is replaced well within a minute, and a database that is
    slow for a few seconds does not make the leader step down."""

    request_read_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    """How long a client has to send a request's headers (from connecting, or from the end
    of its previous response) and, separately, its whole body; past it the connection is
    closed (headers) or answered 408 (body). 10 s: Slack, Alertmanager and PagerDuty send a
    whole request in milliseconds, and Slack itself gives up after 3 s; a client that
    trickles bytes (slowloris) holds a connection for seconds, not for ever."""

    max_waiting_connections: int = Field(default=100, ge=1, le=100_000)
    """At most this many connections may be open without having sent their request headers;
    one more closes the one that has waited longest. 100: far above what Slack and the
    webhooks open at once, far below what exhausts a pod's file descriptors."""

    max_connections: int = Field(default=4000, ge=1, le=100_000)
    """Connections and requests in flight at once; beyond it uvicorn answers 503. Bounds
    memory under a flood (a few tens of KiB each). 4000: twice the flood the benchmark
    sends, so a burst of hostile requests slows real ones instead of refusing them (Slack
    does not retry a slash command or a click); keep the pod's file limit above it."""

    link_ttl_seconds: int = Field(default=900, ge=30, le=86400)
    """How long a signed runbook link works (once). 15 minutes: long enough to act on a
    page, short enough that a forwarded link is soon useless."""

    @field_validator("public_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return _check_http_url(value)

    @field_validator("link_secret")
    @classmethod
    def _link_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not split_secrets(value.get_secret_value()):
            raise ValueError("holds no key (one key, or several comma-separated: new,old)")
        return value

    def link_keys(self) -> list[bytes]:
        """The keys of ``link_secret``, the one that signs first; empty: links are off."""
        if self.link_secret is None:
            return []
        return [key.encode("utf-8") for key in split_secrets(self.link_secret.get_secret_value())]


# --------------------------------------------------------------------------- catalog


class OwnersSettings(_Section):
    """Who owns the service."""

    slack_usergroup: str | None = None
    """Slack user group ID (``S…``) mentioned on cards and allowed to act."""

    jira_assignee: str | None = None
    """Email (or account id) that cleanup tickets are assigned to."""


class ServicePagerDuty(_Section):
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


class ServiceJira(_Section):
    """The service in Jira."""

    project: str | None = None
    """Project key (``PAY``) cleanup tickets are filed in. None: no tickets are filed for
    it (the release checklist says so)."""

    issue_type: str | None = None
    """Issue type by name; None: ``jira.issue_type``."""

    fields: dict[str, Any] = Field(default_factory=dict)
    """Extra fields the project requires, as Jira's REST v2 takes them, e.g.
    ``{priority: {name: Medium}, components: [{name: payments}]}``."""


class ServiceRelease(_Section):
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


class FlagSpec(_Section):
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


class ServiceFlags(_Section):
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


class ServiceSlo(_Section):
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


class ServiceGitOps(_Section):
    """Where the service's desired state lives (Tier 3: full revert)."""

    repo: str | None = None
    """GitOps repository (``git@example.com:platform/configs.git``)."""

    path: str | None = None
    """Directory of the service inside that repository."""

    sha_annotation: str = "rollbot.io/git-sha"
    """Pod template annotation (``spec.template.metadata.annotations``) that names the Git
    SHA of the release; Tier 3 reverts that commit. CI sets it when it renders the
    manifests; rollbot's own key by default."""


class ServiceAlerts(_Section):
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


class ServiceMetrics(_Section):
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


class ServiceSettings(_Section):
    """One service in the catalog: the Rollout it is and everything about it."""

    namespace: Annotated[str, StringConstraints(pattern=_DNS_LABEL, max_length=63)]
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
        checked = _check_channel(value)
        assert checked is not None
        return checked


# --------------------------------------------------------------------------- root


class Settings(BaseModel):
    """All of rollbot's settings. Build with `load_settings`."""

    model_config = ConfigDict(
        extra="forbid", use_attribute_docstrings=True, validate_assignment=True
    )

    slack: SlackSettings = Field(default_factory=SlackSettings)
    """Slack app credentials and endpoints."""

    kubernetes: KubernetesSettings = Field(default_factory=KubernetesSettings)
    """Kubernetes access, timeouts and leader election."""

    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    """The store."""

    prometheus: PrometheusSettings = Field(default_factory=PrometheusSettings)
    """Metrics source."""

    alertmanager: AlertmanagerSettings = Field(default_factory=AlertmanagerSettings)
    """Alertmanager webhook auth."""

    incidents: IncidentsSettings = Field(default_factory=IncidentsSettings)
    """Incident lifecycle (quiet period)."""

    pagerduty: PagerDutySettings = Field(default_factory=PagerDutySettings)
    """PagerDuty APIs."""

    jira: JiraSettings = Field(default_factory=JiraSettings)
    """Jira."""

    releases: ReleasesSettings = Field(default_factory=ReleasesSettings)
    """Release cleanup scheduling."""

    flags: FlagsSettings = Field(default_factory=FlagsSettings)
    """Feature flag provider."""

    server: ServerSettings = Field(default_factory=ServerSettings)
    """HTTP server."""

    services: dict[ServiceName, ServiceSettings] = Field(default_factory=dict)
    """The service catalog, keyed by the name people type (``payment-router``)."""

    _config_path: Path | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _derive_namespaces(self) -> Settings:
        if "namespaces" not in self.kubernetes.model_fields_set:
            derived = sorted({s.namespace for s in self.services.values()})
            # Keep it "not set" so re-validation derives again from the services.
            object.__setattr__(self.kubernetes, "namespaces", derived)
        return self

    @property
    def config_path(self) -> Path | None:
        """The YAML file these settings were read from, if any."""
        return self._config_path

    def service(self, name: str) -> ServiceSettings:
        """The catalog entry `name`; `UnknownService` (listing the known ones) if absent."""
        try:
            return self.services[name]
        except KeyError:
            raise UnknownService(name, self.services) from None

    def alert_matchers(self) -> dict[str, list[AlertMatcher]]:
        """Every service's alert matchers, for `bot.core.alerts.route_alerts`."""
        return {name: svc.alert_matchers(name) for name, svc in self.services.items()}

    def service_for_rollout(self, namespace: str, rollout: str) -> str | None:
        """The name of the service whose target is Rollout `namespace/rollout`, if any."""
        for name, svc in self.services.items():
            if svc.namespace == namespace and svc.rollout == rollout:
                return name
        return None

    def runbook_path(self, name: str) -> Path | None:
        """The existing runbook file of service `name`, or None (no runbook or not found).

        A relative path is looked up next to the config file first, then in the working
        directory (in the image, the runbooks ship beside the code).
        """
        runbook = self.service(name).runbook
        if runbook is None:
            return None
        return _find_file(runbook, self._config_path)


def _find_file(relpath: str, config_path: Path | None) -> Path | None:
    for candidate in _candidates(relpath, config_path):
        if candidate.is_file():
            return candidate
    return None


def _candidates(relpath: str, config_path: Path | None) -> list[Path]:
    path = Path(relpath)
    if path.is_absolute():
        return [path]
    out = []
    if config_path is not None:
        out.append(config_path.parent / path)
    out.append(Path.cwd() / path)
    return out


# --------------------------------------------------------------------------- sources


@dataclass
class _Gathered:
    data: dict[str, Any] = field(default_factory=dict)
    problems: list[ConfigProblem] = field(default_factory=list)
    origins: dict[tuple[str, ...], str] = field(default_factory=dict)
    config_path: Path | None = None


def _unwrap(annotation: Any) -> Any:
    """`X | None` → X, `Annotated[X, …]` → X."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            args = [a for a in get_args(annotation) if a is not type(None)]
            if len(args) != 1:
                return annotation
            annotation = args[0]
        else:
            return annotation


def _model_of(annotation: Any) -> type[BaseModel] | None:
    inner = _unwrap(annotation)
    if isinstance(inner, type) and issubclass(inner, BaseModel):
        return inner
    return None


def _dict_value_of(annotation: Any) -> Any | None:
    inner = _unwrap(annotation)
    if get_origin(inner) is dict:
        return get_args(inner)[1]
    return None


def _is_secret(annotation: Any) -> bool:
    return _unwrap(annotation) is SecretStr


def _env_name(keys: Iterable[str]) -> str:
    return ENV_PREFIX + "__".join(k.upper().replace("-", "_") for k in keys)


def _config_file(
    path: str | Path | None, environ: Mapping[str, str]
) -> tuple[Path | None, ConfigProblem | None]:
    if path is not None:
        chosen = Path(path)
    elif environ.get(CONFIG_ENV):
        chosen = Path(environ[CONFIG_ENV])
    elif Path(DEFAULT_CONFIG_FILE).is_file():
        return Path(DEFAULT_CONFIG_FILE).resolve(), None
    else:
        return None, None
    if not chosen.is_file():
        how = "" if path is not None else f" (from {CONFIG_ENV})"
        return None, ConfigProblem(str(chosen), f"config file not found{how}")
    return chosen.resolve(), None


def _read_yaml(path: Path, out: _Gathered) -> None:
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        out.problems.append(ConfigProblem(str(path), f"cannot read: {exc.strerror}"))
        return
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        out.problems.append(ConfigProblem(str(path), f"not valid YAML{where}: {problem}"))
        return
    if loaded is None:
        return
    if not isinstance(loaded, dict):
        out.problems.append(
            ConfigProblem(str(path), f"must be a mapping of sections, not {type(loaded).__name__}")
        )
        return
    out.data = loaded
    _reject_yaml_secrets(out)


def _reject_yaml_secrets(out: _Gathered) -> None:
    for section, info in Settings.model_fields.items():
        model = _model_of(info.annotation)
        values = out.data.get(section)
        if model is None or not isinstance(values, dict):
            continue
        for key, finfo in model.model_fields.items():
            if _is_secret(finfo.annotation) and values.get(key) is not None:
                del values[key]  # never let it reach the model
                env = _env_name((section, key))
                out.problems.append(
                    ConfigProblem(
                        f"{section}.{key}",
                        f"secrets must come from the environment ({env}) "
                        f"or a file ({env}_FILE), not the YAML file",
                    )
                )
    db = out.data.get("database")
    if isinstance(db, dict) and isinstance(db.get("url"), str):
        try:
            password = urlsplit(db["url"]).password
        except ValueError:
            password = None
        if password:
            del db["url"]
            out.problems.append(
                ConfigProblem(
                    "database.url",
                    "contains a password: secrets must come from the environment "
                    "(ROLLBOT_DATABASE__URL) or a file (ROLLBOT_DATABASE__URL_FILE)",
                )
            )


def _resolve_env(segments: list[str]) -> tuple[list[str], Any, bool] | ConfigProblem:
    """Walk the model along `segments`: (keys, annotation at the end, read from file)."""
    annotation: Any = Settings
    keys: list[str] = []
    from_file = False
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        model = _model_of(annotation)
        value_type = _dict_value_of(annotation)
        if not segment:
            return ConfigProblem(".".join(keys) or "(root)", "empty key (three '_' in a row?)")
        if model is not None:
            fields = model.model_fields
            base = segment.removesuffix(FILE_SUFFIX)
            if segment in fields:
                keys.append(segment)
                annotation = fields[segment].annotation
            elif last and segment.endswith(FILE_SUFFIX) and base in fields:
                keys.append(base)
                annotation = fields[base].annotation
                from_file = True
            else:
                known = ", ".join(sorted(fields))
                return ConfigProblem(
                    ".".join([*keys, segment]), f"unknown key; known keys: {known}"
                )
        elif value_type is not None:
            keys.append(segment.replace("_", "-"))
            annotation = value_type
        else:
            return ConfigProblem(".".join(keys), f"is a single value, it has no key {segment!r}")
    return keys, annotation, from_file


def _convert(raw: str, annotation: Any) -> Any:
    if raw.strip() == "":
        return None
    inner = _unwrap(annotation)
    if get_origin(inner) is list:
        if raw.lstrip().startswith("["):
            return json.loads(raw)
        return [item.strip() for item in raw.split(",") if item.strip()]
    if _model_of(inner) is not None or get_origin(inner) is dict:
        return json.loads(raw)
    return raw


def _apply_env(environ: Mapping[str, str], out: _Gathered) -> None:
    names = sorted(
        name
        for name in environ
        if name.upper().startswith(ENV_PREFIX) and "__" in name[len(ENV_PREFIX) :]
    )
    for name in names:
        resolved = _resolve_env(name[len(ENV_PREFIX) :].lower().split("__"))
        if isinstance(resolved, ConfigProblem):
            out.problems.append(
                ConfigProblem(resolved.key_path, f"{resolved.message} (from {name})")
            )
            continue
        keys, annotation, from_file = resolved
        dotted = ".".join(keys)
        raw = environ[name]
        if from_file:
            try:
                raw = Path(raw).read_text(encoding="utf-8").strip()
            except OSError as exc:
                out.problems.append(
                    ConfigProblem(dotted, f"cannot read {raw!r} (from {name}): {exc.strerror}")
                )
                continue
            if not raw:
                out.problems.append(ConfigProblem(dotted, f"file {environ[name]!r} is empty"))
                continue
        try:
            value = _convert(raw, annotation)
        except json.JSONDecodeError as exc:
            out.problems.append(ConfigProblem(dotted, f"{name} is not valid JSON: {exc.msg}"))
            continue
        path = tuple(keys)
        if path in out.origins:
            out.problems.append(
                ConfigProblem(dotted, f"set by both {out.origins[path]} and {name}; keep one")
            )
            continue
        out.origins[path] = name
        target = out.data
        for key in keys[:-1]:
            child = target.get(key)
            if child is None:
                child = target[key] = {}
            elif not isinstance(child, dict):
                out.problems.append(ConfigProblem(key, f"is not a mapping, cannot apply {name}"))
                break
            target = child
        else:
            target[keys[-1]] = value


def _gather(path: str | Path | None, environ: Mapping[str, str]) -> _Gathered:
    out = _Gathered()
    config_path, problem = _config_file(path, environ)
    if problem is not None:
        out.problems.append(problem)
    if config_path is not None:
        out.config_path = config_path
        _read_yaml(config_path, out)
    _apply_env(environ, out)
    return out


# --------------------------------------------------------------------------- problems


def _dotted(loc: tuple[int | str, ...]) -> tuple[str, tuple[str, ...]]:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int) and parts:
            parts[-1] += f"[{item}]"
        elif item != "[key]":
            parts.append(str(item))
    return ".".join(parts), tuple(parts)


def _model_at(parts: tuple[str, ...]) -> type[BaseModel] | None:
    annotation: Any = Settings
    for part in parts:
        model = _model_of(annotation)
        if model is not None:
            if part not in model.model_fields:
                return None
            annotation = model.model_fields[part].annotation
        elif (value_type := _dict_value_of(annotation)) is not None:
            annotation = value_type
        else:
            return None
    return _model_of(annotation)


def _from_validation(
    error: ValidationError, origins: Mapping[tuple[str, ...], str]
) -> list[ConfigProblem]:
    problems = []
    for err in error.errors(include_url=False):
        dotted, parts = _dotted(err["loc"])
        kind = err["type"]
        message = err["msg"]
        if "[key]" in err["loc"]:
            message = (
                "service names are lowercase letters, digits and dashes "
                "(like 'payment-router'), at most 63 characters"
            )
        elif kind == "extra_forbidden":
            parent = _model_at(parts[:-1])
            known = ", ".join(sorted(parent.model_fields)) if parent else ""
            message = f"unknown key (a typo?); known keys: {known}"
        elif kind == "missing":
            message = "required key is missing"
        elif parts and parts[-1] == "channel" and err.get("input") is None:
            message = (
                'is empty: quote the channel in YAML (channel: "#payments-deploys"); '
                "an unquoted # starts a comment"
            )
        elif kind == "string_pattern_mismatch":
            message = "must be a Kubernetes name: lowercase letters, digits, '-' (and '.')"
        elif kind == "value_error":
            message = message.removeprefix("Value error, ")
        if parts in origins:
            message += f" (from {origins[parts]})"
        problems.append(ConfigProblem(dotted, message))
    return problems


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _raw_services(data: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The services as written, even those that fail validation (for cross-checks)."""
    return {str(k): v for k, v in _mapping(data.get("services")).items() if isinstance(v, dict)}


def _consistency(data: Mapping[str, Any]) -> list[ConfigProblem]:
    """Problems between sections; they make the settings unusable."""
    problems = []
    services = _raw_services(data)
    seen: dict[tuple[str, str], str] = {}
    for name, svc in services.items():
        namespace, rollout = svc.get("namespace"), svc.get("rollout")
        if not (isinstance(namespace, str) and isinstance(rollout, str)):
            continue
        if (namespace, rollout) in seen:
            problems.append(
                ConfigProblem(
                    f"services.{name}.rollout",
                    f"Rollout {namespace}/{rollout} is already the target of service "
                    f"{seen[namespace, rollout]!r}; one Rollout, one service",
                )
            )
        else:
            seen[namespace, rollout] = name
    watched = _mapping(data.get("kubernetes")).get("namespaces")
    if isinstance(watched, list):
        for name, svc in services.items():
            namespace = svc.get("namespace")
            if isinstance(namespace, str) and namespace not in watched:
                problems.append(
                    ConfigProblem(
                        f"services.{name}.namespace",
                        f"namespace {namespace!r} is not in kubernetes.namespaces, "
                        "so its Rollout would never be seen",
                    )
                )
    return problems


def _readiness(data: Mapping[str, Any], config_path: Path | None) -> list[ConfigProblem]:
    """Problems that only matter to `rollbot serve` (reported by check_config)."""
    problems = []
    slack = _mapping(data.get("slack"))
    for key in ("bot_token", "signing_secret"):
        if slack.get(key) is None:
            env = _env_name(("slack", key))
            problems.append(
                ConfigProblem(f"slack.{key}", f"required to serve: set {env} or {env}_FILE")
            )
    services = _raw_services(data)
    namespaces = _mapping(data.get("kubernetes")).get("namespaces")
    if namespaces is None:
        namespaces = [s["namespace"] for s in services.values() if s.get("namespace")]
    if not namespaces:
        problems.append(
            ConfigProblem(
                "kubernetes.namespaces",
                "nothing to watch: add a service to `services` "
                "(or list namespaces in kubernetes.namespaces)",
            )
        )
    for name, svc in services.items():
        runbook = svc.get("runbook")
        if isinstance(runbook, str) and _find_file(runbook, config_path) is None:
            looked = ", ".join(str(p) for p in _candidates(runbook, config_path))
            problems.append(
                ConfigProblem(f"services.{name}.runbook", f"file not found (looked at {looked})")
            )
    flags = _mapping(data.get("flags"))
    if flags.get("provider") is not None:
        for key in ("url", "api_token"):
            if flags.get(key) is None:
                problems.append(
                    ConfigProblem(
                        f"flags.{key}",
                        f"required when flags.provider is set (set {_env_name(('flags', key))})",
                    )
                )
    server = _mapping(data.get("server"))
    if server.get("link_secret") is not None and not server.get("public_url"):
        problems.append(
            ConfigProblem(
                "server.public_url",
                "required when server.link_secret is set: signed runbook links (Slack, "
                "PagerDuty acknowledgements, fresh links) are built on it, never on a "
                "request's Host header; without it rollbot issues none",
            )
        )
    jira = _mapping(data.get("jira"))
    if jira.get("url") is not None:
        for key in ("email", "api_token"):
            if jira.get(key) is None:
                problems.append(
                    ConfigProblem(
                        f"jira.{key}",
                        f"required when jira.url is set (set {_env_name(('jira', key))})",
                    )
                )
    return problems


# --------------------------------------------------------------------------- public


def load_settings(
    path: str | Path | None = None, *, environ: Mapping[str, str] | None = None
) -> Settings:
    """Read the YAML file and the environment into `Settings`.

    `path`: the YAML file; None means ``$ROLLBOT_CONFIG``, else ``./rollbot.yaml`` if it
    exists, else defaults only. `environ`: the environment (default ``os.environ``).
    Raises `ConfigError` listing every problem that makes the settings unusable; problems
    that only matter to ``serve`` are left to `check_config`.
    """
    gathered = _gather(path, os.environ if environ is None else environ)
    problems = list(gathered.problems)
    try:
        settings = Settings.model_validate(gathered.data)
    except ValidationError as exc:
        problems += _from_validation(exc, gathered.origins)
        raise ConfigError(problems + _consistency(gathered.data)) from None
    problems += _consistency(gathered.data)
    if problems:
        raise ConfigError(problems)
    settings._config_path = gathered.config_path
    return settings


def check_config(
    path: str | Path | None = None, *, environ: Mapping[str, str] | None = None
) -> list[ConfigProblem]:
    """Every problem with the configuration, at once, each at its key path.

    Same sources as `load_settings`. Beyond what makes loading fail, reports what would
    stop ``rollbot serve`` from doing its job: missing Slack secrets, missing runbook
    files, nothing to watch, a flag provider or Jira without credentials, a link key
    without `server.public_url`. The
    cross-checks read the merged values as written, so one invalid service does not hide
    the problems of the next. Empty list: all good.
    """
    gathered = _gather(path, os.environ if environ is None else environ)
    problems = list(gathered.problems)
    try:
        Settings.model_validate(gathered.data)
    except ValidationError as exc:
        problems += _from_validation(exc, gathered.origins)
    problems += _consistency(gathered.data)
    problems += _readiness(gathered.data, gathered.config_path)
    unique: dict[tuple[str, str], ConfigProblem] = {}
    for problem in problems:
        unique.setdefault((problem.key_path, problem.message), problem)
    return list(unique.values())

"""The top-level sections of the settings: server, slack, kubernetes, database, prometheus,
alertmanager, incidents, pagerduty, jira, releases, flags, gitops.

Each section is a model whose fields say why they have their default. `Section` (their
base: unknown keys are errors, field docstrings are the documentation, assignments are
validated) and the value checks shared with the service catalog (`check_channel`,
`check_http_url`, `DNS_LABEL`) live here too.
"""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from bot.core.signatures import split_secrets

#: Database URL schemes the store supports (SQLAlchemy 2 with the drivers we ship).
DATABASE_SCHEMES = frozenset({"sqlite", "sqlite+aiosqlite", "postgresql", "postgresql+psycopg"})

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
"""A Kubernetes name (RFC 1123 label): namespaces, and the catalog's service names."""
_CHANNEL_ID = re.compile(r"^[CG][A-Z0-9]{6,}$")


def check_channel(value: str | None) -> str | None:
    """`value` if it is a Slack channel (``#name`` or a channel ID) or None; else ValueError."""
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


def check_http_url(value: str | None) -> str | None:
    """`value` if it is an http(s) URL with a host, or None; else ValueError."""
    if value is None:
        return value
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{value!r} is not an http(s) URL")
    return value


class Section(BaseModel):
    """Base of every section and catalog entry: an unknown key is an error, each field's
    docstring is its documentation, and assignments are validated too."""

    model_config = ConfigDict(
        extra="forbid", use_attribute_docstrings=True, validate_assignment=True
    )


class SlackSettings(Section):
    """The Slack app rollbot speaks as (deploy/slack/manifest.yaml for HTTP,
    deploy/slack/manifest.socket-mode.yaml for Socket Mode). Slack's requests reach rollbot
    over HTTP (``POST /slack/events``, `signing_secret`), over Socket Mode (`app_token`),
    or both; ``rollbot serve`` needs one of the two."""

    bot_token: SecretStr | None = None
    """Bot user OAuth token (``xoxb-…``). Secret. Required by ``rollbot serve``; None by
    default so ``demo`` and tests run against bot/sim without one."""

    signing_secret: SecretStr | None = None
    """Verifies that requests to ``/slack/events`` come from Slack (v0 HMAC-SHA256
    signature). Secret. Required by ``rollbot serve`` unless `app_token` is set; None with an
    `app_token`: Socket Mode only, ``/slack/events`` is not served (404)."""

    app_token: SecretStr | None = None
    """App-level token (``xapp-…``, scope ``connections:write``). Secret. Set: the leader
    connects to Slack over Socket Mode (apps.connections.open, then one WebSocket) and
    receives the slash commands, clicks, modal submissions and events there: no public
    endpoint for Slack. None: HTTP only."""

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

    line_lease_seconds: float = Field(default=120.0, gt=0)
    """A card's thread line waiting for Slack (down, rate-limiting) is kept in the database
    and stays the process's own for this long after each attempt; a line whose process is
    gone longer than that is posted by the leader (looked for first). Keep it well above
    a post's patience and the longest wait between attempts (10 + 60 s)."""

    @field_validator("api_url")
    @classmethod
    def _api_url(cls, value: str) -> str:
        check_http_url(value)
        return value if value.endswith("/") else value + "/"

    @field_validator("team_url")
    @classmethod
    def _team_url(cls, value: str | None) -> str | None:
        value = check_http_url(value)
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
        return check_channel(value)


class KubernetesSettings(Section):
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
    """Shortest life of a watch request before it is re-established: each asks the API
    server for a ``timeoutSeconds`` drawn between this and twice this (as client-go's
    reflector does, so watches opened together do not all end together). Five to ten
    minutes: one request per watch in that time when nothing moves, well below the API
    server's own limit. A silently dropped connection is noticed sooner, by the read
    timeout (90 s, above the API server's bookmark interval of about a minute)."""

    verify_timeout_seconds: float = Field(default=30.0, gt=0)
    """Seconds the responder reads the Rollout back after an action before declaring it
    unverified. The controller usually reflects an abort within a few seconds; 30 s is
    half of Tier 1's 60 s budget, leaving the rest for a human to react."""

    action_recovery_seconds: float = Field(default=300.0, gt=0)
    """Seconds after which a Rollout action (or a circuit-breaker flip) still `running` is
    taken for one whose process ended mid-action (killed, its node lost): the leader reads
    the Rollout (or the flag) back, audits the result and tells the card. It must exceed
    the longest a live action takes (up to four patch attempts of two requests each, then
    ``verify_timeout_seconds``: about two minutes with the defaults; a flip, one write and
    one read of the flag provider with their bounded rate-limit retries, takes less), or an
    action still running would be settled before it ends (both verdicts would then reach
    the audit log and the card). 300 s: the card shows the Rollout's state meanwhile;
    this says who did it and whether it held."""

    verify_interval_seconds: float = Field(default=0.25, gt=0)
    """Seconds between read-backs while verifying. 0.25: four GETs a second for the few
    seconds an action takes is negligible load, and the card's "verified in 0.8 s" is then
    accurate to a quarter second (an abort takes effect in well under a second)."""

    backoff_initial_seconds: float = Field(default=0.5, gt=0)
    """First delay before retrying a failed request or a dropped watch; doubled each time."""

    backoff_max_seconds: float = Field(default=30.0, gt=0)
    """Cap on that delay. 30 s: an API server outage is not hammered, and a recovered one is
    noticed within half a minute."""

    @field_validator("namespaces")
    @classmethod
    def _namespaces(cls, value: list[str]) -> list[str]:
        bad = [n for n in value if not re.match(DNS_LABEL, n)]
        if bad:
            raise ValueError(f"not Kubernetes namespace names: {', '.join(map(repr, bad))}")
        return value

    @model_validator(mode="after")
    def _recovery_after_verify(self) -> KubernetesSettings:
        if self.action_recovery_seconds <= self.verify_timeout_seconds:
            raise ValueError(
                f"action_recovery_seconds ({self.action_recovery_seconds:g}) must exceed "
                f"verify_timeout_seconds ({self.verify_timeout_seconds:g}): an action still "
                "verifying would be taken for one whose process ended"
            )
        return self


class DatabaseSettings(Section):
    """Where the audit log, incidents, outbox and scheduler jobs are kept."""

    url: str = Field(default="sqlite:///rollbot.db", repr=False)
    """SQLAlchemy URL: ``sqlite:///path`` or ``postgresql+psycopg://…``. SQLite in the working
    directory by default, enough for one replica; use PostgreSQL for several. A URL with a
    password must come from ``ROLLBOT_DATABASE__URL`` or ``ROLLBOT_DATABASE__URL_FILE``."""

    busy_timeout_seconds: float = Field(default=30.0, gt=0, le=300)
    """SQLite only: how long a write waits for a lock another connection holds (a backup, a
    second process) before it fails. A webhook whose write fails is answered 503, so its
    sender delivers it again; keep it below the senders' own timeouts to let them see it."""

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


class PrometheusSettings(Section):
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
        return check_http_url(value)

    @property
    def graph_base_url(self) -> str | None:
        """Where graph links point: ``graph_url``, else ``url``."""
        return self.graph_url or self.url


class AlertmanagerSettings(Section):
    """The Alertmanager webhook receiver (``POST /webhooks/alertmanager``)."""

    bearer_token: SecretStr | None = None
    """Token Alertmanager sends as ``Authorization: Bearer``. Secret. Several, comma
    separated (``new,old``), are each accepted while a rotation is rolled out. None: the
    endpoint refuses every request (no unauthenticated webhooks)."""

    unknown_notice_interval_seconds: int = Field(default=3600, ge=0)
    """Seconds between two notices about the same alert name that matches no service in
    the catalog. An hour: a misrouted alert is reported, not repeated at every group
    interval. 0: every time."""


class IncidentsSettings(Section):
    """How signals become incidents and when an incident is over."""

    quiet_period_seconds: int = Field(default=300, ge=0)
    """Seconds an incident stays RECOVERING (nothing firing) before it is RESOLVED. Five
    minutes: Alertmanager's default ``group_interval`` is 5 m and a flapping alert usually
    fires again within it, so it reopens the same incident instead of starting a new one."""


class PagerDutySettings(Section):
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

    on_call_cache_seconds: float = Field(default=30.0, ge=0, le=300)
    """How long an on-call answer is reused before PagerDuty is asked again (0: ask on every
    authorisation). It bounds how long someone taken off call can still act: 30 s keeps
    PagerDuty off the path of a responder's clicks in a row, and a hand-off or an override
    takes effect within half a minute. A signed PagerDuty webhook that may tell of a
    person's doing drops the cache at once (on the replica it reaches; not rollbot's own
    acknowledge or notes coming back), so the bound holds for the rest."""

    webhook_secret: SecretStr | None = None
    """Signing secret of the v3 webhook subscription (``X-PagerDuty-Signature``). Secret.
    Several, comma-separated, while a secret is rotated (any one verifying is enough).
    None: ``/webhooks/pagerduty`` refuses every request."""

    workflow_secret: SecretStr | None = None
    """Shared secret of the Incident Workflow "Send a Webhook POST" actions, sent as
    ``Authorization: Bearer <secret>`` (a workflow step cannot sign its body). Secret.
    Several, comma separated (``new,old``), are each accepted while a rotation is rolled
    out. None: the workflow path is off; the signing ``webhook_secret`` never doubles as it,
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
        value = check_http_url(value)
        if value is not None and not value.startswith("https://"):
            raise ValueError("must be https:// (the pagerduty client refuses plain http)")
        return value


class JiraSettings(Section):
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
        return check_http_url(value)


class ReleasesSettings(Section):
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


class FlagsSettings(Section):
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
        return check_http_url(value)


class GitOpsSettings(Section):
    """Tier 3 executed: the credentials and identity rollbot uses to prepare a revert in a
    service's GitOps repository and open its pull or merge request (each service says
    where: `services.X.gitops`)."""

    github_token: SecretStr | None = None
    """GitHub token (fine-grained: contents and pull requests, read and write, on the
    configured repositories only). Used for `git push` over HTTPS and the REST and
    GraphQL APIs, and only for the repositories the catalog names. Secret."""

    gitlab_token: SecretStr | None = None
    """GitLab token (project access token, `api` and `write_repository`). Secret."""

    author_name: str = "rollbot"
    """The revert commit's author; the requester and approver are named in its message."""

    author_email: str = "rollbot@users.noreply.example.com"
    """The revert commit author's email."""

    workdir: str | None = None
    """Where clones are made (one per git step, removed when the step ends). None: the
    system's temporary directory. Needs room for two clones of the largest GitOps
    repository (two reverts at once)."""

    git_timeout_seconds: float = Field(default=120.0, gt=0)
    """How long one git command (clone, push) may take before it is stopped and the step
    retried."""

    verify_timeout_seconds: float = Field(default=1800.0, gt=0)
    """How long after the merge rollbot waits for Argo CD's sync and the Rollout's new
    revision before the card says the revert is merged but not verified."""


class ServerSettings(Section):
    """The HTTP server (Slack events, webhooks, runbook pages, health, metrics)."""

    host: str = "0.0.0.0"
    """Interface to bind. All interfaces: inside a pod, the Service is the boundary."""

    port: int = Field(default=8080, ge=1, le=65535)
    """TCP port of the public endpoints (Slack, the webhooks, the runbook pages). 8080:
    unprivileged, so the container runs as non-root."""

    internal_port: int | None = Field(default=9090, ge=1, le=65535)
    """TCP port of the internal listener: ``/metrics``, ``/healthz`` and ``/readyz``, for
    Prometheus and the kubelet only (a NetworkPolicy can then keep everyone else off it),
    while the public port answers 404 for them. 9090: unprivileged, apart from ``port``,
    the port Prometheus exporters usually take. None (an empty
    ``ROLLBOT_SERVER__INTERNAL_PORT``, or ``null``): no second listener, everything on
    ``port``, as for one process on a laptop."""

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
    """Leader and standbys: every replica answers every request and is Ready; the one
    holding the database lease ``leader`` runs the loops (the watch, the incident ticker,
    the scheduler, the outbox, the inbox replays). The lease lasts this long unless
    renewed (every third of it), so a standby takes over at most this long after the
    leader died; a graceful stop hands it over at once. 15 s: a dead leader is replaced
    well within a minute, and a database that is slow for a few seconds does not make the
    leader step down."""

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

    log_format: Literal["text", "json"] = "text"
    """How `rollbot serve` writes its log lines (uvicorn's access and server lines
    included): ``text``, one readable line each, or ``json``, one JSON object each with the
    context fields (request id, service, action, action key, actor) as keys, for a log
    pipeline. ``--log-format`` overrides it. Text by default: the first reader of a new
    install is a person at a terminal; a cluster whose logs are collected sets ``json``."""

    @field_validator("public_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return check_http_url(value)

    @model_validator(mode="after")
    def _two_ports(self) -> ServerSettings:
        if self.internal_port == self.port:
            raise ValueError(
                f"internal_port ({self.internal_port}) must differ from port: leave it empty "
                "(null) to serve /metrics and the probes on port itself"
            )
        return self

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

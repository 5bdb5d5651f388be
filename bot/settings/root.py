"""`Settings`, the root model: every section and the service catalog, and the look-ups
across them (a service by name or by its Rollout, every service's alert matchers, a
service's runbook file).

`find_file` and `file_candidates` are where a relative path (a runbook) is looked for:
next to the config file, then in the working directory; the validation reports a missing
runbook with the same list.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from bot.core.alerts import AlertMatcher
from bot.core.errors import UnknownService
from bot.settings.catalog import ServiceName, ServiceSettings
from bot.settings.sections import (
    AlertmanagerSettings,
    DatabaseSettings,
    FlagsSettings,
    GitOpsSettings,
    IncidentsSettings,
    JiraSettings,
    KubernetesSettings,
    PagerDutySettings,
    PrometheusSettings,
    ReleasesSettings,
    ServerSettings,
    SlackSettings,
)


class Settings(BaseModel):
    """All of rollbot's settings. Build with `load_settings`."""

    model_config = ConfigDict(
        extra="forbid", use_attribute_docstrings=True, validate_assignment=True
    )

    slack: SlackSettings = Field(default_factory=SlackSettings)
    """Slack app credentials and endpoints."""

    kubernetes: KubernetesSettings = Field(default_factory=KubernetesSettings)
    """Kubernetes access and timeouts (the leader is elected in the database, not by a
    Kubernetes Lease: `server.leader_lease_seconds`)."""

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

    gitops: GitOpsSettings = Field(default_factory=GitOpsSettings)
    """Tier 3 executed: Git and code-host credentials (where, per service: `gitops`)."""

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
        return find_file(runbook, self._config_path)


def set_config_path(settings: Settings, path: Path | None) -> None:
    """Record the YAML file `settings` were read from (`Settings.config_path`).

    For `load_settings`, which validates first and knows the file's path.
    """
    settings._config_path = path


def find_file(relpath: str, config_path: Path | None) -> Path | None:
    """The first of `file_candidates` that is a file, or None."""
    for candidate in file_candidates(relpath, config_path):
        if candidate.is_file():
            return candidate
    return None


def file_candidates(relpath: str, config_path: Path | None) -> list[Path]:
    """Where `relpath` is looked for: itself if absolute, else next to the config file
    (when there is one), then in the working directory."""
    path = Path(relpath)
    if path.is_absolute():
        return [path]
    out = []
    if config_path is not None:
        out.append(config_path.parent / path)
    here = Path.cwd() / path
    if here not in out:  # the config file's folder is the working directory
        out.append(here)
    return out

"""Typed settings (one YAML file + the environment) and the service catalog.

`load_settings` reads them into `Settings`, raising `ConfigError` with every problem that
makes them unusable; `check_config` (``rollbot check-config``) returns every problem at
once, including those that only matter to ``rollbot serve``. Split by responsibility:

- `bot.settings.sections`: the top-level sections (server, slack, kubernetes, database,
  prometheus, alertmanager, incidents, pagerduty, jira, releases, flags), each field with
  the reason for its default;
- `bot.settings.catalog`: the service catalog, one `ServiceSettings` per service (its
  Rollout, channel, owners, PagerDuty, Jira, release schedule, flags, SLOs, GitOps,
  alerts, metrics);
- `bot.settings.root`: `Settings`, the root model holding them, and its look-ups;
- `bot.settings.sources`: where values come from and which wins (the YAML file,
  ``ROLLBOT_<SECTION>__<KEY>`` variables, ``*_FILE`` secret files); its docstring tells
  how variable names map to keys;
- `bot.settings.problems`: `ConfigProblem` and `ConfigError`;
- `bot.settings.validation`: `load_settings` and `check_config`.

Everything callers use is re-exported here: ``from bot.settings import Settings``.
"""

from bot.settings.catalog import (
    FlagSpec,
    OwnersSettings,
    ServiceAlerts,
    ServiceArgoApp,
    ServiceFlags,
    ServiceGitOps,
    ServiceJira,
    ServiceMetrics,
    ServiceName,
    ServicePagerDuty,
    ServiceRelease,
    ServiceSettings,
    ServiceSlo,
)
from bot.settings.problems import ConfigError, ConfigProblem
from bot.settings.root import Settings
from bot.settings.sections import (
    DATABASE_SCHEMES,
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
from bot.settings.sources import CONFIG_ENV, DEFAULT_CONFIG_FILE, ENV_PREFIX, FILE_SUFFIX
from bot.settings.validation import check_config, load_settings

__all__ = [
    "CONFIG_ENV",
    "DATABASE_SCHEMES",
    "DEFAULT_CONFIG_FILE",
    "ENV_PREFIX",
    "FILE_SUFFIX",
    "AlertmanagerSettings",
    "ConfigError",
    "ConfigProblem",
    "DatabaseSettings",
    "FlagSpec",
    "FlagsSettings",
    "GitOpsSettings",
    "IncidentsSettings",
    "JiraSettings",
    "KubernetesSettings",
    "OwnersSettings",
    "PagerDutySettings",
    "PrometheusSettings",
    "ReleasesSettings",
    "ServerSettings",
    "ServiceAlerts",
    "ServiceArgoApp",
    "ServiceFlags",
    "ServiceGitOps",
    "ServiceJira",
    "ServiceMetrics",
    "ServiceName",
    "ServicePagerDuty",
    "ServiceRelease",
    "ServiceSettings",
    "ServiceSlo",
    "Settings",
    "SlackSettings",
    "check_config",
    "load_settings",
]

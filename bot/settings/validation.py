"""From the gathered values to `Settings`, or to every problem at its key path.

``load_settings`` raises `ConfigError` listing every problem that makes the settings
unusable; ``check_config`` (``rollbot check-config``) returns every problem at once,
including those that only matter to ``rollbot serve`` (missing Slack secrets, missing
runbook files, nothing to watch, a flag provider or Jira without credentials, a link key
without ``server.public_url``).

Pydantic's errors are translated into `ConfigProblem`s (``services.payment-router.channel:
…``, with the environment variable that set the value); the cross-checks between sections
read the merged values as written, so one invalid service does not hide the problems of
the next.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr, ValidationError

from bot.settings.problems import ConfigError, ConfigProblem
from bot.settings.root import Settings, file_candidates, find_file, set_config_path
from bot.settings.sources import (
    CONFIG_ENV,
    DEFAULT_CONFIG_FILE,
    dict_value_of,
    env_name,
    gather,
    model_of,
)


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
        model = model_of(annotation)
        if model is not None:
            if part not in model.model_fields:
                return None
            annotation = model.model_fields[part].annotation
        elif (value_type := dict_value_of(annotation)) is not None:
            annotation = value_type
        else:
            return None
    return model_of(annotation)


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


def _readiness(
    data: Mapping[str, Any], config_path: Path | None, environ: Mapping[str, str]
) -> list[ConfigProblem]:
    """Problems that only matter to `rollbot serve` (reported by check_config). Those
    marked advisory leave a feature off or degraded; the others stop `serve`."""
    problems = []
    slack = _mapping(data.get("slack"))
    if slack.get("bot_token") is None:
        env = env_name(("slack", "bot_token"))
        problems.append(
            ConfigProblem("slack.bot_token", f"required to serve: set {env} or {env}_FILE")
        )
    if slack.get("signing_secret") is None and slack.get("app_token") is None:
        env = env_name(("slack", "signing_secret"))
        app = env_name(("slack", "app_token"))
        problems.append(
            ConfigProblem(
                "slack.signing_secret",
                f"required to serve: set {env} or {env}_FILE (Slack posts to /slack/events), "
                f"or {app} or {app}_FILE for Socket Mode",
            )
        )
    services = _raw_services(data)
    namespaces = _mapping(data.get("kubernetes")).get("namespaces")
    if namespaces is None:
        namespaces = [s["namespace"] for s in services.values() if s.get("namespace")]
    if not namespaces and config_path is None and not services:
        problems.append(
            ConfigProblem(
                "(config file)",
                f"none found: pass --config FILE, set {CONFIG_ENV}, or put "
                f"{DEFAULT_CONFIG_FILE} in the working directory",
            )
        )
    elif not namespaces:
        problems.append(
            ConfigProblem(
                "kubernetes.namespaces",
                "nothing to watch: add a service to `services` "
                "(or list namespaces in kubernetes.namespaces)",
            )
        )
    kubeconfig = _mapping(data.get("kubernetes")).get("kubeconfig")
    if isinstance(kubeconfig, str) and not Path(kubeconfig).expanduser().is_file():
        problems.append(ConfigProblem("kubernetes.kubeconfig", f"file not found: {kubeconfig}"))
    elif kubeconfig is None and environ.get("KUBECONFIG"):
        # What the Kubernetes client reads instead: a list of files, the missing skipped.
        listed = environ["KUBECONFIG"]
        paths = [Path(p).expanduser() for p in listed.split(os.pathsep) if p]
        if not any(p.is_file() for p in paths):
            problems.append(
                ConfigProblem(
                    "kubernetes.kubeconfig", f"file not found: {listed} (from KUBECONFIG)"
                )
            )
    problems += _token_shapes(slack)
    for name, svc in services.items():
        runbook = svc.get("runbook")
        if isinstance(runbook, str) and find_file(runbook, config_path) is None:
            looked = ", ".join(str(p) for p in file_candidates(runbook, config_path))
            problems.append(
                ConfigProblem(
                    f"services.{name}.runbook",
                    f"file not found (looked at {looked})",
                    advisory=True,
                )
            )
    flags = _mapping(data.get("flags"))
    if flags.get("provider") is None:
        for name, svc in services.items():
            circuit = _mapping(svc.get("flags")).get("circuit")
            if isinstance(circuit, dict):  # the long form: {key: …, owner: …}
                circuit = circuit.get("key")
            if isinstance(circuit, str) and circuit:
                problems.append(
                    ConfigProblem(
                        f"services.{name}.flags.circuit",
                        f"names the circuit breaker {circuit!r}, but flags.provider is not "
                        "set: rollbot cannot flip it (Tier 2 shows manual steps only); set "
                        "flags.provider (unleash or launchdarkly), flags.url and "
                        f"{env_name(('flags', 'api_token'))}",
                        advisory=True,
                    )
                )
    if flags.get("provider") is not None:
        for key in ("url", "api_token"):
            if flags.get(key) is None:
                problems.append(
                    ConfigProblem(
                        f"flags.{key}",
                        f"required when flags.provider is set (set {env_name(('flags', key))})",
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
                advisory=True,
            )
        )
    jira = _mapping(data.get("jira"))
    if jira.get("url") is not None:
        for key in ("email", "api_token"):
            if jira.get(key) is None:
                problems.append(
                    ConfigProblem(
                        f"jira.{key}",
                        f"required when jira.url is set (set {env_name(('jira', key))})",
                        # Without an email the token is sent as a Server/DC Bearer token.
                        advisory=key == "email",
                    )
                )
    return problems


#: What each Slack token starts with (https://api.slack.com/authentication/token-types).
_TOKEN_PREFIX = {
    "bot_token": ("xoxb-", "a bot token"),
    "app_token": ("xapp-", "an app-level token"),
}


def _token_shapes(slack: Mapping[str, Any]) -> list[ConfigProblem]:
    """Slack tokens with stray whitespace (a copied newline, a space), or of the wrong kind
    (a user token `xoxp-` where the bot token `xoxb-` belongs): Slack would refuse them at
    the first call, with `invalid_auth`, far from the cause."""
    problems = []
    for key in ("bot_token", "signing_secret", "app_token"):
        value = slack.get(key)
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if not isinstance(value, str):
            continue
        env = env_name(("slack", key))
        if value != value.strip() or any(ch.isspace() for ch in value):
            problems.append(
                ConfigProblem(f"slack.{key}", f"contains whitespace (check {env}): remove it")
            )
            continue
        expected = _TOKEN_PREFIX.get(key)
        if expected is not None and not value.startswith(expected[0]):
            kind = value.split("-", 1)[0] + "-" if "-" in value else "an unknown kind"
            problems.append(
                ConfigProblem(
                    f"slack.{key}",
                    f"must be {expected[1]} (starting {expected[0]}), not {kind} (check {env})",
                )
            )
    return problems


def load_settings(
    path: str | Path | None = None, *, environ: Mapping[str, str] | None = None
) -> Settings:
    """Read the YAML file and the environment into `Settings`.

    `path`: the YAML file; None means ``$ROLLBOT_CONFIG``, else ``./rollbot.yaml`` if it
    exists, else defaults only. `environ`: the environment (default ``os.environ``).
    Raises `ConfigError` listing every problem that makes the settings unusable; problems
    that only matter to ``serve`` are left to `check_config`.
    """
    gathered = gather(path, os.environ if environ is None else environ)
    problems = list(gathered.problems)
    try:
        settings = Settings.model_validate(gathered.data)
    except ValidationError as exc:
        problems += _from_validation(exc, gathered.origins)
        raise ConfigError(problems + _consistency(gathered.data)) from None
    problems += _consistency(gathered.data)
    if problems:
        raise ConfigError(problems)
    set_config_path(settings, gathered.config_path)
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
    the problems of the next. Empty list: all good. ``rollbot serve`` runs this first and
    stops on any problem not marked ``advisory`` (a missing runbook file, a circuit flag
    without a provider, a link key without ``server.public_url``, Jira without an email).
    """
    environ = os.environ if environ is None else environ
    gathered = gather(path, environ)
    problems = list(gathered.problems)
    try:
        Settings.model_validate(gathered.data)
    except ValidationError as exc:
        problems += _from_validation(exc, gathered.origins)
    problems += _consistency(gathered.data)
    problems += _readiness(gathered.data, gathered.config_path, environ)
    unique: dict[tuple[str, str], ConfigProblem] = {}
    for problem in problems:
        unique.setdefault((problem.key_path, problem.message), problem)
    return list(unique.values())

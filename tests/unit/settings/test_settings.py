"""Settings: loading, precedence, secrets and the problems check_config reports.

Aspects:
- YAML load: every section, the service catalog as DESIGN.md writes it, defaults;
- config file choice: explicit path, $ROLLBOT_CONFIG, ./rollbot.yaml, none; missing file;
- env overrides ROLLBOT_<SECTION>__<KEY>: win over YAML, case-insensitive, nested keys,
  dashed service names, lists, JSON mappings, empty means null, non-settings ignored;
- namespaces derived from the services unless set;
- *_FILE variants read secrets from files; both set is an error;
- secrets in the YAML rejected with the env/file names to use;
- server.link_secret: one key or several comma-separated (rotation), the first signing
  first in `link_keys()`; a value holding no key is a problem;
- every problem reported at once, each with its key path; unknown keys caught (YAML and env),
  the retired Kubernetes Lease settings among them;
- Slack's way in: the signing secret (HTTP) or the app-level token (Socket Mode, also from
  ``ROLLBOT_SLACK__APP_TOKEN_FILE``), either or both; neither is a problem naming both;
  an app token not ``xapp-`` is refused;
- semantic checks: Slack secrets for serve, runbook files, channel format, namespaces,
  SLO ranges, duplicate rollout targets, database URL scheme, an action recovery delay
  longer than the verify timeout, an internal port apart from the public one (or none);
- secrets absent from repr/str and from problem messages;
- Settings.service raises UnknownService listing the known services;
- alert routing, incident, metrics and GitOps keys: defaults, loading, env override, the
  default and explicit alert matchers, literal {job}/{version} query templates, checks.
"""

from __future__ import annotations

import textwrap
from datetime import date
from pathlib import Path

import pytest

from bot.core.errors import UnknownService
from bot.core.flags import FlagInfo
from bot.settings import (
    ConfigError,
    ConfigProblem,
    ServiceFlags,
    Settings,
    check_config,
    load_settings,
)

FLAGS_SECTION = 'flags: {provider: unleash, url: "http://unleash.example:4242"}\n'
CATALOG = (
    FLAGS_SECTION
    + """services:
  payment-router:
    namespace: payments
    rollout: payment-router
    channel: "#payments-deploys"
    runbook: runbooks/payment-router.md
    owners: {slack_usergroup: S0PAYMENTS, jira_assignee: payments-lead@example.com}
    pagerduty: {service_id: PSVC123, escalation_policy_id: PESC123}
    jira: {project: PAY}
    flags:
      release: payments.new-router.enabled
      experiment: payments.dynamic-currency.enabled
      circuit: payments.new-router.circuit-open
    slo: {error_rate: 0.02, latency_p95_ms: 300, latency_p99_ms: 200}
    gitops: {repo: git@example.com:platform/configs.git, path: services/payment-router}
"""
)

SECRETS = {
    "ROLLBOT_SLACK__BOT_TOKEN": "xoxb-very-secret",
    "ROLLBOT_SLACK__SIGNING_SECRET": "signing-very-secret",
    "ROLLBOT_FLAGS__API_TOKEN": "unleash-admin-very-secret",
}


def write(tmp_path: Path, text: str, name: str = "rollbot.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture(autouse=True)
def isolated_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No ./rollbot.yaml or ./runbooks of the repository leaks into a test."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def catalog(tmp_path: Path) -> Path:
    (tmp_path / "runbooks").mkdir()
    (tmp_path / "runbooks" / "payment-router.md").write_text("# payment-router\n")
    return write(tmp_path, CATALOG)


def paths(problems: list[ConfigProblem]) -> list[str]:
    return [p.key_path for p in problems]


# ----------------------------------------------------------------------------- loading


def test_yaml_catalog_loads_as_written(catalog: Path) -> None:
    settings = load_settings(catalog, environ={})
    svc = settings.service("payment-router")
    assert (svc.namespace, svc.rollout, svc.channel) == (
        "payments",
        "payment-router",
        "#payments-deploys",
    )
    assert svc.owners.slack_usergroup == "S0PAYMENTS"
    assert svc.owners.jira_assignee == "payments-lead@example.com"
    assert svc.pagerduty.service_id == "PSVC123"
    assert svc.pagerduty.escalation_policy_id == "PESC123"
    assert svc.jira.project == "PAY"
    assert svc.flags.circuit == "payments.new-router.circuit-open"
    assert svc.flags.release == "payments.new-router.enabled"
    assert svc.flags.experiment == "payments.dynamic-currency.enabled"
    assert (svc.slo.error_rate, svc.slo.latency_p95_ms, svc.slo.latency_p99_ms) == (0.02, 300, 200)
    assert svc.gitops.path == "services/payment-router"
    assert settings.config_path == catalog.resolve()
    assert settings.runbook_path("payment-router") == catalog.parent / "runbooks/payment-router.md"


def test_defaults_without_any_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(environ={})
    assert settings.config_path is None
    assert settings.slack.api_url == "https://slack.com/api/"
    assert settings.slack.command == "/rollback"
    assert settings.slack.bot_token is None
    assert settings.database.url == "sqlite:///rollbot.db"
    assert settings.kubernetes.verify_timeout_seconds == 30
    assert settings.kubernetes.namespaces == []
    assert (settings.server.host, settings.server.port) == ("0.0.0.0", 8080)
    assert settings.server.internal_port == 9090
    assert settings.services == {}


def test_only_namespace_rollout_and_channel_are_required(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        services:
          fx-rates: {namespace: payments, rollout: fx-rates, channel: C0123456789}
        """,
    )
    svc = load_settings(path, environ={}).service("fx-rates")
    assert svc.runbook is None and svc.flags.circuit is None and svc.slo.error_rate is None


def test_config_file_choice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "slack: {command: /from-cwd}")
    other = write(tmp_path, "slack: {command: /from-env}", name="other.yaml")
    explicit = write(tmp_path, "slack: {command: /explicit}", name="explicit.yaml")
    assert load_settings(environ={}).slack.command == "/from-cwd"
    assert load_settings(environ={"ROLLBOT_CONFIG": str(other)}).slack.command == "/from-env"
    env = {"ROLLBOT_CONFIG": str(other)}
    assert load_settings(explicit, environ=env).slack.command == "/explicit"


def test_missing_config_file_is_a_problem(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={"ROLLBOT_CONFIG": str(missing)})
    assert caught.value.problems == [
        ConfigProblem(str(missing), "config file not found (from ROLLBOT_CONFIG)")
    ]


def test_invalid_yaml_reports_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "slack:\n  command: [unclosed\n")
    (problem,) = check_config(path, environ=SECRETS)[:1]
    assert problem.key_path == str(path.resolve())
    assert "not valid YAML at line" in problem.message


# ----------------------------------------------------------------------------- environment


def test_env_wins_over_yaml_and_keeps_the_other_keys(catalog: Path) -> None:
    settings = load_settings(
        catalog,
        environ={
            "ROLLBOT_SLACK__API_URL": "http://127.0.0.1:9999/api",
            "ROLLBOT_DATABASE__URL": "sqlite+aiosqlite:///tmp/x.db",
            "ROLLBOT_SERVICES__PAYMENT_ROUTER__CHANNEL": "#payments-incidents",
        },
    )
    assert settings.slack.api_url == "http://127.0.0.1:9999/api/"  # trailing slash added
    assert settings.database.url == "sqlite+aiosqlite:///tmp/x.db"
    svc = settings.service("payment-router")
    assert svc.channel == "#payments-incidents"
    assert svc.rollout == "payment-router"  # the rest of the YAML entry is kept


def test_env_names_are_case_insensitive(tmp_path: Path) -> None:
    settings = load_settings(
        write(tmp_path, ""),
        environ={"rollbot_server__port": "9091", "Rollbot_Jira__Url": "https://j.example.com"},
    )
    assert settings.server.port == 9091
    assert settings.jira.url == "https://j.example.com"


def test_nested_keys_and_new_services_from_env(catalog: Path) -> None:
    settings = load_settings(
        catalog,
        environ={
            "ROLLBOT_SERVICES__PAYMENT_ROUTER__OWNERS__SLACK_USERGROUP": "S0OTHER",
            "ROLLBOT_SERVICES__PAYMENT_ROUTER__SLO__LATENCY_P99_MS": "250",
            "ROLLBOT_SERVICES__FX_RATES__NAMESPACE": "fx",
            "ROLLBOT_SERVICES__FX_RATES__ROLLOUT": "fx-rates",
            "ROLLBOT_SERVICES__FX_RATES__CHANNEL": "#fx",
            "ROLLBOT_SERVICES__FX_RATES__FLAGS": '{"circuit": "fx.circuit-open"}',
        },
    )
    pr = settings.service("payment-router")
    assert pr.owners.slack_usergroup == "S0OTHER"
    assert pr.owners.jira_assignee == "payments-lead@example.com"
    assert pr.slo.latency_p99_ms == 250
    fx = settings.service("fx-rates")  # FX_RATES -> fx-rates
    assert (fx.namespace, fx.rollout, fx.flags.circuit) == ("fx", "fx-rates", "fx.circuit-open")


def test_lists_from_env_json_or_commas(catalog: Path) -> None:
    for value in ("payments, fx", '["payments", "fx"]'):
        settings = load_settings(catalog, environ={"ROLLBOT_KUBERNETES__NAMESPACES": value})
        assert settings.kubernetes.namespaces == ["payments", "fx"]


def test_namespaces_derived_from_services_unless_set(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        services:
          a: {namespace: payments, rollout: a, channel: "#a"}
          b: {namespace: fx, rollout: b, channel: "#b"}
          c: {namespace: payments, rollout: c, channel: "#c"}
        """,
    )
    assert load_settings(path, environ={}).kubernetes.namespaces == ["fx", "payments"]
    env = {"ROLLBOT_KUBERNETES__NAMESPACES": "payments,fx,extra"}
    assert load_settings(path, environ=env).kubernetes.namespaces == ["payments", "fx", "extra"]


def test_empty_env_value_unsets(catalog: Path) -> None:
    settings = load_settings(catalog, environ={"ROLLBOT_SERVICES__PAYMENT_ROUTER__RUNBOOK": ""})
    assert settings.service("payment-router").runbook is None


def test_env_without_double_underscore_is_not_a_setting(catalog: Path) -> None:
    env = {"ROLLBOT_REQUIRE_PEERS": "1", "ROLLBOT_CONFIG": str(catalog), **SECRETS}
    assert check_config(environ=env) == []


def test_unknown_env_key_is_caught(catalog: Path) -> None:
    problems = check_config(
        catalog, environ={**SECRETS, "ROLLBOT_SLACK__BOT_TOKN": "x", "ROLLBOT_SLAK__URL": "y"}
    )
    assert paths(problems) == ["slack.bot_tokn", "slak"]
    assert "(from ROLLBOT_SLACK__BOT_TOKN)" in problems[0].message
    assert "bot_token" in problems[0].message  # lists the known keys


def test_the_retired_kubernetes_lease_settings_are_unknown(catalog: Path) -> None:
    """The leader is elected in the database: a Deployment that still sets the Kubernetes
    Lease's namespace (as the shipped one once did) is told so, not silently ignored."""
    retired = ("LEASE_NAME", "LEASE_NAMESPACE", "LEASE_DURATION_SECONDS")
    problems = check_config(
        catalog, environ={**SECRETS, **{f"ROLLBOT_KUBERNETES__{k}": "x" for k in retired}}
    )
    assert sorted(paths(problems)) == sorted(f"kubernetes.{k.lower()}" for k in retired)
    assert all("unknown key" in p.message for p in problems)


def test_env_value_errors_name_the_variable(catalog: Path) -> None:
    problems = check_config(catalog, environ={**SECRETS, "ROLLBOT_SERVER__PORT": "http"})
    assert paths(problems) == ["server.port"]
    assert problems[0].message.endswith("(from ROLLBOT_SERVER__PORT)")


# ----------------------------------------------------------------------------- secrets


def test_secrets_from_env(catalog: Path) -> None:
    settings = load_settings(catalog, environ=SECRETS)
    assert settings.slack.bot_token is not None
    assert settings.slack.bot_token.get_secret_value() == "xoxb-very-secret"
    assert settings.slack.signing_secret is not None
    assert settings.slack.signing_secret.get_secret_value() == "signing-very-secret"


def test_secrets_from_files(catalog: Path, tmp_path: Path) -> None:
    token = tmp_path / "bot-token"
    token.write_text("xoxb-from-file\n")
    db = tmp_path / "db-url"
    db.write_text("postgresql+psycopg://rollbot:pw@db/rollbot\n")
    settings = load_settings(
        catalog,
        environ={
            "ROLLBOT_SLACK__BOT_TOKEN_FILE": str(token),
            "ROLLBOT_DATABASE__URL_FILE": str(db),
        },
    )
    assert settings.slack.bot_token is not None
    assert settings.slack.bot_token.get_secret_value() == "xoxb-from-file"
    assert settings.database.url == "postgresql+psycopg://rollbot:pw@db/rollbot"


def test_secret_file_problems(catalog: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("\n")
    problems = check_config(
        catalog,
        environ={
            "ROLLBOT_SLACK__BOT_TOKEN": "xoxb-a",
            "ROLLBOT_SLACK__BOT_TOKEN_FILE": str(empty),
            "ROLLBOT_SLACK__SIGNING_SECRET_FILE": str(tmp_path / "missing"),
            "ROLLBOT_PAGERDUTY__API_TOKEN_FILE": str(empty),
        },
    )
    by_path: dict[str, str] = {}
    for p in problems:
        by_path[p.key_path] = by_path.get(p.key_path, "") + p.message + "\n"
    assert "is empty" in by_path["slack.bot_token"]
    assert "cannot read" in by_path["slack.signing_secret"]
    assert "required to serve" in by_path["slack.signing_secret"]  # and so it is still missing
    assert "is empty" in by_path["pagerduty.api_token"]


def test_value_and_file_both_set_is_an_error(catalog: Path, tmp_path: Path) -> None:
    token = tmp_path / "t"
    token.write_text("xoxb-b")
    env = {**SECRETS, "ROLLBOT_SLACK__BOT_TOKEN_FILE": str(token)}
    problems = check_config(catalog, environ=env)
    assert paths(problems) == ["slack.bot_token"]
    assert "ROLLBOT_SLACK__BOT_TOKEN" in problems[0].message
    assert "ROLLBOT_SLACK__BOT_TOKEN_FILE" in problems[0].message


def test_secrets_in_yaml_are_rejected(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        slack: {bot_token: xoxb-in-yaml, signing_secret: null}
        pagerduty: {webhook_secret: whsec}
        database: {url: "postgresql://rollbot:hunter2@db/rollbot"}
        """,
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={})
    problems = caught.value.problems
    assert problems[0] == ConfigProblem(
        "slack.bot_token",
        "secrets must come from the environment (ROLLBOT_SLACK__BOT_TOKEN) "
        "or a file (ROLLBOT_SLACK__BOT_TOKEN_FILE), not the YAML file",
    )
    assert paths(problems) == ["slack.bot_token", "pagerduty.webhook_secret", "database.url"]
    text = str(caught.value)
    assert "xoxb-in-yaml" not in text and "whsec" not in text and "hunter2" not in text


def test_link_secret_holds_one_key_or_several_the_first_signs(catalog: Path) -> None:
    rotating = {**SECRETS, "ROLLBOT_SERVER__LINK_SECRET": " new-key , old-key "}
    assert load_settings(catalog, environ=rotating).server.link_keys() == [
        b"new-key",
        b"old-key",
    ]
    single = {**SECRETS, "ROLLBOT_SERVER__LINK_SECRET": "only-key"}
    assert load_settings(catalog, environ=single).server.link_keys() == [b"only-key"]
    assert load_settings(catalog, environ=SECRETS).server.link_keys() == []  # links off
    empty = {**SECRETS, "ROLLBOT_SERVER__LINK_SECRET": " , "}
    problems = check_config(catalog, environ=empty)
    assert "server.link_secret" in paths(problems)
    assert "holds no key" in next(p.message for p in problems if p.key_path == "server.link_secret")


def test_secrets_never_in_repr_or_str(catalog: Path) -> None:
    settings = load_settings(
        catalog,
        environ={**SECRETS, "ROLLBOT_DATABASE__URL": "postgresql://rollbot:hunter2@db/rollbot"},
    )
    for text in (
        repr(settings),
        str(settings),
        repr(settings.slack),
        str(settings.slack.bot_token),
    ):
        assert "very-secret" not in text
        assert "hunter2" not in text


def test_secrets_not_echoed_in_problems(catalog: Path) -> None:
    problems = check_config(catalog, environ={"ROLLBOT_SLACK__BOT_TOKEN__X": "xoxb-very-secret"})
    assert problems
    assert all("very-secret" not in str(p) for p in problems)


# ----------------------------------------------------------------------------- problems


def test_valid_catalog_with_secrets_has_no_problems(catalog: Path) -> None:
    assert check_config(catalog, environ=SECRETS) == []


def test_every_problem_reported_at_once_with_its_key_path(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        slack: {fallback_channel: general}
        kubernetes: {request_timeout_seconds: -1}
        database: {url: "mysql://db/rollbot"}
        services:
          payment-router:
            namespace: payments
            rollout: payment-router
            channel: payments-deploys
            runbook: runbooks/payment-router.md
            slo: {error_rate: 2, latency_p95_ms: 0.3, latency_p99_ms: 200}
            ownrs: {slack_usergroup: S0PAYMENTS}
          fx-rates:
            namespace: payments
            rollout: payment-router
            channel: #fx-rates
          checkout:
            namespace: Payments
            rollout: checkout
        """,
    )
    problems = check_config(path, environ={})
    assert set(paths(problems)) >= {
        "slack.fallback_channel",
        "kubernetes.request_timeout_seconds",
        "database.url",
        "services.payment-router.channel",
        "services.payment-router.slo.error_rate",
        "services.payment-router.slo.latency_p95_ms",
        "services.payment-router.ownrs",
        "services.payment-router.runbook",
        "services.fx-rates.channel",
        "services.fx-rates.rollout",
        "services.checkout.namespace",
        "services.checkout.channel",
        "slack.bot_token",
        "slack.signing_secret",
    }
    by_path = {p.key_path: p.message for p in problems}
    assert "unknown database URL scheme 'mysql'" in by_path["database.url"]
    assert "'#'" in by_path["services.payment-router.channel"]
    assert "quote" in by_path["services.fx-rates.channel"]  # unquoted '#' is a YAML comment
    assert "payment-router" in by_path["services.fx-rates.rollout"]  # names the other service
    assert "0.02 means 2 %" in by_path["services.payment-router.slo.error_rate"]
    assert "milliseconds" in by_path["services.payment-router.slo.latency_p95_ms"]
    assert "file not found" in by_path["services.payment-router.runbook"]
    assert by_path["services.checkout.channel"] == "required key is missing"
    assert "ROLLBOT_SLACK__BOT_TOKEN_FILE" in by_path["slack.bot_token"]


def test_load_settings_raises_with_every_problem(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        database: {url: "postgres://db/rollbot"}
        services:
          a: {namespace: payments, rollout: a, channel: "#a", colour: blue}
          b: {namespace: payments, rollout: b, channel: nope}
        """,
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={})
    assert paths(caught.value.problems) == [
        "database.url",
        "services.a.colour",
        "services.b.channel",
    ]
    assert "postgresql://" in caught.value.problems[0].message
    assert "3 configuration problem(s)" in str(caught.value)


def test_action_recovery_must_outlast_the_verify_timeout(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        kubernetes: {verify_timeout_seconds: 30, action_recovery_seconds: 20}
        """,
        name="recovery.yaml",
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={})
    assert paths(caught.value.problems) == ["kubernetes"]
    assert "action_recovery_seconds (20) must exceed verify_timeout_seconds (30)" in (
        caught.value.problems[0].message
    )
    assert load_settings(environ={}).kubernetes.action_recovery_seconds == 300


def test_the_internal_port_is_apart_from_the_public_one_or_none(tmp_path: Path) -> None:
    path = write(tmp_path, "server: {port: 8080, internal_port: 8080}\n", name="ports.yaml")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={})
    assert paths(caught.value.problems) == ["server"]
    assert "internal_port (8080) must differ from port" in caught.value.problems[0].message
    # Empty: no internal listener, /metrics and the probes on the public port.
    unset = load_settings(path, environ={"ROLLBOT_SERVER__INTERNAL_PORT": ""})
    assert (unset.server.port, unset.server.internal_port) == (8080, None)
    moved = load_settings(path, environ={"ROLLBOT_SERVER__INTERNAL_PORT": "9100"})
    assert moved.server.internal_port == 9100


def test_unknown_keys_are_caught_everywhere(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        slak: {}
        slack: {bot_tokn: x}
        services:
          a:
            namespace: payments
            rollout: a
            channel: "#a"
            flags: {circuit_breaker: x}
        """,
    )
    problems = check_config(path, environ=SECRETS)
    assert sorted(paths(problems)) == ["services.a.flags.circuit_breaker", "slack.bot_tokn", "slak"]
    by_path = {p.key_path: p.message for p in problems}
    assert "known keys: circuit, experiment, release" in by_path["services.a.flags.circuit_breaker"]


FLAG_MAPPINGS = """
    services:
      a:
        namespace: payments
        rollout: a
        channel: "#a"
        flags:
          release:
            key: payments.new-router.enabled
            owner: payments team
            description: traffic through the new routing engine
            created: 2026-10-01
            remove_after: 2026-12-21
          experiment: payments.dynamic-currency.enabled
          circuit: {key: payments.new-router.circuit-open, owner: payments on-call,
                    created: "2026-10-01", remove_after: null}
    """


def test_flags_accept_a_key_or_a_mapping_with_metadata(tmp_path: Path) -> None:
    flags = load_settings(write(tmp_path, FLAG_MAPPINGS), environ=SECRETS).service("a").flags
    # the roles stay the keys: the circuit breaker, cards and sim read them as strings
    assert flags.release == "payments.new-router.enabled"
    assert flags.experiment == "payments.dynamic-currency.enabled"
    assert flags.circuit == "payments.new-router.circuit-open"
    assert flags.entries() == [
        FlagInfo(
            role="release",
            key="payments.new-router.enabled",
            type="release toggle",
            owner="payments team",
            description="traffic through the new routing engine",
            created=date(2026, 10, 1),
            remove_after=date(2026, 12, 21),
        ),
        FlagInfo(
            role="experiment", key="payments.dynamic-currency.enabled", type="experiment toggle"
        ),
        FlagInfo(
            role="circuit",
            key="payments.new-router.circuit-open",
            type="ops toggle (circuit breaker)",
            owner="payments on-call",
            created=date(2026, 10, 1),
        ),
    ]


def test_flags_entries_skip_unset_roles() -> None:
    assert ServiceFlags().entries() == []
    flags = ServiceFlags(circuit="x.open")
    assert [(e.role, e.key, e.owner) for e in flags.entries()] == [("circuit", "x.open", None)]


def test_flag_mapping_problems_name_their_key_path(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        services:
          a:
            namespace: payments
            rollout: a
            channel: "#a"
            flags:
              release: {key: r, ownr: me, type: release toggle}
              experiment: {key: e, created: 2026-10-01, remove_after: 2026-09-30}
              circuit: {owner: payments on-call, created: soon}
        """,
    )
    problems = check_config(path, environ=SECRETS)
    by_path = {p.key_path: p.message for p in problems}
    assert sorted(by_path) == [
        "services.a.flags.circuit.created",
        "services.a.flags.circuit.key",
        "services.a.flags.experiment.remove_after",
        "services.a.flags.release.ownr",
        "services.a.flags.release.type",
    ]
    known = "known keys: created, description, key, owner, remove_after"
    assert known in by_path["services.a.flags.release.ownr"]
    assert "implied by the role" in by_path["services.a.flags.release.type"]
    assert by_path["services.a.flags.experiment.remove_after"] == (
        "2026-09-30 is before created (2026-10-01)"
    )
    assert by_path["services.a.flags.circuit.key"] == "required key is missing"


def test_example_config_shows_the_flag_mapping_form() -> None:
    example = Path(__file__).resolve().parents[3] / "rollbot.example.yaml"
    (fx,) = load_settings(example, environ=SECRETS).service("fx-rates").flags.entries()
    assert (fx.role, fx.key, fx.owner, fx.remove_after) == (
        "circuit",
        "payments.fx-rates.circuit-open",
        "payments on-call",
        None,
    )


def test_service_names_must_be_kubernetes_like(tmp_path: Path) -> None:
    path = write(
        tmp_path, 'services:\n  Payment_Router: {namespace: p, rollout: p, channel: "#p"}\n'
    )
    problems = check_config(path, environ=SECRETS)
    assert paths(problems) == ["services.Payment_Router"]
    assert "lowercase letters, digits and dashes" in problems[0].message


def test_duplicate_rollout_targets_fail_loading(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        services:
          a: {namespace: payments, rollout: router, channel: "#a"}
          b: {namespace: payments, rollout: router, channel: "#b"}
        """,
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={})
    assert paths(caught.value.problems) == ["services.b.rollout"]


def test_namespaces_empty_or_not_covering_services(tmp_path: Path) -> None:
    empty = write(tmp_path, "", name="empty.yaml")
    assert "kubernetes.namespaces" in paths(check_config(empty, environ=SECRETS))
    path = write(
        tmp_path,
        """
        kubernetes: {namespaces: [fx]}
        services:
          a: {namespace: payments, rollout: a, channel: "#a"}
        """,
    )
    problems = check_config(path, environ=SECRETS)
    assert paths(problems) == ["services.a.namespace"]


def test_flag_provider_and_jira_need_credentials(catalog: Path) -> None:
    catalog.write_text(CATALOG.replace(FLAGS_SECTION, ""))
    env = {
        **{k: v for k, v in SECRETS.items() if not k.startswith("ROLLBOT_FLAGS__")},
        "ROLLBOT_FLAGS__PROVIDER": "unleash",
        "ROLLBOT_JIRA__URL": "https://j.example.com",
    }
    problems = check_config(catalog, environ=env)
    assert paths(problems) == ["flags.url", "flags.api_token", "jira.email", "jira.api_token"]
    bad = check_config(catalog, environ={**env, "ROLLBOT_FLAGS__PROVIDER": "optimizely"})
    assert paths(bad) == [
        "flags.provider",
        "flags.url",
        "flags.api_token",
        "jira.email",
        "jira.api_token",
    ]


def test_runbook_found_relative_to_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conf_dir = tmp_path / "etc"
    conf_dir.mkdir()
    path = write(conf_dir, CATALOG)
    assert paths(check_config(path, environ=SECRETS)) == ["services.payment-router.runbook"]
    (tmp_path / "runbooks").mkdir()
    (tmp_path / "runbooks" / "payment-router.md").write_text("# runbook\n")
    monkeypatch.chdir(tmp_path)
    assert check_config(path, environ=SECRETS) == []
    found = load_settings(path, environ={}).runbook_path("payment-router")
    assert found == tmp_path / "runbooks" / "payment-router.md"


# ----------------------------------------------------------------------------- catalog


def test_unknown_service_lists_the_known_ones(catalog: Path) -> None:
    settings = load_settings(catalog, environ={})
    with pytest.raises(UnknownService) as caught:
        settings.service("payment-routr")
    assert caught.value.known == ["payment-router"]
    assert "`payment-router`" in caught.value.message


def test_service_for_rollout(catalog: Path) -> None:
    settings = load_settings(catalog, environ={})
    assert settings.service_for_rollout("payments", "payment-router") == "payment-router"
    assert settings.service_for_rollout("other", "payment-router") is None


def test_every_field_is_documented() -> None:
    from pydantic import BaseModel

    def walk(model: type[BaseModel]) -> None:
        for name, info in model.model_fields.items():
            assert info.description, f"{model.__name__}.{name} has no docstring"
            for sub in (info.annotation, *getattr(info.annotation, "__args__", ())):
                if isinstance(sub, type) and issubclass(sub, BaseModel):
                    walk(sub)

    walk(Settings)


# ----------------------------------------------------------------------------- issue 3 keys


def test_alert_incident_metric_and_gitops_defaults(catalog: Path) -> None:
    settings = load_settings(catalog, environ={})
    assert settings.alertmanager.unknown_notice_interval_seconds == 3600
    assert settings.incidents.quiet_period_seconds == 300
    assert settings.prometheus.graph_url is None
    assert settings.prometheus.graph_base_url is None
    svc = settings.service("payment-router")
    assert svc.gitops.sha_annotation == "rollbot.io/git-sha"
    assert svc.alerts.match is None
    assert (svc.metrics.job, svc.metrics.error_rate) == (None, None)
    assert (svc.metrics.latency_p95_ms, svc.metrics.latency_p99_ms) == (None, None)


def test_alert_incident_metric_and_gitops_keys_load(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        prometheus:
          url: http://prometheus.monitoring.svc:9090
          graph_url: https://prometheus.example.com
        alertmanager: {unknown_notice_interval_seconds: 600}
        incidents: {quiet_period_seconds: 120}
        services:
          payment-router:
            namespace: payments
            rollout: payment-router
            channel: "#payments-deploys"
            alerts: {match: {team: payments, component: router}}
            metrics:
              job: payment-router-http
              error_rate: >-
                sum(rate(http_requests_total{job="{job}",version="{version}",code=~"5.."}[1m]))
                / sum(rate(http_requests_total{job="{job}",version="{version}"}[1m]))
            gitops: {sha_annotation: ci.example.com/commit}
        """,
    )
    settings = load_settings(path, environ={"ROLLBOT_INCIDENTS__QUIET_PERIOD_SECONDS": "60"})
    assert settings.prometheus.graph_base_url == "https://prometheus.example.com"
    assert settings.alertmanager.unknown_notice_interval_seconds == 600
    assert settings.incidents.quiet_period_seconds == 60  # the environment wins
    svc = settings.service("payment-router")
    assert svc.alerts.match == {"team": "payments", "component": "router"}
    assert svc.gitops.sha_annotation == "ci.example.com/commit"
    assert svc.metrics.job == "payment-router-http"
    assert svc.metrics.error_rate is not None
    from bot.adapters.prometheus import render

    query = render(svc.metrics.error_rate, job="payment-router-http", version="canary")
    assert query == (
        'sum(rate(http_requests_total{job="payment-router-http",version="canary",code=~"5.."}'
        '[1m])) / sum(rate(http_requests_total{job="payment-router-http",version="canary"}[1m]))'
    )


def test_graph_url_defaults_to_the_prometheus_url(tmp_path: Path) -> None:
    path = write(tmp_path, "prometheus: {url: 'http://prom:9090'}")
    assert load_settings(path, environ={}).prometheus.graph_base_url == "http://prom:9090"


def test_alert_matchers_default_and_explicit(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        services:
          payment-router: {namespace: payments, rollout: router-v2, channel: "#pay"}
          fx-rates:
            namespace: payments
            rollout: fx-rates
            channel: "#pay"
            alerts: {match: {team: fx}}
        """,
    )
    matchers = load_settings(path, environ={}).alert_matchers()
    assert [dict(m.equal) for m in matchers["payment-router"]] == [
        {"service": "payment-router"},
        {"service": "router-v2"},
        {"app": "payment-router"},
        {"app": "router-v2"},
        {"rollout": "payment-router"},
        {"rollout": "router-v2"},
    ]
    assert all(
        dict(m.equal_if_present) == {"namespace": "payments"} for m in matchers["payment-router"]
    )
    assert [(dict(m.equal), dict(m.equal_if_present)) for m in matchers["fx-rates"]] == [
        ({"team": "fx"}, {})
    ]


def test_issue_3_keys_are_checked(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        prometheus: {graph_url: not-a-url}
        alertmanager: {unknown_notice_interval_seconds: -1}
        incidents: {quiet_period_seconds: -5}
        services:
          payment-router:
            namespace: payments
            rollout: payment-router
            channel: "#pay"
            alerts: {match: {}}
            metrics: {error_rate: 'sum(rate(errors{job="{job}"}[1m]))'}
        """,
    )
    problems = {p.key_path: p.message for p in check_config(path, environ={})}
    assert "not-a-url" in problems["prometheus.graph_url"]
    assert "alertmanager.unknown_notice_interval_seconds" in problems
    assert "incidents.quiet_period_seconds" in problems
    assert "would match every alert" in problems["services.payment-router.alerts.match"]
    assert "{version}" in problems["services.payment-router.metrics.error_rate"]


# ------------------------------------------------ what check-config also catches (issue 14)


def test_a_secret_nested_under_a_service_in_the_yaml_is_refused(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        services:
          payment-router:
            namespace: payments
            rollout: payment-router
            channel: "#payments-deploys"
            pagerduty: {service_id: PSVC123, routing_key: R0SECRETROUTINGKEY}
        """,
    )
    problems = check_config(path, environ=SECRETS)
    assert (
        ConfigProblem(
            "services.payment-router.pagerduty.routing_key",
            "secrets must come from the environment "
            "(ROLLBOT_SERVICES__PAYMENT_ROUTER__PAGERDUTY__ROUTING_KEY) or a file "
            "(ROLLBOT_SERVICES__PAYMENT_ROUTER__PAGERDUTY__ROUTING_KEY_FILE), not the YAML file",
        )
        in problems
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ=SECRETS)
    assert "R0SECRETROUTINGKEY" not in str(caught.value)
    # the environment variable it names is the one that sets it
    env = {**SECRETS, "ROLLBOT_SERVICES__PAYMENT_ROUTER__PAGERDUTY__ROUTING_KEY": "R0KEY"}
    path.write_text(path.read_text().replace(", routing_key: R0SECRETROUTINGKEY", ""))
    routing = load_settings(path, environ=env).service("payment-router").pagerduty.routing_key
    assert routing is not None and routing.get_secret_value() == "R0KEY"


def test_a_kubeconfig_that_does_not_exist_is_named(catalog: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "kubeconfig"
    problems = check_config(
        catalog, environ={**SECRETS, "ROLLBOT_KUBERNETES__KUBECONFIG": str(missing)}
    )
    assert problems == [ConfigProblem("kubernetes.kubeconfig", f"file not found: {missing}")]
    there = tmp_path / "kubeconfig"
    there.write_text("apiVersion: v1\n")
    assert (
        check_config(catalog, environ={**SECRETS, "ROLLBOT_KUBERNETES__KUBECONFIG": str(there)})
        == []
    )


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("xoxb-1-2-abc\n", "contains whitespace (check ROLLBOT_SLACK__BOT_TOKEN): remove it"),
        (" xoxb-1-2-abc", "contains whitespace (check ROLLBOT_SLACK__BOT_TOKEN): remove it"),
        ("xoxb-1 2", "contains whitespace (check ROLLBOT_SLACK__BOT_TOKEN): remove it"),
        (
            "xoxp-1-2-abc",
            "must be a bot token (starting xoxb-), not xoxp- (check ROLLBOT_SLACK__BOT_TOKEN)",
        ),
        (
            "abc",
            "must be a bot token (starting xoxb-), not an unknown kind "
            "(check ROLLBOT_SLACK__BOT_TOKEN)",
        ),
    ],
)
def test_a_slack_token_with_stray_whitespace_or_of_the_wrong_kind(
    catalog: Path, token: str, message: str
) -> None:
    problems = check_config(catalog, environ={**SECRETS, "ROLLBOT_SLACK__BOT_TOKEN": token})
    assert problems == [ConfigProblem("slack.bot_token", message)]
    assert token.strip() not in str(problems)


def test_a_token_file_keeps_working_with_its_one_trailing_newline(
    catalog: Path, tmp_path: Path
) -> None:
    token = tmp_path / "bot-token"
    token.write_text("xoxb-1-2-abc\n")
    env = {k: v for k, v in SECRETS.items() if k != "ROLLBOT_SLACK__BOT_TOKEN"}
    assert check_config(catalog, environ={**env, "ROLLBOT_SLACK__BOT_TOKEN_FILE": str(token)}) == []


def test_socket_mode_needs_the_app_token_and_no_signing_secret(
    catalog: Path, tmp_path: Path
) -> None:
    token = tmp_path / "app-token"
    token.write_text("xapp-1-A0ROLLBOT-1-abc\n")  # a mounted Secret's trailing newline
    socket_only = {k: v for k, v in SECRETS.items() if k != "ROLLBOT_SLACK__SIGNING_SECRET"}
    socket_only["ROLLBOT_SLACK__APP_TOKEN_FILE"] = str(token)
    assert check_config(catalog, environ=socket_only) == []
    settings = load_settings(catalog, environ=socket_only)
    assert settings.slack.app_token is not None
    assert settings.slack.app_token.get_secret_value() == "xapp-1-A0ROLLBOT-1-abc"
    assert settings.slack.signing_secret is None
    assert "xapp-1" not in repr(settings.slack)
    both = {**SECRETS, "ROLLBOT_SLACK__APP_TOKEN": "xapp-1-A0ROLLBOT-1-abc"}
    assert check_config(catalog, environ=both) == []
    neither = {k: v for k, v in socket_only.items() if not k.startswith("ROLLBOT_SLACK__APP")}
    (problem,) = check_config(catalog, environ=neither)
    assert problem.key_path == "slack.signing_secret"
    assert "ROLLBOT_SLACK__SIGNING_SECRET" in problem.message
    assert "ROLLBOT_SLACK__APP_TOKEN or ROLLBOT_SLACK__APP_TOKEN_FILE for Socket Mode" in (
        problem.message
    )
    wrong = {**neither, "ROLLBOT_SLACK__APP_TOKEN": "xoxb-1"}
    assert check_config(catalog, environ=wrong) == [
        ConfigProblem(
            "slack.app_token",
            "must be an app-level token (starting xapp-), not xoxb- "
            "(check ROLLBOT_SLACK__APP_TOKEN)",
        )
    ]


def test_a_circuit_breaker_without_a_flag_provider(catalog: Path) -> None:
    catalog.write_text(CATALOG.replace(FLAGS_SECTION, ""))
    problems = check_config(catalog, environ=SECRETS)
    assert paths(problems) == ["services.payment-router.flags.circuit"]
    assert "'payments.new-router.circuit-open'" in problems[0].message
    assert "flags.provider is not set" in problems[0].message


def test_no_config_file_found_is_said_so(tmp_path: Path) -> None:
    """Not a spurious "kubernetes.namespaces: nothing to watch"."""
    problems = check_config(environ=SECRETS)
    assert problems == [
        ConfigProblem(
            "(config file)",
            "none found: pass --config FILE, set ROLLBOT_CONFIG, or put rollbot.yaml in the "
            "working directory",
        )
    ]


def test_a_missing_runbook_names_each_place_looked_once(tmp_path: Path) -> None:
    """The config file in the working directory: its folder and the working directory are
    one place, named once."""
    path = write(tmp_path, CATALOG)
    problems = check_config(path, environ=SECRETS)
    assert problems == [
        ConfigProblem(
            "services.payment-router.runbook",
            f"file not found (looked at {tmp_path / 'runbooks' / 'payment-router.md'})",
        )
    ]

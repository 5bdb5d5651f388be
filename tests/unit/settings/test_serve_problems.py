"""Which configuration problems stop `rollbot serve`, and the kubeconfig from KUBECONFIG.

`rollbot serve` runs `check_config` before it opens anything and stops (exit 2) on every
problem not marked `advisory`; an advisory one leaves a feature off and is logged.

Aspects:
- advisory: a runbook file not found, a circuit flag without a flag provider, a link key
  without `server.public_url`, `jira.email` unset (the token is then a Bearer PAT);
- stopping: Slack secrets missing, no config file / nothing to watch, a kubeconfig not
  found, a flag provider or Jira without their tokens, a Slack token of the wrong shape,
  every problem that makes the settings unloadable;
- `advisory` is not part of a problem's equality;
- `KUBECONFIG` (when `kubernetes.kubeconfig` is unset) naming no existing file is a
  problem at `kubernetes.kubeconfig` saying where it came from; a list with one existing
  file is fine, as for the Kubernetes client.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from bot.settings import ConfigProblem, check_config

SECRETS = {
    "ROLLBOT_SLACK__BOT_TOKEN": "xoxb-very-secret",
    "ROLLBOT_SLACK__SIGNING_SECRET": "signing-very-secret",
}
SERVICE = """
services:
  payment-router:
    namespace: payments
    rollout: payment-router
    channel: "#payments-deploys"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rollbot.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def by_path(problems: list[ConfigProblem]) -> dict[str, bool]:
    """key path -> advisory."""
    return {p.key_path: p.advisory for p in problems}


def test_what_serve_starts_without_is_advisory(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        SERVICE
        + """
    runbook: runbooks/nowhere.md
    flags: {circuit: payments.new-router.circuit-open}
jira: {url: "https://jira.example.com"}
""",
    )
    env = {
        **SECRETS,
        "ROLLBOT_JIRA__API_TOKEN": "jira-token",
        "ROLLBOT_SERVER__LINK_SECRET": "a-link-key-of-enough-length-000000000",
    }
    assert by_path(check_config(path, environ=env)) == {
        "services.payment-router.runbook": True,
        "services.payment-router.flags.circuit": True,
        "server.public_url": True,
        "jira.email": True,
    }


def test_what_serve_cannot_run_with_stops_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "nope" / "kubeconfig"
    path = write(
        tmp_path,
        f"kubernetes: {{kubeconfig: {missing}}}\n"
        'flags: {provider: unleash, url: "http://unleash.example:4242"}\n'
        'jira: {url: "https://jira.example.com", email: a@example.com}\n' + SERVICE,
    )
    env = {"ROLLBOT_SLACK__BOT_TOKEN": "xoxp-a-user-token"}
    assert by_path(check_config(path, environ=env)) == {
        "slack.signing_secret": False,
        "kubernetes.kubeconfig": False,
        "slack.bot_token": False,
        "flags.api_token": False,
        "jira.api_token": False,
    }
    # Nothing to read at all: said, and stopping.
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.chdir(empty)
    assert by_path(check_config(None, environ=SECRETS)) == {"(config file)": False}
    # Unloadable settings stop it too.
    bad = write(tmp_path, SERVICE.replace('channel: "#payments-deploys"', "channel: nope"))
    assert by_path(check_config(bad, environ=SECRETS)) == {"services.payment-router.channel": False}


def test_advisory_is_not_part_of_equality() -> None:
    assert ConfigProblem("a", "b", advisory=True) == ConfigProblem("a", "b")


def test_a_kubeconfig_from_KUBECONFIG_that_does_not_exist_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, SERVICE)
    missing = tmp_path / "nope" / "config"
    problems = check_config(path, environ={**SECRETS, "KUBECONFIG": str(missing)})
    assert problems == [
        ConfigProblem("kubernetes.kubeconfig", f"file not found: {missing} (from KUBECONFIG)")
    ]
    assert not problems[0].advisory
    there = tmp_path / "config"
    there.write_text("apiVersion: v1\n")
    listed = os.pathsep.join([str(missing), str(there)])
    assert check_config(path, environ={**SECRETS, "KUBECONFIG": listed}) == []
    # kubernetes.kubeconfig, when set, is what is used (and checked), not KUBECONFIG.
    env = {**SECRETS, "KUBECONFIG": str(missing), "ROLLBOT_KUBERNETES__KUBECONFIG": str(there)}
    assert check_config(path, environ=env) == []

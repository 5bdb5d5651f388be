"""The release settings: per-service clocks validated with their key path; Jira and the
scheduler section; defaults that match the playbook."""

from __future__ import annotations

import json
from datetime import time
from pathlib import Path

import pytest

from bot.settings import ConfigError, load_settings

BASE = {
    "services": {
        "payment-router": {
            "namespace": "payments",
            "rollout": "payment-router",
            "channel": "#payments-deploys",
        }
    }
}


def _load(tmp_path: Path, extra: dict[str, object], env: dict[str, str] | None = None):
    data = json.loads(json.dumps(BASE))
    for key, value in extra.items():
        if key == "release":
            data["services"]["payment-router"]["release"] = value
        else:
            data[key] = value
    path = tmp_path / "rollbot.yaml"
    path.write_text(json.dumps(data))
    return load_settings(path, environ=env or {})


def test_defaults_follow_the_playbook(tmp_path: Path) -> None:
    svc = _load(tmp_path, {}).services["payment-router"]
    r = svc.release
    assert (r.flag_removal_days, r.contract_not_before_hours, r.contract_due_days) == (30, 72, 14)
    assert (r.experiment_removal_days, r.reminder_days_before) == (14, 2)
    assert r.timezone == "UTC" and r.notify_at == time(9, 30) and r.auto_start is False


def test_release_block_is_read(tmp_path: Path) -> None:
    r = (
        _load(
            tmp_path,
            {"release": {"timezone": "Europe/Berlin", "notify_at": "08:15", "auto_start": True}},
        )
        .services["payment-router"]
        .release
    )
    assert r.timezone == "Europe/Berlin" and r.notify_at == time(8, 15) and r.auto_start


@pytest.mark.parametrize(
    ("release", "key"),
    [
        ({"timezone": "Mars/Olympus"}, "services.payment-router.release.timezone"),
        ({"flag_removal_days": 0}, "services.payment-router.release.flag_removal_days"),
        ({"notify_at": "25:00"}, "services.payment-router.release.notify_at"),
        ({"unknown": 1}, "services.payment-router.release.unknown"),
    ],
)
def test_bad_release_settings_name_their_key(tmp_path: Path, release: dict, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, {"release": release})
    assert any(p.key_path == key for p in err.value.problems), err.value.problems


def test_jira_token_from_the_environment_only(tmp_path: Path) -> None:
    settings = _load(
        tmp_path,
        {"jira": {"url": "https://example.atlassian.net", "email": "rollbot@example.com"}},
        env={"ROLLBOT_JIRA__API_TOKEN": "t0ken"},
    )
    assert settings.jira.api_token is not None
    assert settings.jira.api_token.get_secret_value() == "t0ken"
    assert "t0ken" not in repr(settings)
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, {"jira": {"url": "https://x.atlassian.net", "api_token": "in-yaml"}})
    assert any(p.key_path == "jira.api_token" for p in err.value.problems)

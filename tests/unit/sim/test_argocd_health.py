"""The Argo CD sync loop sim's Rollout health (bot.sim.argo.health) against Argo CD's own
test table for its Rollout health check (tests/fixtures/argo-cd/rollout-health, from
argoproj/argo-cd's resource_customizations/argoproj.io/Rollout).

Aspects under test:
- every case of the table: the same status and message for the same Rollout;
- the order of health codes an Application's health takes the worst of.
"""

from __future__ import annotations

from typing import Any

import pytest

from bot.sim.argo.health import rollout_health, worst
from tests.plugins.fixtures import load_fixture

TABLE: list[dict[str, Any]] = load_fixture("argo-cd/rollout-health/health_test.yaml")["tests"]


def test_the_table_is_all_there() -> None:
    assert len(TABLE) == 24


@pytest.mark.parametrize("case", TABLE, ids=[c["inputPath"] for c in TABLE])
def test_rollout_health_as_argo_cd_reports_it(case: dict[str, Any]) -> None:
    obj = load_fixture(f"argo-cd/rollout-health/{case['inputPath']}")
    wanted = case["healthStatus"]
    assert rollout_health(obj) == (wanted["status"], wanted.get("message", ""))


def test_the_worst_health_wins() -> None:
    assert worst([]) == "Healthy"
    assert worst(["Healthy", "Suspended"]) == "Suspended"
    assert worst(["Suspended", "Progressing", "Healthy"]) == "Progressing"
    assert worst(["Progressing", "Missing"]) == "Missing"
    assert worst(["Degraded", "Missing", "Healthy"]) == "Degraded"
    assert worst(["Degraded", "Unknown"]) == "Unknown"

"""The release checklist, item by item, against the sims through the real clients: the flag
inventory read from LaunchDarkly, the Rollout and its AnalysisTemplate from the Kubernetes
API, the runbook file, the runbook link in the PagerDuty service's description, the
cleanup tickets in Jira (linked: rollbot's own links render as links in Slack); and each ❌
with the evidence of what is missing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bot.core.model import Actor
from bot.sim.harness import CHANNEL_ID, SimWorld
from bot.sim.launchdarkly import DEFAULT_TOKEN, LaunchDarklySim
from bot.sim.pagerduty import PagerDutySim

pytestmark = pytest.mark.timeout(90)

RELEASE = "payments.new-router.enabled"
EXPERIMENT = "payments.dynamic-currency.enabled"
CIRCUIT = "payments.new-router.circuit-open"
PUBLIC = "https://rollbot.example.com"


def _items(view: Any) -> dict[str, Any]:
    return {item.name: item for item in view.checklist}


async def _checklist(world: SimWorld) -> dict[str, Any]:
    engine = world.rollbot.releases
    created, view = await engine.start(
        "payment-router", "1.13.0", actor=Actor("ci", "CI", source="cli")
    )
    assert created
    return _items(await engine.view(view.release))


def _checklist_message(world: SimWorld) -> str:
    """The checklist message in the release thread, as Slack has it (its blocks' JSON)."""
    found = [
        m for m in world.slack.messages(CHANNEL_ID) if "checklist" in (m.get("text") or "").lower()
    ]
    assert len(found) == 1, found
    return json.dumps(found[0]["blocks"], ensure_ascii=False)


async def test_every_item_ok_with_its_evidence(tmp_path: Path) -> None:
    with LaunchDarklySim() as ld, PagerDutySim() as pd:
        for key in (RELEASE, EXPERIMENT, CIRCUIT):
            ld.add_flag("default", key, on=False)
        pd.add_escalation_policy("PESC123", "Payments")
        pd.add_service(
            "PSVC123",
            "payment-router",
            description=f"Runbook: {PUBLIC}/runbooks/payment-router (first link on every alert)",
            escalation_policy_id="PESC123",
        )
        settings = {
            "flags": {"provider": "launchdarkly", "url": ld.url, "project": "default"},
            "pagerduty": {"api_url": pd.url, "ca_file": pd.ca_file},
            "server": {"public_url": PUBLIC},
            "services": {
                "payment-router": {
                    "pagerduty": {"service_id": "PSVC123", "escalation_policy_id": "PESC123"},
                    "flags": {"experiment": EXPERIMENT},
                    "release": {"risk_surface": "https://wiki.example.com/risk/new-router"},
                }
            },
        }
        env = {"ROLLBOT_FLAGS__API_TOKEN": DEFAULT_TOKEN, "ROLLBOT_PAGERDUTY__API_TOKEN": pd.token}
        async with SimWorld(
            speed=60, workdir=tmp_path, settings=settings, env=env, jira=True
        ) as world:
            items = await _checklist(world)
            checklist = _checklist_message(world)
    assert all(item.ok is True for item in items.values()), items
    assert items["Risk surface document linked"].evidence.endswith("/risk/new-router")
    assert "3/3 in launchdarkly" in items["Flag inventory registered"].evidence
    cluster = items["Rollout and AnalysisTemplate in the cluster"].evidence
    assert "payments/payment-router" in cluster and "payment-router-slo" in cluster
    assert "payment-router.md" in items["Runbook present"].evidence
    assert "PSVC123 links https://rollbot.example.com/runbooks/payment-router" in (
        items["Runbook linked from PagerDuty"].evidence
    )
    tickets = items["Cleanup tickets filed"]
    assert tickets.evidence == "4 of 4 filed"  # the experiment flag: a fourth
    assert [label for label, _ in tickets.links] == ["PAY-1", "PAY-2", "PAY-3", "PAY-4"]
    assert all(url.endswith(f"/browse/{label}") for label, url in tickets.links)
    # In Slack, rollbot's links to Jira are links (not escaped as if they were outside text).
    assert f"<{tickets.links[0][1]}|PAY-1>" in checklist
    assert "&lt;http" not in checklist


async def test_missing_things_are_crosses_saying_what_is_missing(tmp_path: Path) -> None:
    with LaunchDarklySim() as ld, PagerDutySim() as pd:
        ld.add_flag("default", CIRCUIT, on=False)  # the release flag was never registered
        pd.add_service("PSVC123", "payment-router", description="no runbook here")
        settings = {
            "flags": {"provider": "launchdarkly", "url": ld.url, "project": "default"},
            "pagerduty": {"api_url": pd.url, "ca_file": pd.ca_file},
            "services": {
                "payment-router": {
                    "pagerduty": {"service_id": "PSVC123"},
                    "runbook": "runbooks/nope.md",
                }
            },
        }
        env = {"ROLLBOT_FLAGS__API_TOKEN": DEFAULT_TOKEN, "ROLLBOT_PAGERDUTY__API_TOKEN": pd.token}
        async with SimWorld(speed=60, workdir=tmp_path, settings=settings, env=env) as world:
            world.kube.delete("analysistemplates", "payments", "payment-router-slo")
            items = await _checklist(world)
    assert items["Risk surface document linked"].ok is False
    assert "release.risk_surface" in items["Risk surface document linked"].evidence
    flags = items["Flag inventory registered"]
    assert flags.ok is False and RELEASE in flags.evidence and CIRCUIT not in flags.evidence
    cluster = items["Rollout and AnalysisTemplate in the cluster"]
    assert cluster.ok is False and "AnalysisTemplate missing: payment-router-slo" in (
        cluster.evidence
    )
    assert items["Runbook present"].ok is False
    assert "runbooks/nope.md not found" in items["Runbook present"].evidence
    pd_item = items["Runbook linked from PagerDuty"]
    assert pd_item.ok is False and "does not link the runbook" in pd_item.evidence
    tickets = items["Cleanup tickets filed"]
    assert tickets.ok is False and "jira.url" in tickets.evidence

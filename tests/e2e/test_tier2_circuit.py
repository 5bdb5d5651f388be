"""Tier 2 end to end: the circuit-breaker flag flipped from Slack (LaunchDarkly sim).

The flag provider here is the LaunchDarkly REST API v2 simulation (bot/sim/launchdarkly.py);
the same pipeline against a real Unleash server is tested in test_tier2_unleash.py.

Aspects under test:
- a flag provider configured → the card offers Tier 2 with a button; clicking it as an
  owner flips `payments.new-router.circuit-open` on with one semantic patch, reads it back,
  audits it and reports it on the card and thread;
- a double click flips once, the loser is told who did it;
- someone outside the owners group is refused, naming who may, and nothing is flipped;
- `/rollback payment-router circuit close` turns it off; `/rollback payment-router flags`
  shows the hierarchy's live states; a flag missing in the provider names the key tried.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from bot.sim.harness import ONCALL, OUTSIDER, SimWorld
from bot.sim.launchdarkly import DEFAULT_TOKEN, LaunchDarklySim

pytestmark = pytest.mark.timeout(120)
FLAG = "payments.new-router.circuit-open"


def responses_text(world: SimWorld) -> str:
    return "\n".join(json.dumps(r.body, ensure_ascii=False) for r in world.slack.responses)


def flips(ld: LaunchDarklySim) -> list:
    return [r for r in ld.requests if r.method == "PATCH"]


@pytest.fixture
async def world_ld(tmp_path):
    with LaunchDarklySim() as ld:
        ld.add_flag("default", FLAG, on=False)
        ld.add_flag("default", "payments.new-router.enabled", on=True)
        settings = {
            "flags": {
                "provider": "launchdarkly",
                "url": ld.url,
                "project": "default",
                "environment": "production",
            }
        }
        async with SimWorld(
            speed=600,
            workdir=tmp_path,
            settings=settings,
            env={"ROLLBOT_FLAGS__API_TOKEN": DEFAULT_TOKEN},
        ) as world:
            yield world, ld


async def card_with_circuit(world: SimWorld) -> dict:
    return await world.wait_for(
        lambda: (c := world.card()) and world.button(c, "circuit_open") and c,
        timeout=40,
        what="the card with the Tier 2 button",
    )


async def test_click_opens_the_circuit_once_verified_audited_reported(world_ld):
    world, ld = world_ld
    card = await card_with_circuit(world)
    confirm = json.dumps(world.button(card, "circuit_open")["confirm"])
    assert FLAG in confirm and "in production" in confirm  # the flag, its environment,
    assert "legacy path" in confirm  # the effect, naming the flag it overrides
    assert "payments.new-router.enabled is ignored" in confirm  # plain text: no backticks
    assert "`" not in confirm
    results = await asyncio.gather(
        world.click(card, "circuit_open"), world.click(card, "circuit_open")
    )
    assert all(r.status_code == 200 for r in results)
    await world.wait_for(
        lambda: "Opened the circuit" in responses_text(world), timeout=20, what="the flip reply"
    )
    await world.wait_for(
        lambda: "already" in responses_text(world).lower(), timeout=10, what="the loser told"
    )
    assert ld.is_on("default", FLAG, "production")
    sent = flips(ld)
    assert len(sent) == 1
    assert (
        sent[0]
        .headers["content-type"]
        .startswith("application/json; domain-model=launchdarkly.semanticpatch")
    )
    body = sent[0].body
    assert body["environmentKey"] == "production"
    assert body["instructions"] == [{"kind": "turnFlagOn"}]
    assert "circuit-open by" in body["comment"]
    entries = [
        e for e in await world.rollbot.store.audit_entries() if e.entry.action == "circuit-open"
    ]
    assert [e.entry.result for e in entries].count("succeeded") == 1
    ok = next(e for e in entries if e.entry.result == "succeeded")
    assert ok.entry.before["enabled"] is False and ok.entry.after["enabled"] is True
    await world.wait_for(
        lambda: "Circuit opened by" in json.dumps(world.card()),
        timeout=10,
        what="the outcome on the card",
    )


async def test_outsider_refused_and_nothing_flipped(world_ld):
    world, ld = world_ld
    card = await card_with_circuit(world)
    await world.click(card, "circuit_open", user=OUTSIDER)
    await world.wait_for(lambda: "may not" in responses_text(world), timeout=10, what="the refusal")
    assert "S0PAYMENTS" in responses_text(world)
    assert flips(ld) == []
    assert not ld.is_on("default", FLAG, "production")


async def test_commands_close_flags_and_missing_flag(world_ld):
    world, ld = world_ld
    ld.set_on("default", FLAG, "production", True)
    await world.sender.slash_command(ONCALL[0], ONCALL[1], "payment-router circuit close").send()
    await world.wait_for(
        lambda: "Closed the circuit" in responses_text(world), timeout=20, what="the close reply"
    )
    assert not ld.is_on("default", FLAG, "production")
    await world.sender.slash_command(ONCALL[0], ONCALL[1], "payment-router flags").send()
    await world.wait_for(
        lambda: "Flags of" in responses_text(world), timeout=10, what="the flags listing"
    )
    text = responses_text(world)
    assert "*release toggle* `payments.new-router.enabled` is *on*" in text
    assert f"*ops toggle (circuit breaker)* `{FLAG}` is *off*" in text
    assert "long-lived (ops toggle)" in text  # the circuit breaker is never due for removal

    ld.remove_flag("default", FLAG)
    sent = len(flips(ld))
    await world.sender.slash_command(ONCALL[0], ONCALL[1], "payment-router circuit open").send()
    await world.wait_for(
        lambda: "not found" in responses_text(world), timeout=10, what="the missing-flag reply"
    )
    assert f"`{FLAG}` not found" in responses_text(world)  # names the key tried
    assert len(flips(ld)) == sent


async def test_circuit_state_shows_on_the_card_and_closes_from_it(world_ld):
    world, ld = world_ld
    card = await card_with_circuit(world)
    await world.wait_for(
        lambda: "is closed in production" in json.dumps(world.card()),
        timeout=20,
        what="the breaker's state on the card",
    )
    await world.click(card, "circuit_open")
    await world.wait_for(
        lambda: "is *OPEN* in production" in json.dumps(world.card()),
        timeout=20,
        what="the open breaker on the card",
    )
    opened = world.card()
    assert world.button(opened, "circuit_open") is None
    close = world.button(opened, "circuit_close")
    assert close is not None and FLAG in json.dumps(close["confirm"])
    assert "Circuit breaker `payments.new-router.circuit-open` OPEN" in opened["text"]

    response = await world.click(opened, "circuit_close")
    assert response.status_code == 200
    await world.wait_for(
        lambda: "is closed in production" in json.dumps(world.card()),
        timeout=20,
        what="the closed breaker on the card",
    )
    assert not ld.is_on("default", FLAG)
    assert world.button(world.card(), "circuit_open") is not None
    assert [b["instructions"] for b in (r.body for r in flips(ld))] == [
        [{"kind": "turnFlagOn"}],
        [{"kind": "turnFlagOff"}],
    ]

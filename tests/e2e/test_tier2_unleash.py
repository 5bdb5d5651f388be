"""Tier 2 against a real Unleash server: a signed Slack click flips the circuit flag, and a
real Unleash SDK sees it.

Aspects under test:
- the card's Tier 2 button (an owners-group member) turns `payments.new-router.circuit-open`
  on in the real Unleash (admin API read-back), once;
- a real `UnleashClient` SDK polling every second sees the flag on;
- rollbot itself reports in the card's thread when SDKs are served the new state
  ("effective for SDKs after N s"), from Unleash's client API;
- `/rollback payment-router circuit close` turns it off and the SDK sees that too.
"""

from __future__ import annotations

import json
import time

import pytest
from UnleashClient import UnleashClient
from UnleashClient.utils import InstanceAllowType

from bot.sim.harness import CHANNEL_ID, ONCALL, SimWorld
from tests.helpers import eventually

pytestmark = pytest.mark.timeout(120)
FLAG = "payments.new-router.circuit-open"


def responses_text(world: SimWorld) -> str:
    return "\n".join(json.dumps(r.body, ensure_ascii=False) for r in world.slack.responses)


async def sdk_sees(client: UnleashClient, expected: bool, timeout: float = 15.0) -> float:
    started = time.monotonic()
    await eventually(
        lambda: client.is_enabled(FLAG) is expected,
        timeout=timeout,
        interval=0.1,
        what=f"the SDK sees {FLAG} {expected}",
    )
    return time.monotonic() - started


async def test_click_flips_real_unleash_and_a_real_sdk_sees_it(tmp_path, unleash_peer):
    unleash_peer.create_flag(FLAG, enabled=False)
    sdk = UnleashClient(
        url=f"{unleash_peer.url}/api",
        app_name="payment-router",
        environment=unleash_peer.environment,
        custom_headers={"Authorization": unleash_peer.client_token},
        refresh_interval=1,
        disable_metrics=True,
        disable_registration=True,
        cache_directory=str(tmp_path / "unleash-cache"),
        multiple_instance_mode=InstanceAllowType.SILENTLY_ALLOW,
    )
    sdk.initialize_client()
    try:
        settings = {
            "flags": {
                "provider": "unleash",
                "url": unleash_peer.url,
                "project": unleash_peer.project,
                "environment": unleash_peer.environment,
            }
        }
        env = {
            "ROLLBOT_FLAGS__API_TOKEN": unleash_peer.admin_token,
            "ROLLBOT_FLAGS__CLIENT_TOKEN": unleash_peer.client_token,
        }
        async with SimWorld(speed=600, workdir=tmp_path, settings=settings, env=env) as world:
            card = await world.wait_for(
                lambda: (c := world.card()) and world.button(c, "circuit_open") and c,
                timeout=40,
                what="the card with the Tier 2 button",
            )
            assert sdk.is_enabled(FLAG) is False
            await world.click(card, "circuit_open")
            await world.wait_for(
                lambda: "Opened the circuit" in responses_text(world),
                timeout=20,
                what="the flip reply",
            )
            assert unleash_peer.flag_enabled(FLAG) is True
            seen_after = await sdk_sees(sdk, True)
            line = await world.wait_for(
                lambda: next(
                    (
                        m["text"]
                        for m in world.slack.thread(CHANNEL_ID, card["ts"])
                        if "effective for SDKs after" in m["text"]
                    ),
                    None,
                ),
                timeout=30,
                what="rollbot's SDK-visibility line",
            )
            assert FLAG in line
            assert seen_after < 15

            await world.sender.slash_command(
                ONCALL[0], ONCALL[1], "payment-router circuit close"
            ).send()
            await world.wait_for(
                lambda: "Closed the circuit" in responses_text(world),
                timeout=20,
                what="the close reply",
            )
            assert unleash_peer.flag_enabled(FLAG) is False
            await sdk_sees(sdk, False)
            results = [e.entry.result for e in await world.rollbot.store.audit_entries()]
            assert results == ["succeeded", "succeeded"]
    finally:
        sdk.destroy()

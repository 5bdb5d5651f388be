"""Benchmark: Tier 2 circuit flip through rollbot vs. directly against Unleash's admin API.

Against a real Unleash server (`unleash_peer`) and rollbot in a SimWorld configured with the
Unleash flags provider (as tests/e2e/test_tier2_unleash.py), ROUNDS flips alternate open and
close of `payments.new-router.circuit-open`: open by clicking the card's `circuit_open`
button (signed, as Slack sends it; by `/rollback payment-router circuit open` should the
card no longer carry the button), close by `/rollback payment-router circuit close`.
Measured per flip:

1. click → flipped and confirmed: from sending the signed request to rollbot's reply
   ("Opened the circuit …" / "Closed the circuit …") reaching the Slack sim's response_url;
   rollbot sends it only after reading the flag back from Unleash;
2. click → an SDK sees it: to the moment a real `UnleashClient` (refresh_interval=1 s,
   polled every 20 ms with `is_enabled`) returns the new state.

The baseline is measured in the same run, interleaved round by round with rollbot's flips
(which one goes first alternates): the same flip of a second flag of the same shape done
directly with httpx (POST `/api/admin/projects/{p}/features/{f}/environments/{env}/on|off`,
then GET read-back, admin token, one kept-alive client), and the time until the same SDK
sees it. Prints p50 / max of each, the ratios rollbot / baseline and rollbot's overhead
(median of the per-round differences, ms). The SDK-sees figure is dominated by the SDK's
refresh interval (and Unleash's client-API cache), not by rollbot. Run with `make bench`;
asserts only correctness (every flip read back right, the SDK agreed each time).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
import urllib.parse
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from UnleashClient import UnleashClient
from UnleashClient.utils import InstanceAllowType

from bot.sim.harness import ONCALL, SimWorld
from tests.helpers import eventually
from tests.plugins.unleash import UnleashPeer

FLAG = "payments.new-router.circuit-open"
BASELINE_FLAG = "bench.baseline.circuit-open"
ROUNDS = 10  # alternating open / close
POLL = 0.02
SDK_TIMEOUT = 15.0
REPLY_TIMEOUT = 20.0


def ms(seconds: float) -> float:
    return seconds * 1000


async def sdk_sees(sdk: UnleashClient, flag: str, expected: bool, t0: float) -> float:
    """Seconds from t0 (time.time()) until the SDK returns `expected` for `flag`."""
    await eventually(
        lambda: sdk.is_enabled(flag) is expected,
        timeout=max(0.0, t0 + SDK_TIMEOUT - time.time()),
        interval=POLL,
        what=f"the SDK sees {flag} {expected}",
    )
    return time.time() - t0


async def rollbot_flip(world: SimWorld, sdk: UnleashClient, want: bool) -> tuple[float, float, str]:
    """(click → confirmed reply, click → SDK sees, how it was sent) for one flip through rollbot."""
    expected_text = "Opened the circuit" if want else "Closed the circuit"
    seen = len(world.slack.responses)
    card = world.card()
    via = "command"
    t0 = time.time()
    if want and card is not None and world.button(card, "circuit_open"):
        via = "card button"
        response = await world.click(card, "circuit_open")
    else:
        verb = "open" if want else "close"
        response = await world.sender.slash_command(
            ONCALL[0], ONCALL[1], f"payment-router circuit {verb}"
        ).send()
    assert response.status_code == 200, response.text
    sdk_task = asyncio.create_task(sdk_sees(sdk, FLAG, want, t0))
    replies = await world.wait_for(
        lambda: world.slack.responses[seen:], timeout=REPLY_TIMEOUT, what="rollbot's reply"
    )
    reply = replies[0]
    body = json.dumps(reply.body, ensure_ascii=False)
    assert expected_text in body, body
    sdk_after = await sdk_task
    return reply.at - t0, sdk_after, via


async def direct_flip(
    client: httpx.AsyncClient, peer: UnleashPeer, sdk: UnleashClient, want: bool
) -> tuple[float, float]:
    """(flip + read-back, flip → SDK sees) for the same flip straight against the admin API."""
    path = (
        f"/api/admin/projects/{peer.project}/features/{urllib.parse.quote(BASELINE_FLAG, safe='')}"
    )
    headers = {"Authorization": peer.admin_token, "Accept": "application/json"}
    t0 = time.time()
    flipped = await client.post(
        f"{path}/environments/{peer.environment}/{'on' if want else 'off'}", headers=headers
    )
    assert flipped.status_code < 300, flipped.text
    read = await client.get(path, headers=headers)
    assert read.status_code == 200, read.text
    confirmed = time.time() - t0
    env = next(e for e in read.json()["environments"] if e["name"] == peer.environment)
    assert env["enabled"] is want
    sdk_after = await sdk_sees(sdk, BASELINE_FLAG, want, t0)
    return confirmed, sdk_after


@pytest.mark.timeout(600)
async def test_tier2_flip_vs_direct_unleash(tmp_path: Path, unleash_peer: UnleashPeer) -> None:
    unleash_peer.create_flag(FLAG, enabled=False)
    unleash_peer.create_flag(BASELINE_FLAG, enabled=False)
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
    rollbot: dict[str, list[float]] = {"confirmed": [], "sdk": []}
    direct: dict[str, list[float]] = {"confirmed": [], "sdk": []}
    vias: list[str] = []
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
        async with (
            SimWorld(speed=600, workdir=tmp_path, settings=settings, env=env) as world,
            httpx.AsyncClient(base_url=unleash_peer.url, timeout=10) as client,
        ):
            await world.wait_for(
                lambda: (c := world.card()) and world.button(c, "circuit_open") and c,
                timeout=40,
                what="the card with the Tier 2 button",
            )
            assert sdk.is_enabled(FLAG) is False
            assert sdk.is_enabled(BASELINE_FLAG) is False
            for round_ in range(ROUNDS):
                want = round_ % 2 == 0  # open, close, open, …

                async def through_rollbot(want: bool = want) -> None:
                    confirmed, seen, via = await rollbot_flip(world, sdk, want)
                    assert unleash_peer.flag_enabled(FLAG) is want
                    rollbot["confirmed"].append(confirmed)
                    rollbot["sdk"].append(seen)
                    vias.append(via)

                async def straight(want: bool = want) -> None:
                    confirmed, seen = await direct_flip(client, unleash_peer, sdk, want)
                    direct["confirmed"].append(confirmed)
                    direct["sdk"].append(seen)

                # Alternate which goes first, so neither gains from going second.
                order = (
                    (through_rollbot, straight) if round_ % 2 == 0 else (straight, through_rollbot)
                )
                for step in order:
                    await step()
            results = [e.entry.result for e in await world.rollbot.store.audit_entries()]
    finally:
        sdk.destroy()

    assert results == ["succeeded"] * ROUNDS, results
    assert len(rollbot["sdk"]) == len(direct["sdk"]) == ROUNDS

    print(
        f"\nTier 2 flip · {ROUNDS} rounds alternating open/close · real Unleash "
        f"({unleash_peer.url}) · rollbot in SimWorld · "
        f"rollbot's flips: {', '.join(f'{vias.count(v)} by {v}' for v in sorted(set(vias)))}"
    )
    print(f"{'measure':<36}{'path':<10}{'p50 ms':>9}{'max ms':>9}")
    rows = [
        ("click → flipped and confirmed", "confirmed"),
        ("click → SDK sees it", "sdk"),
    ]
    for label, key in rows:
        for name, samples in (("rollbot", rollbot[key]), ("direct", direct[key])):
            print(
                f"{label:<36}{name:<10}{ms(statistics.median(samples)):9.1f}{ms(max(samples)):9.1f}"
            )
        ratio = statistics.median(rollbot[key]) / statistics.median(direct[key])
        overhead = ms(
            statistics.median(r - d for r, d in zip(rollbot[key], direct[key], strict=True))
        )
        print(
            f"{'':<36}p50 ratio rollbot / direct = {ratio:.2f}x · "
            f"rollbot overhead (median of per-round differences) {overhead:+.1f} ms"
        )
    print(
        "'direct' = httpx POST …/environments/{env}/on|off + GET read-back, admin token, "
        "same run, interleaved with rollbot's rounds."
    )
    print(
        "SDK-sees time is dominated by the SDK's refresh interval (1 s) and Unleash's "
        "client-API cache, not by rollbot: about one interval on either path, sometimes two."
    )
    print(f"measured at {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")

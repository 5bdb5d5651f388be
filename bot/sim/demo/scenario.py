"""The demo's world beyond payment-router: its flags and the workbench's scenario button.

Shared by ``rollbot demo`` (the workbench's flag panel and Scenarios button) and the
``checkout-circuit`` drill, which rehearses that same scenario headless.
"""

from __future__ import annotations

from typing import Any

from bot.sim import workbench
from bot.sim import world as sim_world
from bot.sim.launchdarkly import DEFAULT_TOKEN as LD_TOKEN
from bot.sim.launchdarkly import LaunchDarklySim

__all__ = ["CHECKOUT_ALERT", "DEFAULT_UI_PORT", "DEMO_FLAGS", "flag_settings"]

DEMO_FLAGS = (
    "payments.new-router.enabled",
    "payments.new-router.circuit-open",
    sim_world.CHECKOUT_FLAGS["release"],
    sim_world.CHECKOUT_FLAGS["circuit"],
)
#: The workbench's scenario button: checkout (fully rolled out) starts failing, so its card
#: recommends the circuit breaker (Tier 2), there being no canary to abort.
CHECKOUT_ALERT = workbench.AlertScenario(
    sim_world.CHECKOUT,
    "RollbotErrorRateHigh",
    "checkout: 5xx ratio 9 % on the new tax engine (SLO < 1 %)",
    (("slo", "error_rate"),),
)
DEFAULT_UI_PORT = 8088


def flag_settings(ld: LaunchDarklySim) -> tuple[dict[str, Any], dict[str, str]]:
    """Settings and environment that point the bot at the LaunchDarkly sim."""
    for key in DEMO_FLAGS:
        ld.add_flag("default", key, on=not key.endswith(".circuit-open"))
    settings = {
        "flags": {
            "provider": "launchdarkly",
            "url": ld.url,
            "project": "default",
            "environment": "production",
        }
    }
    return settings, {"ROLLBOT_FLAGS__API_TOKEN": LD_TOKEN}
